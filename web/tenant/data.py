"""The tenant's data: every template and module table, with pages generated from its definition.

A list (search, sort, pages; HTMX swaps the table, links work without it), a row's page, a form to
add or change a row (its inputs follow the columns, mistakes are shown next to each field and
nothing is written), and a confirmation before a row is deleted. Everyone in the tenant may write;
a member's scope keeps them to their units' rows. Every write goes on the tenant's audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy import select

from services.errors import Conflict, InvalidFields, NotFound
from services.limits import holds
from services.models import SchemaSnapshot
from services.tenancy.forms import (
    InvalidRecord,
    blank_values,
    from_form,
    read_record,
    record_form,
    reference_labels,
    values_of,
)
from services.tenancy.modules import visible_tables
from services.tenancy.records import (
    RecordSchema,
    RecordTable,
    create_record,
    delete_record,
    get_record,
    list_records,
    record_schema,
    update_record,
)
from services.tenancy.tenant_settings import read_settings
from web.audit import record_request
from web.deps import DbSession
from web.tenancy.guards import tenant_member
from web.tenancy.scope import TenantData, tenant_access, tenant_link
from web.tenant.pages import refuse_if_foreign, reporting_foreign, tenant_page


async def record_schema_of(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    *,
    with_kept: bool = False,
) -> RecordSchema:
    """The tenant's template and enabled modules' tables, as its latest schema snapshot names them.
    Its kept modules' tables stay in the store, hidden, unless `with_kept` asks for them too (what
    still refers to a unit, say)."""
    tenant = tenant_access(request).tenant
    snapshot = await db_session.scalar(
        select(SchemaSnapshot)
        .where(SchemaSnapshot.tenant_id == tenant.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    if snapshot is None:
        raise NotFound(f"{tenant.name} has no schema snapshot yet.")
    if with_kept:
        return await record_schema(tenant_data, snapshot.sha256, frozenset(snapshot.description["tables"]))
    tables = await visible_tables(request.app.state.settings, tenant, snapshot.description["tables"])
    # One mapping per schema and set of hidden tables: the same schema may hide a module here only.
    key = "/".join([snapshot.sha256, *sorted(tenant.kept_modules)])
    return await record_schema(tenant_data, key, tables)


async def record_table_of(
    request: Request[Any, Any, Any], db_session: DbSession, tenant_data: TenantData, table: str
) -> tuple[RecordSchema, RecordTable]:
    schema = await record_schema_of(request, db_session, tenant_data)
    return schema, schema.table(table)


async def visible_record(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    table: str,
    record_id: int,
) -> tuple[RecordSchema, RecordTable, Any]:
    """The row `record_id` of `table` if the scope sees it; "not found" (recorded when the id is
    another tenant's) otherwise."""
    schema, chosen = await record_table_of(request, db_session, tenant_data, table)
    if not holds(chosen.primary_key, record_id):  # no row has it (web.limits: ID_COLUMNS)
        raise NotFound("There is no such record here.")
    async with reporting_foreign(request, table, record_id):
        row = await get_record(tenant_data, chosen, record_id)
    return schema, chosen, row


async def read_submission(
    request: Request[Any, Any, Any],
    tenant_data: TenantData,
    schema: RecordSchema,
    table: RecordTable,
    submitted: Mapping[str, Any],
    *,
    row: Any | None = None,
    partial: bool = False,
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """The checked values of a submission (times without an offset on the clock of `zone`). A
    reference to a row the scope cannot see is refused like a missing one; if the row is another
    tenant's, the attempt is recorded against it."""
    try:
        return await read_record(tenant_data, schema, table, submitted, row=row, partial=partial, zone=zone)
    except InvalidRecord as error:
        for target, record_id in error.hidden_references.values():
            refuse_if_foreign(request, target, record_id)
        raise


async def record_change(
    request: Request[Any, Any, Any], db_session: DbSession, action: str, table: RecordTable, record_id: Any
) -> None:
    """A write on the tenant's audit trail: record.create, record.update or record.delete."""
    tenant = tenant_access(request).tenant
    await record_request(
        request, db_session, action, tenant=tenant, detail={"table": table.name, "id": record_id}
    )


def _record_id(table: RecordTable, row: Any) -> Any:
    return getattr(row, table.primary_key.key)


async def add_record(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    schema: RecordSchema,
    table: RecordTable,
    submitted: Mapping[str, Any],
    zone: tzinfo = UTC,
) -> Any:
    """The new row of a checked submission, with its entry on the audit trail (the page and the API
    both add rows this way)."""
    values = await read_submission(request, tenant_data, schema, table, submitted, zone=zone)
    row = await create_record(tenant_data, table, values)
    await record_change(request, db_session, "record.create", table, _record_id(table, row))
    return row


async def change_record(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    schema: RecordSchema,
    table: RecordTable,
    row: Any,
    record_id: int,
    submitted: Mapping[str, Any],
    *,
    partial: bool = False,
    zone: tzinfo = UTC,
) -> None:
    """Writes a checked submission over `row`, with its entry on the audit trail."""
    values = await read_submission(
        request, tenant_data, schema, table, submitted, row=row, partial=partial, zone=zone
    )
    await update_record(tenant_data, table, row, values)
    await record_change(request, db_session, "record.update", table, record_id)


async def remove_record(
    request: Request[Any, Any, Any],
    db_session: DbSession,
    tenant_data: TenantData,
    schema: RecordSchema,
    table: RecordTable,
    row: Any,
    record_id: int,
) -> None:
    """Deletes `row` (a Conflict while other rows refer to it), with its entry on the audit trail."""
    await delete_record(tenant_data, schema, table, row)
    await record_change(request, db_session, "record.delete", table, record_id)


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
    labels: dict[str, dict[Any, str]],
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
        labels=labels,
        zone=zone,
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
        return tenant_page(request, template, page=found, labels=labels, deleted=deleted, zone=zone)

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
            row = await add_record(request, db_session, tenant_data, schema, chosen, submitted, zone)
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
        return tenant_page(request, "record.html", table=chosen, row=row, labels=labels, zone=zone)

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
            await change_record(
                request, db_session, tenant_data, schema, chosen, row, record_id, submitted, zone=zone
            )
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
            await remove_record(request, db_session, tenant_data, schema, chosen, row, record_id)
        except Conflict as refusal:
            kept = await get_record(tenant_data, chosen, record_id)  # as it is again, after the rollback
            return _delete_page(request, chosen, kept, labels, zone, refusal=refusal)
        return _to(request, f"/data/{chosen.name}?deleted={record_id}")
