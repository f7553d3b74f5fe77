"""The landlord's use case on rate limits: one tenant's own limits in place of its plan's, or back
to its plan's, on the audit trail with what they were and what they became."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.models import Tenant
from services.rate_limits.policy import TenantRates, tenant_rates


async def set_own_rate_limits(
    session: AsyncSession, caller: Caller, tenant: Tenant, limits: TenantRates | None
) -> None:
    """`tenant` held to `limits` from its next request on; None: to its plan's again."""
    before = tenant_rates(tenant).as_json()
    tenant.rate_limits = limits.as_json() if limits is not None else None
    after = tenant_rates(tenant).as_json()
    detail = {"before": before, "after": after, "from_plan": limits is None}
    await record_by(session, caller, "tenant.rate_limits", tenant=tenant, detail=caller.with_token(detail))
