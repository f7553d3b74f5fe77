"""Asking for a backup: the request is checked, the backup and its job are recorded together (the
job's id is sent after the commit), and a request made while another backup or restore of the
tenant is under way is told which job it waits for. The job itself runs on a worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.postgres import have_postgres_tools
from services.backups.retention import PRUNE, prune
from services.backups.steps import BACKUP_STEPS, LOCK, BackupRun, record_backup_failure
from services.db import Database
from services.errors import Conflict, InvalidInput, NotFound
from services.jobs import StepFunction
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    Tenant,
    TenantStatus,
    Verification,
)
from services.models.types import utcnow
from services.server_limits import ServerWork
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL

BACKUP = "backup"
VERIFY_BACKUP = "verify_backup"
#: Restores into the tenant itself (services.backups.restores); copies into a new tenant leave it alone.
RESTORE = "restore"
BACKUP_STEP_NAMES = [name for name, _ in BACKUP_STEPS]
VERIFY_STEPS = [step for step in BACKUP_STEPS if step[0] in (LOCK, "verify")]
#: A scheduled backup prunes the tenant's scheduled backups beyond the schedule's keep, once verified.
SCHEDULED_BACKUP_STEPS: list[tuple[str, StepFunction[BackupRun]]] = [*BACKUP_STEPS, (PRUNE, prune)]
#: The job kinds that work on a tenant's store as a whole; one of them at a time per tenant.
STORE_JOB_KINDS = (BACKUP, VERIFY_BACKUP, RESTORE)


@dataclass(frozen=True)
class RequestedBackup:
    backup: Backup
    job: Job
    #: The backup or restore of the same tenant this one waits for, if any.
    waits_for: Job | None

    @property
    def message(self) -> str:
        if self.waits_for is None:
            return f"Backup #{self.backup.id} of {self.backup.tenant_slug} is queued."
        return (
            f"Backup #{self.backup.id} of {self.backup.tenant_slug} waits for {self.waits_for.kind} "
            f"job #{self.waits_for.id} to finish: one backup or restore of a tenant runs at a time."
        )


async def store_jobs_under_way(session: AsyncSession, tenant: Tenant) -> list[Job]:
    """The tenant's backups and restores that have not finished, oldest first."""
    statement = select(Job).where(
        Job.tenant_id == tenant.id, Job.kind.in_(STORE_JOB_KINDS), Job.status.in_(JobStatus.unfinished())
    )
    return list(await session.scalars(statement.order_by(Job.id)))


async def request_backup(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    format: str,
    *,
    requested_by: str | None = None,
    scheduled_for: datetime | None = None,
) -> RequestedBackup:
    """Check the request and record the backup and its job. Raises InvalidInput (a format this
    tenant cannot have) or Conflict (no store yet; a backup already running with another waiting).
    A backup for a schedule's slot (`scheduled_for`) ends by pruning beyond the schedule's keep."""
    if format not in set(BackupFormat):
        raise InvalidInput(
            f"Unknown backup format {format!r}; choose {BackupFormat.NATIVE} or {BackupFormat.PORTABLE}.",
            field="format",
        )
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.slug} is {tenant.status}; only an active tenant's store can be backed up.")
    if format == BackupFormat.NATIVE:
        if tenant.isolation == IsolationMode.SHARED:
            raise InvalidInput(
                f"{tenant.slug} lives in a shared store, which holds other tenants too: "
                "it is backed up in the portable format.",
                field="format",
            )
        if tenant.store_backend == POSTGRESQL and not have_postgres_tools():
            raise InvalidInput(
                "Native PostgreSQL backups need pg_dump and psql on this machine; choose portable.",
                field="format",
            )
    under_way = await store_jobs_under_way(session, tenant)
    if len(under_way) > 1:
        running, waiting = under_way[0], under_way[1]
        raise Conflict(
            f"{tenant.slug} already has {running.kind} job #{running.id} under way and job #{waiting.id} "
            "waiting for it, which will back up the latest data. Ask again once they are done."
        )
    backup = Backup(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        format=format,
        requested_by=requested_by,
        scheduled_for=scheduled_for,
        created_at=utcnow(),
    )
    session.add(backup)
    await session.flush()
    steps = [*BACKUP_STEP_NAMES, PRUNE] if scheduled_for is not None else BACKUP_STEP_NAMES
    job = await jobs.record_job(
        session, BACKUP, tenant_id=tenant.id, payload={"backup_id": backup.id}, steps=steps
    )
    backup.job_id = job.id
    return RequestedBackup(backup, job, under_way[0] if under_way else None)


async def request_verification(session: AsyncSession, backup: Backup) -> Job:
    """A job that restores a finished backup into a scratch store again and compares it with its
    manifest (after the archive was moved, or to prove an old backup still restores)."""
    if backup.status != JobStatus.SUCCEEDED or backup.tenant_id is None:
        raise Conflict(f"Backup #{backup.id} has no finished archive to verify.")
    job = await jobs.record_job(
        session,
        VERIFY_BACKUP,
        tenant_id=backup.tenant_id,
        payload={"backup_id": backup.id},
        steps=[name for name, _ in VERIFY_STEPS],
    )
    backup.verification, backup.verification_detail = Verification.NOT_VERIFIED, None
    return job


async def get_backup(session: AsyncSession, tenant: Tenant, backup_id: int) -> Backup:
    """One of the tenant's backups; another tenant's looks the same as none."""
    backup = await session.get(Backup, backup_id)
    if backup is None or backup.tenant_id != tenant.id:
        raise NotFound(f"{tenant.slug} has no backup #{backup_id}.")
    return backup


async def backups_of(session: AsyncSession, tenant: Tenant, limit: int = 50) -> list[Backup]:
    """The tenant's backups, newest first."""
    statement = select(Backup).where(Backup.tenant_id == tenant.id).order_by(Backup.id.desc()).limit(limit)
    return list(await session.scalars(statement))


async def _on_failure(run: BackupRun, error: Exception) -> None:
    if isinstance(error, jobs.StepFailed):
        await record_backup_failure(run, error.error)


@jobs.job_handler(BACKUP, server_work=ServerWork.BACKUP)
async def back_up(database: Database, job: Job, settings: Settings) -> None:
    recorded = {step.name for step in job.steps}  # a scheduled backup's end with pruning
    steps = [step for step in SCHEDULED_BACKUP_STEPS if step[0] in recorded]
    await BackupRun.of(database, job, settings).run_holding_the_lock(steps, on_failure=_on_failure)


@jobs.job_handler(VERIFY_BACKUP)
async def verify_backup(database: Database, job: Job, settings: Settings) -> None:
    await BackupRun.of(database, job, settings).run_holding_the_lock(VERIFY_STEPS, on_failure=_on_failure)
