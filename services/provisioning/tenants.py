"""Asking for a tenant: everything is checked before anything is written, then the tenant and its
provisioning job are recorded together. The job itself runs on a worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.errors import Conflict, FieldErrors, InvalidInput
from services.layers.catalogue import ModuleProblems, load_catalogue
from services.limits import check_text
from services.models import Job, JobStatus, Tenant, TenantStatus
from services.models.landlord import DEFAULT_PLAN
from services.people.first_admin import FIRST_ADMIN, FirstAdmin, name_first_admin
from services.provisioning.steps import PROVISIONING_STEPS, Provisioning, bring_up_new_tenant
from services.server_limits import ServerWork
from services.settings import Settings
from services.tenancy.placement import place_new_tenant
from services.tenancy.stores import available_isolation_modes
from services.tenancy.tenants import (
    check_slug_free,
    find_plan,
    plan_problems,
    register_tenant,
    validate_slug,
)

PROVISION = "provision"
PROVISIONING_STEP_NAMES = [name for name, _ in PROVISIONING_STEPS]


@dataclass(frozen=True)
class TenantRequest:
    slug: str
    name: str
    template: str
    modules: list[str]
    isolation: str
    plan: str = DEFAULT_PLAN
    #: The first admin's email and name: none named when both are blank.
    admin_email: str = ""
    admin_name: str = ""


class RequestedTenant(NamedTuple):
    tenant: Tenant
    job: Job
    #: The first admin named, whom the job lets in once the store exists.
    first_admin: FirstAdmin | None


async def request_tenant(
    session: AsyncSession, settings: Settings, request: TenantRequest
) -> RequestedTenant:
    """Validate the request (slug, name, template, modules, isolation, plan: its modules must fit;
    the first admin's email and name) and record the tenant, the first admin's account and the
    provisioning job. Raises InvalidFields naming every wrong field; the caller rolls back then."""
    catalogue = load_catalogue(settings.layers_dir)
    errors = FieldErrors()
    with errors.checking("slug"):
        await check_slug_free(session, validate_slug(request.slug.strip()))
    with errors.checking("name"):
        if not request.name.strip():
            raise InvalidInput("Give the tenant a name.", field="name")
        check_text(request.name, Tenant.__table__.c.name, field="name")
    with errors.checking("template"):
        catalogue.template(request.template)
        with errors.checking("modules"):
            plan = await find_plan(session, request.plan)
            known = [name for name in request.modules if name in catalogue.modules]
            problems = catalogue.module_problems(request.modules) + plan_problems(
                plan, known, catalogue.titles
            )
            if problems:  # every one at once: the modules' own and the plan's
                raise ModuleProblems(problems)
            modules = catalogue.resolve_modules(request.template, request.modules)
    with errors.checking("isolation"):
        if request.isolation not in available_isolation_modes(settings):
            modes = ", ".join(available_isolation_modes(settings))
            raise InvalidInput(f"Isolation {request.isolation!r} is not available here; choose {modes}.")
    first_admin = None
    if request.admin_email.strip() or request.admin_name.strip():
        with errors.checking("admin_email"):
            first_admin = await name_first_admin(session, request.admin_email, request.admin_name)
    errors.raise_if_any()
    tenant = await register_tenant(
        session,
        slug=request.slug,
        name=request.name,
        template=request.template,
        isolation=request.isolation,
        modules=modules,
        plan_key=request.plan,
    )
    await place_new_tenant(session, settings, tenant)
    payload = {FIRST_ADMIN: first_admin.as_payload()} if first_admin is not None else {}
    job = await jobs.record_job(
        session, PROVISION, tenant_id=tenant.id, payload=payload, steps=PROVISIONING_STEP_NAMES
    )
    return RequestedTenant(tenant, job, first_admin)


async def retry_provisioning(session: AsyncSession, tenant: Tenant) -> Job:
    """A new provisioning job for a tenant whose last one failed (or ended without finishing it)."""
    if not await can_retry(session, tenant):
        raise Conflict(
            f"{tenant.slug} is {tenant.status}; only a tenant whose provisioning failed can be retried."
        )
    tenant.status, tenant.error = TenantStatus.PROVISIONING, None
    return await jobs.record_job(session, PROVISION, tenant_id=tenant.id, steps=PROVISIONING_STEP_NAMES)


async def can_retry(session: AsyncSession, tenant: Tenant) -> bool:
    """Whether provisioning may build the tenant again: it was made to be provisioned (not to be
    filled by a copy from a backup or by a split, which a retry would leave empty), and that failed
    or stopped."""
    made_by = await session.scalar(
        select(Job.kind).where(Job.tenant_id == tenant.id).order_by(Job.id).limit(1)
    )
    if made_by != PROVISION:
        return False
    if tenant.status == TenantStatus.FAILED:
        return True
    if tenant.status != TenantStatus.PROVISIONING:
        return False
    # Still "provisioning" but no job left to finish it: its last job failed before reaching the
    # steps (for instance it arrived without its context).
    unfinished = await session.scalar(
        select(Job.id).where(Job.tenant_id == tenant.id, Job.status.in_(JobStatus.unfinished()))
    )
    return unfinished is None


@jobs.job_handler(PROVISION, server_work=ServerWork.MIGRATE)
async def provision(database: Database, job: Job, settings: Settings) -> None:
    await bring_up_new_tenant(Provisioning.of(database, job, settings), PROVISIONING_STEPS)
