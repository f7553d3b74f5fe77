"""Cross-tenant attempts: refused where they happen, recorded here, counted per tenant."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record
from services.models import AuditEntry, Tenant, User
from services.tenancy.stores import StoreLocation

CROSS_TENANT = "security.cross_tenant"


async def record_cross_tenant_attempt(
    session: AsyncSession,
    *,
    actor: User | Actor,
    target: Tenant,
    what: str,
    ip: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """A security event on the audit trail, against the tenant that was reached for."""
    await record(
        session,
        action=CROSS_TENANT,
        actor=actor,
        tenant_id=target.id,
        target=target.slug,
        detail={"what": what, **(detail or {})},
        ip=ip,
    )


async def cross_tenant_counts(session: AsyncSession) -> list[tuple[str, int]]:
    """Blocked attempts per tenant, most first."""
    rows = await session.execute(
        select(Tenant.slug, func.count(AuditEntry.id))
        .join(Tenant, Tenant.id == AuditEntry.tenant_id)
        .where(AuditEntry.action == CROSS_TENANT)
        .group_by(Tenant.slug)
        .order_by(func.count(AuditEntry.id).desc(), Tenant.slug)
    )
    return [(slug, count) for slug, count in rows.all()]


async def owner_elsewhere(location: StoreLocation, table: str, record_id: int, tenant_id: int) -> int | None:
    """The tenant owning a row the scope could not see, when it is another tenant's. Only a
    shared store can tell (elsewhere an id names nothing outside the tenant's own store); asked
    as the store's owner, whom row-level security does not hide other tenants from."""
    if not location.is_shared or not re.fullmatch(r"[a-z][a-z0-9_]*", table):
        return None
    store = location.open()
    try:
        async with store.engine.connect() as connection:
            owner = await connection.scalar(
                text(f'SELECT tenant_id FROM "{table}" WHERE id = :id'), {"id": record_id}
            )
    except DBAPIError:
        return None  # no such table, or no id column: nothing to tell
    finally:
        await store.dispose()
    return owner if owner is not None and owner != tenant_id else None
