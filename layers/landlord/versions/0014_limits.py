"""limits: requests a minute each plan allows its tenants and each of their callers (and a
tenant's own, where the landlord overrides its plan's), and backups a day a tenant may ask for

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: Requests a minute, by request class: the whole tenant's, and each member's or tenant token's.
#: The Unlimited plan has none.
PLAN_RATE_LIMITS = {
    "starter": {
        "tenant": {"read": 1200, "write": 240, "export": 20},
        "each": {"read": 600, "write": 120, "export": 10},
    },
    "standard": {
        "tenant": {"read": 6000, "write": 1200, "export": 60},
        "each": {"read": 1200, "write": 300, "export": 20},
    },
}


#: Backups asked for by hand in any 24 hours (scheduled and safety backups are not counted).
PLAN_BACKUPS_PER_DAY = {"starter": 5, "standard": 20}


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limits", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("max_backups_per_day", sa.Integer(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limits", sa.JSON(), nullable=True))
    plans = sa.table(
        "plans",
        sa.column("key", sa.String()),
        sa.column("rate_limits", sa.JSON()),
        sa.column("max_backups_per_day", sa.Integer()),
    )
    for key, limits in PLAN_RATE_LIMITS.items():
        op.execute(
            plans.update()
            .where(plans.c.key == key)
            .values(rate_limits=limits, max_backups_per_day=PLAN_BACKUPS_PER_DAY[key])
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("rate_limits")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("max_backups_per_day")
        batch_op.drop_column("rate_limits")
