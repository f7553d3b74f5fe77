"""The tenant's data: every template and module table, with pages generated from its definition."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlalchemy import select

from services.errors import NotFound
from services.models import SchemaSnapshot
from services.tenancy.records import RecordSchema, get_record, list_records, record_schema
from web.deps import DbSession
from web.tenant.pages import reporting_foreign, tenant_page
from web.tenant.scope import TenantData, tenant_access


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


class TenantDataController(Controller):
    path = "/data"
    include_in_schema = False

    @get("/")
    async def tables(
        self, request: Request[Any, Any, Any], tenant_data: TenantData, db_session: DbSession
    ) -> Template:
        schema = await record_schema_of(request, db_session, tenant_data)
        return tenant_page(request, "tables.html", tables=list(schema.tables.values()))

    @get("/{table:str}")
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
        return tenant_page(request, template, page=found)

    @get("/{table:str}/{record_id:int}")
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
        return tenant_page(request, "record.html", table=chosen, row=row)
