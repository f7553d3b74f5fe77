"""The tenant portal: /t/<slug>/… (or the tenant's own host). Every handler works through the
request's scoped tenant session; none names the tenant in a query. Units, data and the other
areas have their own controllers beside this one."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromQuery
from litestar.response import Template

from services.audit import search
from services.layers.catalogue import load_catalogue
from services.people.units import unit_tree
from services.tenancy.security import CROSS_TENANT
from services.tenant_data.overview import tenant_overview
from web.deps import DbSession, settings_of
from web.tenancy.guards import tenant_admin, tenant_member
from web.tenancy.records import record_schema_of
from web.tenancy.scope import TenantData, tenant_access
from web.tenant.data import provide_zone
from web.tenant.pages import tenant_page


class TenantPortalController(Controller):
    include_in_schema = False
    guards = [tenant_member]

    @get("/")
    async def home(
        self, request: Request[Any, Any, Any], tenant_data: TenantData, db_session: DbSession
    ) -> Template:
        """The tenant at a glance: what the caller's scope holds and, for admins, what changed lately."""
        schema = await record_schema_of(request, db_session, tenant_data)
        catalogue = load_catalogue(settings_of(request).layers_dir)
        zone, access = await provide_zone(request, tenant_data), tenant_access(request)
        overview = await tenant_overview(db_session, tenant_data, access, schema, catalogue, zone)
        units = await unit_tree(tenant_data)
        return tenant_page(request, "home.html", units=units, overview=overview, zone=zone)

    @get("/audit", guards=[tenant_admin])
    async def audit(
        self, request: Request[Any, Any, Any], db_session: DbSession, page: FromQuery[int] = 1
    ) -> Template:
        """The tenant's own entries on the landlord's trail: nothing of any other tenant."""
        tenant = tenant_access(request).tenant
        catalogue = load_catalogue(settings_of(request).layers_dir)
        # Attempts on this tenant by others are the landlord's to see: they name people of other
        # tenants, and would tell the asker which ids are someone else's.
        result = await search(
            db_session, tenant=tenant.slug, page=page, hidden_actions=(CROSS_TENANT,), catalogue=catalogue
        )
        return tenant_page(request, "audit.html", result=result)
