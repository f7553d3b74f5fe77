"""The tenant's unit tree: everyone in the tenant sees the units of their scope; admins change it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from services.errors import DomainError, NotFound
from services.models.tenant import Unit
from services.tenancy.people import add_unit, get_unit, rename_unit, unit_tree
from web.audit import record_request
from web.deps import DbSession
from web.tenant.pages import Form, admin_only, reporting_foreign, tenant_page
from web.tenant.scope import TenantData, tenant_access, tenant_link


@dataclass
class UnitForm:
    name: str = ""
    parent_id: int = 0
    kind: str = "unit"


@dataclass
class RenameForm:
    name: str = ""


async def _units_refused(
    request: Request[Any, Any, Any], tenant_data: TenantData, errors: dict[str, str], form: UnitForm
) -> Template:
    return tenant_page(
        request, "units.html", 422, units=await unit_tree(tenant_data), form=form, errors=errors
    )


async def _unit_changed(
    request: Request[Any, Any, Any], db_session: DbSession, action: str, unit: Unit
) -> Redirect:
    tenant = tenant_access(request).tenant
    await record_request(request, db_session, action, tenant=tenant, detail={"unit": unit.name})
    return Redirect(tenant_link(request, "/units"), status_code=HTTP_303_SEE_OTHER)


class TenantUnitsController(Controller):
    path = "/units"
    include_in_schema = False

    @get("/")
    async def units(self, request: Request[Any, Any, Any], tenant_data: TenantData) -> Template:
        return tenant_page(
            request, "units.html", units=await unit_tree(tenant_data), form=UnitForm(), errors={}
        )

    @post("/")
    async def create_unit(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        data: Annotated[UnitForm, Form],
    ) -> Template | Redirect:
        admin_only(request)
        try:
            async with reporting_foreign(request, "units", data.parent_id), tenant_data.begin_nested():
                unit = await add_unit(tenant_data, parent_id=data.parent_id, name=data.name, kind=data.kind)
        except NotFound:
            raise  # not a mistake in the form: no such unit here
        except DomainError as error:
            return await _units_refused(request, tenant_data, {error.field or "name": error.message}, data)
        return await _unit_changed(request, db_session, "unit.create", unit)

    @post("/{unit_id:int}/rename")
    async def rename(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        unit_id: FromPath[int],
        data: Annotated[RenameForm, Form],
    ) -> Template | Redirect:
        admin_only(request)
        async with reporting_foreign(request, "units", unit_id):
            await get_unit(tenant_data, unit_id)
        try:
            async with tenant_data.begin_nested():
                unit = await rename_unit(tenant_data, unit_id, data.name)
        except DomainError as error:
            return await _units_refused(
                request, tenant_data, {f"rename-{unit_id}": error.message}, UnitForm()
            )
        return await _unit_changed(request, db_session, "unit.rename", unit)
