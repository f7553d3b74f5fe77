"""What a store's catalog says about its tables, read in one query, and the store's tables reflected
once per catalog: stores built from one recipe or cloned from one image (every tenant of a
template) have the same catalog, and SQLAlchemy's reflection costs a few hundred statements and
their parsing on SQLite, and catalog queries worked through in Python on PostgreSQL."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from services.recently_used import LeastRecentlyUsed

#: A SQLite file's schema is wholly the DDL its catalog keeps.
_SQLITE_CATALOG = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE {tables} ORDER BY type, name"
#: What a PostgreSQL schema's description is made of, table by table: columns (type, null,
#: default, identity), constraints and indexes as the server writes them. Names of other schemas
#: appear only where the search path does not reach, and an index's own schema is left out (the
#: server names it whatever the search path), so equal schemas read the same.
_POSTGRES_CATALOG = """
SELECT c.relname, c.relkind,
  (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text
          || ' ' || a.attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ', '
          ORDER BY a.attnum)
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(k.conname || ' ' || k.contype::text || ' ' || pg_get_constraintdef(k.oid), ', '
          ORDER BY k.conname)
     FROM pg_constraint k WHERE k.conrelid = c.oid),
  (SELECT string_agg(replace(pg_get_indexdef(i.indexrelid), ' ' || quote_ident(current_schema()) || '.', ' '),
                     ', ' ORDER BY pg_get_indexdef(i.indexrelid))
     FROM pg_index i WHERE i.indrelid = c.oid)
FROM pg_class c
WHERE c.relnamespace = to_regnamespace(current_schema())::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND {tables}
ORDER BY c.relname
"""
#: Each catalog, and the column naming the table each of its rows is about.
_CATALOGS = {"sqlite": (_SQLITE_CATALOG, "tbl_name"), "postgresql": (_POSTGRES_CATALOG, "c.relname")}


def _catalog_of(dialect: str, only: frozenset[str] | None) -> str | None:
    """The catalog query of the dialect (None: it has none), about the tables `only` when given:
    a tenant of a shared store reads its own tables' catalog, not every tenant's."""
    if dialect not in _CATALOGS:
        return None
    catalog, table = _CATALOGS[dialect]
    if only is None:
        return catalog.format(tables="TRUE")
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in sorted(only))
    return catalog.format(tables=f"{table} IN ({names})" if names else "FALSE")


def catalog_key(connection: Connection, only: frozenset[str] | None = None) -> str | None:
    """A hash of everything the store's catalog says about its tables (`only` those, when given):
    equal for equal schemas whatever the store is called, different when anything differs. None
    for a dialect without a catalog query."""
    catalog = _catalog_of(connection.dialect.name, only)
    if catalog is None:
        return None
    rows = [[*map(str, row)] for row in connection.exec_driver_sql(catalog)]
    server = connection.dialect.server_version_info
    return hashlib.sha256(json.dumps([rows, sorted(only or ()), only is None, server]).encode()).hexdigest()


#: Stores' tables, reflected, by their catalog's key. Shared by every caller: never changed.
_REFLECTED: LeastRecentlyUsed[str, MetaData] = LeastRecentlyUsed(64)


def reflected_tables(connection: Connection) -> MetaData:
    """Every table of the store the connection is on, reflected: read, never change, what it
    holds (it is shared with every store of the same catalog)."""
    key = catalog_key(connection)
    if key is None:
        return _reflect(connection)
    metadata = _REFLECTED.get(key)
    if metadata is None:
        metadata = _reflect(connection)
        _REFLECTED.put(key, metadata)
    return metadata


def _reflect(connection: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(connection)
    return metadata
