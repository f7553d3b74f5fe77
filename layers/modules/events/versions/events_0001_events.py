"""Events: venues, events held at them, and registrations for each event.

A module works with any template, so a registration names its attendee by email (and links the
tenant user when the attendee has an account); one registration per attendee per event.

Revision ID: events_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "events_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "venues",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("city", sa.String(100)),
        sa.Column("seats", sa.Integer),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_venues_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("name", name="uq_venues_name"),
        sa.CheckConstraint("seats IS NULL OR seats >= 0", name="ck_venues_seats"),
    )
    op.create_index("ix_venues_unit_id", "venues", ["unit_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "venue_id", sa.Integer, sa.ForeignKey("venues.id", name="fk_events_venue", ondelete="SET NULL")
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_events_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'cancelled', 'completed')", name="ck_events_status"
        ),
        sa.CheckConstraint("ends_at IS NULL OR ends_at >= starts_at", name="ck_events_period"),
    )
    op.create_index("ix_events_venue_id", "events", ["venue_id"])
    op.create_index("ix_events_starts_at", "events", ["starts_at"])
    op.create_index("ix_events_unit_id", "events", ["unit_id"])
    op.create_table(
        "event_registrations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("events.id", name="fk_event_registrations_event", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_event_registrations_user", ondelete="SET NULL"),
        ),
        sa.Column("attendee_name", sa.String(200), nullable=False),
        sa.Column("attendee_email", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="registered"),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_event_registrations_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("event_id", "attendee_email", name="uq_event_registrations_attendee"),
        sa.CheckConstraint(
            "status IN ('registered', 'waitlisted', 'cancelled', 'attended')",
            name="ck_event_registrations_status",
        ),
    )
    op.create_index("ix_event_registrations_user_id", "event_registrations", ["user_id"])
    op.create_index("ix_event_registrations_unit_id", "event_registrations", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_event_registrations_unit_id", table_name="event_registrations")
    op.drop_index("ix_event_registrations_user_id", table_name="event_registrations")
    op.drop_table("event_registrations")
    op.drop_index("ix_events_unit_id", table_name="events")
    op.drop_index("ix_events_starts_at", table_name="events")
    op.drop_index("ix_events_venue_id", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_venues_unit_id", table_name="venues")
    op.drop_table("venues")
