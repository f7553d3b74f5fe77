"""Reading the audit trail: filtered pages for the viewer, and the same filter as CSV."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.csv_export import csv_document
from services.models import AuditEntry, Tenant
from services.pagination import Paging

CSV_COLUMNS = (
    "seq",
    "at",
    "actor_email",
    "actor_user_id",
    "tenant",
    "action",
    "target",
    "detail",
    "ip",
    "hash",
)


class AuditRow(NamedTuple):
    entry: AuditEntry
    #: None when the entry concerns no tenant, or the tenant no longer exists.
    tenant_slug: str | None


@dataclass(frozen=True, kw_only=True)
class AuditPage(Paging):
    rows: list[AuditRow]


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _conditions(
    actor: str, tenant: str, action: str, since: date | None, until: date | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if actor := actor.strip().lower():
        conditions.append(func.lower(AuditEntry.actor_email).contains(actor, autoescape=True))
    if tenant := tenant.strip().lower():
        conditions.append(
            AuditEntry.tenant_id == select(Tenant.id).where(Tenant.slug == tenant).scalar_subquery()
        )
    if action := action.strip():
        conditions.append(AuditEntry.action == action)
    if since is not None:
        conditions.append(AuditEntry.at >= _start_of(since))
    if until is not None:  # the whole day named
        conditions.append(AuditEntry.at < _start_of(until + timedelta(days=1)))
    return conditions


def _rows(conditions: Sequence[ColumnElement[bool]]) -> Select[AuditEntry, str]:
    return (
        select(AuditEntry, Tenant.slug)
        .outerjoin(Tenant, Tenant.id == AuditEntry.tenant_id)
        .where(*conditions)
        .order_by(AuditEntry.seq.desc())
    )


async def search(
    session: AsyncSession,
    *,
    actor: str = "",
    tenant: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
    page: int = 1,
    per_page: int = 50,
    hidden_actions: tuple[str, ...] = (),
) -> AuditPage:
    """Entries matching every filter given, newest first, one page at a time. `actor` is part of an
    email, `tenant` a slug, `action` one of ACTIONS; `since` and `until` are inclusive days (UTC).
    `hidden_actions` are left out (what a tenant's own audit page must not show)."""
    page, per_page = max(page, 1), min(max(per_page, 1), 200)
    conditions = _conditions(actor, tenant, action, since, until)
    if hidden_actions:
        conditions.append(AuditEntry.action.not_in(hidden_actions))
    total = await session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    offset = (page - 1) * per_page
    if offset >= total:
        return AuditPage(rows=[], total=total, page=page, per_page=per_page)
    result = await session.execute(_rows(conditions).offset(offset).limit(per_page))
    rows = [AuditRow(entry, slug) for entry, slug in result]
    return AuditPage(rows=rows, total=total, page=page, per_page=per_page)


async def export_csv(
    session: AsyncSession,
    *,
    actor: str = "",
    tenant: str = "",
    action: str = "",
    since: date | None = None,
    until: date | None = None,
) -> str:
    """Every entry matching the filters (not one page), newest first, as CSV with a header row
    (cells that would start a formula neutralised: emails and targets are typed by anyone)."""
    result = await session.execute(_rows(_conditions(actor, tenant, action, since, until)))
    return csv_document(
        CSV_COLUMNS,
        (
            (
                entry.seq,
                entry.at.isoformat(),
                entry.actor_email,
                entry.actor_user_id,
                slug or entry.tenant_id,
                entry.action,
                entry.target,
                json.dumps(entry.detail, sort_keys=True),
                entry.ip,
                entry.hash,
            )
            for entry, slug in result
        ),
    )
