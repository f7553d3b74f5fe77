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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import MetaData, Table, bindparam, insert, update
from sqlalchemy import types as sqltypes
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, SAWarning

from services.layers.ownership import TENANT_COLUMN
from services.layers.snapshot import VERSION_TABLE_PREFIX

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
    """The store's tables that hold data (not the layers' version tables), parents before children."""
    metadata = MetaData()
    metadata.reflect(connection)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        try:
            ordered = metadata.sorted_tables
        except SAWarning as cycle:
            raise UnsupportedSchema(f"The store's foreign keys form a cycle: {cycle}") from None
    return [table for table in ordered if not table.name.startswith(VERSION_TABLE_PREFIX)]


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


def load_table(connection: Connection, table: Table, lines: Iterable[str], *, tenant_id: int) -> int:
    """Insert the rows of a JSON-lines file into an empty table; returns how many. Every row is
    given `tenant_id`. A column referring to its own table (a unit's parent) is filled in after
    all rows are in, so a row may come before the row it refers to."""
    dialect = connection.dialect.name
    decoders = {column.name: _codec(column.type, dialect)[1] for column in table.columns}
    self_refs = {
        fk.parent.name for fk in table.foreign_keys if fk.column.table is table and fk.parent.nullable
    }
    keys = [column.name for column in table.primary_key.columns]
    deferred: list[dict[str, Any]] = []
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
        row = {name: None if value is None else decoders[name](value) for name, value in stored.items()}
        if TENANT_COLUMN in table.columns:
            row[TENANT_COLUMN] = tenant_id
        if self_refs and any(row.get(name) is not None for name in self_refs):
            deferred.append({f"k_{key}": row[key] for key in keys} | {f"v_{n}": row[n] for n in self_refs})
            row |= dict.fromkeys(self_refs)
        batch.append(row)
        count += 1
        if len(batch) >= _BATCH:
            _write(connection, table, insert(table), batch)
            batch = []
    if batch:
        _write(connection, table, insert(table), batch)
    if deferred:
        statement = (
            update(table)
            .where(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
            .values({name: bindparam(f"v_{name}") for name in self_refs})
        )
        for start in range(0, len(deferred), _BATCH):
            _write(connection, table, statement, deferred[start : start + _BATCH])
    return count


def _write(connection: Connection, table: Table, statement: Any, rows: list[dict[str, Any]]) -> None:
    try:
        connection.execute(statement, rows)
    except DBAPIError as error:
        reason = str(error.orig).splitlines()[0] if error.orig is not None else type(error).__name__
        raise ArchiveMismatch(f"The archive's {table.name} rows do not fit the store: {reason}.") from None


def reset_sequences(connection: Connection, tables: Iterable[Table]) -> None:
    """PostgreSQL: after ids were inserted explicitly, each table's sequence continues after the
    largest one (SQLite takes the next rowid by itself)."""
    if connection.dialect.name != "postgresql":
        return
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, sqltypes.Integer):
            continue
        name, column = _quote(connection, table.name), _quote(connection, keys[0].name)
        connection.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{name}', '{keys[0].name}'), "
            f"coalesce(max({column}), 0) + 1, false) FROM {name}"
        )
