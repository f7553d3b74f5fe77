"""Backup schedules: a tenant backed up daily at a time of day (UTC) in a format, its newest `keep`
scheduled backups kept (services.backups.retention prunes the rest after each one verifies).

Every worker's scheduler calls request_due_backups with the time, so several may look at one
due slot at once: each claims it with one conditional UPDATE (`next_run_at` moves on only where
it still is the slot seen), and only the one whose UPDATE changed the row requests the backup, in
the same transaction. The backups' unique (tenant, slot) index would refuse a second one anyway.
A slot that could not give a backup (a suspended tenant) is spent all the same, and says why."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record
from services.backups.postgres import have_postgres_tools
from services.backups.requests import request_backup
from services.db import Database
from services.errors import Conflict, DomainError, FieldErrors, InvalidInput
from services.models import BackupFormat, BackupSchedule, IsolationMode, Job, Tenant, TenantStatus
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL

#: The most scheduled backups a tenant may keep.
MAX_KEEP = 100
#: Who asks for scheduled backups, on the audit trail and the backups list.
SCHEDULER = Actor(email="schedule")

#: HH:MM, and the :SS some browsers add to a time input (minutes are what a schedule keeps).
_DAILY_AT = re.compile(r"(\d{1,2}):(\d{2})(?::[0-5]\d)?")


def backup_formats(tenant: Tenant) -> list[str]:
    """The formats a tenant can be backed up in: a shared store's tenants only portably, and a
    PostgreSQL store natively only where pg_dump and psql are installed."""
    if tenant.isolation == IsolationMode.SHARED:
        return [BackupFormat.PORTABLE]
    if tenant.store_backend == POSTGRESQL and not have_postgres_tools():
        return [BackupFormat.PORTABLE]
    return [BackupFormat.NATIVE, BackupFormat.PORTABLE]


def next_slot(daily_at: time, after: datetime) -> datetime:
    """The first `daily_at` (UTC) strictly after `after`."""
    after = after.astimezone(UTC)
    slot = datetime.combine(after.date(), daily_at, tzinfo=UTC)
    return slot if slot > after else slot + timedelta(days=1)


def parse_daily_at(text: str) -> time:
    match = _DAILY_AT.fullmatch(text.strip())
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        wanted = "give it as HH:MM, 24-hour, in UTC (for example 02:30)."
        message = f"{text.strip()} is not a time of day: {wanted}" if text.strip() else f"Say when: {wanted}"
        raise InvalidInput(message, field="daily_at")
    return time(int(match[1]), int(match[2]))


def parse_keep(text: str | int) -> int:
    try:
        keep = int(str(text).strip())
    except ValueError:
        keep = 0
    if not 1 <= keep <= MAX_KEEP:
        raise InvalidInput(
            f"Keep is how many scheduled backups to keep: a whole number from 1 to {MAX_KEEP}.", field="keep"
        )
    return keep


def check_format(tenant: Tenant, format: str) -> str:
    formats = backup_formats(tenant)
    if format not in formats:
        reason = (
            f"{tenant.slug} lives in a shared store, which holds other tenants too"
            if tenant.isolation == IsolationMode.SHARED
            else "pg_dump and psql are not installed here"
        )
        if format not in set(BackupFormat):
            reason = f"{format or 'no format'} is not a backup format"
        raise InvalidInput(f"Choose {' or '.join(formats)}: {reason}.", field="format")
    return format


async def schedule_of(session: AsyncSession, tenant: Tenant) -> BackupSchedule | None:
    return await session.get(BackupSchedule, tenant.id)


async def set_schedule(
    session: AsyncSession,
    tenant: Tenant,
    *,
    daily_at: str,
    format: str,
    keep: str | int,
    now: datetime,
    updated_by: str | None = None,
) -> BackupSchedule:
    """Create or change the tenant's schedule; its next run is the first `daily_at` after `now`.
    Raises InvalidFields (every wrong input at once) or Conflict (a tenant that is not active)."""
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(
            f"{tenant.slug} is {tenant.status}: only an active tenant can be backed up on a schedule."
        )
    errors = FieldErrors()
    at, keep_count = time(), 0
    with errors.checking("daily_at"):
        at = parse_daily_at(daily_at)
    with errors.checking("format"):
        check_format(tenant, format)
    with errors.checking("keep"):
        keep_count = parse_keep(keep)
    errors.raise_if_any()
    schedule = await schedule_of(session, tenant)
    if schedule is None:
        schedule = BackupSchedule(tenant_id=tenant.id)
        session.add(schedule)
    schedule.daily_at, schedule.format, schedule.keep = at, format, keep_count
    schedule.next_run_at, schedule.last_error = next_slot(at, now), None
    schedule.updated_by, schedule.updated_at = updated_by, now
    await session.flush()
    return schedule


async def clear_schedule(session: AsyncSession, tenant: Tenant) -> bool:
    """Stop backing the tenant up on a schedule (its backups stay); False when it had none."""
    cleared = await session.execute(delete(BackupSchedule).where(BackupSchedule.tenant_id == tenant.id))
    return bool(cleared.rowcount)  # type: ignore[attr-defined]


async def request_due_backups(database: Database, settings: Settings, *, now: datetime) -> list[Job]:
    """Claim every slot due at `now` and request its backup. Returns the jobs recorded (committed,
    and sent on commit). A slot missed while no scheduler ran gives one backup, not one per day."""
    async with database.session() as session:
        due = list(
            await session.execute(
                select(BackupSchedule.tenant_id, BackupSchedule.next_run_at, BackupSchedule.daily_at)
                .where(BackupSchedule.next_run_at <= now)
                .order_by(BackupSchedule.next_run_at, BackupSchedule.tenant_id)
            )
        )
    requested = []
    for tenant_id, slot, daily_at in due:
        job = await _claim_slot(database, settings, tenant_id, slot, next_slot(daily_at, now))
        if job is not None:
            requested.append(job)
    return requested


async def _claim_slot(
    database: Database, settings: Settings, tenant_id: int, slot: datetime, following: datetime
) -> Job | None:
    async with database.session() as session:
        claimed = await session.execute(
            update(BackupSchedule)
            .where(BackupSchedule.tenant_id == tenant_id, BackupSchedule.next_run_at == slot)
            .values(next_run_at=following, last_run_at=slot, last_error=None)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None  # another scheduler claimed it, or the schedule changed meanwhile
        schedule = await session.get_one(BackupSchedule, tenant_id)
        tenant = await session.get_one(Tenant, tenant_id)
        try:
            async with session.begin_nested():
                requested = await request_backup(
                    session,
                    settings,
                    tenant,
                    schedule.format,
                    requested_by=SCHEDULER.email,
                    scheduled_for=slot,
                )
        except DomainError as error:
            schedule.last_error = f"No backup at {slot:%Y-%m-%d %H:%M} UTC: {error.message}"
            return None
        await record(
            session,
            action="tenant.backup",
            actor=SCHEDULER,
            tenant_id=tenant.id,
            target=tenant.slug,
            detail={
                "backup": requested.backup.id,
                "job": requested.job.id,
                "format": schedule.format,
                "slot": slot.isoformat(),
            },
        )
        return requested.job
