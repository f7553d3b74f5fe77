"""Every tenant's jobs in one list, for the platform's staff: filtered by kind, status and tenant,
newest first, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from services.models import Job, JobStatus, Tenant
from services.pagination import Paging


@dataclass(frozen=True)
class JobFilters:
    kind: str = ""
    status: str = ""
    #: The tenant's slug, or part of it.
    tenant: str = ""

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = []
        if self.kind:
            conditions.append(Job.kind == self.kind)
        if self.status:
            conditions.append(Job.status == self.status)
        if slug := self.tenant.strip().lower():
            conditions.append(
                Job.tenant_id.in_(select(Tenant.id).where(Tenant.slug.contains(slug, autoescape=True)))
            )
        return conditions

    def as_params(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


@dataclass(frozen=True, kw_only=True)
class JobList(Paging):
    jobs: list[Job]
    #: The kinds of job there are, for the filter.
    kinds: list[str]
    statuses: tuple[str, ...] = tuple(JobStatus)


async def list_jobs(session: AsyncSession, filters: JobFilters, page: int = 1, per_page: int = 50) -> JobList:
    page, per_page = max(page, 1), min(max(per_page, 1), 200)
    kinds = list(await session.scalars(select(Job.kind).distinct().order_by(Job.kind)))
    total = await session.scalar(select(func.count()).select_from(Job).where(*filters.conditions())) or 0
    offset = (page - 1) * per_page
    if offset >= total:  # past the last page; a huge page number would overflow the database's integer
        return JobList(jobs=[], kinds=kinds, total=total, page=page, per_page=per_page)
    found = await session.scalars(
        select(Job)
        .options(raiseload(Job.steps))  # the list shows no steps: never load them
        .where(*filters.conditions())
        .order_by(Job.id.desc())
        .offset(offset)
        .limit(per_page)
    )
    return JobList(jobs=list(found), kinds=kinds, total=total, page=page, per_page=per_page)
