"""What both portals show of a tenant's backups, shaped once: each backup as a line (age, size,
verification, the job it waits for), the restore confirmation (what is replaced, what stays) and
the forms that ask for a backup or a restore. The landlord's tenant page and the tenant's own
Backups page build on these; neither portal imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import backups_of
from services.backups.archive import describe_size
from services.backups.safety import safety_format
from services.errors import DomainError, InvalidInput
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    JobStatus,
    Tenant,
    TenantLock,
    TenantStatus,
    Verification,
)
from services.models.types import utcnow
from services.people.people import count_active_people
from services.settings import Settings
from services.tenancy.stores import available_isolation_modes

#: How the verification states look: the badge colours the stylesheet already has.
VERIFICATION_BADGES = {"verified": "ok", "not_verified": "pending", "failed": "failed"}


@dataclass
class BackupForm:
    format: str = BackupFormat.NATIVE


@dataclass
class RestoreForm:
    #: The tenant's slug, typed again: the restore replaces its data.
    confirm: str = ""


@dataclass
class CopyForm:
    slug: str = ""
    name: str = ""
    isolation: str = ""


def describe_age(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    raise AssertionError("unreachable")


@dataclass
class BackupLine:
    backup: Backup
    age: str
    size: str
    #: The job it waits for, while another backup or restore of the tenant holds the lock.
    waits_for: int | None = None


async def backup_lines(session: AsyncSession, tenant: Tenant) -> list[BackupLine]:
    """The tenant's backups, newest first, as both portals list them."""
    now = utcnow()
    lock = await session.scalar(select(TenantLock).where(TenantLock.tenant_id == tenant.id))
    lines = []
    for backup in await backups_of(session, tenant):
        waiting = (
            lock is not None
            and backup.status == JobStatus.QUEUED
            and backup.job_id not in (None, lock.job_id)
        )
        lines.append(
            BackupLine(
                backup,
                describe_age(backup.created_at, now),
                describe_size(backup.size_bytes),
                lock.job_id if waiting and lock is not None else None,
            )
        )
    return lines


@dataclass
class RestorePage:
    tenant: Tenant
    backup: Backup
    size: str
    #: (table, rows) of every table the backup holds rows of, largest first.
    tables: list[tuple[str, int]]
    safety_format: str
    #: The people who may sign in now, who keep their access, role and units through a restore.
    people: int
    isolation_modes: list[str]
    #: Why the tenant itself cannot be restored now, when it cannot.
    unavailable: str | None = None
    restore_error: str | None = None
    copy_form: CopyForm = field(default_factory=CopyForm)
    copy_errors: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(rows for _, rows in self.tables)


def unrestorable_reason(backup: Backup) -> str | None:
    """Why `backup` cannot be restored, in words for the page; None when it can."""
    if backup.status == JobStatus.FAILED:
        return f"Backup #{backup.id} failed before its archive was complete: there is nothing to restore."
    if backup.status != JobStatus.SUCCEEDED:
        return f"Backup #{backup.id} is not finished yet."
    if backup.verification == Verification.FAILED:
        return f"Backup #{backup.id} failed its verification: only a backup shown to restore is restored."
    if backup.verification != Verification.VERIFIED:
        return f"Backup #{backup.id} is not verified yet: only a backup shown to restore is restored."
    return None


def check_confirmation(tenant: Tenant, typed: str) -> None:
    """A restore replaces the tenant's data: its slug, typed again, says the person means it."""
    if typed.strip() != tenant.slug:
        raise InvalidInput(f"Type {tenant.slug} to confirm that its data is to be replaced.", field="confirm")


def refusal_status(error: DomainError) -> int:
    """The status of a refused restore or copy: wrong input (422) or the state of things (409)."""
    return 422 if isinstance(error, InvalidInput) else 409


async def restore_page(
    session: AsyncSession, tenant: Tenant, backup: Backup, settings: Settings, **extra: Any
) -> RestorePage:
    manifest = backup.manifest or {"tables": {}}
    tables = sorted(
        ((name, int(table["rows"])) for name, table in manifest["tables"].items() if table["rows"]),
        key=lambda entry: (-entry[1], entry[0]),
    )
    unavailable = unrestorable_reason(backup)
    if unavailable is None and (tenant.status != TenantStatus.ACTIVE or not tenant.store_name):
        unavailable = f"{tenant.slug} is {tenant.status}: only an active tenant is restored in place."
    modes = [mode for mode in available_isolation_modes(settings) if mode != IsolationMode.SHARED]
    return RestorePage(
        tenant,
        backup,
        describe_size(backup.size_bytes),
        tables,
        safety_format(tenant),
        await count_active_people(session, tenant),
        modes,
        unavailable,
        **extra,
    )
