"""Core of every tenant store: roles, units (the hierarchy scope is built on), users and their
unit assignments, settings, and the tenant-side audit log.

Revision ID: basic_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "basic_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text),
        sa.UniqueConstraint("key", name="uq_roles_key"),
    )
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "parent_id", sa.Integer, sa.ForeignKey("units.id", name="fk_units_parent", ondelete="RESTRICT")
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(63), nullable=False, server_default="unit"),
        # Materialised path of ids ("/1/4/9/"): a subtree is one indexed prefix match.
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("parent_id", "name", name="uq_units_parent_name"),
    )
    op.create_index("ix_units_path", "units", ["path"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        # The landlord's user id: sign-in lives in the landlord database, the profile here.
        sa.Column("account_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column(
            "role_id",
            sa.Integer,
            sa.ForeignKey("roles.id", name="fk_users_role", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.current_timestamp(),
        ),
        sa.UniqueConstraint("account_id", name="uq_users_account_id"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_index("ix_users_role_id", "users", ["role_id"])
    op.create_table(
        "unit_assignments",
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", name="fk_unit_assignments_user", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "unit_id",
            sa.Integer,
            sa.ForeignKey("units.id", name="fk_unit_assignments_unit", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_index("ix_unit_assignments_unit_id", "unit_assignments", ["unit_id"])
    op.create_table(
        "settings",
        sa.Column("key", sa.String(63), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.current_timestamp()
        ),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(63), nullable=False),
        sa.Column("target", sa.String(255)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_at", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_table("settings")
    op.drop_index("ix_unit_assignments_unit_id", table_name="unit_assignments")
    op.drop_table("unit_assignments")
    op.drop_index("ix_users_role_id", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_units_path", table_name="units")
    op.drop_table("units")
    op.drop_table("roles")
