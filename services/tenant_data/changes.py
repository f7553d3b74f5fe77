"""Changes to a tenant's template and module rows as a caller asks for them (the portal's data
pages and the data API alike): the submission checked against the table, the row written through
the request's scoped session, and the change on the audit trail (record.create, record.update,
record.delete) in the landlord transaction. A new record or a change is refused while the tenant
keeps all its plan allows (services.storage_quotas); a deletion never is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller, record_by
from services.errors import NotFound
from services.layers.catalogue import Catalogue
from services.models import SchemaSnapshot, Tenant
from services.modules.requests import visible_tables
from services.recently_used import LeastRecentlyUsed
from services.settings import Settings
from services.storage_quotas import check_rows, check_storage
from services.tenancy.stores import StoreLocation
from services.tenant_data.forms import read_record
from services.tenant_data.records import (
    RecordSchema,
    RecordTable,
    create_record,
    delete_record,
    record_schema,
    update_record,
)


async def tenant_record_schema(
    landlord: AsyncSession, settings: Settings, tenant: Tenant, data: AsyncSession, *, with_kept: bool = False
) -> RecordSchema:
    """The tenant's template and enabled modules' tables, as its latest schema snapshot (the one
    the tenant row names) names them. Its kept modules' tables stay in the store, hidden, unless
    `with_kept` asks for them too (what still refers to a unit, say)."""
    snapshot_id, sha256 = tenant.schema_snapshot_id, tenant.schema_sha256
    if snapshot_id is None or sha256 is None:
        raise NotFound(f"{tenant.name} has no schema snapshot yet.")
    tables = await _SNAPSHOT_TABLES.tables_of(landlord, snapshot_id, sha256)
    if with_kept:
        return await record_schema(data, sha256, tables)
    shown = await visible_tables(settings, tenant, tables)
    # One mapping per schema and set of hidden tables: the same schema may hide a module here only.
    key = "/".join([sha256, *sorted(tenant.kept_modules)])
    return await record_schema(data, key, shown)


class SnapshotTables:
    """The tables each schema snapshot names, by its hash. A snapshot's description is what its
    hash is taken of, so the tables of a hash never change and need no invalidation: a tenant whose
    schema changes has a new latest snapshot with another hash. Only the `limit` hashes used most
    recently are kept (tenants of one template and module set share theirs)."""

    def __init__(self, limit: int = 1_000) -> None:
        self._tables: LeastRecentlyUsed[str, frozenset[str]] = LeastRecentlyUsed(limit)

    async def tables_of(self, landlord: AsyncSession, snapshot_id: int, sha256: str) -> frozenset[str]:
        tables = self._tables.get(sha256)
        if tables is None:
            description = await landlord.scalar(
                select(SchemaSnapshot.description).where(SchemaSnapshot.id == snapshot_id)
            )
            tables = frozenset((description or {}).get("tables", ()))
            self._tables.put(sha256, tables)
        return tables


_SNAPSHOT_TABLES = SnapshotTables()


@dataclass(frozen=True)
class RowChanges:
    """Changes to the rows of one tenant's tables on behalf of one caller: each row written through
    the scoped session `data`, each change on the trail in `landlord`."""

    landlord: AsyncSession
    data: AsyncSession
    caller: Caller
    tenant: Tenant
    schema: RecordSchema
    location: StoreLocation
    catalogue: Catalogue

    async def add(self, table: RecordTable, submitted: Mapping[str, Any], zone: tzinfo = UTC) -> Any:
        """The new row of a checked submission (times without an offset on the clock of `zone`)."""
        values = await read_record(self.data, self.schema, table, submitted, zone=zone)
        await check_storage(self.data, self.tenant, self.location)
        await check_rows(self.data, self.tenant, self.catalogue, self.schema, table)
        row = await create_record(self.data, table, values)
        await self._on_the_trail("record.create", table, getattr(row, table.primary_key.key))
        return row

    async def change(
        self,
        table: RecordTable,
        row: Any,
        record_id: int,
        submitted: Mapping[str, Any],
        *,
        partial: bool = False,
        zone: tzinfo = UTC,
    ) -> None:
        """A checked submission written over `row` (only the fields it names, when `partial`)."""
        values = await read_record(
            self.data, self.schema, table, submitted, row=row, partial=partial, zone=zone
        )
        await check_storage(self.data, self.tenant, self.location)
        before = {name: getattr(row, name) for name in values}
        await update_record(self.data, table, row, values)
        changed = [name for name in values if before[name] != values[name]]
        await self._on_the_trail(
            "record.update",
            table,
            record_id,
            before={name: _as_recorded(before[name]) for name in changed},
            after={name: _as_recorded(values[name]) for name in changed},
        )

    async def remove(self, table: RecordTable, row: Any, record_id: int) -> None:
        """`row` deleted (a Conflict while other rows refer to it)."""
        await delete_record(self.data, self.schema, table, row)
        await self._on_the_trail("record.delete", table, record_id)

    async def _on_the_trail(self, action: str, table: RecordTable, record_id: Any, **changed: Any) -> None:
        detail = {"table": table.name, "id": record_id, **changed}
        await record_by(self.landlord, self.caller, action, tenant=self.tenant, detail=detail)


#: How much of a value the trail keeps of a change (a long text is cut, with an ellipsis).
RECORDED_LENGTH = 200


def _as_recorded(value: Any) -> Any:
    """A value as the trail keeps it: JSON's own types as they are, anything else (a date, a
    decimal) as text, a long text cut."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= RECORDED_LENGTH else text[: RECORDED_LENGTH - 1] + "…"
