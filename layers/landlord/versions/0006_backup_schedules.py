"""backup schedules: a tenant backed up daily at a time, keeping its newest N scheduled backups;
each scheduled backup names its slot, once per tenant

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_schedules",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("daily_at", sa.Time(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("keep", sa.Integer(), nullable=False),
        sa.Column("next_run_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=254), nullable=True),
        sa.Column("updated_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_backup_schedules_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_backup_schedules")),
    )
    op.create_index(
        op.f("ix_backup_schedules_next_run_at"), "backup_schedules", ["next_run_at"], unique=False
    )
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scheduled_for", services.models.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "uq_backups_tenant_id_scheduled_for", "backups", ["tenant_id", "scheduled_for"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_backups_tenant_id_scheduled_for", table_name="backups")
    with op.batch_alter_table("backups", schema=None) as batch_op:
        batch_op.drop_column("scheduled_for")
    op.drop_index(op.f("ix_backup_schedules_next_run_at"), table_name="backup_schedules")
    op.drop_table("backup_schedules")
