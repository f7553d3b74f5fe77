"""The audit trail from the web side: the request says who acted (its user) and from where."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, record
from services.models import AuditEntry, Tenant


async def record_request(
    request: ASGIConnection[Any, Any, Any, Any],
    session: AsyncSession,
    action: str,
    *,
    tenant: Tenant | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> AuditEntry:
    """Append `action` by the request's user (or `actor`) in the request's landlord transaction.
    Behind a proxy named in TENANTRY_TRUSTED_PROXIES the address is the one it reports (web/proxies.py)."""
    return await record(
        session,
        action=action,
        actor=actor or request.scope["user"],
        tenant_id=tenant.id if tenant else None,
        target=target or (tenant.slug if tenant else None),
        detail=detail,
        ip=request.client.host if request.client else None,
    )
