"""Snapshots. A SQLite store's, taken through a plain sqlite3 connection beside the store's own
(aiosqlite) engine, describes and hashes the store exactly as that engine would: hashes taken
before and after stay comparable (drift, golden images, backup manifests). A store described once
is not reflected again while its catalog stays the same, and every change of it is seen."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.db import Database
from services.layers.snapshot import _describe, _reflected_tables, fingerprint, take_snapshot
from tests.services.layers.stores import catalogue, up


def test_a_sqlite_stores_snapshot_is_the_one_its_own_engine_would_take(tmp_path: Path) -> None:
    layers = catalogue()
    party = layers.templates["political_party"]
    modules = layers.in_apply_order(["events", "volunteering"])
    only = frozenset({"units", "events"})

    async def both_ways() -> list[tuple[dict[str, Any], str]]:
        store = Database(f"sqlite+aiosqlite:///{tmp_path / 'tenant.db'}", transactional_ddl=True)
        try:
            await up(store, [layers.basic, party, *[layers.modules[name] for name in modules]])
            async with store.engine.connect() as connection:
                through_the_engine = await connection.run_sync(_describe, None)
                only_through_the_engine = await connection.run_sync(_describe, only)
            return [
                await take_snapshot(store),
                (through_the_engine, fingerprint(through_the_engine)),
                await take_snapshot(store, only),
                (only_through_the_engine, fingerprint(only_through_the_engine)),
            ]
        finally:
            await store.dispose()

    whole, whole_expected, part, part_expected = asyncio.run(both_ways())

    assert whole == whole_expected
    assert part == part_expected
    assert set(part[0]["tables"]) == only
    assert len(whole[0]["tables"]) > 20 and whole[0]["layer_versions"]


def test_a_remembered_description_is_the_reflections_and_follows_every_change_of_the_store(
    empty_database_url: str,
) -> None:
    """A store's tables are reflected once per catalog (services.layers.snapshot): the same catalog
    gives what reflecting gives, and a new column, a new index or a layer's new revision is in the
    very next description."""
    layers = catalogue()

    async def described_around_changes() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        store = Database(empty_database_url, transactional_ddl=True)  # an empty store
        pairs = []

        async def describe_both_ways() -> None:
            async with store.engine.connect() as connection:
                remembered = await connection.run_sync(_describe, None)
                reflected = await connection.run_sync(_reflected_tables, None)
            pairs.append((remembered, reflected))

        try:
            await up(store, [layers.basic])
            await describe_both_ways()
            await describe_both_ways()  # remembered now
            async with store.engine.begin() as connection:
                await connection.exec_driver_sql("ALTER TABLE units ADD COLUMN motto VARCHAR(80)")
                await connection.exec_driver_sql("CREATE INDEX ix_units_motto ON units (motto)")
            await describe_both_ways()
            async with store.engine.begin() as connection:
                await connection.exec_driver_sql("UPDATE layer_version_basic SET version_num = 'elsewhere'")
            await describe_both_ways()
            return pairs
        finally:
            await store.dispose()

    first, again, changed, moved = asyncio.run(described_around_changes())

    for remembered, reflected in (first, again, changed, moved):
        assert remembered["tables"] == reflected
    assert first == again
    units = {column["name"] for column in changed[0]["tables"]["units"]["columns"]}
    assert "motto" in units and "motto" not in {c["name"] for c in first[0]["tables"]["units"]["columns"]}
    assert any(index["name"] == "ix_units_motto" for index in changed[0]["tables"]["units"]["indexes"])
    assert moved[0]["layer_versions"]["basic"] == "elsewhere"
    assert fingerprint(moved[0]) != fingerprint(changed[0]) != fingerprint(first[0])
