"""row limits: the rows each plan allows its tenants to keep in each module (and, where a plan names
them, in one module or one table)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: services.storage_quotas.RowLimits: {"each_module": n, "modules": {key: n}, "tables": {name: n}}.
#: The Unlimited plan has none.
PLAN_ROW_LIMITS = {"starter": {"each_module": 5_000}, "standard": {"each_module": 100_000}}


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("row_limits", sa.JSON(), nullable=True))
    plans = sa.table("plans", sa.column("key", sa.String()), sa.column("row_limits", sa.JSON()))
    for key, limits in PLAN_ROW_LIMITS.items():
        op.execute(plans.update().where(plans.c.key == key).values(row_limits=limits))


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("row_limits")
