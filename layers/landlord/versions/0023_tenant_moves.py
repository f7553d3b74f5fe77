"""tenant moves and servers: a tenant's store moved to another isolation mode, backend or tenant
server, with its figures and the store it left, kept for a while so that it can move back; the
tenant server (by name) each PostgreSQL store is on

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("backup_id", sa.Integer(), nullable=True),
        sa.Column("back_of", sa.Integer(), nullable=True),
        sa.Column("from_backend", sa.String(length=32), nullable=False),
        sa.Column("from_isolation", sa.String(length=32), nullable=False),
        sa.Column("from_store", sa.String(length=255), nullable=False),
        sa.Column("from_server", sa.String(length=63), nullable=True),
        sa.Column("to_backend", sa.String(length=32), nullable=False),
        sa.Column("to_isolation", sa.String(length=32), nullable=False),
        sa.Column("to_store", sa.String(length=255), nullable=True),
        sa.Column("to_server", sa.String(length=63), nullable=True),
        sa.Column("old_store", sa.String(length=16), nullable=True),
        sa.Column("kept_until", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("tables", sa.Integer(), nullable=True),
        sa.Column("copy_ms", sa.Integer(), nullable=True),
        sa.Column("freeze_ms", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["backup_id"], ["backups.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["back_of"], ["tenant_moves.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tenant_moves_tenant_id", "tenant_moves", ["tenant_id"])
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("store_server", sa.String(length=63), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("store_server")
    op.drop_index("ix_tenant_moves_tenant_id", table_name="tenant_moves")
    op.drop_table("tenant_moves")
