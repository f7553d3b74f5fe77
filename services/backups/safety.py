"""The backup a job takes before it changes a tenant's data (a restore, a module's data dropped).

The job's first step records it in the job's payload; the usual backup steps then take it, each
run on that backup, so a resumed job carries on with the same one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.postgres import have_postgres_tools
from services.backups.steps import BackupRun, checksum, dump, record_backup_failure, record_manifest, verify
from services.errors import DomainError
from services.jobs import StepFunction
from services.models import Backup, BackupFormat, IsolationMode, JobStatus, Tenant
from services.models.types import utcnow
from services.store_jobs import StoreJob
from services.tenancy.stores import POSTGRESQL

#: Where the job's payload names its safety backup.
SAFETY_BACKUP_ID = "safety_backup_id"
SAFETY_BACKUP_STEPS = ("safety dump", "safety checksum", "safety manifest", "safety verify")
_BACKUP_STEPS = (dump, checksum, record_manifest, verify)


def safety_run(run: StoreJob, backup_id: int) -> BackupRun:
    """The backup run of the job's safety backup `backup_id`, for the backup steps."""
    return BackupRun(run.settings, run.landlord, run.job_id, run.tenant_id, backup_id)


def safety_format(tenant: Tenant) -> str:
    """Native where the store allows it (fast), portable otherwise."""
    if tenant.isolation == IsolationMode.SHARED:
        return BackupFormat.PORTABLE
    if tenant.store_backend == POSTGRESQL and not have_postgres_tools():
        return BackupFormat.PORTABLE
    return BackupFormat.NATIVE


#: How a safety backup's `requested_by` begins: "safety backup before restore #12, …".
SAFETY_BACKUP_BEFORE = "safety backup before "


def new_safety_backup(tenant: Tenant, job_id: int, before: str, requester: str | None) -> Backup:
    """The safety backup's row, running, named for what it comes `before` ("restore #12")."""
    return Backup(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        job_id=job_id,
        format=safety_format(tenant),
        status=JobStatus.RUNNING,
        requested_by=f"{SAFETY_BACKUP_BEFORE}{before}" + (f", {requester}" if requester else ""),
        created_at=utcnow(),
    )


async def record_safety_backup(run: StoreJob, session: AsyncSession, tenant: Tenant, before: str) -> None:
    """Record the safety backup (once: a resumed job finds it recorded)."""
    payload = await run.payload(session)
    if payload.get(SAFETY_BACKUP_ID) is not None:
        return
    backup = new_safety_backup(tenant, run.job_id, before, payload.get("requested_by"))
    session.add(backup)
    await session.flush()
    await run.remember(session, **{SAFETY_BACKUP_ID: backup.id})


async def take_safety_backup(run: BackupRun) -> None:
    """The backup steps one after the other, outside a job's steps (a rollout takes one per tenant,
    in its lane). A failure is recorded on the backup and raised as SafetyBackupFailed."""
    for name, step in zip(SAFETY_BACKUP_STEPS, _BACKUP_STEPS, strict=True):
        try:
            async with run.landlord.session() as session:
                await step(run, session)
        except Exception as failure:
            error = getattr(failure, "message", None) or str(failure) or type(failure).__name__
            await record_backup_failure(run, error)
            raise SafetyBackupFailed(
                f"The safety backup #{run.backup_id} failed at its {name}: {error}"
            ) from failure


class SafetyBackupFailed(DomainError):
    """The backup a change needs first could not be taken: the change does not start."""


def _on_safety_backup(step: StepFunction[BackupRun]) -> StepFunction[StoreJob]:
    async def on_safety_backup(run: StoreJob, session: AsyncSession) -> str:
        payload = await run.payload(session)
        return await step(safety_run(run, int(payload[SAFETY_BACKUP_ID])), session)

    return on_safety_backup


def safety_backup_steps() -> list[tuple[str, StepFunction[StoreJob]]]:
    """The backup steps, each run on the job's safety backup."""
    return list(zip(SAFETY_BACKUP_STEPS, map(_on_safety_backup, _BACKUP_STEPS), strict=True))
