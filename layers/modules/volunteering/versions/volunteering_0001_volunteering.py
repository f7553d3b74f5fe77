"""Volunteering: volunteer roles, shifts to staff at events (the events module's events), and
volunteers signing up for shifts.

A module works with any template, so a sign-up names its volunteer by email (and links the
tenant user when the volunteer has an account); one sign-up per volunteer per shift.

Revision ID: volunteering_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "volunteering_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volunteer_roles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_volunteer_roles_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("name", name="uq_volunteer_roles_name"),
    )
    op.create_index("ix_volunteer_roles_unit_id", "volunteer_roles", ["unit_id"])
    op.create_table(
        "volunteer_shifts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("events.id", name="fk_volunteer_shifts_event", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "role_id",
            sa.Integer,
            sa.ForeignKey("volunteer_roles.id", name="fk_volunteer_shifts_role", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slots", sa.Integer, nullable=False, server_default="1"),
        sa.Column("notes", sa.Text),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_volunteer_shifts_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("ends_at > starts_at", name="ck_volunteer_shifts_period"),
        sa.CheckConstraint("slots >= 1", name="ck_volunteer_shifts_slots"),
    )
    # An event's rota in time order; leads with event_id, so it serves the foreign key too.
    op.create_index("ix_volunteer_shifts_event_id_starts_at", "volunteer_shifts", ["event_id", "starts_at"])
    op.create_index("ix_volunteer_shifts_role_id", "volunteer_shifts", ["role_id"])
    op.create_index("ix_volunteer_shifts_unit_id", "volunteer_shifts", ["unit_id"])
    op.create_table(
        "shift_signups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "shift_id",
            sa.Integer,
            sa.ForeignKey("volunteer_shifts.id", name="fk_shift_signups_shift", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_shift_signups_user", ondelete="SET NULL"),
        ),
        sa.Column("volunteer_name", sa.String(200), nullable=False),
        sa.Column("volunteer_email", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="confirmed"),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_shift_signups_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("shift_id", "volunteer_email", name="uq_shift_signups_volunteer"),
        sa.CheckConstraint(
            "status IN ('confirmed', 'cancelled', 'attended', 'no_show')", name="ck_shift_signups_status"
        ),
    )
    op.create_index("ix_shift_signups_user_id", "shift_signups", ["user_id"])
    op.create_index("ix_shift_signups_unit_id", "shift_signups", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_shift_signups_unit_id", table_name="shift_signups")
    op.drop_index("ix_shift_signups_user_id", table_name="shift_signups")
    op.drop_table("shift_signups")
    op.drop_index("ix_volunteer_shifts_unit_id", table_name="volunteer_shifts")
    op.drop_index("ix_volunteer_shifts_role_id", table_name="volunteer_shifts")
    op.drop_index("ix_volunteer_shifts_event_id_starts_at", table_name="volunteer_shifts")
    op.drop_table("volunteer_shifts")
    op.drop_index("ix_volunteer_roles_unit_id", table_name="volunteer_roles")
    op.drop_table("volunteer_roles")
