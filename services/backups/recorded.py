"""Backups, restores and copies as a caller asks for them (the landlord portal, the tenant portal
and the API alike): the request, and its entry on the audit trail in the same transaction. Each
job is sent when the caller's transaction commits."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.backups.requests import RequestedBackup, request_backup
from services.backups.restores import CopyTarget, RequestedRestore, request_restore, request_restore_copy
from services.models import Backup, Tenant
from services.settings import Settings


async def back_up(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, backup_format: str
) -> RequestedBackup:
    """A backup of `tenant` in `backup_format`, for `caller` (`tenant.backup`)."""
    requested = await request_backup(
        session, settings, tenant, backup_format, requested_by=caller.actor.email
    )
    detail = {"backup": requested.backup.id, "job": requested.job.id, "format": backup_format}
    await record_by(session, caller, "tenant.backup", tenant=tenant, detail=caller.with_token(detail))
    return requested


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
