"""Tenants as landlord staff ask for them (the landlord portal and the API alike): a new tenant, a
failed provisioning retried, a custom-layer change, another plan; each with its entry on the audit
trail in the same transaction. Each job is sent when the caller's transaction commits."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import DomainError
from services.layers.catalogue import load_catalogue
from services.models import Job, Plan, Tenant
from services.provisioning.custom import APPLY_CUSTOM, ROLLBACK_CUSTOM, request_custom_change
from services.provisioning.tenants import RequestedTenant, TenantRequest, request_tenant, retry_provisioning
from services.settings import Settings
from services.tenancy.tenants import change_plan

#: The custom-layer changes by the word that names them (`tenant.custom_<word>` on the trail).
CUSTOM_CHANGES = {"apply": APPLY_CUSTOM, "rollback": ROLLBACK_CUSTOM}


async def provision_tenant(
    session: AsyncSession, settings: Settings, caller: Caller, request: TenantRequest
) -> RequestedTenant:
    """A new tenant, its first admin's account if one is named, and its provisioning job, for
    `caller` (`tenant.request`, naming the first admin). Raises InvalidFields naming every wrong
    field; the caller rolls back then."""
    requested = await request_tenant(session, settings, request)
    detail: dict[str, object] = {"job": requested.job.id}
    if requested.first_admin is not None:
        detail["first_admin"] = requested.first_admin.account.email
    await record_by(
        session, caller, "tenant.request", tenant=requested.tenant, detail=caller.with_token(detail)
    )
    return requested


async def provision_again(session: AsyncSession, caller: Caller, tenant: Tenant) -> Job:
    """Another provisioning job for `tenant`, whose last one failed, for `caller` (`tenant.retry`)."""
    job = await retry_provisioning(session, tenant)
    await record_by(session, caller, "tenant.retry", tenant=tenant, detail=caller.with_token({"job": job.id}))
    return job


async def change_custom_layer(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, change: str
) -> Job:
    """The job that applies `tenant`'s custom layer or rolls its last revision back (`change`:
    apply or rollback), for `caller` (`tenant.custom_apply`, `tenant.custom_rollback`)."""
    if change not in CUSTOM_CHANGES:
        raise DomainError(f"Unknown custom-layer action {change!r}.")
    job = await request_custom_change(session, settings, tenant, CUSTOM_CHANGES[change])
    detail = caller.with_token({"job": job.id})
    await record_by(session, caller, f"tenant.custom_{change}", tenant=tenant, detail=detail)
    return job


async def move_to_plan(
    session: AsyncSession, settings: Settings, caller: Caller, tenant: Tenant, plan_key: str
) -> Plan:
    """`tenant` on the plan `plan_key`, for `caller` (`tenant.plan`, from the plan it was on). Refused,
    saying why, when its enabled modules do not fit that plan."""
    before = tenant.plan.name
    plan = await change_plan(session, tenant, plan_key, load_catalogue(settings.layers_dir).titles)
    detail = caller.with_token({"from": before, "to": plan.name})
    await record_by(session, caller, "tenant.plan", tenant=tenant, detail=detail)
    return plan
