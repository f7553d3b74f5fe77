"""The landlord's record of tenant layers: every revision run (migration_history) and where each
layer of each tenant's store is now (tenant_layers), written in one transaction. The fleet, and
what a rollout has to do, are then read from the landlord alone, without opening a store.

Several tenants of one shared store share its version tables: a revision run there moves the
layer of every tenant of the store that has it."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import layer_key_of
from services.layers.migrator import RevisionRun
from services.models import IsolationMode, MigrationHistory, Tenant, TenantLayer
from services.models.types import utcnow


async def record_run(session: AsyncSession, tenant: Tenant, run: RevisionRun, *, job_id: int | None) -> None:
    """The run's history row and, when it succeeded, where it left the layer."""
    session.add(
        MigrationHistory(
            tenant_id=tenant.id,
            job_id=job_id,
            layer=run.layer,
            revision=run.revision,
            direction=run.direction,
            duration_ms=run.duration_ms,
            outcome=run.outcome,
            error=run.error,
        )
    )
    if run.error is None:
        await _move_layer(session, tenant, run.layer, run.reached)


#: The direction of a history row for a layer that came with a cloned store, run nowhere.
CLONED = "clone"


def record_clone(
    session: AsyncSession, tenant: Tenant, revisions: dict[str, str], *, job_id: int | None
) -> None:
    """History rows for the layers (key: revision) that came at those revisions with a cloned store
    (a golden image's copy, or a store from the warm pool). Where the layers are is then read from
    the store's snapshot (`record_found`)."""
    session.add_all(
        MigrationHistory(
            tenant_id=tenant.id,
            job_id=job_id,
            layer=layer,
            revision=revision,
            direction=CLONED,
            duration_ms=0.0,
            outcome="succeeded",
        )
        for layer, revision in revisions.items()
    )


async def _move_layer(session: AsyncSession, tenant: Tenant, layer: str, revision: str | None) -> None:
    sharing = await _tenants_of_the_store(session, tenant)
    if revision is None:
        await session.execute(
            delete(TenantLayer).where(TenantLayer.layer == layer, TenantLayer.tenant_id.in_(sharing))
        )
        return
    moved = await session.execute(
        update(TenantLayer)
        .where(TenantLayer.layer == layer, TenantLayer.tenant_id.in_(sharing))
        .values(revision=revision, updated_at=utcnow())
    )
    if sharing == [tenant.id] and moved.rowcount:  # type: ignore[attr-defined]
        return  # its own row, moved (the usual case: no need to look for it)
    if await session.get(TenantLayer, (tenant.id, layer)) is None:
        session.add(TenantLayer(tenant_id=tenant.id, layer=layer, revision=revision))


async def _tenants_of_the_store(session: AsyncSession, tenant: Tenant) -> list[int]:
    if tenant.isolation != IsolationMode.SHARED or tenant.store_name is None:
        return [tenant.id]
    statement = select(Tenant.id).where(
        Tenant.isolation == IsolationMode.SHARED,
        Tenant.store_backend == tenant.store_backend,
        Tenant.store_name == tenant.store_name,
    )
    return list(await session.scalars(statement))


async def record_found(session: AsyncSession, tenant: Tenant, layer_versions: dict[str, str | None]) -> None:
    """Where the tenant's layers are, as a snapshot of its store found them (its version tables,
    named as snapshots name them): after a restore or a copy, which bring a store back whole, and
    after every change, to put right what an interrupted job may have left unrecorded. A shared
    store holds other tenants' templates and modules too: only this tenant's layers are taken."""
    own = {
        "basic",
        f"templates/{tenant.template}",
        *(f"modules/{name}" for name in [*tenant.modules, *tenant.kept_modules]),
        f"custom/{tenant.slug}",
    }
    found = {
        key: revision
        for table, revision in layer_versions.items()
        if revision and (key := layer_key_of(table, tenant.slug)) in own
    }
    rows = {
        row.layer: row
        for row in await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant.id))
    }
    for layer, row in rows.items():
        if layer not in found:
            await session.delete(row)
        elif row.revision != found[layer]:
            row.revision = found[layer]
    session.add_all(
        TenantLayer(tenant_id=tenant.id, layer=layer, revision=revision)
        for layer, revision in found.items()
        if layer not in rows
    )
