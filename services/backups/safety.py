"""The backup a job takes before it changes a tenant's data (a restore, a module's data dropped).

The job's first step records it in the job's payload; the usual backup steps then take it, each
run on that backup, so a resumed job carries on with the same one."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.postgres import have_postgres_tools
from services.backups.steps import BackupRun, checksum, dump, record_manifest, verify
from services.jobs import StepFunction
from services.models import Backup, BackupFormat, IsolationMode, JobStatus, Tenant
from services.models.types import utcnow
from services.store_jobs import StoreJob
from services.tenancy.stores import POSTGRESQL

#: Where the job's payload names its safety backup.
SAFETY_BACKUP_ID = "safety_backup_id"
SAFETY_BACKUP_STEPS = ("safety dump", "safety checksum", "safety manifest", "safety verify")


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


async def record_safety_backup(run: StoreJob, session: AsyncSession, tenant: Tenant, before: str) -> None:
    """Record the safety backup (once: a resumed job finds it recorded), named for what it
    comes `before` ("restore #12")."""
    payload = await run.payload(session)
    if payload.get(SAFETY_BACKUP_ID) is not None:
        return
    requester = payload.get("requested_by")
    backup = Backup(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        job_id=run.job_id,
        format=safety_format(tenant),
        status=JobStatus.RUNNING,
        requested_by=f"safety backup before {before}" + (f", {requester}" if requester else ""),
        created_at=utcnow(),
    )
    session.add(backup)
    await session.flush()
    await run.remember(session, **{SAFETY_BACKUP_ID: backup.id})


def _on_safety_backup(step: StepFunction[BackupRun]) -> StepFunction[StoreJob]:
    async def on_safety_backup(run: StoreJob, session: AsyncSession) -> str:
        payload = await run.payload(session)
        return await step(safety_run(run, int(payload[SAFETY_BACKUP_ID])), session)

    return on_safety_backup


def safety_backup_steps() -> list[tuple[str, StepFunction[StoreJob]]]:
    """The backup steps, each run on the job's safety backup."""
    steps = (dump, checksum, record_manifest, verify)
    return list(zip(SAFETY_BACKUP_STEPS, map(_on_safety_backup, steps), strict=True))
