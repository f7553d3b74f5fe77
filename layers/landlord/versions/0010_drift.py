"""drift checks: each tenant's store compared with what its recorded layer revisions should give;
a rollout told to take drifted tenants too

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("differences", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=True),
        sa.Column("checked_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_drift_checks_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_checks")),
    )
    op.create_index("ix_drift_checks_tenant_id_id", "drift_checks", ["tenant_id", "id"])
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("force", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("force")
    op.drop_index("ix_drift_checks_tenant_id_id", table_name="drift_checks")
    op.drop_table("drift_checks")
