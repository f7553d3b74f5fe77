"""The tenants list (search and pagination, swapped in place by HTMX), new tenants, and the tenant
page with its live provisioning progress, retries and custom changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Response, Template
from litestar.status_codes import HTTP_201_CREATED
from litestar_htmx import ClientRefresh, HTMXRequest

from services.backups.archive import describe_size
from services.charts import job_seconds_per_day
from services.errors import DomainError, InvalidFields
from services.layers.catalogue import load_catalogue
from services.lifecycle.deletion import deletion_backup_id, request_deletion, undo_deletion
from services.lifecycle.suspension import resume, suspend
from services.models import IsolationMode, Tenant, TenantStatus
from services.models.landlord import DEFAULT_PLAN
from services.models.types import utcnow
from services.people.first_admin import FirstAdmin, admins_of, invite_first_admin
from services.provisioning.overview import TenantOverview, tenant_overview
from services.provisioning.recorded import (
    change_custom_layer,
    move_to_plan,
    provision_again,
    provision_tenant,
)
from services.provisioning.tenants import TenantRequest
from services.rate_limits.policy import TENANT_CLASS_NAMES, rates_from_form, tenant_rates
from services.rate_limits.recorded import set_own_rate_limits
from services.rollouts.fleet import latest_checks
from services.rollouts.recorded import check_drift_later
from services.storage_quotas import RowLimits, quota_warnings, storage_quotas_in_use
from services.tenancy.stores import available_isolation_modes
from services.tenancy.tenants import get_tenant, plans
from services.tenant_list import TenantFilters, list_tenants, tenants_csv
from services.tenant_usage import usage_from_outside
from services.usage_history import usage_history
from web.audit import caller_of
from web.auth import landlord_staff
from web.deps import DbSession, settings_of
from web.landlord.backups import backups_panel
from web.landlord.moves import moves_panel
from web.rate_limits import EXPORT
from web.redirects import see_other


@dataclass
class NewTenantForm:
    slug: str = ""
    name: str = ""
    template: str = ""
    isolation: str = "database"
    plan: str = DEFAULT_PLAN
    #: One ticked checkbox arrives as a single value, several as a list.
    modules: list[str] | str = field(default_factory=list)
    admin_email: str = ""
    admin_name: str = ""


@dataclass
class FirstAdminForm:
    admin_email: str = ""
    admin_name: str = ""


@dataclass
class LifecycleForm:
    """Suspending (its reason) and deleting (the slug typed to confirm)."""

    reason: str = ""
    confirm: str = ""


@dataclass
class PlanForm:
    plan: str = ""


async def _tenant_page(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    overview: TenantOverview,
    *,
    plan_error: str | None = None,
    rate_errors: dict[str, str] | None = None,
    rate_form: dict[str, str] | None = None,
    first_admin_form: FirstAdminForm | None = None,
    first_admin_errors: dict[str, str] | None = None,
    lifecycle_form: LifecycleForm | None = None,
    lifecycle_errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    rates, tenant = tenant_rates(overview.tenant), overview.tenant
    usage = await usage_from_outside(
        db_session, settings_of(request), tenant, request.app.state.tenant_connections
    )
    context = {
        "usage": usage,
        "quota_uses": storage_quotas_in_use(usage) if usage is not None else [],
        "quota_warnings": quota_warnings(tenant, usage) if usage is not None else [],
        "row_limits": RowLimits.of(tenant.plan),
        "describe_size": describe_size,
        "rates": rates,
        "rate_classes": TENANT_CLASS_NAMES,
        "rate_form": rate_form or rates.as_form(),
        "rate_errors": rate_errors or {},
        "refusals": await request.app.state.rate_limits.refusals(overview.tenant.id),
        "overview": overview,
        "tenant": overview.tenant,
        "backups": await backups_panel(db_session, overview.tenant),
        "moves": await moves_panel(db_session, settings_of(request), tenant),
        "plans": await plans(db_session),
        "plan_error": plan_error,
        "drift": (await latest_checks(db_session, overview.tenant.id)).get(overview.tenant.id),
        "admins": await admins_of(db_session, tenant),
        "first_admin_form": first_admin_form or FirstAdminForm(),
        "first_admin_errors": first_admin_errors or {},
        "lifecycle_form": lifecycle_form or LifecycleForm(),
        "lifecycle_errors": lifecycle_errors or {},
        "deletion_backup": await deletion_backup_id(db_session, tenant),
        "grace_days": settings_of(request).deletion_grace_days,
        "history": await usage_history(db_session, tenant.id, utcnow().date()),
        "job_seconds": await job_seconds_per_day(db_session, tenant.id, utcnow().date()),
    }
    return Template("landlord/tenant.html", context=context, status_code=status_code)


def _first_admin_shown(request: HTMXRequest, tenant: Tenant, first_admin: FirstAdmin) -> Template:
    """The answer that shows a new first admin's password, the only time it is shown (in place of
    the form that asked, for HTMX)."""
    context = {"tenant": tenant, "first_admin": first_admin}
    template = "landlord/_first_admin.html" if request.htmx else "landlord/first_admin.html"
    return Template(template, context=context, status_code=HTTP_201_CREATED)


class TenantsController(Controller):
    path = "/tenants"
    include_in_schema = False
    guards = [landlord_staff]

    async def _form_context(
        self, request: Request[Any, Any, Any], db_session: DbSession, form: NewTenantForm
    ) -> dict[str, Any]:
        catalogue = load_catalogue(settings_of(request).layers_dir)
        template = catalogue.templates.get(form.template)
        return {
            "errors": {},
            "form": form,
            "catalogue": catalogue,
            "ticked": set(form.modules)
            if form.modules or template is None
            else set(template.default_modules),
            "isolation_modes": available_isolation_modes(settings_of(request)),
            "plans": await plans(db_session),
        }

    @get("/")
    async def list_tenants(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        page: Annotated[int, QueryParameter(ge=1)] = 1,
    ) -> Template:
        """Filtered, searched and sorted as the address says; HTMX swaps the table alone."""
        filters = TenantFilters.of(request.query_params)
        settings, servers = settings_of(request), request.app.state.database.servers
        result = await list_tenants(db_session, settings, servers, filters, page)
        template = "landlord/_tenant_table.html" if request.htmx else "landlord/tenants.html"
        context = {
            "result": result,
            "filters": filters,
            "describe_size": describe_size,
            "choices": {
                "status": [status.value for status in TenantStatus],
                "template": list(load_catalogue(settings.layers_dir).templates),
                "plan": [plan.key for plan in await plans(db_session)],
                "isolation": [mode.value for mode in IsolationMode],
            },
        }
        return Template(template, context=context)

    @get("/export.csv", opt=EXPORT)
    async def export_tenants(self, request: HTMXRequest, db_session: DbSession) -> Response[str]:
        """Every tenant the list's filters select, in its order, as CSV."""
        filters = TenantFilters.of(request.query_params)
        servers = request.app.state.database.servers
        return Response(
            await tenants_csv(db_session, settings_of(request), servers, filters),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="tenants.csv"'},
        )

    @get("/new")
    async def new_tenant_form(
        self, request: HTMXRequest, db_session: DbSession, template: FromQuery[str] = ""
    ) -> Template:
        context = await self._form_context(request, db_session, NewTenantForm(template=template))
        return Template("landlord/new_tenant.html", context=context)

    @get("/new/modules")
    async def module_choices(
        self, request: HTMXRequest, db_session: DbSession, template: FromQuery[str] = ""
    ) -> Template:
        """The module checkboxes, with the chosen template's defaults ticked."""
        context = await self._form_context(request, db_session, NewTenantForm(template=template))
        return Template("landlord/_module_choices.html", context=context)

    @post("/")
    async def create_tenant(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[NewTenantForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        modules = data.modules if isinstance(data.modules, list) else [data.modules]
        form = replace(data, slug=data.slug.strip(), name=data.name.strip(), modules=modules)
        wanted = TenantRequest(
            form.slug,
            form.name,
            form.template,
            modules,
            form.isolation,
            form.plan,
            admin_email=form.admin_email,
            admin_name=form.admin_name,
        )
        try:
            async with db_session.begin_nested():
                tenant, _, first_admin = await provision_tenant(
                    db_session, settings_of(request), caller_of(request), wanted
                )
        except DomainError as error:
            errors = error.errors_by_field("form")
            # The modules as they were ticked, even none: not the template's defaults again.
            context = {
                **(await self._form_context(request, db_session, form)),
                "errors": errors,
                "ticked": set(modules),
            }
            template = "landlord/_new_tenant_form.html" if request.htmx else "landlord/new_tenant.html"
            return Template(template, context=context, status_code=422)
        await db_session.commit()
        if first_admin is not None and first_admin.password is not None:
            return _first_admin_shown(request, tenant, first_admin)
        return see_other(request, f"/tenants/{tenant.slug}")

    @get("/{slug:str}")
    async def tenant_page(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]
    ) -> Response[Any]:
        overview = await tenant_overview(db_session, settings_of(request), slug)
        if request.htmx and not overview.busy:
            return ClientRefresh()  # the job finished: reload once to show the tenant as it now is
        if request.htmx:
            return Template(
                "landlord/_tenant_progress.html", context={"overview": overview, "tenant": overview.tenant}
            )
        return await _tenant_page(request, db_session, overview)

    @post("/{slug:str}/plan")
    async def change_plan(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[PlanForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        try:
            await move_to_plan(db_session, settings_of(request), caller_of(request), tenant, data.plan)
        except DomainError as error:
            overview = await tenant_overview(db_session, settings_of(request), slug)
            return await _tenant_page(
                request, db_session, overview, plan_error=error.message, status_code=422
            )
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @post("/{slug:str}/rate-limits")
    async def change_rate_limits(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """The tenant's own rate limits, or (`from_plan`) its plan's again."""
        tenant = await get_tenant(db_session, slug)
        try:
            limits = None if data.get("from_plan") else rates_from_form(data)
        except InvalidFields as error:
            overview = await tenant_overview(db_session, settings_of(request), slug)
            return await _tenant_page(
                request, db_session, overview, rate_errors=error.errors, rate_form=data, status_code=422
            )
        await set_own_rate_limits(db_session, caller_of(request), tenant, limits)
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @post("/{slug:str}/first-admin")
    async def invite_first_admin(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[FirstAdminForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """A tenant without an admin gets one; the password is shown on the answer, once."""
        tenant = await get_tenant(db_session, slug)
        try:
            async with db_session.begin_nested():
                first_admin = await invite_first_admin(
                    db_session,
                    settings_of(request),
                    request.app.state.tenant_connections,
                    caller_of(request),
                    tenant,
                    email=data.admin_email,
                    display_name=data.admin_name,
                )
        except DomainError as error:
            overview = await tenant_overview(db_session, settings_of(request), slug)
            errors = error.errors_by_field("admin_email")
            return await _tenant_page(
                request,
                db_session,
                overview,
                first_admin_form=data,
                first_admin_errors=errors,
                status_code=422,
            )
        await db_session.commit()
        if first_admin.password is None:
            return see_other(request, f"/tenants/{slug}")
        return _first_admin_shown(request, tenant, first_admin)

    @post("/{slug:str}/suspend")
    async def suspend(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[LifecycleForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Close the tenant to its people, saying why."""
        return await self._change_lifecycle(
            request,
            db_session,
            slug,
            data,
            lambda tenant: suspend(db_session, caller_of(request), tenant, data.reason),
        )

    @post("/{slug:str}/resume")
    async def resume(self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]) -> Response[Any]:
        return await self._change_lifecycle(
            request,
            db_session,
            slug,
            LifecycleForm(),
            lambda tenant: resume(db_session, caller_of(request), tenant),
        )

    @post("/{slug:str}/delete")
    async def delete(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[LifecycleForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Close the tenant and delete it behind a verified backup, once its slug is typed."""
        return await self._change_lifecycle(
            request,
            db_session,
            slug,
            data,
            lambda tenant: request_deletion(db_session, caller_of(request), tenant, data.confirm),
        )

    @post("/{slug:str}/undelete")
    async def undelete(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]
    ) -> Response[Any]:
        return await self._change_lifecycle(
            request,
            db_session,
            slug,
            LifecycleForm(),
            lambda tenant: undo_deletion(db_session, caller_of(request), tenant),
        )

    async def _change_lifecycle(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: str,
        form: LifecycleForm,
        change: Callable[[Tenant], Awaitable[object]],
    ) -> Response[Any]:
        """Make the change and show the tenant's page; a refusal shows it with the reason, on
        the form's field, and what was typed."""
        tenant = await get_tenant(db_session, slug)
        try:
            async with db_session.begin_nested():
                await change(tenant)
        except DomainError as error:
            overview = await tenant_overview(db_session, settings_of(request), slug)
            errors = error.errors_by_field("lifecycle")
            return await _tenant_page(
                request, db_session, overview, lifecycle_form=form, lifecycle_errors=errors, status_code=422
            )
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @post("/{slug:str}/retry")
    async def retry(self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        await provision_again(db_session, caller_of(request), tenant)
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @post("/{slug:str}/drift")
    async def check_drift(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]
    ) -> Response[Any]:
        """Compare the tenant's store with what its layers should give, as a job."""
        tenant = await get_tenant(db_session, slug)
        await check_drift_later(db_session, caller_of(request), tenant)
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @post("/{slug:str}/custom/{action:str}")
    async def custom_change(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str], action: FromPath[str]
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        await change_custom_layer(db_session, settings_of(request), caller_of(request), tenant, action)
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")
