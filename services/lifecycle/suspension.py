"""Suspending a tenant and resuming it, for the platform's staff, each on the audit trail.

A suspended tenant's portal shows its people the reason, its API answers 403 with it
(services.tenancy.access.closed_because), and nothing new is asked of its store: backups,
restores and module changes are for active tenants only. Staff may still switch into it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import Conflict, InvalidInput
from services.limits import check_text
from services.models import Tenant, TenantStatus


async def suspend(session: AsyncSession, caller: Caller, tenant: Tenant, reason: str) -> Tenant:
    """Close an active tenant to its people, saying why (`tenant.suspend`, with the reason)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput(f"Say why {tenant.name} is suspended: its people read it.", field="reason")
    check_text(reason, Tenant.__table__.c.status_reason, field="reason")
    if tenant.status != TenantStatus.ACTIVE:
        raise Conflict(f"{tenant.name} is {tenant.status}; only an active tenant is suspended.")
    tenant.status, tenant.status_reason = TenantStatus.SUSPENDED, reason
    await record_by(
        session, caller, "tenant.suspend", tenant=tenant, detail=caller.with_token({"reason": reason})
    )
    return tenant


async def resume(session: AsyncSession, caller: Caller, tenant: Tenant) -> Tenant:
    """Open a suspended tenant to its people again (`tenant.resume`)."""
    if tenant.status != TenantStatus.SUSPENDED:
        raise Conflict(f"{tenant.name} is {tenant.status}; only a suspended tenant is resumed.")
    tenant.status, tenant.status_reason = TenantStatus.ACTIVE, None
    await record_by(session, caller, "tenant.resume", tenant=tenant, detail=caller.with_token({}))
    return tenant
