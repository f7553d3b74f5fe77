"""Backups, verifications, downloads, restores, copies and backup schedules as a caller asks for
them (the landlord portal, the tenant portal and the API alike): the request, and its entry on the
audit trail in the same transaction. Each job is sent when the caller's transaction commits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.backups.archive import check_archive
from services.backups.copies import CopyTarget, request_restore_copy
from services.backups.requests import RequestedBackup, request_backup, request_verification
from services.backups.restorable import RequestedRestore
from services.backups.restores import request_restore
from services.backups.schedules import clear_schedule, set_schedule
from services.backups.storage import BackupStorage, backup_storage
from services.errors import Conflict
from services.models import Backup, BackupSchedule, Job, JobStatus, Tenant
from services.models.types import utcnow
from services.quotas import check_backups_quota
from services.settings import Settings

#: How much of an archive a download reads at a time.
_PIECE = 256 * 1024


async def back_up(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, backup_format: str
) -> RequestedBackup:
    """A backup of `tenant` in `backup_format`, for `caller` (`tenant.backup`). A caller of the
    tenant's own is held to its plan's backups a day (services.quotas)."""
    if not caller.is_staff:
        await check_backups_quota(session, tenant)
    requested = await request_backup(
        session, settings, tenant, backup_format, requested_by=caller.actor.email
    )
    detail = {"backup": requested.backup.id, "job": requested.job.id, "format": backup_format}
    await record_by(session, caller, "tenant.backup", tenant=tenant, detail=caller.with_token(detail))
    return requested


async def verify_again(session: AsyncSession, caller: Caller, tenant: Tenant, backup: Backup) -> Job:
    """Another verification of `tenant`'s `backup`, for `caller` (`tenant.backup_verify`)."""
    job = await request_verification(session, backup)
    detail = {"backup": backup.id, "job": job.id}
    await record_by(session, caller, "tenant.backup_verify", tenant=tenant, detail=caller.with_token(detail))
    return job


async def hand_over(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, backup: Backup
) -> Iterator[bytes]:
    """`backup`'s archive for `caller` to download (`tenant.backup_download`), checked whole first
    (a damaged archive is refused): its bytes, piece by piece, read as they are taken (by a
    streaming response, in a worker thread)."""
    if backup.status != JobStatus.SUCCEEDED or backup.storage_key is None:
        raise Conflict(f"Backup #{backup.id} is {backup.status}: it has no archive to download.")
    storage = backup_storage(settings)
    await asyncio.to_thread(check_archive, storage, backup)
    detail = {"backup": backup.id, "sha256": backup.sha256}
    await record_by(
        session, caller, "tenant.backup_download", tenant=tenant, detail=caller.with_token(detail)
    )
    return _pieces(storage, backup.storage_key)


def _pieces(storage: BackupStorage, key: str) -> Iterator[bytes]:
    with storage.open(key) as handle:
        while piece := handle.read(_PIECE):
            yield piece


async def restore(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, backup: Backup
) -> RequestedRestore:
    """The restore of `tenant` from `backup`, for `caller` (`tenant.restore`)."""
    requested = await request_restore(session, settings, tenant, backup, requested_by=caller.actor.email)
    detail = {"backup": backup.id, "job": requested.job.id, "format": backup.format}
    await record_by(session, caller, "tenant.restore", tenant=tenant, detail=caller.with_token(detail))
    return requested


async def copy_into_new_tenant(
    session: AsyncSession, settings: Settings, caller: Caller, backup: Backup, target: CopyTarget
) -> RequestedRestore:
    """A new tenant made from `backup`, for `caller` (`tenant.restore_copy`, against the new tenant)."""
    requested = await request_restore_copy(session, settings, backup, target)
    detail = {
        "from": backup.tenant_slug,
        "backup": backup.id,
        "job": requested.job.id,
        "isolation": requested.tenant.isolation,
    }
    await record_by(
        session, caller, "tenant.restore_copy", tenant=requested.tenant, detail=caller.with_token(detail)
    )
    return requested


async def schedule_backups(
    session: AsyncSession, caller: Caller, tenant: Tenant, *, daily_at: str, format: str, keep: str | int
) -> BackupSchedule:
    """Back `tenant` up daily at `daily_at` (UTC) in `format`, keeping its newest `keep` scheduled
    backups, for `caller` (`tenant.backup_schedule`)."""
    schedule = await set_schedule(
        session,
        tenant,
        daily_at=daily_at,
        format=format,
        keep=keep,
        now=utcnow(),
        updated_by=caller.actor.email,
    )
    detail = {"daily_at": f"{schedule.daily_at:%H:%M}", "format": schedule.format, "keep": schedule.keep}
    await record_by(
        session, caller, "tenant.backup_schedule", tenant=tenant, detail=caller.with_token(detail)
    )
    return schedule


async def stop_scheduled_backups(session: AsyncSession, caller: Caller, tenant: Tenant) -> bool:
    """`tenant` backed up only when asked from now on, its backups kept, for `caller`
    (`tenant.backup_schedule_clear`, when it had a schedule). False when it had none."""
    cleared = await clear_schedule(session, tenant)
    if cleared:
        await record_by(session, caller, "tenant.backup_schedule_clear", tenant=tenant)
    return cleared
