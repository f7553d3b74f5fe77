"""Putting an archive's data into a new, empty store, and measuring a store so the result can be
compared with the archive's manifest.

Native archives go back into the backend and isolation mode they came from (a SQLite file is
copied in, a pg_dump script is played by psql, a schema's under the new schema's name). Portable
archives go anywhere: the store is migrated to the manifest's layer revisions with the layer
migrator, then the rows are inserted, parents before children, with the ids they had; each
table's id generator then continues after the largest, so no restored id is handed out again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.engine import Connection

from services.backups.content import (
    ArchiveMismatch,
    TableSummary,
    continue_ids,
    last_ids,
    load_table,
    summarise_table,
    tenant_tables,
)
from services.backups.dump import PG_DUMP_FILE, SQLITE_FILE, table_file
from services.backups.postgres import psql_script, rename_schema
from services.db import Database
from services.errors import InvalidInput
from services.layers.catalogue import Catalogue, Layer, load_catalogue
from services.layers.migrator import RevisionRun, revisions, upgrade_layer
from services.layers.ownership import TENANT_COLUMN
from services.layers.replay import StoreWithoutRows
from services.layers.snapshot import SNAPSHOT_FORMAT, take_snapshot
from services.models import BackupFormat, IsolationMode
from services.settings import Settings
from services.tenancy.stores import SQLITE, StoreLocation, allocate_store, copy_sqlite_file, store_transaction


@dataclass(frozen=True)
class Measured:
    """A store as it is: per-table counts and checksums, and its schema's hash."""

    tables: dict[str, TableSummary]
    schema_sha256: str


def layer_by_key(catalogue: Catalogue, key: str) -> Layer:
    """The layer a manifest names (basic, templates/x, modules/x, custom/<slug>)."""
    kind, _, name = key.partition("/")
    found: Layer | None = None
    if key == "basic":
        found = catalogue.basic
    elif kind == "templates":
        found = catalogue.templates.get(name)
    elif kind == "modules":
        found = catalogue.modules.get(name)
    elif kind == "custom":
        found = catalogue.custom(name)
    if found is None:
        raise ArchiveMismatch(f"The backup needs the layer {key}, which this installation does not have.")
    return found


async def forget_runs(_run: RevisionRun) -> None:
    """Revisions applied to a store being restored are not the tenant's history."""


async def restore_into(
    settings: Settings, manifest: dict[str, Any], unpacked: Path, target: StoreLocation, *, tenant_id: int
) -> None:
    """Fill the store `target`, which does not exist yet, from an unpacked archive. Every row
    belongs to `tenant_id` afterwards (a copy into a new tenant takes its rows over)."""
    if manifest["format"] == BackupFormat.NATIVE:
        await _restore_native(manifest, unpacked, target)
        if manifest["tenant"]["id"] != tenant_id:
            await _retag_rows(target, tenant_id)
    else:
        await _restore_portable(load_catalogue(settings.layers_dir), manifest, unpacked, target, tenant_id)


async def _restore_native(manifest: dict[str, Any], unpacked: Path, target: StoreLocation) -> None:
    source = manifest["store"]
    if (source["backend"], source["isolation"]) != (target.backend, target.isolation):
        raise InvalidInput(
            f"A native backup goes back into the same kind of store ({source['backend']}, "
            f"{source['isolation']} isolation), not into {target.backend} with {target.isolation} "
            "isolation; take a portable backup to move between them."
        )
    if target.backend == SQLITE:
        Path(target.name).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(copy_sqlite_file, unpacked / SQLITE_FILE, Path(target.name))
        return
    script = unpacked / PG_DUMP_FILE
    if target.isolation == IsolationMode.SCHEMA:
        renamed = unpacked / f"renamed-{PG_DUMP_FILE}"
        await asyncio.to_thread(rename_schema, script, renamed, manifest["native"]["schema"], target.name)
        script = renamed
    else:
        await allocate_store(target)
    await psql_script(target.url, script)


async def _retag_rows(target: StoreLocation, tenant_id: int) -> None:
    """A native copy carries its source tenant's id in every row: give them to `tenant_id`. No
    foreign key involves the tenant column, so one UPDATE per table does it."""
    async with store_transaction(target) as connection:
        for table in await connection.run_sync(tenant_tables):
            if TENANT_COLUMN in table.c:
                await connection.execute(update(table).values({TENANT_COLUMN: tenant_id}))


async def _restore_portable(
    catalogue: Catalogue, manifest: dict[str, Any], unpacked: Path, target: StoreLocation, tenant_id: int
) -> None:
    layers = [(layer_by_key(catalogue, entry["key"]), entry["revision"]) for entry in manifest["layers"]]
    for layer, revision in layers:
        if revision not in revisions(layer):
            raise ArchiveMismatch(
                f"The backup was taken at {layer.key} revision {revision}, which this installation's "
                f"{layer.key} does not have."
            )
    await allocate_store(target)
    store = target.open()
    try:
        # A shared store holds other tenants' rows; a store of its own none until they are loaded.
        building = None if target.is_shared else StoreWithoutRows(store)
        for layer, revision in layers:
            await upgrade_layer(store, layer, forget_runs, target=revision, without_rows=building)
        async with store.engine.begin() as connection:
            await connection.run_sync(_load_rows, manifest, unpacked, tenant_id)
    finally:
        await store.dispose()


def _load_rows(connection: Connection, manifest: dict[str, Any], unpacked: Path, tenant_id: int) -> None:
    tables = tenant_tables(connection)
    names = {table.name for table in tables}
    # A shared store has every shared tenant's tables; those of other tenants' modules hold no rows
    # of this one's and need no table here.
    wanted = {name for name, table in manifest["tables"].items() if table["rows"]}
    if missing := sorted(wanted - names):
        raise ArchiveMismatch(f"The restored store has no table for {', '.join(missing)}.")
    for table in reversed(tables):  # whatever the migrations put there gives way to the archive
        connection.execute(delete(table))
    for table in tables:
        if table.name not in manifest["tables"]:
            continue
        with (unpacked / table_file(table.name)).open(encoding="utf-8") as lines:
            load_table(connection, table, lines, tenant_id=tenant_id)
    continue_ids(connection, tables)


async def measure_store(location: StoreLocation, *, tenant_id: int | None = None) -> Measured:
    """Count and hash the store's tables (only `tenant_id`'s rows when given), and its schema."""
    reader = Database(location.url, schema=location.schema)
    try:
        _, schema_sha256 = await take_snapshot(reader)
        tables = await reader.read_whole(_summarise, tenant_id)
    finally:
        await reader.dispose()
    return Measured(tables, schema_sha256)


def _summarise(connection: Connection, tenant_id: int | None) -> dict[str, TableSummary]:
    return {
        table.name: summarise_table(connection, table, tenant_id=tenant_id)
        for table in tenant_tables(connection)
    }


def differences(manifest: dict[str, Any], measured: Measured, *, compare_schema: bool) -> list[str]:
    """What the measured store has that the manifest does not say, table by table."""
    found: list[str] = []
    expected: dict[str, dict[str, Any]] = manifest["tables"]
    for name, summary in expected.items():
        actual = measured.tables.get(name)
        if actual is None:
            if summary["rows"]:
                found.append(f"{name}: missing")
        elif actual.rows != summary["rows"]:
            found.append(f"{name}: {actual.rows} rows, the manifest says {summary['rows']}")
        elif actual.sha256 != summary["sha256"]:
            found.append(f"{name}: same row count, different content")
    for name in sorted(set(measured.tables) - set(expected)):
        if measured.tables[name].rows:
            found.append(f"{name}: {measured.tables[name].rows} rows the manifest does not list")
    # A backup made before snapshots described what they do now has a hash of another format.
    same_format = manifest["schema"].get("snapshot_format", 1) == SNAPSHOT_FORMAT
    if compare_schema and same_format and measured.schema_sha256 != manifest["schema"]["sha256"]:
        found.append("the schema differs from the one backed up")
    return found


async def continue_ids_of(previous: StoreLocation, target: StoreLocation) -> None:
    """Ids in `target` continue after every id `previous`, the store it replaces, handed out, rows
    deleted since included: a restored store never gives a new row an id its tenant saw before."""
    old, new = previous.open(), target.open()
    try:
        async with old.engine.connect() as connection:
            handed_out = await connection.run_sync(lambda sync: last_ids(sync, tenant_tables(sync)))
        async with new.engine.begin() as connection:
            await connection.run_sync(lambda sync: continue_ids(sync, tenant_tables(sync), after=handed_out))
    finally:
        await old.dispose()
        await new.dispose()
