"""Taking a tenant's store out into the files of an archive, and counting what was taken from the
same consistent view: a copy made with SQLite's online backup API, or one PostgreSQL snapshot
shared by pg_dump and the counting transaction (REPEATABLE READ, pg_export_snapshot)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from services.backups.content import TableSummary, summarise_table, tenant_tables
from services.backups.postgres import pg_dump
from services.db import Database
from services.layers.snapshot import take_snapshot
from services.models import BackupFormat, IsolationMode
from services.tenancy.stores import SQLITE, StoreLocation, copy_sqlite_file

SQLITE_FILE = "store.sqlite"
PG_DUMP_FILE = "store.sql"
TABLES_DIR = "tables"


@dataclass
class Dump:
    """What a dump leaves in its work directory, and what the manifest says of it."""

    #: Name inside the archive -> the file in the work directory.
    files: dict[str, Path] = field(default_factory=dict)
    #: Per table, in the order rows load (parents first).
    tables: dict[str, TableSummary] = field(default_factory=dict)
    schema_sha256: str = ""
    #: Version table (without its prefix) -> the revision the store is at.
    layer_versions: dict[str, str | None] = field(default_factory=dict)
    #: For native dumps: which tool wrote the data, and the schema it was in.
    native: dict[str, Any] | None = None


def table_file(name: str) -> str:
    return f"{TABLES_DIR}/{name}.jsonl"


def _read(connection: Connection, work: Path | None, tenant_id: int | None) -> dict[str, TableSummary]:
    """Count and hash every table (only `tenant_id`'s rows in a shared store); with `work`, also
    write each table's rows to a JSON-lines file there."""
    summaries: dict[str, TableSummary] = {}
    for table in tenant_tables(connection):
        if work is None:
            summaries[table.name] = summarise_table(connection, table, tenant_id=tenant_id)
            continue
        path = work / table_file(table.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as sink:
            summaries[table.name] = summarise_table(connection, table, tenant_id=tenant_id, sink=sink)
    return summaries


def _remove_files(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def dump_store(location: StoreLocation, format: str, work: Path, *, tenant_id: int) -> Dump:
    """Write the tenant's data into `work` in `format`, and describe it."""
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    portable = format == BackupFormat.PORTABLE
    only_tenant = tenant_id if location.isolation == IsolationMode.SHARED else None
    dump = Dump()
    if location.backend == SQLITE:
        copy = work / SQLITE_FILE
        await asyncio.to_thread(copy_sqlite_file, Path(location.name), copy)
        reader = Database(f"sqlite+aiosqlite:///{copy}")
        try:
            description, dump.schema_sha256 = await take_snapshot(reader)
            dump.tables = await reader.read_whole(_read, work if portable else None, only_tenant)
        finally:
            await reader.dispose()
        leftovers = [copy.with_name(f"{copy.name}-wal"), copy.with_name(f"{copy.name}-shm")]
        # A portable dump has read its rows out of the copy; a native one is the copy.
        await asyncio.to_thread(_remove_files, *leftovers, *([copy] if portable else []))
        if not portable:
            dump.files[SQLITE_FILE] = copy
            dump.native = {"tool": "sqlite-backup-api", "file": SQLITE_FILE}
    else:
        reader = Database(location.url, schema=location.schema)
        try:
            description, dump.schema_sha256 = await take_snapshot(reader)
            async with reader.engine.connect() as connection:
                connection = await connection.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
                async with connection.begin():
                    dumping = None
                    if not portable:
                        exported = await connection.exec_driver_sql("SELECT pg_export_snapshot()")
                        dumping = asyncio.create_task(
                            pg_dump(
                                location.url,
                                work / PG_DUMP_FILE,
                                schema=location.schema,
                                snapshot=exported.scalar_one(),
                            )
                        )
                    try:
                        dump.tables = await connection.run_sync(
                            _read, work if portable else None, only_tenant
                        )
                    finally:
                        if dumping is not None:
                            await dumping  # pg_dump reads in our snapshot: keep it open until done
        finally:
            await reader.dispose()
        if not portable:
            dump.files[PG_DUMP_FILE] = work / PG_DUMP_FILE
            dump.native = {"tool": "pg_dump", "file": PG_DUMP_FILE, "schema": location.schema}
    if portable:
        dump.files.update({table_file(name): work / table_file(name) for name in dump.tables})
    dump.layer_versions = description["layer_versions"]
    return dump
