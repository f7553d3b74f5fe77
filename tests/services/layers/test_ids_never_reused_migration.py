"""basic_0002 on a SQLite store built before it: every table with ids, whichever layer made it, is
rebuilt with AUTOINCREMENT, its rows, keys, indexes and CHECK constraints kept, and the store then
has the schema (and snapshot hash) of a store built since."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, inspect
from sqlalchemy.engine import Connection

from services.backups.content import summarise_store
from services.db import Database
from services.layers import ownership
from services.layers.migrator import current_revision, upgrade_layer
from services.layers.ownership import TENANT_LAYER
from services.layers.snapshot import take_snapshot
from tests.services.backups.test_ids_never_reused import _tables_reusing_ids
from tests.services.layers.stores import Runs, catalogue, up

#: A template and modules whose tables cover a tree with paths (folders), CHECK constraints,
#: self references and references across layers.
LAYERS = catalogue().layers_for("community_group", ["events", "finance", "documents", "volunteering"])


@contextmanager
def built_before_basic_0002() -> Iterator[None]:
    """Tables created meanwhile are made as they were before basic_0002: the same layers, without
    the ownership listener that asks SQLite for AUTOINCREMENT."""
    event.remove(Table, "before_create", ownership._ids_never_reused)
    try:
        yield
    finally:
        event.listen(Table, "before_create", ownership._ids_never_reused)


def store_at(path: Path) -> Database:
    return Database(
        f"sqlite+aiosqlite:///{path}", transactional_ddl=True, connection_info={TENANT_LAYER: True}
    )


async def sql(store: Database, *statements: str) -> list[tuple[Any, ...]]:
    """Run the statements in one transaction; the rows of the last."""
    async with store.engine.begin() as connection:
        for statement in statements:
            result = await connection.exec_driver_sql(statement)
        return [tuple(row) for row in result] if result.returns_rows else []


def _shape(connection: Connection) -> dict[str, Any]:
    """What the snapshot leaves out and a rebuild could lose: CHECK constraints, and the foreign
    keys nothing breaks."""
    inspector = inspect(connection)
    return {
        "checks": {
            name: sorted(
                (check["name"] or "", check["sqltext"]) for check in inspector.get_check_constraints(name)
            )
            for name in inspector.get_table_names()
        },
        "broken foreign keys": connection.exec_driver_sql("PRAGMA foreign_key_check").all(),
    }


async def described(store: Database) -> tuple[str, dict[str, Any], list[str], dict[str, Any]]:
    """The store's snapshot hash, its rows (counts and checksums), the tables reusing ids, its shape."""
    _, sha256 = await take_snapshot(store)
    async with store.engine.connect() as connection:
        rows = await connection.run_sync(
            lambda sync: {k: v.as_json() for k, v in summarise_store(sync).items()}
        )
        reusing = await connection.run_sync(_tables_reusing_ids)
        shape = await connection.run_sync(_shape)
    return sha256, rows, reusing, shape


def test_a_store_built_before_basic_0002_gets_ids_never_reused_with_its_rows_kept(tmp_path: Path) -> None:
    async def scenario() -> None:
        basic, rest = LAYERS[0], LAYERS[1:]
        old, new = store_at(tmp_path / "old.db"), store_at(tmp_path / "new.db")
        try:
            with built_before_basic_0002():
                await upgrade_layer(old, basic, Runs(), target="basic_0001")
                await up(old, rest)
            await upgrade_layer(new, basic, Runs(), target="basic_0001")
            await up(new, rest)
            await sql(
                old,
                "INSERT INTO units (id, name, kind, path, tenant_id) VALUES (1, 'Root', 'organisation', '/1/', 7)",
                "INSERT INTO units (id, parent_id, name, path, tenant_id) VALUES (2, 1, 'Ward', '/1/2/', 7)",
                "INSERT INTO folders (id, name, path, unit_id, tenant_id) VALUES (1, 'Minutes', '/1/', 2, 7)",
                "INSERT INTO folders (id, parent_id, name, path, tenant_id) VALUES (2, 1, '2026', '/1/2/', 7)",
                "INSERT INTO venues (name, unit_id, tenant_id) VALUES ('Boathouse', 2, 7)",
                "INSERT INTO venues (name, tenant_id) VALUES ('Pier hall', 7)",
                "INSERT INTO events (venue_id, title, starts_at, status, tenant_id) "
                "VALUES (1, 'Regatta', '2026-06-01 18:00:00', 'published', 7)",
                "INSERT INTO settings (key, value, tenant_id) VALUES ('motto', 'Tide', 7)",
                "DELETE FROM venues WHERE name = 'Pier hall'",
                "INSERT INTO venues (name, tenant_id) VALUES ('Reused', 7)",
            )
            assert await sql(old, "SELECT id FROM venues WHERE name = 'Reused'") == [(2,)], (
                "built as before: the deleted newest venue's id came back"
            )
            await sql(old, "DELETE FROM venues WHERE name = 'Reused'")
            _, rows_before, reusing, shape_before = await described(old)
            assert "venues" in reusing and "units" in reusing and "folders" in reusing

            runs = Runs()
            await upgrade_layer(old, basic, runs)
            await upgrade_layer(new, basic, Runs())

            assert [(run.revision, run.error) for run in runs.runs] == [("basic_0002", None)]
            assert await current_revision(old, basic) == "basic_0002"
            sha256, rows, reusing, shape = await described(old)
            assert reusing == [], "every table with ids has AUTOINCREMENT"
            assert rows == rows_before, "every row kept, id for id"
            assert shape == shape_before and shape["broken foreign keys"] == []
            fresh_sha256, _, _, fresh_shape = await described(new)
            assert sha256 == fresh_sha256, "the snapshot of a migrated store is that of a store built since"
            assert shape["checks"] == fresh_shape["checks"]
            # What a store built before kept no trace of (the deleted venue 2) it cannot keep apart;
            # from here on, no id is handed out twice.
            await sql(
                old,
                "INSERT INTO venues (name, tenant_id) VALUES ('After', 7)",
                "DELETE FROM venues WHERE name = 'After'",
                "INSERT INTO venues (name, tenant_id) VALUES ('Again', 7)",
            )
            assert await sql(old, "SELECT id FROM venues WHERE name = 'Again'") == [(3,)]
            assert await sql(old, "SELECT venue_id FROM events") == [(1,)]
        finally:
            await old.dispose()
            await new.dispose()

    asyncio.run(scenario())


def test_basic_0002_rebuilds_nothing_in_a_store_built_since(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = store_at(tmp_path / "store.db")
        try:
            await upgrade_layer(store, LAYERS[0], Runs(), target="basic_0001")
            await up(store, LAYERS[1:])
            schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
            before = await sql(store, schema)
            await upgrade_layer(store, LAYERS[0], Runs())
            assert await sql(store, schema) == before
        finally:
            await store.dispose()

    asyncio.run(scenario())
