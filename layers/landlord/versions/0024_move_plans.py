"""move plans: many tenants moved to one kind of store, batch after batch, each by a move of its
own, with a halt rule, pause and resume, and each tenant's outcome

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "move_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("to_isolation", sa.String(length=32), nullable=False),
        sa.Column("to_backend", sa.String(length=32), nullable=True),
        sa.Column("to_server", sa.String(length=63), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("halt_after_failures", sa.Integer(), nullable=True),
        sa.Column("failures_resumed_past", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "move_plan_tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("move_id", sa.Integer(), nullable=True),
        sa.Column("planned_rows", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", services.models.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["plan_id"], ["move_plans.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["move_id"], ["tenant_moves.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_move_plan_tenants_plan_id_status", "move_plan_tenants", ["plan_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_move_plan_tenants_plan_id_status", table_name="move_plan_tenants")
    op.drop_table("move_plan_tenants")
    op.drop_table("move_plans")
