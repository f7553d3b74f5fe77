"""The custom layer: changes for one tenant only, applied and rolled back on request, as jobs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.errors import Conflict
from services.layers.catalogue import Layer, load_catalogue
from services.layers.migrator import current_revision, downgrade_layer, revisions
from services.models import Job, Tenant, TenantStatus
from services.provisioning.steps import Provisioning, snapshot
from services.server_limits import ServerWork
from services.settings import Settings

APPLY_CUSTOM = "apply_custom"
ROLLBACK_CUSTOM = "rollback_custom"


def _custom_layer(settings: Settings, tenant: Tenant) -> Layer:
    layer = load_catalogue(settings.layers_dir).custom(tenant.slug)
    if layer is None:
        raise Conflict(f"There is no custom layer for {tenant.slug} (layers/custom/{tenant.slug}/versions).")
    return layer


async def request_custom_change(session: AsyncSession, settings: Settings, tenant: Tenant, kind: str) -> Job:
    if tenant.status != TenantStatus.ACTIVE:
        raise Conflict(f"{tenant.slug} is {tenant.status}; custom changes run on active tenants only.")
    _custom_layer(settings, tenant)
    first_step = "apply custom" if kind == APPLY_CUSTOM else "roll back last custom revision"
    return await jobs.record_job(session, kind, tenant_id=tenant.id, steps=[first_step, "snapshot"])


async def _apply(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    return await run.apply(session, [_custom_layer(run.settings, tenant)])


async def _roll_back_last(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    layer = _custom_layer(run.settings, tenant)
    store = run.store(tenant).open()
    try:
        applied = await current_revision(store, layer)
        if applied is None:
            return "no custom revision is applied; nothing to roll back"
        ordered = revisions(layer)
        target = ordered[ordered.index(applied) - 1] if ordered.index(applied) > 0 else "base"
        await downgrade_layer(store, layer, run.record, target=target)
    finally:
        await store.dispose()
    return f"rolled back {applied}"


@jobs.job_handler(APPLY_CUSTOM, server_work=ServerWork.MIGRATE)
async def apply_custom(database: Database, job: Job, settings: Settings) -> None:
    run = Provisioning.of(database, job, settings)
    await jobs.run_steps(database, job.id, [("apply custom", _apply), ("snapshot", snapshot)], run)


@jobs.job_handler(ROLLBACK_CUSTOM, server_work=ServerWork.MIGRATE)
async def rollback_custom(database: Database, job: Job, settings: Settings) -> None:
    run = Provisioning.of(database, job, settings)
    await jobs.run_steps(
        database, job.id, [("roll back last custom revision", _roll_back_last), ("snapshot", snapshot)], run
    )
