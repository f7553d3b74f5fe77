"""The tenants list: search and pagination, swapped in place by HTMX."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Template
from litestar_htmx import HTMXRequest

from services.tenancy.tenants import search_tenants
from web.auth import landlord_staff
from web.deps import DbSession


class TenantsController(Controller):
    path = "/tenants"
    include_in_schema = False
    guards = [landlord_staff]

    @get("/")
    async def list_tenants(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        q: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
    ) -> Template:
        result = await search_tenants(db_session, q, page)
        template = "landlord/_tenant_table.html" if request.htmx else "landlord/tenants.html"
        return Template(template, context={"result": result, "q": q})
