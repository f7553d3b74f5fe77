"""Copies: a verified backup restored into a new tenant, a `restore_copy` job:

    check archive → allocate store → restore → verify → people and settings → snapshot → activate

The new tenant is recorded with the backup's template and modules, and its store is built as a
provisioning's would be, from the archive instead of the layers: its place is recorded before it
exists, and a failure removes it and marks the tenant failed (services.provisioning.steps).
Portable backups go into any isolation mode (but shared) and either backend; native ones only into
the kind of store they came from. A copy has no members: the backup's people come along
deactivated (services.backups.kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.kept import leave_people_behind
from services.backups.restorable import (
    PEOPLE,
    RequestedRestore,
    check_fits,
    check_restorable,
    compare_with_manifest,
    restore_backup,
    totals,
)
from services.backups.steps import BackupRun
from services.db import Database
from services.errors import Conflict, FieldErrors, InvalidInput
from services.jobs import StepFunction
from services.models import Backup, IsolationMode, Job
from services.provisioning.steps import activate, bring_up_new_tenant, record_snapshot, reserve_new_store
from services.server_limits import ServerWork
from services.settings import Settings
from services.tenancy.placement import place_new_tenant
from services.tenancy.stores import available_isolation_modes, drop_store, plan_store
from services.tenancy.tenants import check_slug_free, register_tenant, validate_slug

RESTORE_COPY = "restore_copy"


# Asking ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyTarget:
    """The new tenant a backup is copied into."""

    slug: str
    name: str
    #: None: the backup's own isolation mode where this installation has it, else database.
    isolation: str | None = None


async def request_restore_copy(
    session: AsyncSession, settings: Settings, backup: Backup, target: CopyTarget
) -> RequestedRestore:
    """Check the request, then record the new tenant (provisioning, with the backup's template and
    modules) and its `restore_copy` job. Raises InvalidFields naming every wrong field, Conflict
    or CorruptArchive, and writes nothing then."""
    manifest = await check_restorable(settings, backup)
    slug, name = target.slug.strip(), target.name.strip()
    isolation = target.isolation or _default_isolation(settings, manifest)
    errors = FieldErrors()
    with errors.checking("slug"):
        await check_slug_free(session, validate_slug(slug))
    with errors.checking("name"):
        if not name:
            raise InvalidInput("Give the new tenant a name.", field="name")
    with errors.checking("isolation"):
        if isolation == IsolationMode.SHARED:
            raise InvalidInput(
                "A copy gets a store of its own (database or schema isolation): in a shared store its "
                "rows' ids could clash with other tenants'."
            )
        planned = plan_store(settings, slug, isolation)
        check_fits(backup, manifest, planned.backend, planned.isolation)
    errors.raise_if_any()
    custom = [entry["key"] for entry in manifest["layers"] if entry["key"].startswith("custom/")]
    if custom:
        raise Conflict(
            f"{backup.tenant_slug} has a custom layer ({custom[0]}), written for that tenant alone; "
            "a copy cannot carry it."
        )
    tenant = await register_tenant(
        session,
        slug=slug,
        name=name,
        template=manifest["tenant"]["template"],
        isolation=isolation,
        modules=manifest["tenant"]["modules"],
        kept_modules=manifest["tenant"].get("kept_modules", []),
    )
    await place_new_tenant(session, settings, tenant)
    job = await jobs.record_job(
        session,
        RESTORE_COPY,
        tenant_id=tenant.id,
        payload={"backup_id": backup.id, "source": backup.tenant_slug},
        steps=COPY_STEP_NAMES,
    )
    return RequestedRestore(job, backup, tenant)


def _default_isolation(settings: Settings, manifest: dict[str, Any]) -> str:
    isolation = str(manifest["store"]["isolation"])
    available = available_isolation_modes(settings)
    if isolation in available and isolation != IsolationMode.SHARED:
        return isolation
    return IsolationMode.DATABASE


# The job -----------------------------------------------------------------------------------------


class CopyRun(BackupRun):
    """What every step of one copy job works with: the new tenant, and the backup it gets."""

    @property
    def work(self) -> Path:
        return self.settings.data_dir / "work" / f"copy-{self.job_id}"


async def check(run: CopyRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    manifest = await check_restorable(run.settings, backup)
    planned = plan_store(run.settings, tenant.slug, tenant.isolation, server=tenant.store_server)
    check_fits(backup, manifest, planned.backend, planned.isolation)
    return f"archive of {backup.tenant_slug} intact: {totals(manifest)}"


async def allocate(run: CopyRun, session: AsyncSession) -> str:
    """Record where the store goes; the restore step creates it."""
    return await reserve_new_store(run.settings, await run.tenant(session))


async def restore(run: CopyRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    target = run.store(tenant)
    await drop_store(target)  # ours (recorded before it was made), left half-built by an attempt that died
    await restore_backup(run, backup, target)
    return f"{backup.format} backup #{backup.id} of {backup.tenant_slug} restored into {target.name}"


async def verify(run: CopyRun, session: AsyncSession) -> str:
    backup, tenant = await run.backup(session), await run.tenant(session)
    return await compare_with_manifest(backup, run.store(tenant))


async def deactivate_people(run: CopyRun, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    return await leave_people_behind(run.store(tenant), tenant)


async def snapshot(run: CopyRun, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    _, detail = await record_snapshot(session, tenant, run.store(tenant))
    return detail


COPY_STEPS: list[tuple[str, StepFunction[CopyRun]]] = [
    ("check archive", check),
    ("allocate store", allocate),
    ("restore", restore),
    ("verify", verify),
    (PEOPLE, deactivate_people),
    ("snapshot", snapshot),
    ("activate", activate),
]
COPY_STEP_NAMES = [name for name, _ in COPY_STEPS]


@jobs.job_handler(RESTORE_COPY, server_work=ServerWork.RESTORE)
async def copy_into_new_tenant(database: Database, job: Job, settings: Settings) -> None:
    await bring_up_new_tenant(CopyRun.of(database, job, settings), COPY_STEPS)
