"""The module jobs: a tenant admin enabling modules, or disabling one.

    enable_modules:  lock → enable <module> (one step each, in apply order) → record and snapshot
    disable_module:  lock → safety dump → safety checksum → safety manifest → safety verify →
                     keep data | drop data → snapshot

Both hold the tenant's lock (services/tenant_locks.py) from their first step to their end, so
no backup or restore of the tenant runs meanwhile, and both check the change again once they hold
it (services/modules/requests.py has the rules). A module's revisions run in one transaction, so a
failed migration leaves that module as it was. A failed enable takes the modules it had already
brought up back to where it found them; the tenant's records change only in its last step. A
disable backs the tenant up first, always, and proves the backup restores before anything
changes. In a shared store a module's tables belong to every tenant that has it: dropping deletes
only this tenant's rows, and enabling may find the tables there already.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.safety import SAFETY_BACKUP_ID, record_safety_backup, safety_backup_steps, safety_run
from services.backups.steps import record_backup_failure
from services.db import Database
from services.errors import Conflict, DomainError
from services.jobs import StepFunction
from services.layers.catalog import reflected_tables
from services.layers.catalogue import Layer
from services.layers.migrator import (
    BASE,
    MigrationFailed,
    current_revision,
    downgrade_layer,
    head,
    upgrade_layer,
)
from services.layers.ownership import TENANT_COLUMN
from services.models import IsolationMode, Job, JobStatus, JobStep, StepStatus, Tenant, TenantStatus
from services.modules.requests import (
    DISABLE_MODULE,
    DROP_DATA,
    ENABLE_MODULES,
    KEEP_DATA,
    LOCK,
    RECORD_ENABLED,
    SNAPSHOT,
    ModuleState,
    enable_step,
    module_tables,
    plan_disable,
    plan_enable,
)
from services.provisioning.steps import Provisioning, snapshot
from services.server_limits import ServerWork
from services.settings import Settings
from services.tenancy.stores import StoreLocation, delete_tenant_rows, in_store_transaction
from services.tenant_locks import PATIENCE_SECONDS, POLL_SECONDS, TenantBusy


class ModuleChangeFailed(DomainError):
    """A module job failed; its message says why and what was undone."""


class ModuleChange(Provisioning):
    """What every step of one module job works with: a provisioning run's."""

    def title(self, module: str) -> str:
        return self.catalogue.modules[module].title


def _run(database: Database, job: Job, settings: Settings) -> ModuleChange:
    # Never a golden image: this store may hold kept modules' tables, and modules applied in
    # another order than a new tenant's would be.
    return ModuleChange.of(database, job, replace(settings, golden_images=False))


# Taking the tenant ---------------------------------------------------------------------------------


async def _wait_for_earlier(run: ModuleChange, job_ids: list[int]) -> None:
    """Jobs asked for together run one after the other: wait for the ones before this one. One
    that failed stops this one too, before it changes anything."""
    started = time.monotonic()
    for job_id in job_ids:
        while True:
            async with run.landlord.session() as session:
                earlier = await session.get(Job, job_id)
            if earlier is None or earlier.status == JobStatus.SUCCEEDED:
                break
            if earlier.status == JobStatus.FAILED:
                raise Conflict(
                    f"Not run: job #{job_id}, asked for together with this one, failed first. "
                    "Nothing was changed by this one."
                )
            if time.monotonic() - started > PATIENCE_SECONDS:
                raise TenantBusy(
                    f"Waited for job #{job_id}, asked for before this one, and it is still running."
                )
            await jobs.say_in_step(
                run.landlord,
                run.job_id,
                LOCK,
                f"waiting for job #{job_id}, asked for before this one, to finish",
            )
            await asyncio.sleep(POLL_SECONDS)


async def _take_tenant(run: ModuleChange, session: AsyncSession) -> tuple[Tenant, dict[str, Any], str]:
    payload = await run.payload(session)
    await _wait_for_earlier(run, list(payload.get("after", [])))
    said = await run.take_lock("modules", why=" with this tenant")
    tenant = await run.tenant(session)
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.name} is {tenant.status}; modules change on an active tenant only.")
    return tenant, payload, said


async def lock_for_enable(run: ModuleChange, session: AsyncSession) -> str:
    tenant, payload, said = await _take_tenant(run, session)
    plan_enable(run.catalogue, ModuleState.of(tenant), payload["modules"])  # still allowed, now?
    return said


async def lock_for_disable(run: ModuleChange, session: AsyncSession) -> str:
    """Also records the safety backup taken next."""
    tenant, payload, said = await _take_tenant(run, session)
    module = payload["module"]
    plan_disable(run.catalogue, ModuleState.of(tenant), module, keep_data=payload["keep_data"])
    await record_safety_backup(run, session, tenant, f"disabling {module} (job #{run.job_id})")
    return said


# Enabling ------------------------------------------------------------------------------------------


async def _revision_before(run: ModuleChange, store: Database, layer: Layer) -> str | None:
    """The revision the store had before this job touched the layer: remembered (committed) before
    the job changes it, so a job resumed after a crash still knows where to take it back to."""
    async with run.landlord.session() as session:
        before = dict((await run.payload(session)).get("before", {}))
        if layer.name not in before:
            before[layer.name] = await current_revision(store, layer)
            await run.remember(session, before=before)
    return before[layer.name]  # type: ignore[no-any-return]


def _enable(module: str) -> StepFunction[ModuleChange]:
    async def enable(run: ModuleChange, session: AsyncSession) -> str:
        tenant = await run.tenant(session)
        layer = run.catalogue.modules[module]
        store = run.store(tenant).open()
        try:
            found = await _revision_before(run, store, layer)
            applied = await upgrade_layer(store, layer, run.record, atomic=True)
        finally:
            await store.dispose()
        top = head(layer)
        if found is None:
            return f"{layer.title} {layer.version}: {applied} revision(s) applied, now at {top}"
        where = "its kept tables" if module in tenant.kept_modules else "its tables in the shared store"
        moved = f"{applied} revision(s) brought it to {top}" if applied else "already at its head"
        return f"{layer.title}: found {where} at {found}; {moved}"

    return enable


async def record_enabled(run: ModuleChange, session: AsyncSession) -> str:
    """The tenant's modules, and a new schema snapshot, in this step's one landlord commit."""
    tenant, payload = await run.tenant(session), await run.payload(session)
    enabling = list(payload["modules"])
    tenant.modules = run.catalogue.resolve_modules(tenant.template, [*tenant.modules, *enabling])
    tenant.kept_modules = [name for name in tenant.kept_modules if name not in enabling]
    detail = await snapshot(run, session)
    return f"enabled {', '.join(run.title(name) for name in enabling)}; snapshot: {detail}"


async def _shared_with_others(session: AsyncSession, tenant: Tenant, module: str) -> bool:
    """Another tenant of the same shared store has the module, enabled or kept."""
    others = await session.scalars(
        select(Tenant).where(
            Tenant.isolation == IsolationMode.SHARED,
            Tenant.store_name == tenant.store_name,
            Tenant.id != tenant.id,
        )
    )
    return any(module in other.modules or module in other.kept_modules for other in others)


async def _undo_enable(run: ModuleChange, _failure: Exception) -> str:
    """Take the modules this job brought up back to the revisions it found them at, dependents
    first. Says what it did, for the job's error."""
    async with run.landlord.session() as session:
        tenant, payload = await run.tenant(session), await run.payload(session)
        before: dict[str, str | None] = payload.get("before", {})
        shared = {name: await _shared_with_others(session, tenant, name) for name in before}
    if not before or set(payload["modules"]) <= set(tenant.modules):
        return ""  # nothing touched yet, or all of it recorded as enabled
    said: list[str] = []
    store = run.store(tenant).open()
    try:
        for module in reversed(payload["modules"]):
            if module not in before:
                continue
            layer, found = run.catalogue.modules[module], before[module]
            if await current_revision(store, layer) == found:
                continue
            if shared[module]:
                said.append(
                    f"{layer.title} stays at its new revision: other tenants of the shared store use it"
                )
                continue
            try:
                await downgrade_layer(store, layer, run.record, target=found or BASE, atomic=True)
            except MigrationFailed as failed:
                said.append(
                    f"{layer.title} could not be taken back down ({failed.message}); it stays at its head"
                )
                continue
            said.append(
                f"{layer.title} taken off again" if found is None else f"{layer.title} back at {found}"
            )
    finally:
        await store.dispose()
    return "; ".join(said)


# Disabling -----------------------------------------------------------------------------------------


def _record_disabled(tenant: Tenant, module: str, *, keep_data: bool) -> None:
    tenant.modules = [name for name in tenant.modules if name != module]
    tenant.kept_modules = [name for name in tenant.kept_modules if name != module] + (
        [module] if keep_data else []
    )


async def keep_data(run: ModuleChange, session: AsyncSession) -> str:
    tenant, payload = await run.tenant(session), await run.payload(session)
    module = payload["module"]
    _record_disabled(tenant, module, keep_data=True)
    title = run.title(module)
    return f"the tables of {title} stay in the store, hidden; enabling {title} again brings them back as they are"


async def drop_data(run: ModuleChange, session: AsyncSession) -> str:
    """Its tables go (its migrations down, in one transaction); in a shared store, its rows of them."""
    tenant, payload = await run.tenant(session), await run.payload(session)
    module, backup_id = payload["module"], payload[SAFETY_BACKUP_ID]
    layer = run.catalogue.modules[module]
    location = run.store(tenant)
    if location.is_shared:
        tables = await module_tables(run.catalogue, tenant.template, module)
        rows = await _delete_tenant_rows(location, tenant.id, tables)
        said = f"{rows:,} rows of {layer.title} deleted from {len(tables)} shared tables (the tables stay: they are shared)"
    else:
        store = location.open()
        try:
            reverted = await downgrade_layer(store, layer, run.record, atomic=True)
        finally:
            await store.dispose()
        said = f"{reverted} revision(s) of {layer.title} reverted: its tables are gone"
    _record_disabled(tenant, module, keep_data=False)
    return f"{said}; backup #{backup_id} holds its data"


async def _delete_tenant_rows(location: StoreLocation, tenant_id: int, tables: list[str]) -> int:
    return await in_store_transaction(location, _delete_rows, tenant_id, tables)


def _delete_rows(connection: Connection, tenant_id: int, names: list[str]) -> int:
    """One tenant's rows of the tables `names`, children before parents; a table that refers to
    itself (folders) is unhooked first."""
    ordered = reflected_tables(connection).sorted_tables
    tables = [table for table in ordered if table.name in names and TENANT_COLUMN in table.c]
    return delete_tenant_rows(connection, tenant_id, tables)


async def _undo_disable(run: ModuleChange, failure: Exception) -> str:
    """An unfinished safety backup is marked failed; kept data goes back to being enabled (nothing
    in the store changed). Dropped data cannot come back by itself: the error names its backup."""
    async with run.landlord.session() as session:
        tenant, payload = await run.tenant(session), await run.payload(session)
        done = set(
            await session.scalars(
                select(JobStep.name).where(
                    JobStep.job_id == run.job_id, JobStep.status == StepStatus.SUCCEEDED
                )
            )
        )
        module = payload["module"]
        if payload.get(SAFETY_BACKUP_ID) is not None and isinstance(failure, jobs.StepFailed):
            await record_backup_failure(safety_run(run, int(payload[SAFETY_BACKUP_ID])), failure.error)
        if KEEP_DATA in done:
            tenant.modules = run.catalogue.resolve_modules(tenant.template, [*tenant.modules, module])
            tenant.kept_modules = [name for name in tenant.kept_modules if name != module]
            return f"{run.title(module)} is enabled again, as it was"
        if DROP_DATA in done:
            return f"the data of {run.title(module)} was dropped before that; backup #{payload[SAFETY_BACKUP_ID]} holds it"
    return ""


# The jobs ------------------------------------------------------------------------------------------

Undo = Callable[[ModuleChange, Exception], Awaitable[str]]


async def _run_holding_the_lock(
    run: ModuleChange, steps: list[tuple[str, StepFunction[ModuleChange]]], undo: Undo
) -> None:
    """Run the steps holding the tenant's lock. A failure is undone first, and the job's error
    says what was undone."""

    async def undo_and_say(run: ModuleChange, failure: Exception) -> None:
        if undone := await undo(run, failure):
            raise ModuleChangeFailed(f"{failure}. Undone: {undone}.") from failure

    await run.run_holding_the_lock(steps, on_failure=undo_and_say)


@jobs.job_handler(ENABLE_MODULES, server_work=ServerWork.MIGRATE)
async def enable_modules(database: Database, job: Job, settings: Settings) -> None:
    modules: list[str] = list(job.payload["modules"])
    steps: list[tuple[str, StepFunction[ModuleChange]]] = [
        (LOCK, lock_for_enable),
        *((enable_step(module), _enable(module)) for module in modules),
        (RECORD_ENABLED, record_enabled),
    ]
    await _run_holding_the_lock(_run(database, job, settings), steps, _undo_enable)


@jobs.job_handler(DISABLE_MODULE, server_work=ServerWork.MIGRATE)
async def disable_module(database: Database, job: Job, settings: Settings) -> None:
    change = (KEEP_DATA, keep_data) if job.payload["keep_data"] else (DROP_DATA, drop_data)
    steps = [(LOCK, lock_for_disable), *safety_backup_steps(), change, (SNAPSHOT, snapshot)]
    await _run_holding_the_lock(_run(database, job, settings), steps, _undo_disable)
