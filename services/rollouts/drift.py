"""Drift: a tenant's store as it actually is, against what its recorded layer revisions should
give. The expected schema is a replay of the same layers, each to the same revision, into a
scratch store on the same kind of server (one replay per distinct recipe, shared by every tenant
that has it); both are described by the same snapshot (services.layers.snapshot) and every
difference is said: tables, columns and their types, keys, constraints (CHECK ones too),
indexes, and the version tables themselves (the landlord's record against the store's)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from services.layers.catalogue import Layer
from services.layers.migrator import Recorder, RevisionRun, upgrade_layer
from services.layers.replay import StoreWithoutRows
from services.layers.snapshot import take_snapshot
from services.models import IsolationMode
from services.settings import Settings
from services.tenancy.stores import StoreLocation, allocate_store, drop_store, plan_store

#: The parts of a table's description compared one by one (the rest is compared whole).
_TABLE_PARTS = ("primary_key", "foreign_keys", "unique", "checks", "indexes")


async def _forget(_run: RevisionRun) -> None:
    """A scratch replay is not the tenant's history."""


_FORGET: Recorder = _forget


@dataclass
class ExpectedSchemas:
    """Replays made during one check, by recipe: a fleet of a few templates needs a few replays."""

    settings: Settings
    _made: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def of(self, location: StoreLocation, layers: list[tuple[Layer, str]]) -> dict[str, Any]:
        """The description a store like `location` has once `layers` are each at their revision."""
        kind = IsolationMode.DATABASE if location.isolation == IsolationMode.SHARED else location.isolation
        recipe = {
            "backend": location.backend,
            "isolation": kind,
            "layers": [[layer.key, revision] for layer, revision in layers],
        }
        key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
        if key not in self._made:
            scratch = plan_store(self.settings, f"drift-{key}", kind, purpose="drift")
            await drop_store(scratch)  # a replay left by a check that died
            await allocate_store(scratch)
            store = scratch.open()
            try:
                building = StoreWithoutRows(store)
                for layer, revision in layers:
                    await upgrade_layer(store, layer, _FORGET, revision, without_rows=building)
                self._made[key], _ = await take_snapshot(store)
            finally:
                await store.dispose()
                await drop_store(scratch)
        return self._made[key]


def differences(
    expected: dict[str, Any], actual: dict[str, Any], tables: frozenset[str] | None = None
) -> list[str]:
    """What `actual` has that `expected` does not, and the other way round, said for people.
    `tables`: compare only these (one tenant's tables of a shared store)."""
    said: list[str] = []
    want, have = expected["tables"], actual["tables"]
    if tables is not None:
        want = {name: value for name, value in want.items() if name in tables}
    for name in sorted(set(have) - set(want)):
        said.append(f"table {name} is there but no layer makes it")
    for name in sorted(set(want) - set(have)):
        said.append(f"table {name} is missing")
    for name in sorted(set(want) & set(have)):
        said.extend(_table_differences(name, want[name], have[name]))
    for table, revision in sorted(expected["layer_versions"].items()):
        found = actual["layer_versions"].get(table)
        if table in want and found != revision:
            said.append(f"layer_version_{table} says {found}, the landlord records {revision}")
    return said


def _table_differences(table: str, want: dict[str, Any], have: dict[str, Any]) -> list[str]:
    said = []
    want_columns = {column["name"]: column for column in want["columns"]}
    have_columns = {column["name"]: column for column in have["columns"]}
    for name in sorted(set(have_columns) - set(want_columns)):
        said.append(f"column {table}.{name} is there but no layer makes it")
    for name in sorted(set(want_columns) - set(have_columns)):
        said.append(f"column {table}.{name} is missing")
    for name in sorted(set(want_columns) & set(have_columns)):
        for aspect in ("type", "nullable", "default"):
            if want_columns[name][aspect] != have_columns[name][aspect]:
                said.append(
                    f"column {table}.{name}: {aspect} is {have_columns[name][aspect]!r}, "
                    f"expected {want_columns[name][aspect]!r}"
                )
    for part in _TABLE_PARTS:
        if want.get(part) != have.get(part):
            said.append(
                f"{table}: {part.replace('_', ' ')} differ: {have.get(part)} instead of {want.get(part)}"
            )
    return said
