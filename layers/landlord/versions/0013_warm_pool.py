"""the warm pool: tenant stores built ahead for a recipe, taken by new tenants

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "warm_stores",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recipe", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("isolation", sa.String(16), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("modules", sa.JSON(), nullable=False),
        sa.Column("store_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("description", sa.JSON(), nullable=True),
        sa.Column("created_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_warm_stores_job_id_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_warm_stores"),
        sa.UniqueConstraint("store_name", name="uq_warm_stores_store_name"),
    )
    op.create_index("ix_warm_stores_recipe", "warm_stores", ["recipe"])


def downgrade() -> None:
    op.drop_index("ix_warm_stores_recipe", table_name="warm_stores")
    op.drop_table("warm_stores")
