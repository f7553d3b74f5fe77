"""Community group: its groups, the people in the community and their group memberships, each
group's own meetings (group_events: the events module owns "events") and who attended them.

Revision ID: community_group_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "community_group_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("meeting_schedule", sa.String(200)),
        sa.Column("is_open", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_groups_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("name", name="uq_groups_name"),
    )
    op.create_index("ix_groups_unit_id", "groups", ["unit_id"])
    op.create_table(
        "community_members",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_community_members_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("email", name="uq_community_members_email"),
    )
    op.create_index("ix_community_members_name", "community_members", ["name"])
    op.create_index("ix_community_members_unit_id", "community_members", ["unit_id"])
    op.create_table(
        "group_memberships",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("groups.id", name="fk_group_memberships_group", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("community_members.id", name="fk_group_memberships_member", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(16), nullable=False, server_default="member"),
        sa.Column("joined_on", sa.Date, nullable=False),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_group_memberships_unit", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("group_id", "member_id", name="uq_group_memberships_pair"),
        sa.CheckConstraint("role IN ('member', 'organiser', 'leader')", name="ck_group_memberships_role"),
    )
    op.create_index("ix_group_memberships_member_id", "group_memberships", ["member_id"])
    op.create_index("ix_group_memberships_unit_id", "group_memberships", ["unit_id"])
    op.create_table(
        "group_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("groups.id", name="fk_group_events_group", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("location", sa.String(300)),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True)),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_group_events_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.CheckConstraint("ends_at IS NULL OR ends_at >= starts_at", name="ck_group_events_period"),
    )
    # A group's calendar, in order; leads with group_id, so it serves the foreign key too.
    op.create_index("ix_group_events_group_id_starts_at", "group_events", ["group_id", "starts_at"])
    op.create_index("ix_group_events_unit_id", "group_events", ["unit_id"])
    op.create_table(
        "attendance",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "group_event_id",
            sa.Integer,
            sa.ForeignKey("group_events.id", name="fk_attendance_group_event", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("community_members.id", name="fk_attendance_member", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default="present"),
        sa.Column("checked_in_at", sa.DateTime(timezone=True)),
        sa.Column(
            "unit_id", sa.Integer, sa.ForeignKey("units.id", name="fk_attendance_unit", ondelete="SET NULL")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("group_event_id", "member_id", name="uq_attendance_pair"),
        sa.CheckConstraint("status IN ('present', 'absent', 'excused')", name="ck_attendance_status"),
    )
    op.create_index("ix_attendance_member_id", "attendance", ["member_id"])
    op.create_index("ix_attendance_unit_id", "attendance", ["unit_id"])


def downgrade() -> None:
    op.drop_index("ix_attendance_unit_id", table_name="attendance")
    op.drop_index("ix_attendance_member_id", table_name="attendance")
    op.drop_table("attendance")
    op.drop_index("ix_group_events_unit_id", table_name="group_events")
    op.drop_index("ix_group_events_group_id_starts_at", table_name="group_events")
    op.drop_table("group_events")
    op.drop_index("ix_group_memberships_unit_id", table_name="group_memberships")
    op.drop_index("ix_group_memberships_member_id", table_name="group_memberships")
    op.drop_table("group_memberships")
    op.drop_index("ix_community_members_unit_id", table_name="community_members")
    op.drop_index("ix_community_members_name", table_name="community_members")
    op.drop_table("community_members")
    op.drop_index("ix_groups_unit_id", table_name="groups")
    op.drop_table("groups")
