"""The tenant portal: /t/<slug>/… (or the tenant's own host). Every handler works through the
request's scoped tenant session; none names the tenant in a query."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy import select

from services.audit import search
from services.errors import DomainError, NotFound
from services.models import SchemaSnapshot, Tenant
from services.models.tenant import Unit
from services.tenancy.people import add_unit, get_unit, rename_unit, unit_tree
from services.tenancy.records import RecordSchema, get_record, list_records, record_schema
from services.tenancy.security import CROSS_TENANT, owner_elsewhere, record_cross_tenant_attempt
from services.tenancy.stores import location_of
from web.audit import record_request
from web.deps import DbSession
from web.tenant.scope import TenantData, tenant_access, tenant_link, tenant_scope

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class UnitForm:
    name: str = ""
    parent_id: int = 0
    kind: str = "unit"


@dataclass
class RenameForm:
    name: str = ""


def _page(request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any) -> Template:
    access = tenant_access(request)
    return Template(
        f"tenant/{template}",
        context={
            "tenant": access.tenant,
            "access": access,
            "scope": tenant_scope(request),
            "link": lambda path="/": tenant_link(request, path),
            **context,
        },
        status_code=status_code,
    )


def _admin_only(request: Request[Any, Any, Any]) -> None:
    if not tenant_access(request).is_admin:
        raise PermissionDeniedException("Only the tenant's admins may do this.")


async def refuse_if_foreign(request: Request[Any, Any, Any], table: str, record_id: int) -> None:
    """A record id the scope cannot see: if it is another tenant's (a shared store can tell),
    the attempt is recorded against that tenant, where the caller cannot read it. Either way the
    answer is the same "not found"."""
    access = tenant_access(request)
    location = location_of(request.app.state.settings, access.tenant)
    owner = await owner_elsewhere(location, table, record_id, access.tenant.id)
    if owner is None:
        return
    async with request.app.state.database.session() as landlord:
        await record_cross_tenant_attempt(
            landlord,
            actor=request.scope["user"],
            target=await landlord.get_one(Tenant, owner),
            what=f"asked for another tenant's {table} row",
            ip=request.client.host if request.client else None,
            detail={
                "table": table,
                "id": record_id,
                "path": request.url.path,
                "from_tenant": access.tenant.slug,
            },
        )


@asynccontextmanager
async def reporting_foreign(
    request: Request[Any, Any, Any], table: str, record_id: int
) -> AsyncIterator[None]:
    """Lets "not found" through, after recording it if the id is another tenant's."""
    try:
        yield
    except NotFound:
        await refuse_if_foreign(request, table, record_id)
        raise


async def _units_refused(
    request: Request[Any, Any, Any], tenant_data: TenantData, errors: dict[str, str], form: UnitForm
) -> Template:
    return _page(request, "units.html", 422, units=await unit_tree(tenant_data), form=form, errors=errors)


async def _unit_changed(
    request: Request[Any, Any, Any], db_session: DbSession, action: str, unit: Unit
) -> Redirect:
    tenant = tenant_access(request).tenant
    await record_request(request, db_session, action, tenant=tenant, detail={"unit": unit.name})
    return Redirect(tenant_link(request, "/units"), status_code=HTTP_303_SEE_OTHER)


async def record_schema_of(
    request: Request[Any, Any, Any], db_session: DbSession, tenant_data: TenantData
) -> RecordSchema:
    """The tenant's template and module tables, as its latest schema snapshot names them."""
    tenant = tenant_access(request).tenant
    snapshot = await db_session.scalar(
        select(SchemaSnapshot)
        .where(SchemaSnapshot.tenant_id == tenant.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    if snapshot is None:
        raise NotFound(f"{tenant.name} has no schema snapshot yet.")
    return await record_schema(tenant_data, snapshot.sha256, frozenset(snapshot.description["tables"]))


class TenantPortalController(Controller):
    include_in_schema = False

    @get("/")
    async def home(self, request: Request[Any, Any, Any], tenant_data: TenantData) -> Template:
        units = await unit_tree(tenant_data)
        return _page(request, "home.html", units=units)

    @get("/units")
    async def units(self, request: Request[Any, Any, Any], tenant_data: TenantData) -> Template:
        return _page(request, "units.html", units=await unit_tree(tenant_data), form=UnitForm(), errors={})

    @post("/units")
    async def create_unit(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        data: Annotated[UnitForm, Form],
    ) -> Template | Redirect:
        _admin_only(request)
        try:
            async with reporting_foreign(request, "units", data.parent_id), tenant_data.begin_nested():
                unit = await add_unit(tenant_data, parent_id=data.parent_id, name=data.name, kind=data.kind)
        except NotFound:
            raise  # not a mistake in the form: no such unit here
        except DomainError as error:
            return await _units_refused(request, tenant_data, {error.field or "name": error.message}, data)
        return await _unit_changed(request, db_session, "unit.create", unit)

    @post("/units/{unit_id:int}/rename")
    async def rename(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        unit_id: FromPath[int],
        data: Annotated[RenameForm, Form],
    ) -> Template | Redirect:
        _admin_only(request)
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

    @get("/data")
    async def tables(
        self, request: Request[Any, Any, Any], tenant_data: TenantData, db_session: DbSession
    ) -> Template:
        schema = await record_schema_of(request, db_session, tenant_data)
        return _page(request, "tables.html", tables=list(schema.tables.values()))

    @get("/data/{table:str}")
    async def records(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        q: FromQuery[str] = "",
        page: FromQuery[int] = 1,
    ) -> Template:
        schema = await record_schema_of(request, db_session, tenant_data)
        found = await list_records(tenant_data, schema.table(table), query=q, page=page)
        template = "_records.html" if request.headers.get("hx-request") else "records.html"
        return _page(request, template, page=found)

    @get("/data/{table:str}/{record_id:int}")
    async def record(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
    ) -> Template:
        schema = await record_schema_of(request, db_session, tenant_data)
        chosen = schema.table(table)
        async with reporting_foreign(request, table, record_id):
            row = await get_record(tenant_data, chosen, record_id)
        return _page(request, "record.html", table=chosen, row=row)

    @get("/audit")
    async def audit(
        self, request: Request[Any, Any, Any], db_session: DbSession, page: FromQuery[int] = 1
    ) -> Template:
        """The tenant's own entries on the landlord's trail: nothing of any other tenant."""
        _admin_only(request)
        tenant = tenant_access(request).tenant
        # Attempts on this tenant by others are the landlord's to see: they name people of other
        # tenants, and would tell the asker which ids are someone else's.
        result = await search(db_session, tenant=tenant.slug, page=page, hidden_actions=(CROSS_TENANT,))
        return _page(request, "audit.html", result=result)
