"""The audit trail from the web side: the request says who acted (its user) and from where."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Actor, Caller, record_by
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
    """Append `action` by the request's user (or `actor`) in the request's landlord transaction."""
    caller = caller_of(request)
    if actor is not None:
        caller = Caller(actor, caller.ip, caller.token_prefix)
    return await record_by(session, caller, action, tenant=tenant, target=target, detail=detail)


def caller_of(request: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """Who asks, for a use case: the request's user, its address (behind a proxy named in
    TENANTRY_TRUSTED_PROXIES, the one it reports: web/proxies.py) and its API token."""
    token = request.scope.get("auth")
    return Caller(
        request.scope["user"],
        request.client.host if request.client else None,
        token.prefix if token is not None else None,
    )
