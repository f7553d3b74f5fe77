"""The tenant's settings and usage (/settings, the tenant's admins only): its name, timezone and
accent colour, and what it uses of its plan. Every setting changed is on the audit trail.

The accent colour reaches every page of the tenant's portal as a small stylesheet
(/settings/appearance.css, for all of the tenant's people) that sets the layout's CSS variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from services.backups.archive import describe_size
from services.errors import InvalidInput
from services.models.types import utcnow
from services.rate_limits.policy import TENANT_CLASS_NAMES, tenant_rates
from services.storage_quotas import quota_warnings, storage_quotas_in_use
from services.tenant_settings import TenantSettings, change_settings, read_settings, timezone_names
from services.tenant_usage import measure_tenant_usage
from services.usage_history import usage_history
from web.audit import caller_of
from web.deps import DbSession
from web.tenancy.guards import tenant_admin, tenant_member
from web.tenancy.scope import TenantData, tenant_access, tenant_link
from web.tenant.pages import Form, tenant_page


@dataclass
class SettingsForm:
    name: str = ""
    timezone: str = ""
    accent_colour: str = ""

    @classmethod
    def of(cls, settings: TenantSettings) -> SettingsForm:
        return cls(settings.name, settings.timezone, settings.accent_colour)


async def _settings_page(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    *,
    form: SettingsForm | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    tenant = tenant_access(request).tenant
    settings = request.app.state.settings
    usage = await measure_tenant_usage(db_session, settings, tenant, tenant_data)
    history = await usage_history(db_session, tenant.id, utcnow().date())
    return tenant_page(
        request,
        "settings.html",
        status_code,
        form=form or SettingsForm.of(await read_settings(tenant_data, tenant)),
        errors=errors or {},
        usage=usage,
        history=history,
        quota_uses=storage_quotas_in_use(usage),
        quota_warnings=quota_warnings(tenant, usage),
        rates=tenant_rates(tenant),
        rate_classes=TENANT_CLASS_NAMES,
        refusals=await request.app.state.rate_limits.refusals(tenant.id),
        describe_size=describe_size,
        timezones=sorted(timezone_names()),
    )


class TenantSettingsController(Controller):
    path = "/settings"
    include_in_schema = False
    guards = [tenant_member]

    @get("/", guards=[tenant_admin])
    async def settings(
        self, request: Request[Any, Any, Any], db_session: DbSession, tenant_data: TenantData
    ) -> Template:
        return await _settings_page(request, db_session, tenant_data)

    @post("/", guards=[tenant_admin])
    async def save(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant_data: TenantData,
        data: Annotated[SettingsForm, Form],
    ) -> Template | Redirect:
        try:
            await change_settings(
                db_session,
                tenant_data,
                caller_of(request),
                tenant_access(request).tenant,
                name=data.name,
                timezone=data.timezone,
                accent_colour=data.accent_colour,
            )
        except InvalidInput as error:
            errors = error.errors_by_field("name")
            return await _settings_page(
                request, db_session, tenant_data, form=data, errors=errors, status_code=422
            )
        return Redirect(tenant_link(request, "/settings"), status_code=HTTP_303_SEE_OTHER)

    @get("/appearance.css", media_type="text/css")
    async def appearance(self, request: Request[Any, Any, Any], tenant_data: TenantData) -> Response[str]:
        """The tenant's accent on every page of its portal; asked again on each page (no-cache), so a
        new colour shows at once."""
        settings = await read_settings(tenant_data, tenant_access(request).tenant)
        stylesheet = f":root {{ --accent: {settings.accent_colour}; --accent-ink: {settings.accent_ink}; }}\n"
        return Response(stylesheet, media_type="text/css", headers={"Cache-Control": "private, no-cache"})
