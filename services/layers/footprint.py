"""Which tables a set of layers creates: what one tenant of a shared store owns of its tables."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.db import Database
from services.layers.catalogue import Layer
from services.layers.migrator import RevisionRun, head, upgrade_layer
from services.layers.replay import StoreWithoutRows

_footprints: dict[tuple[tuple[str, str | None], ...], frozenset[str]] = {}


async def _forget(_run: RevisionRun) -> None:
    """A scratch replay leaves no history."""


def _table_names(connection: Connection) -> list[str]:
    return inspect(connection).get_table_names()


async def layer_tables(layers: list[Layer]) -> frozenset[str]:
    """The tables `layers` create, version tables included, found by replaying them once into a
    scratch SQLite file (per process, per layer heads)."""
    key = tuple((layer.key, head(layer)) for layer in layers)
    if key not in _footprints:
        with tempfile.TemporaryDirectory(prefix="tenantry-footprint-") as folder:
            store = Database(f"sqlite+aiosqlite:///{Path(folder) / 'scratch.db'}", transactional_ddl=True)
            try:
                building = StoreWithoutRows(store)
                for layer in layers:
                    await upgrade_layer(store, layer, _forget, without_rows=building)
                async with store.engine.connect() as connection:
                    _footprints[key] = frozenset(await connection.run_sync(_table_names))
            finally:
                await store.dispose()
    return _footprints[key]
