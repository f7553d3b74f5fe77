"""The landlord's list of tenants: filtered by status, template, plan and isolation, searched by
slug or name, sorted by a column, a page at a time or all of it as CSV; each tenant with its plan,
what its store takes on disk and when it was last active (its latest entry on the audit trail)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.csv_export import csv_document
from services.db import ServerEngines
from services.models import AuditEntry, Tenant
from services.pagination import Paging
from services.settings import Settings
from services.tenancy.stores import location_of, sizes_on_disk

_LAST_ACTIVE = (
    select(AuditEntry.tenant_id, func.max(AuditEntry.at).label("at"))
    .where(AuditEntry.tenant_id.is_not(None))
    .group_by(AuditEntry.tenant_id)
    .subquery("last_active")
)
#: The columns the list sorts by, as the page names them.
SORTS: dict[str, Any] = {
    "created": Tenant.created_at,
    "slug": Tenant.slug,
    "name": Tenant.name,
    "status": Tenant.status,
    "template": Tenant.template,
    "plan": Tenant.plan_key,
    "isolation": Tenant.isolation,
    "active": _LAST_ACTIVE.c.at,
}
CSV_COLUMNS = (
    "slug", "name", "status", "template", "modules", "plan", "isolation", "backend",
    "store_bytes", "created_at", "last_active_at",
)  # fmt: skip


@dataclass(frozen=True)
class TenantFilters:
    """What the list shows, as its address says (unknown sorts fall back to the newest first)."""

    q: str = ""
    status: str = ""
    template: str = ""
    plan: str = ""
    isolation: str = ""
    sort: str = "created"
    order: str = "desc"

    @classmethod
    def of(cls, query: Mapping[str, str]) -> TenantFilters:
        filters = cls(**{field.name: query.get(field.name, "").strip() for field in fields(cls)})
        if filters.sort not in SORTS or filters.order not in ("asc", "desc"):
            return replace(filters, sort=cls.sort, order=cls.order)
        return filters

    def as_params(self, **changes: str) -> dict[str, str]:
        """The address's query for these filters with `changes`, leaving out what is as by default."""
        changed = replace(self, **changes)
        return {
            field.name: value
            for field in fields(self)
            if (value := getattr(changed, field.name)) != field.default
        }

    def sorted_by(self, column: str) -> dict[str, str]:
        """The query that sorts by `column`: ascending first, the other way when it already is."""
        order = "desc" if self.sort == column and self.order == "asc" else "asc"
        return self.as_params(sort=column, order=order)

    @property
    def filtering(self) -> bool:
        return any((self.q, self.status, self.template, self.plan, self.isolation))

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = []
        if query := self.q.lower():
            # autoescape: a % or _ typed in the search box is a character to find, not a wildcard.
            conditions.append(
                or_(
                    func.lower(Tenant.slug).contains(query, autoescape=True),
                    func.lower(Tenant.name).contains(query, autoescape=True),
                )
            )
        for column, wanted in (
            (Tenant.status, self.status),
            (Tenant.template, self.template),
            (Tenant.plan_key, self.plan),
            (Tenant.isolation, self.isolation),
        ):
            if wanted:
                conditions.append(column == wanted)
        return conditions

    def statement(self) -> Select[tuple[Tenant, datetime | None]]:
        column = SORTS[self.sort]
        ordered = column.asc().nulls_last() if self.order == "asc" else column.desc().nulls_last()
        return (
            select(Tenant, _LAST_ACTIVE.c.at)
            .outerjoin(_LAST_ACTIVE, _LAST_ACTIVE.c.tenant_id == Tenant.id)
            .where(*self.conditions())
            .order_by(ordered, Tenant.id.desc())
        )


@dataclass(frozen=True)
class TenantRow:
    tenant: Tenant
    last_active: datetime | None
    #: What its store takes on disk; None for a store shared with other tenants, or none at all.
    store_bytes: int | None


@dataclass(frozen=True, kw_only=True)
class TenantList(Paging):
    rows: list[TenantRow]


@dataclass(frozen=True, kw_only=True)
class TenantPage(Paging):
    """A page of tenants as they are, for the API (no store measured)."""

    tenants: list[Tenant]


async def _page(
    session: AsyncSession, filters: TenantFilters, page: int, per_page: int
) -> tuple[int, int, int, list[Any]]:
    """The page and its size (as they may be asked for), the total, and the page's (tenant, last
    active) rows."""
    page, per_page = max(page, 1), min(max(per_page, 1), 100)
    total = await session.scalar(select(func.count()).select_from(Tenant).where(*filters.conditions())) or 0
    offset = (page - 1) * per_page
    if offset >= total:  # past the last page; a huge page number would overflow the database's integer
        return page, per_page, total, []
    found = (await session.execute(filters.statement().offset(offset).limit(per_page))).all()
    return page, per_page, total, list(found)


async def search_tenants(
    session: AsyncSession, query: str = "", page: int = 1, per_page: int = 20
) -> TenantPage:
    """Tenants whose slug or name contains `query`, newest first, one page at a time."""
    page, per_page, total, found = await _page(session, TenantFilters(q=query.strip()), page, per_page)
    return TenantPage(tenants=[tenant for tenant, _ in found], total=total, page=page, per_page=per_page)


async def list_tenants(
    session: AsyncSession,
    settings: Settings,
    servers: ServerEngines,
    filters: TenantFilters,
    page: int = 1,
    per_page: int = 20,
) -> TenantList:
    """One page of the tenants the filters select, in their order, each store measured."""
    page, per_page, total, found = await _page(session, filters, page, per_page)
    return TenantList(rows=await _rows(settings, servers, found), total=total, page=page, per_page=per_page)


async def tenants_csv(
    session: AsyncSession, settings: Settings, servers: ServerEngines, filters: TenantFilters
) -> str:
    """Every tenant the filters select (not one page), in their order, as CSV with a header row."""
    found = (await session.execute(filters.statement())).all()
    return csv_document(
        CSV_COLUMNS,
        (
            (
                row.tenant.slug,
                row.tenant.name,
                row.tenant.status,
                row.tenant.template,
                " ".join(row.tenant.modules),
                row.tenant.plan_key,
                row.tenant.isolation,
                row.tenant.store_backend,
                row.store_bytes,
                row.tenant.created_at.isoformat(),
                row.last_active.isoformat() if row.last_active else None,
            )
            for row in await _rows(settings, servers, found)
        ),
    )


async def _rows(settings: Settings, servers: ServerEngines, found: Any) -> list[TenantRow]:
    locations = {tenant.id: location_of(settings, tenant) for tenant, _ in found if tenant.store_name}
    sizes = await sizes_on_disk(list(locations.values()), servers)
    return [
        TenantRow(
            tenant, last_active, sizes.get(locations[tenant.id].key) if tenant.id in locations else None
        )
        for tenant, last_active in found
    ]
