"""tenant timezone: the tenant's clock, as its own settings say, kept with the tenant so that every
page of its portal shows times on it without asking its store (the settings page writes both; the
workers' daily round brings an older installation's tenants into line)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("timezone")
