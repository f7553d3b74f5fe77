"""Schema snapshots: a normalised description of a store's actual schema and its SHA-256.

Two stores with the same tables, columns, keys, constraints, indexes and layer versions have the
same hash whatever they are called and wherever they live, so a clone can be proved identical to
a replay, and drift is any difference between a snapshot and the one the layers should give."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import CompoundSelect, column, inspect, literal, select, union_all
from sqlalchemy import table as table_named
from sqlalchemy.engine import Connection

from services.db import Database
from services.layers.catalog import catalog_key
from services.recently_used import LeastRecentlyUsed

VERSION_TABLE_PREFIX = "layer_version_"
#: A moving tenant's change table (services.moves.capture): no layer's, and no tenant's data.
CHANGE_TABLE_PREFIX = "tenantry_changes_"
#: What a description holds changes now and then (2: CHECK constraints too). A hash is compared
#: only with one of the same format: a backup's manifest says which its schema hash is.
SNAPSHOT_FORMAT = 2
_SEQUENCE_DEFAULT = re.compile(r"nextval\(.*\)")
_CAST = re.compile(r"::[a-z_]+(?: [a-z_]+)*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*")


def _normal_default(default: str | None) -> str | None:
    if default is None:
        return None
    return "autoincrement" if _SEQUENCE_DEFAULT.match(default) else default


def _normal_check(sql: str) -> str:
    """A CHECK's text without the spacing, outer brackets and type casts its dialect writes it
    with: PostgreSQL writes the same rule with other casts once pg_dump has carried it across
    (`ARRAY['a'::character varying, …]::text[]` comes back as `ARRAY['a'::character varying::text, …]`)."""
    sql = " ".join(_CAST.sub("", str(sql)).split())
    while sql.startswith("(") and sql.endswith(")") and _balanced(sql[1:-1]):
        sql = sql[1:-1].strip()
    return sql


def _balanced(sql: str) -> bool:
    depth = 0
    for character in sql:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            return False
    return depth == 0


#: Stores' tables, described, by what their catalog says (see `_described_tables`).
#: Kept as JSON: each caller gets a copy of its own, and parsing one is several times quicker than
#: deep-copying the dict.
_DESCRIBED: LeastRecentlyUsed[str, str] = LeastRecentlyUsed(64)


def version_rows(tables: Iterable[str]) -> CompoundSelect[str, str]:
    """One statement reading the row of each of these layers' version tables (at least one):
    (the table's name, its version_num), not one statement each."""
    return union_all(
        *(
            select(literal(name).label("layer_table"), column("version_num")).select_from(table_named(name))
            for name in tables
        )
    )


def _describe(connection: Connection, only: frozenset[str] | None = None) -> dict[str, Any]:
    tables = _described_tables(connection, only)
    versions = [table for table in tables if table.startswith(VERSION_TABLE_PREFIX)]
    layer_versions: dict[str, str | None] = {
        table.removeprefix(VERSION_TABLE_PREFIX): None for table in versions
    }
    if versions:
        for name, revision in connection.execute(version_rows(versions)):
            layer_versions[name.removeprefix(VERSION_TABLE_PREFIX)] = revision
    return {"dialect": connection.dialect.name, "tables": tables, "layer_versions": layer_versions}


def _described_tables(connection: Connection, only: frozenset[str] | None) -> dict[str, Any]:
    """The tables' description. Reflecting a store costs SQLAlchemy a few hundred statements and
    their parsing on SQLite, and on PostgreSQL a few catalog queries whose rows it works through
    in Python; yet the same catalog always gives the same description. So the catalog is read in
    one query, and a store whose catalog has been described before in this process (tenants
    cloned from one image, or built from one recipe) is not reflected again."""
    key = catalog_key(connection, only)
    if key is None:
        return _reflected_tables(connection, only)
    described = _DESCRIBED.get(key)
    if described is None:
        described = json.dumps(_reflected_tables(connection, only))
        _DESCRIBED.put(key, described)
    tables: dict[str, Any] = json.loads(described)
    return tables


def _reflected_tables(connection: Connection, only: frozenset[str] | None) -> dict[str, Any]:
    inspector = inspect(connection)
    # One reflection query per kind for all tables (not one per table): cheap on PostgreSQL.
    columns = {name: value for (_, name), value in inspector.get_multi_columns().items()}
    primary_keys = {name: value for (_, name), value in inspector.get_multi_pk_constraint().items()}
    foreign_keys = {name: value for (_, name), value in inspector.get_multi_foreign_keys().items()}
    uniques = {name: value for (_, name), value in inspector.get_multi_unique_constraints().items()}
    indexes = {name: value for (_, name), value in inspector.get_multi_indexes().items()}
    checks = {name: value for (_, name), value in inspector.get_multi_check_constraints().items()}
    tables: dict[str, Any] = {}
    for table in sorted(columns):
        if (only is not None and table not in only) or table.startswith(CHANGE_TABLE_PREFIX):
            continue
        tables[table] = {
            "columns": [
                {
                    "name": column["name"],
                    "type": str(column["type"]),
                    "nullable": column["nullable"],
                    "default": _normal_default(column.get("default")),
                }
                for column in columns[table]
            ],
            "primary_key": primary_keys[table]["constrained_columns"] if table in primary_keys else [],
            "foreign_keys": sorted(
                (
                    {
                        "columns": fk["constrained_columns"],
                        "references": fk["referred_table"],
                        "referred_columns": fk["referred_columns"],
                        "on_delete": (fk.get("options") or {}).get("ondelete"),
                    }
                    for fk in foreign_keys.get(table, [])
                ),
                key=lambda fk: json.dumps(fk, sort_keys=True),
            ),
            "unique": sorted([u["name"] or "", u["column_names"]] for u in uniques.get(table, [])),
            # The rules the data forms rely on (a status among its values, an end after its start).
            "checks": sorted(
                [check["name"] or "", _normal_check(check["sqltext"])] for check in checks.get(table, [])
            ),
            "indexes": sorted(
                (
                    {"name": index["name"], "columns": index["column_names"], "unique": bool(index["unique"])}
                    for index in indexes.get(table, [])
                ),
                key=lambda index: str(index["name"]),
            ),
        }
    return tables


def fingerprint(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def take_snapshot(store: Database, only: frozenset[str] | None = None) -> tuple[dict[str, Any], str]:
    """Describe the store as it actually is (only the tables named in `only`, for one tenant of a
    shared store), and hash the description."""
    description = await store.read_whole(_describe, only)
    return description, fingerprint(description)
