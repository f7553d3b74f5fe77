"""A SQLite store's snapshot, taken through a plain sqlite3 connection beside the store's own
(aiosqlite) engine, describes and hashes the store exactly as that engine would: hashes taken
before and after stay comparable (drift, golden images, backup manifests)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.db import Database
from services.layers.snapshot import _describe, fingerprint, take_snapshot
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
