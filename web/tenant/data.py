"""The tenant's data: every template and module table, with pages generated from its definition.

A list (search, sort, pages; HTMX swaps the table, links work without it), a row's page, a form to
add or change a row (its inputs follow the columns, mistakes are shown next to each field and
nothing is written), and a confirmation before a row is deleted. Everyone in the tenant may write;
a member's scope keeps them to their units' rows. Every write goes on the tenant's audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from services.errors import Conflict, InvalidFields
from services.tenant_data.forms import (
    Labels,
    blank_values,
    from_form,
    record_form,
    reference_labels,
    values_of,
)
from services.tenant_data.records import (
    RecordSchema,
    RecordTable,
    get_record,
    list_records,
)
from services.tenant_settings import read_settings
from web.deps import DbSession
from web.tenancy.guards import tenant_member
from web.tenancy.records import (
    hidden_references_reported,
    record_schema_of,
    record_table_of,
    row_changes,
    visible_record,
)
from web.tenancy.scope import TenantData, tenant_access, tenant_link
from web.tenant.pages import tenant_page


def _record_id(table: RecordTable, row: Any) -> Any:
    return getattr(row, table.primary_key.key)


def shown_cells(table: RecordTable, row: Any, labels: Labels, zone: tzinfo, columns: list[Any]) -> list[str]:
    """`row` as the pages show each of `columns`: a reference by the label of the row it names,
    anything else as `RecordTable.shown` writes it. Written here rather than in the templates:
    each call a template makes costs it a few microseconds, and a page of rows makes hundreds."""
    cells = []
    for column in columns:
        value = table.value(row, column)
        if value is not None and column.key in labels:
            cells.append(labels[column.key].get(value, f"#{value}"))
        else:
            cells.append(table.shown(row, column, zone))
    return cells


def record_facts(table: RecordTable, row: Any, labels: Labels, zone: tzinfo) -> list[tuple[str, str]]:
    """A row's page: each column's label and what it shows."""
    columns = table.columns
    return list(
        zip([table.label(c) for c in columns], shown_cells(table, row, labels, zone, columns), strict=True)
    )


@dataclass(frozen=True)
class ListedRow:
    """A row of a records page: its page's address and its cells, the first being its id."""

    href: str
    cells: list[str]


def listed_rows(
    request: Request[Any, Any, Any], table: RecordTable, rows: list[Any], labels: Labels, zone: tzinfo
) -> list[ListedRow]:
    first, *rest = table.columns  # the id, which links to the row's page
    listed = []
    for row in rows:
        record_id = table.value(row, first)
        cells = [str(record_id), *shown_cells(table, row, labels, zone, rest)]
        listed.append(ListedRow(tenant_link(request, f"/data/{table.name}/{record_id}"), cells))
    return listed


def _to(request: Request[Any, Any, Any], path: str) -> Redirect:
    return Redirect(tenant_link(request, path), status_code=HTTP_303_SEE_OTHER)


async def _form_page(
    request: Request[Any, Any, Any],
    tenant_data: TenantData,
    schema: RecordSchema,
    table: RecordTable,
    values: dict[str, str],
    zone: tzinfo,
    *,
    record_id: int | None = None,
    refusal: InvalidFields | Conflict | None = None,
) -> Template:
    """The add or edit form; after a refusal, with the values as sent and what is wrong."""
    form = await record_form(
        tenant_data,
        schema,
        table,
        values,
        creating=record_id is None,
        errors=refusal.errors if isinstance(refusal, InvalidFields) else None,
        problem=refusal.message if isinstance(refusal, Conflict) else None,
    )
    status = 200 if refusal is None else 409 if isinstance(refusal, Conflict) else 422
    return tenant_page(
        request, "record_form.html", status, form=form, table=table, record_id=record_id, zone=zone
    )


def _delete_page(
    request: Request[Any, Any, Any],
    table: RecordTable,
    row: Any,
    labels: Labels,
    zone: tzinfo,
    *,
    refusal: Conflict | None = None,
) -> Template:
    """The confirmation before a row is deleted; after a refusal, with why it was refused."""
    return tenant_page(
        request,
        "record_delete.html",
        200 if refusal is None else 409,
        table=table,
        row=row,
        facts=record_facts(table, row, labels, zone),
        problem=None if refusal is None else refusal.message,
    )


#: The tenant's timezone, a dependency of the data pages.
TenantZone = NamedDependency[tzinfo]


async def provide_zone(request: Request[Any, Any, Any], tenant_data: TenantData) -> tzinfo:
    """The tenant's timezone: the pages show and read times on its clock."""
    return (await read_settings(tenant_data, tenant_access(request).tenant)).zone


class TenantDataController(Controller):
    path = "/data"
    include_in_schema = False
    guards = [tenant_member]
    dependencies = {"zone": Provide(provide_zone)}

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
        zone: TenantZone,
        q: FromQuery[str] = "",
        page: FromQuery[int] = 1,
        sort: FromQuery[str] = "",
        direction: Annotated[str, QueryParameter(name="dir")] = "asc",
        deleted: FromQuery[int | None] = None,
    ) -> Template:
        schema, chosen = await record_table_of(request, db_session, tenant_data, table)
        found = await list_records(tenant_data, chosen, query=q, page=page, sort=sort, direction=direction)
        labels = await reference_labels(tenant_data, schema, chosen, found.rows)
        template = "_records.html" if request.headers.get("hx-request") else "records.html"
        rows = listed_rows(request, chosen, found.rows, labels, zone)
        return tenant_page(request, template, page=found, rows=rows, deleted=deleted)

    @get("/{table:str}/new")
    async def new(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        zone: TenantZone,
    ) -> Template:
        schema, chosen = await record_table_of(request, db_session, tenant_data, table)
        return await _form_page(request, tenant_data, schema, chosen, blank_values(chosen), zone)

    @post("/{table:str}")
    async def create(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        zone: TenantZone,
    ) -> Template | Redirect:
        schema, chosen = await record_table_of(request, db_session, tenant_data, table)
        submitted = from_form(chosen, await request.form())
        try:
            async with hidden_references_reported(request):
                changes = row_changes(request, db_session, tenant_data, schema)
                row = await changes.add(chosen, submitted, zone)
        except (InvalidFields, Conflict) as refusal:
            return await _form_page(request, tenant_data, schema, chosen, submitted, zone, refusal=refusal)
        return _to(request, f"/data/{chosen.name}/{_record_id(chosen, row)}")

    @get("/{table:str}/{record_id:int}")
    async def record(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        zone: TenantZone,
    ) -> Template:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        labels = await reference_labels(tenant_data, schema, chosen, [row])
        facts = record_facts(chosen, row, labels, zone)
        return tenant_page(request, "record.html", table=chosen, row=row, facts=facts)

    @get("/{table:str}/{record_id:int}/edit")
    async def edit(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        zone: TenantZone,
    ) -> Template:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        return await _form_page(
            request, tenant_data, schema, chosen, values_of(chosen, row, zone), zone, record_id=record_id
        )

    @post("/{table:str}/{record_id:int}/edit")
    async def update(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        zone: TenantZone,
    ) -> Template | Redirect:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        submitted = from_form(chosen, await request.form())
        try:
            async with hidden_references_reported(request):
                changes = row_changes(request, db_session, tenant_data, schema)
                await changes.change(chosen, row, record_id, submitted, zone=zone)
        except (InvalidFields, Conflict) as refusal:
            return await _form_page(
                request, tenant_data, schema, chosen, submitted, zone, record_id=record_id, refusal=refusal
            )
        return _to(request, f"/data/{chosen.name}/{record_id}")

    @get("/{table:str}/{record_id:int}/delete")
    async def confirm_delete(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        zone: TenantZone,
    ) -> Template:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        labels = await reference_labels(tenant_data, schema, chosen, [row])
        return _delete_page(request, chosen, row, labels, zone)

    @post("/{table:str}/{record_id:int}/delete")
    async def delete(
        self,
        request: Request[Any, Any, Any],
        tenant_data: TenantData,
        db_session: DbSession,
        table: FromPath[str],
        record_id: FromPath[int],
        zone: TenantZone,
    ) -> Template | Redirect:
        schema, chosen, row = await visible_record(request, db_session, tenant_data, table, record_id)
        labels = await reference_labels(tenant_data, schema, chosen, [row])
        try:
            await row_changes(request, db_session, tenant_data, schema).remove(chosen, row, record_id)
        except Conflict as refusal:
            kept = await get_record(tenant_data, chosen, record_id)  # as it is again, after the rollback
            return _delete_page(request, chosen, kept, labels, zone, refusal=refusal)
        return _to(request, f"/data/{chosen.name}?deleted={record_id}")
