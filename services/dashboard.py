"""Figures for the landlord dashboard, read from the landlord database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Job, JobStatus, Tenant, TenantStatus, User


@dataclass(frozen=True)
class PlatformSummary:
    tenants_by_status: dict[str, int]
    jobs_by_status: dict[str, int]
    landlord_staff: int

    @property
    def tenants(self) -> int:
        return sum(self.tenants_by_status.values())


async def summarise_platform(session: AsyncSession) -> PlatformSummary:
    tenant_counts = dict(
        (await session.execute(select(Tenant.status, func.count()).group_by(Tenant.status))).all()
    )
    job_counts = dict((await session.execute(select(Job.status, func.count()).group_by(Job.status))).all())
    staff = await session.scalar(
        select(func.count()).select_from(User).where(User.platform_role.is_not(None))
    )
    return PlatformSummary(
        tenants_by_status={status.value: tenant_counts.get(status.value, 0) for status in TenantStatus},
        jobs_by_status={status.value: job_counts.get(status.value, 0) for status in JobStatus},
        landlord_staff=staff or 0,
    )
