"""tenant layers: where each layer of each tenant's store is now, so that the fleet (what is behind
its head) is read from the landlord alone; filled from each tenant's latest schema snapshot

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import services.models.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _layer_key(version_table: str, slug: str) -> str | None:
    """The layer a version table (named without its `layer_version_` prefix, as snapshots name
    them) belongs to, as history names layers."""
    if version_table == "basic":
        return "basic"
    if version_table == "custom":
        return f"custom/{slug}"
    kind, _, name = version_table.partition("_")
    return f"{kind}s/{name}" if kind in ("template", "module") and name else None


def upgrade() -> None:
    layers = op.create_table(
        "tenant_layers",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.String(length=127), nullable=False),
        sa.Column("revision", sa.String(length=63), nullable=False),
        sa.Column("updated_at", services.models.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_layers_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "layer", name=op.f("pk_tenant_layers")),
    )
    op.create_index("ix_tenant_layers_layer_revision", "tenant_layers", ["layer", "revision"])

    tenants = sa.table("tenants", sa.column("id", sa.Integer), sa.column("slug", sa.String))
    snapshots = sa.table(
        "schema_snapshots",
        sa.column("id", sa.Integer),
        sa.column("tenant_id", sa.Integer),
        sa.column("description", sa.JSON),
        sa.column("taken_at", services.models.types.UTCDateTime(timezone=True)),
    )
    latest = sa.select(sa.func.max(snapshots.c.id)).group_by(snapshots.c.tenant_id)
    found = op.get_bind().execute(
        sa.select(tenants.c.id, tenants.c.slug, snapshots.c.description, snapshots.c.taken_at)
        .join(snapshots, snapshots.c.tenant_id == tenants.c.id)
        .where(snapshots.c.id.in_(latest))
    )
    rows = [
        {"tenant_id": tenant_id, "layer": key, "revision": revision, "updated_at": taken_at}
        for tenant_id, slug, description, taken_at in found
        for table, revision in (description or {}).get("layer_versions", {}).items()
        if revision and (key := _layer_key(table, slug))
    ]
    if rows:
        op.bulk_insert(layers, rows)


def downgrade() -> None:
    op.drop_index("ix_tenant_layers_layer_revision", table_name="tenant_layers")
    op.drop_table("tenant_layers")
