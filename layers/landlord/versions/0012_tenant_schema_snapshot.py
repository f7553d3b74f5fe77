"""a tenant names its latest schema snapshot (its id and hash), so that a request reads its tables
from the tenant row it already has instead of looking the snapshot up

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("schema_snapshot_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("schema_sha256", sa.String(64), nullable=True))
    op.execute(
        "UPDATE tenants SET schema_snapshot_id = (SELECT max(id) FROM schema_snapshots WHERE tenant_id = tenants.id)"
    )
    op.execute(
        "UPDATE tenants SET schema_sha256 = (SELECT sha256 FROM schema_snapshots WHERE id = tenants.schema_snapshot_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("schema_sha256")
        batch.drop_column("schema_snapshot_id")
