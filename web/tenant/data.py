"""The tenant's data: every template and module table, with pages generated from its definition.

A list (search, sort, pages; HTMX swaps the table, links work without it; the rows that point to
one row, say a province's districts), a row's page (named by its title, "Party member: Anna de
Vries", with the rows that refer to it), a form to add or change a row (its inputs follow the
columns, mistakes are shown next to each field and nothing is written), and a confirmation before
a row is deleted. Everyone in the tenant may write; a member's scope keeps them to their units'
rows. Every write goes on the tenant's audit trail.
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

from services.errors import Conflict, InvalidFields, NotFound
from services.tenant_data.forms import (
    Labels,
    blank_values,
    from_form,
    record_form,
    record_title,
    reference_labels,
    titled,
    values_of,
)
from services.tenant_data.records import (
    RecordPage,
    RecordSchema,
    RecordTable,
    column_label,
    get_record,
    list_records,
)
from services.tenant_data.references import referring_rows
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


@dataclass(frozen=True)
class Fact:
    """A column of a row's page: its label, what it shows, and the page of the row it refers to."""

    label: str
    shown: str
    href: str | None = None


def record_facts(
    request: Request[Any, Any, Any],
    schema: RecordSchema,
    table: RecordTable,
    row: Any,
    labels: Labels,
    zone: tzinfo,
) -> list[Fact]:
    """A row's page: each column's label and what it shows; a reference to a row in view links
    to that row's page."""
    columns = table.columns
    facts = []
    for column, shown in zip(columns, shown_cells(table, row, labels, zone, columns), strict=True):
        value, target = table.value(row, column), _target(column)
        pointed = value is not None and target in schema.tables and value in labels.get(column.key, {})
        href = tenant_link(request, f"/data/{target}/{value}") if pointed else None
        facts.append(Fact(table.label(column), shown, href))
    return facts


def _target(column: Any) -> str | None:
    """The table a reference column points to; None for any other column."""
    return next((key.column.table.name for key in column.foreign_keys), None)


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
    title: str | None = None,
    refusal: InvalidFields | Conflict | None = None,
) -> Template:
    """The add form, or the edit form of the row `record_id` named `title`; after a refusal, with
    the values as sent and what is wrong."""
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
        request,
        "record_form.html",
        status,
        form=form,
        table=table,
        record_id=record_id,
        title=title,
        zone=zone,
    )


def _delete_page(
    request: Request[Any, Any, Any],
    schema: RecordSchema,
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
        title=record_title(table, row),
        facts=record_facts(request, schema, table, row, labels, zone),
        problem=None if refusal is None else refusal.message,
    )


async def _pointed_at(
    tenant_data: TenantData, schema: RecordSchema, page: RecordPage
) -> list[tuple[str, str]]:
    """The rows a filtered list's rows point to: each one's title and page ("" when out of view)."""
    pointed = []
    for name, record_id in page.pointing_to:
        column = page.table.references[name]
        target = schema.tables.get(_target(column) or "")
        if target is None:  # a unit, say: no page of its own here
            pointed.append((f"{column_label(column)} #{record_id}", ""))
            continue
        try:
            title = record_title(target, await get_record(tenant_data, target, record_id))
        except NotFound:
            pointed.append((titled(target, record_id, None), ""))
        else:
            pointed.append((title, f"/data/{target.name}/{record_id}"))
    return pointed


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
        """The table's rows; only those pointing to one row when a reference column names it
        (`?province_id=5`: that province's districts)."""
        schema, chosen = await record_table_of(request, db_session, tenant_data, table)
        pointing_to = {
            name: request.query_params[name] for name in chosen.references if name in request.query_params
        }
        found = await list_records(
            tenant_data, chosen, query=q, page=page, sort=sort, direction=direction, pointing_to=pointing_to
        )
        labels = await reference_labels(tenant_data, schema, chosen, found.rows)
        rows = listed_rows(request, chosen, found.rows, labels, zone)
        if request.headers.get("hx-request"):
            return tenant_page(request, "_records.html", page=found, rows=rows)
        pointed_at = await _pointed_at(tenant_data, schema, found)
        return tenant_page(
            request, "records.html", page=found, rows=rows, deleted=deleted, pointed_at=pointed_at
        )

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
        return tenant_page(
            request,
            "record.html",
            table=chosen,
            row=row,
            title=record_title(chosen, row),
            facts=record_facts(request, schema, chosen, row, labels, zone),
            referring=await referring_rows(tenant_data, schema, chosen, record_id),
        )

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
        values = values_of(chosen, row, zone)
        title = record_title(chosen, row)
        return await _form_page(
            request, tenant_data, schema, chosen, values, zone, record_id=record_id, title=title
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
        title = record_title(chosen, row)  # now: a refused change expires the row's attributes
        submitted = from_form(chosen, await request.form())
        try:
            async with hidden_references_reported(request):
                changes = row_changes(request, db_session, tenant_data, schema)
                await changes.change(chosen, row, record_id, submitted, zone=zone)
        except (InvalidFields, Conflict) as refusal:
            return await _form_page(
                request,
                tenant_data,
                schema,
                chosen,
                submitted,
                zone,
                record_id=record_id,
                title=title,
                refusal=refusal,
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
        return _delete_page(request, schema, chosen, row, labels, zone)

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
            return _delete_page(request, schema, chosen, kept, labels, zone, refusal=refusal)
        return _to(request, f"/data/{chosen.name}?deleted={record_id}")
