"""a rollout's tenant names the safety backup taken before its first change (its lane, a job that
runs one tenant after another, keeps it there rather than in a job payload of its own)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollout_tenants") as batch:
        batch.add_column(sa.Column("safety_backup_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_rollout_tenants_safety_backup_id_backups"),
            "backups",
            ["safety_backup_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("rollout_tenants") as batch:
        batch.drop_constraint(op.f("fk_rollout_tenants_safety_backup_id_backups"), type_="foreignkey")
        batch.drop_column("safety_backup_id")
