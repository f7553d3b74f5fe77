"""/api/v1/tenant: a tenant token's own tenant, in the token's scope. The tenant is the token's;
no path names one, so no call can reach another tenant's tenant_data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import FromPath, QueryParameter

from services.tenancy.people import unit_tree
from services.tenancy.records import RecordTable, get_record, list_records
from web.api.schemas import Page
from web.deps import DbSession
from web.tenant.data import record_schema_of
from web.tenant.pages import reporting_foreign
from web.tenant.scope import TenantData


@dataclass
class UnitOut:
    id: int
    parent_id: int | None
    name: str
    kind: str
    path: str


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(table: RecordTable, row: Any) -> dict[str, Any]:
    return {column.name: _plain(getattr(row, column.key)) for column in table.columns}


class TenantApiController(Controller):
    tags = ["tenant"]

    @get("/units", summary="The units in the token's scope")
    async def units(self, tenant_data: TenantData) -> list[UnitOut]:
        return [UnitOut(u.id, u.parent_id, u.name, u.kind, u.path) for u in await unit_tree(tenant_data)]

    @get("/data/{table:str}", summary="Rows of a template or module table")
    async def records(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        q: Annotated[str, QueryParameter(description="matches any text column")] = "",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
    ) -> Page[dict[str, Any]]:
        chosen = (await record_schema_of(request, db_session, tenant_data)).table(table)
        found = await list_records(tenant_data, chosen, query=q, page=page, per_page=per_page)
        return Page(
            items=[_row(chosen, r) for r in found.rows], total=found.total, page=page, per_page=per_page
        )

    @get("/data/{table:str}/{record_id:int}", summary="One row of a template or module table")
    async def record(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
    ) -> dict[str, Any]:
        chosen = (await record_schema_of(request, db_session, tenant_data)).table(table)
        async with reporting_foreign(request, table, record_id):
            return _row(chosen, await get_record(tenant_data, chosen, record_id))
