"""The tenant's modules (/modules, the tenant's admins only): what is enabled, kept and available
under the tenant's plan; enabling a module (offering the modules it needs first); disabling one
after a confirmation that says what happens (a backup first, then its data kept or dropped); and
the change's job, followed live until it ends.

Every change is checked in full before its job is recorded, and a refusal is shown on the page,
every reason listed, naming the modules in the way. Changes are on the audit trail against the tenant. Module jobs live
in the landlord database, so another tenant's job id always names its owner: asking for it is
"not found", and recorded against that tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.safety import safety_format
from services.errors import DomainError, InvalidInput, NotFound
from services.layers.catalogue import Catalogue, load_catalogue
from services.models import IsolationMode, Job, Tenant
from services.modules.changes import disable_module, enable_module
from services.modules.requests import (
    ModuleChangeRefused,
    ModuleJob,
    ModuleState,
    RequirementsNotOffered,
    describe_module_job,
    module_job,
    module_tables,
    modules_overview,
    plan_disable,
)
from web.audit import caller_of
from web.deps import DbSession, settings_of
from web.tenancy.foreign import record_if_foreign
from web.tenancy.guards import tenant_admin
from web.tenancy.scope import tenant_access, tenant_link
from web.tenant.pages import Form, tenant_page

KEEP, DROP = "keep", "drop"


@dataclass
class EnableForm:
    #: "yes" once the admin has been shown the modules this one needs, and agreed to them.
    with_required: str = ""


@dataclass
class DisableForm:
    #: "keep" (its tables stay, hidden) or "drop" (they go, after the backup).
    keep_data: str = ""


@dataclass(frozen=True)
class DisableChoice:
    """What the disable confirmation offers for one module."""

    module: str
    title: str
    #: The module is kept already: only dropping its data is left.
    kept: bool
    #: Why keeping, or dropping, its data is refused now (None: allowed).
    keep_refusal: str | None
    drop_refusal: str | None
    #: The tables its data is in, and the format of the backup taken first.
    tables: list[str]
    backup_format: str
    shared: bool

    @property
    def refusal(self) -> str | None:
        """Why it cannot be disabled at all: the page then offers nothing to confirm. (Keeping is
        refused only when disabling is; dropping alone may be, and keeping is offered still.)"""
        return self.drop_refusal if self.kept else self.keep_refusal


def _catalogue(request: Request[Any, Any, Any]) -> Catalogue:
    return load_catalogue(settings_of(request).layers_dir)


async def _tenant(request: Request[Any, Any, Any], db_session: AsyncSession) -> Tenant:
    """The request's tenant, read again in the request's landlord session."""
    return await db_session.get_one(Tenant, tenant_access(request).tenant.id)


def _status_of(error: DomainError) -> int:
    return 422 if isinstance(error, InvalidInput) else 409


async def _modules_page(
    request: Request[Any, Any, Any], db_session: AsyncSession, *, error: DomainError | None = None
) -> Template:
    overview = await modules_overview(db_session, settings_of(request), await _tenant(request, db_session))
    return tenant_page(
        request,
        "modules.html",
        status_code=_status_of(error) if error else 200,
        overview=overview,
        error=error.message if error else None,
        in_the_way=error.in_the_way if isinstance(error, ModuleChangeRefused) else (),
    )


async def _started(request: Request[Any, Any, Any], db_session: AsyncSession, change: ModuleJob) -> Redirect:
    """Commit (which sends the change's job) and go to its progress page."""
    await db_session.commit()
    return Redirect(tenant_link(request, f"/modules/jobs/{change.job.id}"), status_code=HTTP_303_SEE_OTHER)


async def _disable_choice(request: Request[Any, Any, Any], tenant: Tenant, module: str) -> DisableChoice:
    catalogue = _catalogue(request)
    state = ModuleState.of(tenant)

    def refusal(keep_data: bool) -> str | None:
        try:
            plan_disable(catalogue, state, module, keep_data=keep_data)
        except ModuleChangeRefused as refused:
            return refused.message
        return None

    kept = module in state.kept
    if not kept and module not in state.enabled:
        raise NotFound(f"{catalogue.title_of(module)} is not enabled for {tenant.name}.")
    return DisableChoice(
        module=module,
        title=catalogue.title_of(module),
        kept=kept,
        keep_refusal=None if kept else refusal(True),
        drop_refusal=refusal(False),
        tables=await module_tables(catalogue, tenant.template, module),
        backup_format=safety_format(tenant),
        shared=tenant.isolation == IsolationMode.SHARED,
    )


def _record_foreign_job(request: Request[Any, Any, Any], job_id: int) -> None:
    """Another tenant's job id: the attempt goes on the trail against that tenant."""
    owner = select(Job.tenant_id).where(Job.id == job_id)
    record_if_foreign(request, "job", {"job": job_id}, lambda landlord: landlord.scalar(owner))


class TenantModulesController(Controller):
    path = "/modules"
    include_in_schema = False
    guards = [tenant_admin]

    @get("/")
    async def modules(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        return await _modules_page(request, db_session)

    @post("/{module:str}/enable")
    async def enable(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        module: FromPath[str],
        data: Annotated[EnableForm, Form],
    ) -> Template | Redirect:
        """Enable the module; when it needs others not enabled, first a page offering them."""
        tenant = await _tenant(request, db_session)
        try:
            async with db_session.begin_nested():
                change = await enable_module(
                    db_session,
                    settings_of(request),
                    caller_of(request),
                    tenant,
                    module,
                    with_required=data.with_required == "yes",
                )
        except RequirementsNotOffered as offer:
            catalogue = _catalogue(request)
            return tenant_page(
                request,
                "module_enable.html",
                plan=offer.plan,
                title=catalogue.title_of(module),
                titles={name: catalogue.title_of(name) for name in offer.plan.modules},
            )
        except DomainError as error:
            return await _modules_page(request, db_session, error=error)
        return await _started(request, db_session, change)

    @get("/{module:str}/disable")
    async def disable_confirmation(
        self, request: Request[Any, Any, Any], db_session: DbSession, module: FromPath[str]
    ) -> Template:
        choice = await _disable_choice(request, await _tenant(request, db_session), module)
        return tenant_page(
            request,
            "module_disable.html",
            status_code=409 if choice.refusal else 200,
            choice=choice,
            form=DisableForm(KEEP if choice.drop_refusal and not choice.kept else ""),
            errors={},
        )

    @post("/{module:str}/disable")
    async def disable(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        module: FromPath[str],
        data: Annotated[DisableForm, Form],
    ) -> Template | Redirect:
        tenant = await _tenant(request, db_session)
        choice = await _disable_choice(request, tenant, module)
        try:
            if data.keep_data not in (KEEP, DROP):
                raise InvalidInput(
                    f"Choose whether to keep the data of {choice.title} or drop it.", field="keep_data"
                )
            async with db_session.begin_nested():
                change = await disable_module(
                    db_session,
                    settings_of(request),
                    caller_of(request),
                    tenant,
                    module,
                    keep_data=data.keep_data == KEEP,
                )
        except DomainError as error:
            return tenant_page(
                request,
                "module_disable.html",
                status_code=_status_of(error),
                choice=choice,
                form=data,
                errors={error.field or "form": error.message},
            )
        return await _started(request, db_session, change)

    @get("/jobs/{job_id:int}")
    async def job(
        self, request: Request[Any, Any, Any], db_session: DbSession, job_id: FromPath[int]
    ) -> Template:
        """The change's progress: the page, or (HTMX, polled each second until it ends) its panel."""
        tenant = tenant_access(request).tenant
        try:
            job = await module_job(db_session, tenant, job_id)
        except NotFound:
            _record_foreign_job(request, job_id)
            raise
        template = "_module_job.html" if request.headers.get("hx-request") else "module_job.html"
        return tenant_page(request, template, job=job, what=describe_module_job(job, _catalogue(request)))
