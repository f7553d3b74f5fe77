"""Quotas: how much of something a tenant's plan lets it ask for over time. A request beyond one
is refused with the reason and the moment it frees up (`QuotaReached`, a 429 over HTTP).

- **Backups asked for by hand**: at most the plan's `max_backups_per_day` in any 24 hours.
  Scheduled backups and the safety backups taken before a restore or a module change are not
  counted; the platform's staff may always ask (their backups count towards the tenant's all the
  same, as the tenant's store did the work)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.safety import SAFETY_BACKUP_BEFORE
from services.errors import DomainError
from services.models import Backup, Tenant
from services.models.types import utcnow

DAY = timedelta(hours=24)


class QuotaReached(DomainError):
    """A quota of the tenant's plan is used up until `frees_at`."""

    def __init__(self, message: str, frees_at: datetime) -> None:
        super().__init__(message)
        self.frees_at = frees_at

    def seconds_left(self, now: datetime | None = None) -> int:
        return max(1, math.ceil((self.frees_at - (now or utcnow())).total_seconds()))


def _in_words(left: timedelta) -> str:
    minutes = max(1, math.ceil(left.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    return f"about {hours} hour{'s' if hours != 1 else ''}"


async def backups_by_hand(
    session: AsyncSession, tenant: Tenant, now: datetime | None = None
) -> list[datetime]:
    """When the tenant's backups by hand of the last 24 hours were asked for, newest first."""
    since = (now or utcnow()) - DAY
    return list(
        await session.scalars(
            select(Backup.created_at)
            .where(
                Backup.tenant_id == tenant.id,
                Backup.scheduled_for.is_(None),
                Backup.created_at > since,
                ~Backup.requested_by.startswith(SAFETY_BACKUP_BEFORE),
            )
            .order_by(Backup.created_at.desc())
        )
    )


async def check_backups_quota(session: AsyncSession, tenant: Tenant, now: datetime | None = None) -> None:
    """Refuse (QuotaReached) a backup by hand beyond the plan's backups a day."""
    allowed = tenant.plan.max_backups_per_day
    if allowed is None:
        return
    now = now or utcnow()
    asked_at = await backups_by_hand(session, tenant, now)
    if len(asked_at) < allowed:
        return
    frees_at = asked_at[allowed - 1] + DAY  # when the oldest of the latest `allowed` leaves the day
    raise QuotaReached(
        f"The {tenant.plan.name} plan allows {allowed} backup{'s' if allowed != 1 else ''} a day by hand, "
        f"and {tenant.name} has asked for {len(asked_at)} in the last 24 hours. The next one can be "
        f"asked for at {frees_at:%H:%M} UTC, in {_in_words(frees_at - now)}. Scheduled backups go on as planned.",
        frees_at,
    )
