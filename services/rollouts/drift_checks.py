"""Drift checks of tenants: on demand (one tenant, some, or the fleet) and periodically on the
workers. Each tenant's live store is compared with what its recorded layer revisions should give
(services.rollouts.drift); the result is a DriftCheck row, and the check as a whole is one entry on
the audit trail. Drifted tenants show on the fleet view, and a rollout refuses them unless told
to force them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.audit import Actor, record
from services.db import Database
from services.layers.catalogue import load_catalogue
from services.layers.footprint import layer_tables
from services.layers.snapshot import take_snapshot
from services.models import DriftCheck, Job, Tenant, TenantLayer
from services.rollouts.drift import ExpectedSchemas, differences
from services.rollouts.fleet import IN_SERVICE
from services.rollouts.plans import busy_tenants
from services.settings import Settings
from services.tenancy.stores import location_of

log = logging.getLogger(__name__)

CHECK_DRIFT = "drift_check"
#: Who asks for the periodic check, on the trail.
SCHEDULE = "schedule"


@dataclass(frozen=True)
class DriftSummary:
    checked: int
    drifted: list[DriftCheck]
    #: The checked tenants' slugs, by id.
    slugs: dict[int, str]
    #: Tenants left unchecked, by slug, and why (a job changing their store, an unreadable store).
    unchecked: dict[str, str] = field(default_factory=dict)


async def _tenants(session: AsyncSession, tenant_ids: Sequence[int] | None) -> list[Tenant]:
    statement = select(Tenant).where(Tenant.status.in_(IN_SERVICE)).order_by(Tenant.slug)
    if tenant_ids is not None:
        statement = statement.where(Tenant.id.in_(tenant_ids))
    return list(await session.scalars(statement))


async def _check_one(
    session: AsyncSession, settings: Settings, expected: ExpectedSchemas, tenant: Tenant
) -> list[str]:
    catalogue = load_catalogue(settings.layers_dir)
    recorded = {
        row.layer: row.revision
        for row in await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant.id))
    }
    layers = [(layer, revision) for key, revision in recorded.items() if (layer := catalogue.named(key))]
    order = {
        layer.key: index
        for index, layer in enumerate(
            catalogue.layers_for(
                tenant.template,
                catalogue.in_apply_order([*tenant.modules, *tenant.kept_modules]),
                tenant.slug,
            )
        )
    }
    layers.sort(key=lambda pair: order.get(pair[0].key, len(order)))
    location = location_of(settings, tenant)
    want = await expected.of(location, layers)
    only = await layer_tables([layer for layer, _ in layers]) if location.is_shared else None
    store = location.open()
    try:
        have, _ = await take_snapshot(store, only)
    finally:
        await store.dispose()
    return differences(want, have, only)


async def check_drift(
    database: Database, settings: Settings, *, tenant_ids: Sequence[int] | None = None, requested_by: str
) -> DriftSummary:
    """Check the tenants (all those in service by default), one DriftCheck each, committed as each
    is checked, and the whole check on the trail (`drift.check`). A tenant another job is changing
    (it holds its lock) is left unchecked: half-way through its migrations it would look drifted;
    so is one whose store cannot be read (the error goes to the log, not to the page)."""
    expected = ExpectedSchemas(settings)
    async with database.session() as session:
        tenants = await _tenants(session, tenant_ids)
        busy = await busy_tenants(session)
    drifted: list[DriftCheck] = []
    unchecked: dict[str, str] = {}
    for tenant in tenants:
        if (job := busy.get(tenant.id)) is not None:
            unchecked[tenant.slug] = f"busy with {job.kind.replace('_', ' ')} job #{job.id}"
            continue
        async with database.session() as session:
            try:
                found = await _check_one(session, settings, expected, tenant)
            except Exception:  # one unreadable store does not end the fleet's check
                log.warning("drift check: could not read the store of %s", tenant.slug, exc_info=True)
                unchecked[tenant.slug] = "its store could not be read (the worker's log says why)"
                continue
            check = DriftCheck(
                tenant_id=tenant.id, drifted=bool(found), differences=found, requested_by=requested_by
            )
            session.add(check)
        if found:
            drifted.append(check)
    async with database.session() as session:
        detail = {
            "tenants": len(tenants) - len(unchecked),
            "drifted": [check.tenant_id for check in drifted],
            "unchecked": sorted(unchecked),
        }
        await record(session, action="drift.check", actor=Actor(email=requested_by), detail=detail)
    slugs = {tenant.id: tenant.slug for tenant in tenants}
    return DriftSummary(len(tenants) - len(unchecked), drifted, slugs, unchecked)


async def request_drift_check(
    session: AsyncSession, requested_by: str, tenant_ids: Sequence[int] | None = None
) -> Job:
    """The check as a job for the workers (sent when the session commits)."""
    payload = {"requested_by": requested_by, "tenants": list(tenant_ids) if tenant_ids is not None else None}
    return await jobs.record_job(session, CHECK_DRIFT, payload=payload)


async def request_due_drift_check(database: Database, settings: Settings) -> Job | None:
    """The periodic check, when its slot has come (every `drift_check_hours`)."""
    return await jobs.record_when_due(
        database,
        "drift-check",
        settings.drift_check_hours,
        lambda session: request_drift_check(session, SCHEDULE),
    )


@jobs.job_handler(CHECK_DRIFT)
async def run_drift_check(database: Database, job: Job, settings: Settings) -> None:
    await check_drift(
        database, settings, tenant_ids=job.payload.get("tenants"), requested_by=job.payload["requested_by"]
    )
