"""Events 1.1: an event's capacity (registrations beyond it are waitlisted), and an index for the
"upcoming published events" listing.

Revision ID: events_0002
Revises: events_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0002"
down_revision = "events_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: SQLite adds it in place (no table copy).
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("capacity", sa.Integer))
    op.create_index("ix_events_status_starts_at", "events", ["status", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_events_status_starts_at", table_name="events")
    # In place, never a copy-and-move: the migrator runs with foreign keys on inside a transaction
    # (where SQLite cannot turn them off), and dropping the old "events" table during a copy would
    # fire ON DELETE CASCADE on event_registrations (and other modules' rows). SQLite >= 3.35 drops
    # an unindexed, unconstrained column in place; PostgreSQL always does.
    with op.batch_alter_table("events", recreate="never") as batch:
        batch.drop_column("capacity")
