"""A tenant's template and module tables as the request's scope sees them, for the portal's data
pages and the data API alike: the tables its schema snapshot names, a row the scope sees ("not
found" otherwise, recorded when the id is another tenant's), and the record of a submission that
named another tenant's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import NotFound
from services.layers.catalogue import load_catalogue
from services.limits import holds
from services.tenancy.stores import location_of
from services.tenant_data.changes import RowChanges, tenant_record_schema
from services.tenant_data.forms import InvalidRecord
from services.tenant_data.records import RecordSchema, RecordTable, get_record
from web.audit import caller_of
from web.tenancy.foreign import refuse_if_foreign, reporting_foreign
from web.tenancy.scope import tenant_access


async def record_schema_of(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    tenant_data: AsyncSession,
    *,
    with_kept: bool = False,
) -> RecordSchema:
    """The request's tenant's tables (see `tenant_record_schema`)."""
    tenant = tenant_access(request).tenant
    return await tenant_record_schema(
        db_session, request.app.state.settings, tenant, tenant_data, with_kept=with_kept
    )


def row_changes(
    request: Request[Any, Any, Any], db_session: AsyncSession, tenant_data: AsyncSession, schema: RecordSchema
) -> RowChanges:
    """Changes to the request's tenant's rows, made and recorded for whoever is asking."""
    tenant, settings = tenant_access(request).tenant, request.app.state.settings
    return RowChanges(
        db_session,
        tenant_data,
        caller_of(request),
        tenant,
        schema,
        location_of(settings, tenant),
        load_catalogue(settings.layers_dir),
    )


async def record_table_of(
    request: Request[Any, Any, Any], db_session: AsyncSession, tenant_data: AsyncSession, table: str
) -> tuple[RecordSchema, RecordTable]:
    schema = await record_schema_of(request, db_session, tenant_data)
    return schema, schema.table(table)


async def visible_record(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    tenant_data: AsyncSession,
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


@asynccontextmanager
async def hidden_references_reported(request: Request[Any, Any, Any]) -> AsyncIterator[None]:
    """A submission refused for naming rows the scope cannot see: each that is another tenant's is
    recorded against it (after the answer), and the refusal goes on."""
    try:
        yield
    except InvalidRecord as error:
        for target, record_id in error.hidden_references.values():
            refuse_if_foreign(request, target, record_id)
        raise
