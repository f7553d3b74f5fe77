"""A tenant store's rows, described the same way on every backend: per-table row counts and content
checksums, the rows written out as JSON lines, and JSON lines loaded back into a store.

Values are normalised before they are hashed or written, so SQLite and PostgreSQL agree: times in
UTC (`2026-01-02T03:04:05.000000Z`; SQLite's naive times are UTC), decimals without trailing
zeros, booleans as true/false (not SQLite's 0/1), CHAR(n) without PostgreSQL's padding, bytes in
base64. A table's checksum covers its column names and its rows in any order, and leaves out the
`tenant_id` column: a tenant's rows copied into another tenant (or into a shared store) keep the
same checksum.

The functions take a synchronous Connection: run them through AsyncConnection.run_sync."""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import Column, Table, bindparam, func, insert, select, update
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SAWarning

from services.layers.catalog import reflected_tables
from services.layers.ownership import TENANT_COLUMN
from services.layers.snapshot import CHANGE_TABLE_PREFIX, VERSION_TABLE_PREFIX

_BATCH = 1000
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


@dataclass(frozen=True)
class TableSummary:
    """What a manifest says of one table."""

    rows: int
    sha256: str
    columns: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "sha256": self.sha256, "columns": self.columns}


class UnsupportedSchema(RuntimeError):
    """The store's tables cannot be ordered for loading (foreign keys in a cycle)."""


# Values --------------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _out_datetime(value: Any) -> str:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    # Not strftime: its %Y writes the year 202 as "202", which strptime's %Y then refuses.
    return _utc(parsed).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _out_date(value: Any) -> str:
    if isinstance(value, str):
        return date.fromisoformat(value[:10]).isoformat()
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _out_time(value: Any) -> str:
    return (time.fromisoformat(value) if isinstance(value, str) else value).isoformat()


def _out_decimal(value: Any) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    return format(number.normalize(), "f")


def _out_boolean(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "t", "true", "y", "yes"}
    return bool(value)


def _out_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _out_bytes(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _out_other(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return _out_decimal(value)
    if isinstance(value, datetime):
        return _out_datetime(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return _out_bytes(value)
    return str(value)


def _in_datetime(timezone: bool) -> Callable[[Any], Any]:
    def convert(value: Any) -> datetime:
        parsed = datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)
        return parsed if timezone else parsed.replace(tzinfo=None)

    return convert


def _same(value: Any) -> Any:
    return value


def _codec(column_type: Any, dialect: str) -> Codec:
    """How one column's stored values become portable ones (out) and back (in), by its type."""
    if isinstance(column_type, sqltypes.Boolean):
        return _out_boolean, _same
    if isinstance(column_type, sqltypes.DateTime):
        # SQLite keeps no zone: the UTC wall time goes in, as SQLAlchemy itself writes it there.
        return _out_datetime, _in_datetime(bool(column_type.timezone) and dialect != "sqlite")
    if isinstance(column_type, sqltypes.Date):
        return _out_date, date.fromisoformat
    if isinstance(column_type, sqltypes.Time):
        return _out_time, time.fromisoformat
    if isinstance(column_type, sqltypes.Integer):
        return int, _same
    if isinstance(column_type, sqltypes.Float):
        return float, _same
    if isinstance(column_type, sqltypes.Numeric):
        return _out_decimal, Decimal
    if isinstance(column_type, sqltypes.CHAR):
        return (lambda value: str(value).rstrip(" ")), _same
    if isinstance(column_type, sqltypes.JSON):
        return _out_json, _same
    if isinstance(column_type, sqltypes.LargeBinary):
        return _out_bytes, base64.b64decode
    return _out_other, _same


def _portable(codecs: list[Codec], row: Iterable[Any]) -> list[Any]:
    return [None if value is None else codec[0](value) for codec, value in zip(codecs, row, strict=True)]


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# Tables --------------------------------------------------------------------------------------------


def tenant_tables(connection: Connection) -> list[Table]:
    """The store's tables that hold data (not the layers' version tables, nor a move's change
    table), parents before children."""
    metadata = reflected_tables(connection)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        try:
            ordered = metadata.sorted_tables
        except SAWarning as cycle:
            raise UnsupportedSchema(f"The store's foreign keys form a cycle: {cycle}") from None
    return [
        table for table in ordered if not table.name.startswith((VERSION_TABLE_PREFIX, CHANGE_TABLE_PREFIX))
    ]


def count_rows(
    connection: Connection, tenant_id: int | None = None, tables: Iterable[str] | None = None
) -> dict[str, int]:
    """Rows per data table, in one statement; in a shared store (`tenant_id` given) only that
    tenant's (every tenant table has the tenant column: services.layers.ownership). The tables
    named, when the caller knows them (a snapshot), else the store's own, reflected."""
    names = sorted(tables) if tables is not None else [table.name for table in tenant_tables(connection)]
    names = [name for name in names if not name.startswith(VERSION_TABLE_PREFIX)]
    if not names:
        return {}
    only = f" WHERE {_quote(connection, TENANT_COLUMN)} = {int(tenant_id)}" if tenant_id is not None else ""
    union = " UNION ALL ".join(
        f"SELECT {_literal(name)}, count(*) FROM {_quote(connection, name)}{only}" for name in names
    )
    return {name: int(rows) for name, rows in connection.exec_driver_sql(union)}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def data_columns(table: Table) -> list[str]:
    """The columns a backup carries, by name: all but the tenant column (set on the way in)."""
    return sorted(column.name for column in table.columns if column.name != TENANT_COLUMN)


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)


def _rows(connection: Connection, table: Table, columns: list[str], tenant_id: int | None) -> Iterator[Any]:
    """The table's stored values, in key order, streamed. In a shared store only one tenant's."""
    keys = [column.name for column in table.primary_key.columns] or columns
    sql = f"SELECT {', '.join(_quote(connection, c) for c in columns)} FROM {_quote(connection, table.name)}"
    if tenant_id is not None and TENANT_COLUMN in table.columns:
        sql += f" WHERE {_quote(connection, TENANT_COLUMN)} = {int(tenant_id)}"
    sql += f" ORDER BY {', '.join(_quote(connection, c) for c in keys)}"
    yield from connection.exec_driver_sql(
        sql, execution_options={"stream_results": True, "max_row_buffer": _BATCH}
    )


def summarise_table(
    connection: Connection, table: Table, *, tenant_id: int | None = None, sink: TextIO | None = None
) -> TableSummary:
    """Count and hash the table's rows (only `tenant_id`'s when given), writing each to `sink` as a
    JSON object per line when given."""
    columns = data_columns(table)
    codecs = [_codec(table.columns[name].type, connection.dialect.name) for name in columns]
    lines: list[str] = []
    for row in _rows(connection, table, columns, tenant_id):
        values = _portable(codecs, row)
        lines.append(_canonical(values))
        if sink is not None:
            sink.write(_canonical(dict(zip(columns, values, strict=True))))
            sink.write("\n")
    return _summary(columns, lines)


def summarise_lines(columns: list[str], rows: Iterable[dict[str, Any]]) -> TableSummary:
    """What summarise_table says of a table holding `rows`, portable values by column name (the
    rows of an archive's file, say)."""
    return _summary(columns, [_canonical([row.get(name) for name in columns]) for row in rows])


def _summary(columns: list[str], lines: list[str]) -> TableSummary:
    digest = hashlib.sha256(_canonical(columns).encode())
    for line in sorted(lines):
        digest.update(b"\n")
        digest.update(line.encode())
    return TableSummary(rows=len(lines), sha256=digest.hexdigest(), columns=columns)


def summarise_store(connection: Connection, *, tenant_id: int | None = None) -> dict[str, TableSummary]:
    return {
        table.name: summarise_table(connection, table, tenant_id=tenant_id)
        for table in tenant_tables(connection)
    }


# Loading -------------------------------------------------------------------------------------------


class ArchiveMismatch(ValueError):
    """The archive's rows do not fit the store they are loaded into."""


def load_table(
    connection: Connection,
    table: Table,
    lines: Iterable[str],
    *,
    tenant_id: int,
    fresh_ids: FreshIds | None = None,
) -> int:
    """Insert the rows of a JSON-lines file into an empty table; returns how many. Every row is
    given `tenant_id`. A column referring to its own table (a unit's parent) is filled in after
    all rows are in, so a row may come before the row it refers to. With `fresh_ids` (a shared
    store), a row whose id another row holds gets a fresh one, and references follow."""
    decoders = _decoders(connection, table)
    self_refs = {
        fk.parent.name for fk in table.foreign_keys if fk.column.table is table and fk.parent.nullable
    }
    keys = [column.name for column in table.primary_key.columns]
    deferred: list[dict[str, Any]] = []

    def write(batch: list[dict[str, Any]]) -> None:
        # Self references wait (their rows may come later) as they are in the archive; the rows'
        # own ids are settled first, so the deferred update finds each row by the id it got.
        waiting = [{name: row[name] for name in self_refs} for row in batch]
        for row in batch:
            row |= dict.fromkeys(self_refs)
        if fresh_ids is not None:
            fresh_ids.take(connection, table, batch)
        for row, refs in zip(batch, waiting, strict=True):
            if any(value is not None for value in refs.values()):
                deferred.append(
                    {f"k_{key}": row[key] for key in keys} | {f"v_{n}": v for n, v in refs.items()}
                )
        _write(connection, table, insert(table), batch)

    batch: list[dict[str, Any]] = []
    count = 0
    for line in lines:
        if not line.strip():
            continue
        stored = json.loads(line)
        unknown = set(stored) - set(decoders)
        if unknown:
            raise ArchiveMismatch(
                f"The archive's {table.name} has columns the store does not: {', '.join(sorted(unknown))}."
            )
        batch.append(_stored(table, decoders, stored, tenant_id))
        count += 1
        if len(batch) >= _BATCH:
            write(batch)
            batch = []
    if batch:
        write(batch)
    if deferred:
        if fresh_ids is not None:
            given = fresh_ids.given.get(table.name, {})
            for entry in deferred:
                entry |= {f"v_{n}": given.get(entry[f"v_{n}"], entry[f"v_{n}"]) for n in self_refs}
        statement = (
            update(table)
            .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
            .values({name: bindparam(f"v_{name}") for name in self_refs})
        )
        for start in range(0, len(deferred), _BATCH):
            _write(connection, table, statement, deferred[start : start + _BATCH])
    if fresh_ids is not None:
        fresh_ids.follow_paths(connection, table)
    return count


def _decoders(connection: Connection, table: Table) -> dict[str, Callable[[Any], Any]]:
    return {column.name: _codec(column.type, connection.dialect.name)[1] for column in table.columns}


def _stored(
    table: Table, decoders: dict[str, Callable[[Any], Any]], values: dict[str, Any], tenant_id: int
) -> dict[str, Any]:
    row = {name: None if value is None else decoders[name](value) for name, value in values.items()}
    if TENANT_COLUMN in table.columns:
        row[TENANT_COLUMN] = tenant_id
    return row


def portable_row(connection: Connection, table: Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    """One stored row as an archive's line holds it: portable values by column name, the tenant
    column left out."""
    columns = data_columns(table)
    codecs = [_codec(table.columns[name].type, connection.dialect.name) for name in columns]
    return dict(zip(columns, _portable(codecs, (row[name] for name in columns)), strict=True))


def stored_row(
    connection: Connection, table: Table, values: dict[str, Any], *, tenant_id: int
) -> dict[str, Any]:
    """A portable row (portable_row's) as `table` stores it, given to `tenant_id`."""
    return _stored(table, _decoders(connection, table), values, tenant_id)


def _write(connection: Connection, table: Table, statement: Any, rows: list[dict[str, Any]]) -> None:
    try:
        connection.execute(statement, rows)
    except DBAPIError as error:
        reason = str(error.orig).splitlines()[0] if error.orig is not None else type(error).__name__
        raise ArchiveMismatch(f"The archive's {table.name} rows do not fit the store: {reason}.") from None


# Ids -----------------------------------------------------------------------------------------------

#: The layers' convention for a tree: a table referring to itself keeps, in this column, the
#: path of ids from its root ("/1/4/9/": units, folders).
ID_PATH = "path"


def _id_path(table: Table) -> str | None:
    refers_to_itself = any(fk.column.table is table for fk in table.foreign_keys)
    return ID_PATH if refers_to_itself and ID_PATH in table.c else None


def id_column(table: Table) -> Column[Any] | None:
    """The table's own id, handed out by the store: a single integer key that refers to no other
    row. A natural key (a setting's name) or a key of references (an assignment) has none."""
    keys = list(table.primary_key.columns)
    if len(keys) == 1 and isinstance(keys[0].type, sqltypes.Integer) and not keys[0].foreign_keys:
        return keys[0]
    return None


def _sequence(connection: Connection, table: Table, column: Column[Any]) -> str | None:
    """PostgreSQL: the sequence handing out the column's values (None: the ids come from elsewhere)."""
    return connection.execute(
        select(func.pg_get_serial_sequence(_quote(connection, table.name), column.name))
    ).scalar()


def _autoincrement_tables(connection: Connection) -> set[str]:
    """SQLite: the tables whose ids come from sqlite_sequence (AUTOINCREMENT), never handed out twice."""
    found = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND upper(sql) LIKE '%AUTOINCREMENT%'"
    )
    return set(found.scalars())


def _largest(connection: Connection, column: Column[Any]) -> int:
    """The largest id the table holds, of any tenant (a store reached as its owner shows them all)."""
    return int(connection.execute(select(func.coalesce(func.max(column), 0))).scalar_one())


def last_ids(connection: Connection, tables: Iterable[Table]) -> dict[str, int]:
    """The largest id each table's generator has handed out so far, deleted rows' included, by
    table name (tables with ids only)."""
    sqlite = connection.dialect.name == "sqlite"
    counted = _autoincrement_tables(connection) if sqlite else set()
    found: dict[str, int] = {}
    for table in tables:
        if (column := id_column(table)) is None:
            continue
        largest = _largest(connection, column)
        if sqlite:
            handed_out = 0
            if table.name in counted:
                handed_out = connection.exec_driver_sql(
                    "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = ?", (table.name,)
                ).scalar_one()
        elif (sequence := _sequence(connection, table, column)) is None:
            continue
        else:
            handed_out = connection.exec_driver_sql(
                f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}"
            ).scalar_one()
        found[table.name] = max(largest, int(handed_out))
    return found


def continue_ids(
    connection: Connection, tables: Iterable[Table], *, after: dict[str, int] | None = None
) -> None:
    """After ids were inserted as they are: each table's generator continues after the largest id
    the table holds, and after `after`'s figure for it (the ids a replaced store had handed out),
    so none of them is handed out again. A generator never goes back: another tenant of a shared
    store may have had the ids in between."""
    after = after or {}
    for table in tables:
        if (column := id_column(table)) is not None:
            _continue_after(
                connection, table, column, max(_largest(connection, column), after.get(table.name, 0))
            )


def _continue_after(connection: Connection, table: Table, column: Column[Any], handed_out: int) -> None:
    """Make the table's generator hand out only ids above `handed_out`, if it would not already.
    SQLite without AUTOINCREMENT (a store basic_0002 has not reached yet) has no generator to move."""
    if handed_out < 1:
        return
    if connection.dialect.name == "sqlite":
        if table.name not in _autoincrement_tables(connection):
            return
        raised = connection.exec_driver_sql(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (handed_out, table.name)
        )
        if not raised.rowcount:
            connection.exec_driver_sql(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table.name, handed_out)
            )
        return
    if (sequence := _sequence(connection, table, column)) is not None:
        connection.exec_driver_sql(
            f"SELECT setval('{sequence}', greatest({int(handed_out)}, last_value)) FROM {sequence}"
        )


class FreshIds:
    """Ids for one tenant's rows going back into a shared store. A row keeps the id it had unless
    another row of the store holds that id now (in a store made before basic_0002, which handed
    ids out twice; or rows that came from a store of their own), and then gets a fresh
    one; the tenant's rows that refer to it, and the paths of trees that list it, follow. Which rows those
    are is not said to the tenant (it would tell which ids other tenants hold), only how many."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id
        #: table name → {id in the archive: id given}
        self.given: dict[str, dict[int, int]] = {}

    @property
    def count(self) -> int:
        return sum(len(given) for given in self.given.values())

    def take(self, connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Before `rows` go in: their references to other tables follow the ids those rows got,
        and each row whose id the store holds already gets a fresh id."""
        for row in rows:
            self._follow_references(table, row)
        column = id_column(table)
        ids = [row[column.name] for row in rows] if column is not None else []
        if column is None or not ids:
            return
        # Past these ids first: another tenant's insert, from now on, cannot take one of them.
        _continue_after(connection, table, column, max(ids))
        held = set(connection.execute(select(column).where(column.in_(ids))).scalars())
        if not held:
            return
        given = self.given.setdefault(table.name, {})
        fresh = iter(self._fresh(connection, table, column, len(held)))
        for row in rows:
            if row[column.name] in held:
                given[row[column.name]] = row[column.name] = next(fresh)

    def _fresh(self, connection: Connection, table: Table, column: Column[Any], count: int) -> list[int]:
        """`count` ids no row of the store holds and no generator handed out before."""
        if connection.dialect.name == "postgresql":
            sequence = _sequence(connection, table, column)
            if sequence is not None:
                drawn = connection.exec_driver_sql(
                    f"SELECT nextval('{sequence}') FROM generate_series(1, {int(count)})"
                )
                return [int(value) for value in drawn.scalars()]
        # SQLite writes one transaction at a time: the ids above the largest so far are free.
        start = max(_largest(connection, column), last_ids(connection, [table]).get(table.name, 0))
        return list(range(start + 1, start + count + 1))

    def _follow_references(self, table: Table, row: dict[str, Any]) -> None:
        for fk in table.foreign_keys:
            given = self.given.get(fk.column.table.name)
            value = row.get(fk.parent.name)
            if given and value is not None and fk.column is id_column(fk.column.table):
                row[fk.parent.name] = given.get(value, value)

    def follow_paths(self, connection: Connection, table: Table) -> None:
        """Once all of a table's rows are in: paths listing ids that changed list the new ones."""
        path = _id_path(table)
        if not self.given.get(table.name) or path is None or (column := id_column(table)) is None:
            return
        owned = select(column, table.c[path]).where(table.c[TENANT_COLUMN] == self.tenant_id)
        for row_id, old in connection.execute(owned).all():
            if (new := self._follow_path(table.name, old)) != old:
                connection.execute(update(table).where(column == row_id).values({path: new}))

    def _follow_path(self, table: str, path: str) -> str:
        given = self.given[table]
        return "/".join(
            str(given.get(int(part), part)) if part.isdigit() else part for part in path.split("/")
        )

    def renumbered(self, table: Table, row: dict[str, Any]) -> dict[str, Any]:
        """An archive's row (by column name) as it went in: its id, references and path followed."""
        row = dict(row)
        column = id_column(table)
        if column is not None and row.get(column.name) is not None:
            row[column.name] = self.given.get(table.name, {}).get(row[column.name], row[column.name])
        self._follow_references(table, row)
        if (path := _id_path(table)) and self.given.get(table.name) and row.get(path):
            row[path] = self._follow_path(table.name, row[path])
        return row
