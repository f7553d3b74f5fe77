"""The catch-up of an online move: the rows written while the tenant's store was copied (their keys
noted by services.moves.capture) copied again, as they are now, into the copy; then the copy
measured against the store it copies: every table's row count, and the checksums (the manifests'
own) of the tables written meanwhile.

It runs while the tenant is closed to writes, in one transaction of the copy: a worker killed in it
leaves the copy as the earlier copy left it, and the catch-up run again finds the same keys and the
same current rows. A row still in the store replaces the copy's (updated where the copy has it,
inserted where not), parents before children; a row gone from the store goes from the copy,
children before parents. A reference of a row to its own table (a unit's parent) is set once every
row is in, so a new unit may hang under a unit newer than itself."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Table, and_, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from services.backups.content import (
    TableSummary,
    count_rows,
    portable_row,
    stored_row,
    summarise_table,
    tenant_tables,
)
from services.backups.steps import VerificationFailed
from services.layers.ownership import TENANT_COLUMN
from services.moves.capture import Changes
from services.tenancy.stores import StoreLocation, in_store_transaction

#: Per table, each changed key with the row it has now (portable values), or None: gone.
CurrentRows = dict[str, list[tuple[list[Any], dict[str, Any] | None]]]


def _where(table: Table, key: list[Any], tenant_id: int | None) -> ColumnElement[bool]:
    """The row with `key` (of `tenant_id` only, when given: a shared store)."""
    columns = list(table.primary_key.columns)
    matches = [column == value for column, value in zip(columns, key, strict=True)]
    if tenant_id is not None:
        matches.append(table.c[TENANT_COLUMN] == tenant_id)
    return and_(*matches)


def _read_current(connection: Connection, changes: Changes, tenant_id: int | None) -> CurrentRows:
    current: CurrentRows = {}
    for table in tenant_tables(connection):
        for key in changes.get(table.name, []):
            found = connection.execute(select(table).where(_where(table, key, tenant_id))).mappings().first()
            row = portable_row(connection, table, found) if found is not None else None
            current.setdefault(table.name, []).append((key, row))
    return current


def _self_references(table: Table) -> list[str]:
    return [fk.parent.name for fk in table.foreign_keys if fk.column.table is table and fk.parent.nullable]


def _put(
    connection: Connection, table: Table, key: list[Any], row: dict[str, Any], owner: int | None
) -> None:
    """The row in, as it is now but for references to its own table (set after)."""
    where = _where(table, key, owner)
    if connection.execute(select(*table.primary_key.columns).where(where)).first() is not None:
        connection.execute(update(table).where(where).values(row))
    else:
        connection.execute(insert(table).values(row))


def _apply(connection: Connection, current: CurrentRows, tenant_id: int, shared: bool) -> None:
    owner = tenant_id if shared else None
    tables = [table for table in tenant_tables(connection) if table.name in current]
    references: list[tuple[Table, list[Any], dict[str, Any]]] = []
    for table in tables:
        own = _self_references(table)
        for key, values in current[table.name]:
            if values is None:
                continue
            row = stored_row(connection, table, values, tenant_id=tenant_id)
            references.append((table, key, {name: row[name] for name in own}))
            _put(connection, table, key, row | dict.fromkeys(own), owner)
    for table, key, refs in references:
        if refs:
            connection.execute(update(table).where(_where(table, key, owner)).values(refs))
    for table in reversed(tables):
        for key, values in current[table.name]:
            if values is None:
                connection.execute(delete(table).where(_where(table, key, owner)))


async def catch_up(source: StoreLocation, target: StoreLocation, changes: Changes, tenant_id: int) -> int:
    """The rows `changes` names copied again from `source` into `target`, as they are now; returns
    how many keys were caught up."""
    if not changes:
        return 0  # nothing written during the copy: neither store need be opened
    current = await in_store_transaction(
        source, _read_current, changes, tenant_id if source.is_shared else None
    )
    await in_store_transaction(target, _apply, current, tenant_id, target.is_shared)
    return sum(len(keys) for keys in current.values())


Measured = tuple[dict[str, int], dict[str, TableSummary]]


def _measure(connection: Connection, tenant_id: int | None, changed: set[str]) -> Measured:
    """Every table's row count, and the changed tables' checksums (the manifests' own)."""
    counts = count_rows(connection, tenant_id)
    sums = {
        table.name: summarise_table(connection, table, tenant_id=tenant_id)
        for table in tenant_tables(connection)
        if table.name in changed
    }
    return counts, sums


async def _measured(location: StoreLocation, tenant_id: int, changed: set[str]) -> Measured:
    reader = location.open()
    try:
        return await reader.read_whole(_measure, tenant_id if location.is_shared else None, changed)
    finally:
        await reader.dispose()


async def compare_stores(
    source: StoreLocation, target: StoreLocation, tenant_id: int, changed: set[str]
) -> tuple[int, int]:
    """The tenant's rows in `target` against those in `source`, measured now: every table's row
    count, and the checksum of each table written during the copy (the tables `changed`). The
    others are as the copy's validation found them: their rows were not written in the store since
    its snapshot (the capture would have noted it), nor in the copy since it was validated. Raises
    VerificationFailed on a difference; returns the tables and the rows, as a manifest counts them."""
    (counts, sums), (found_counts, found_sums) = await asyncio.gather(
        _measured(source, tenant_id, changed), _measured(target, tenant_id, changed)
    )
    mismatches = [
        f"{name}: {found_counts.get(name, 0)} rows, the store has {rows}"
        for name, rows in counts.items()
        if rows != found_counts.get(name, 0)
    ]
    mismatches += [
        f"{name}: same row count, different content" for name in sums if sums[name] != found_sums.get(name)
    ]
    if mismatches:
        raise VerificationFailed(
            f"After the catch-up {target.name} does not hold what {source.name} holds: "
            + "; ".join(mismatches[:8])
        )
    return len(counts), sum(counts.values())
