"""The tenant's unit tree: everyone in the tenant sees the units of their scope; admins change it in
place (add a unit inside another, rename, move under another parent, delete an empty one).

Every change is a plain form post, answered with a redirect to the tree, or with the page and
the mistake next to the unit it is about. Sent by HTMX, the answer is the tree fragment
(`_unit_tree.html`) instead, which replaces the one on the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import HTMXRequest

from services.errors import DomainError
from services.models.tenant import Unit
from services.people.units import create_unit, get_unit, move_unit_into, name_unit, remove_unit, unit_tree
from web.audit import caller_of
from web.deps import DbSession
from web.tenancy.foreign import reporting_foreign
from web.tenancy.guards import tenant_admin, tenant_member
from web.tenancy.records import record_schema_of
from web.tenancy.scope import TenantData, tenant_access, tenant_link
from web.tenant.pages import Form, tenant_page


@dataclass
class UnitForm:
    name: str = ""
    parent_id: int = 0
    kind: str = "unit"
    #: Sent from the "add inside" form of a unit's row: a mistake is shown on that row.
    inline: bool = False


@dataclass
class RenameForm:
    name: str = ""


@dataclass
class MoveForm:
    new_parent_id: int = 0


async def _tree(
    request: HTMXRequest,
    tenant_data: TenantData,
    *,
    form: UnitForm | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    """The page, or only the tree fragment for HTMX."""
    template = "_unit_tree.html" if request.htmx else "units.html"
    return tenant_page(
        request,
        template,
        status_code,
        units=await unit_tree(tenant_data),
        form=form or UnitForm(),
        errors=errors or {},
        notice=notice,
    )


async def _refused(
    request: HTMXRequest, tenant_data: TenantData, key: str, error: DomainError, form: UnitForm | None = None
) -> Template:
    return await _tree(request, tenant_data, form=form, errors={key: error.message}, status_code=422)


async def _changed(request: HTMXRequest, tenant_data: TenantData, notice: str) -> Template | Redirect:
    if request.htmx:
        return await _tree(request, tenant_data, notice=notice)
    return Redirect(tenant_link(request, "/units"), status_code=HTTP_303_SEE_OTHER)


async def _unit_here(request: HTMXRequest, tenant_data: TenantData, unit_id: int) -> Unit:
    async with reporting_foreign(request, "units", unit_id):
        return await get_unit(tenant_data, unit_id)


class TenantUnitsController(Controller):
    path = "/units"
    include_in_schema = False
    guards = [tenant_member]

    @get("/")
    async def units(self, request: HTMXRequest, tenant_data: TenantData) -> Template:
        return await _tree(request, tenant_data)

    @post("/", guards=[tenant_admin])
    async def create_unit(
        self,
        request: HTMXRequest,
        tenant_data: TenantData,
        db_session: DbSession,
        data: Annotated[UnitForm, Form],
    ) -> Template | Redirect:
        await _unit_here(request, tenant_data, data.parent_id)
        try:
            unit = await create_unit(
                db_session,
                tenant_data,
                caller_of(request),
                tenant_access(request).tenant,
                parent_id=data.parent_id,
                name=data.name,
                kind=data.kind,
            )
        except DomainError as error:
            key = f"add-{data.parent_id}" if data.inline else error.field or "name"
            return await _refused(request, tenant_data, key, error, form=UnitForm() if data.inline else data)
        return await _changed(request, tenant_data, f"Added {unit.name}.")

    @post("/{unit_id:int}/rename", guards=[tenant_admin])
    async def rename(
        self,
        request: HTMXRequest,
        tenant_data: TenantData,
        db_session: DbSession,
        unit_id: FromPath[int],
        data: Annotated[RenameForm, Form],
    ) -> Template | Redirect:
        before = (await _unit_here(request, tenant_data, unit_id)).name
        try:
            unit = await name_unit(
                db_session, tenant_data, caller_of(request), tenant_access(request).tenant, unit_id, data.name
            )
        except DomainError as error:
            return await _refused(request, tenant_data, f"rename-{unit_id}", error)
        return await _changed(request, tenant_data, f"Renamed {before} to {unit.name}.")

    @post("/{unit_id:int}/move", guards=[tenant_admin])
    async def move(
        self,
        request: HTMXRequest,
        tenant_data: TenantData,
        db_session: DbSession,
        unit_id: FromPath[int],
        data: Annotated[MoveForm, Form],
    ) -> Template | Redirect:
        await _unit_here(request, tenant_data, unit_id)
        parent = await _unit_here(request, tenant_data, data.new_parent_id)
        try:
            unit = await move_unit_into(
                db_session, tenant_data, caller_of(request), tenant_access(request).tenant, unit_id, parent.id
            )
        except DomainError as error:
            return await _refused(request, tenant_data, f"move-{unit_id}", error)
        return await _changed(request, tenant_data, f"Moved {unit.name} into {parent.name}.")

    @post("/{unit_id:int}/delete", guards=[tenant_admin])
    async def delete(
        self, request: HTMXRequest, tenant_data: TenantData, db_session: DbSession, unit_id: FromPath[int]
    ) -> Template | Redirect:
        await _unit_here(request, tenant_data, unit_id)
        # Kept data of a disabled module counts too: deleting the unit would orphan its rows.
        schema = await record_schema_of(request, db_session, tenant_data, with_kept=True)
        try:
            unit = await remove_unit(
                db_session,
                tenant_data,
                caller_of(request),
                tenant_access(request).tenant,
                unit_id,
                schema.tables.values(),
            )
        except DomainError as error:
            return await _refused(request, tenant_data, f"delete-{unit_id}", error)
        return await _changed(request, tenant_data, f"Deleted {unit.name}.")
