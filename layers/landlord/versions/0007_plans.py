"""plans: what a tenant may use (modules, users, storage); each tenant on one plan; modules a
tenant disabled but kept the data of

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The plans every installation starts with; landlord admins change them later.
PLANS = [
    {
        "key": "starter",
        "name": "Starter",
        "modules": ["documents", "events", "membership_tiers", "simple_ledger"],
        "max_modules": 3,
        "max_users": 10,
        "max_storage_mb": 100,
    },
    {
        "key": "standard",
        "name": "Standard",
        "modules": None,
        "max_modules": None,
        "max_users": 250,
        "max_storage_mb": 2000,
    },
    {
        "key": "unlimited",
        "name": "Unlimited",
        "modules": None,
        "max_modules": None,
        "max_users": None,
        "max_storage_mb": None,
    },
]


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("modules", sa.JSON(), nullable=True),
        sa.Column("max_modules", sa.Integer(), nullable=True),
        sa.Column("max_users", sa.Integer(), nullable=True),
        sa.Column("max_storage_mb", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_plans")),
    )
    op.bulk_insert(plans, PLANS)
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("plan_key", sa.String(length=63), server_default="standard", nullable=False)
        )
        batch_op.add_column(sa.Column("kept_modules", sa.JSON(), server_default="[]", nullable=False))
        batch_op.create_foreign_key(
            op.f("fk_tenants_plan_key_plans"), "plans", ["plan_key"], ["key"], ondelete="RESTRICT"
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_tenants_plan_key_plans"), type_="foreignkey")
        batch_op.drop_column("kept_modules")
        batch_op.drop_column("plan_key")
    op.drop_table("plans")
