"""/api/v1/tenant: a tenant token's own tenant, in the token's scope. The tenant is the token's;
no path names one, so no call can reach another tenant's tenant_data.

The rows of template and module tables are read and written here with the portal's own checks
(services.tenant_data.forms): a refused body is a 422 naming each field's mistake, a row outside the
token's scope is a 404, and every write is on the tenant's audit trail."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import Body, FromPath, QueryParameter
from sqlalchemy import Column

from services.people.units import unit_tree
from services.tenant_data.records import RecordTable, list_records
from web.api.responses import error
from web.api.schemas import Page
from web.deps import DbSession
from web.tenancy.guards import tenant_member
from web.tenancy.records import hidden_references_reported, record_table_of, row_changes, visible_record
from web.tenancy.scope import TenantData

Row = dict[str, Any]
REFUSED_BY_THE_STORE = error("The store refused the values: they would repeat a row, say")


@dataclass
class UnitOut:
    id: int
    parent_id: int | None
    name: str
    kind: str
    path: str


def _datetime(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _date(value: date) -> str:
    return value.isoformat()


def _plain(value: Any) -> Any:
    """A value of a column whose type says nothing of its Python type, as JSON carries it."""
    if isinstance(value, datetime):
        return _datetime(value)
    if isinstance(value, date):
        return _date(value)
    return str(value) if isinstance(value, Decimal) else value


def _as_json(column: Column[Any]) -> Callable[[Any], Any] | None:
    """How the column's values are written in JSON (None: as they are)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return _plain
    if issubclass(python_type, datetime):
        return _datetime
    if issubclass(python_type, date):
        return _date
    return str if issubclass(python_type, Decimal) else None


@lru_cache(maxsize=512)
def _fields(table: RecordTable) -> list[tuple[str, str, Callable[[Any], Any] | None]]:
    """Each column's name, attribute and conversion, worked out once per table, not per value."""
    return [(column.name, column.key, _as_json(column)) for column in table.columns]


def _row(table: RecordTable, row: Any) -> Row:
    return {name: _json_value(getattr(row, key), as_json) for name, key, as_json in _fields(table)}


def _json_value(value: Any, as_json: Callable[[Any], Any] | None) -> Any:
    return value if as_json is None or value is None else as_json(value)


def _page_rows(table: RecordTable, rows: Sequence[Any]) -> list[Row]:
    """A page's rows (tuples in the table's column order, as `list_records` reads them)."""
    fields = _fields(table)
    return [
        {name: _json_value(value, as_json) for (name, _, as_json), value in zip(fields, row, strict=False)}
        for row in rows
    ]


async def _change(
    request: Request[Any, Any, Any],
    tenant_data: TenantData,
    db_session: DbSession,
    table: str,
    record_id: int,
    data: Row,
    *,
    partial: bool,
) -> Row:
    schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
    async with hidden_references_reported(request):
        changes = row_changes(request, db_session, tenant_data, schema)
        await changes.change(chosen, row, record_id, data, partial=partial)
    return _row(chosen, row)


class TenantApiController(Controller):
    tags = ["tenant"]
    guards = [tenant_member]

    @get("/units", summary="The units in the token's scope")
    async def units(self, tenant_data: TenantData) -> list[UnitOut]:
        return [UnitOut(u.id, u.parent_id, u.name, u.kind, u.path) for u in await unit_tree(tenant_data)]

    @get(
        "/data/{table:str}",
        summary="Rows of a template or module table",
        responses={422: error("`sort` names no column of the table, or `dir` is neither asc nor desc")},
    )
    async def records(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        q: Annotated[str, QueryParameter(description="matches any text column")] = "",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 25,
        sort: Annotated[str, QueryParameter(description="a column to sort by; newest first without")] = "",
        direction: Annotated[str, QueryParameter(name="dir", description="asc or desc")] = "asc",
    ) -> Page[Row]:
        _, chosen = await record_table_of(request, db_session, tenant_data, table)
        found = await list_records(
            tenant_data, chosen, query=q, page=page, per_page=per_page, sort=sort, direction=direction
        )
        return Page(items=_page_rows(chosen, found.rows), total=found.total, page=page, per_page=per_page)

    @get("/data/{table:str}/{record_id:int}", summary="One row of a template or module table")
    async def record(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
    ) -> Row:
        _, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        return _row(chosen, row)

    @post(
        "/data/{table:str}",
        summary="Add a row to a template or module table",
        description="The body maps column names to values (dates and times as ISO 8601, times in UTC "
        "when they carry no offset). A column left out takes its default; the id and created_at are "
        "the database's. 422 names each field that is wrong; nothing is written then.",
        responses={409: REFUSED_BY_THE_STORE},
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        data: Annotated[Row, Body()],
    ) -> Row:
        schema, chosen = await record_table_of(request, db_session, tenant_data, table)
        async with hidden_references_reported(request):
            row = await row_changes(request, db_session, tenant_data, schema).add(chosen, data)
        return _row(chosen, row)

    @put(
        "/data/{table:str}/{record_id:int}",
        summary="Replace a row of a template or module table",
        description="Every column the row has is set from the body: one left out is emptied "
        "(or refused when it may not be empty).",
        responses={409: REFUSED_BY_THE_STORE},
    )
    async def replace(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        data: Annotated[Row, Body()],
    ) -> Row:
        return await _change(request, tenant_data, db_session, table, record_id, data, partial=False)

    @patch(
        "/data/{table:str}/{record_id:int}",
        summary="Change some columns of a row of a template or module table",
        description="Only the columns in the body change.",
        responses={409: REFUSED_BY_THE_STORE},
    )
    async def amend(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        data: Annotated[Row, Body()],
    ) -> Row:
        return await _change(request, tenant_data, db_session, table, record_id, data, partial=True)

    @delete(
        "/data/{table:str}/{record_id:int}",
        summary="Delete a row of a template or module table",
        description="409 while other rows still refer to it.",
        responses={409: error("Other rows still refer to it")},
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
    ) -> None:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        await row_changes(request, db_session, tenant_data, schema).remove(chosen, row, record_id)
