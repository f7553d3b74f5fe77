"""The tables templates and modules add, mapped from the store itself.

No template or module table has a hand-written model: each is reflected from a store and mapped
on the tenant markers (TenantRow, and UnitRow when it has a `unit_id`), so scoped sessions filter
and stamp its rows like any other. Stores with the same schema snapshot share one mapping.

Rows are listed, read, created, changed and deleted here, always through the request's scoped
session. A write happens in a savepoint: what the database refuses (a unique clash, a check, a
row still referred to, a unit outside a member's scope) is rolled back whole and becomes an error
that names the field, never a half-written row. A row deleted by someone else between its read
and the write is "not found", as it would have been a moment later.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from functools import cached_property
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    Constraint,
    Date,
    DateTime,
    ForeignKeyConstraint,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, registry
from sqlalchemy.orm.exc import StaleDataError

from services.errors import Conflict, DomainError, InvalidFields, InvalidInput, NotFound
from services.layers.ownership import TENANT_COLUMN, UNIT_COLUMN
from services.layers.snapshot import CHANGE_TABLE_PREFIX, VERSION_TABLE_PREFIX
from services.limits import holds
from services.models.tenant import TenantBase, TenantRow, UnitRow
from services.pagination import Paging
from services.tenancy.sessions import OutOfScope

SORT_DIRECTIONS = ("asc", "desc")
NO_SUCH_RECORD = "There is no such record here."


@dataclass(frozen=True)
class RecordTable:
    name: str
    table: Table
    model: type[TenantRow]

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def singular(self) -> str:
        """One row, as a person names it: a row of "party_members" is a "Party member"."""
        *first, last = self.name.split("_")
        return " ".join([*first, _singular(last)]).capitalize()

    @cached_property
    def columns(self) -> list[Column[Any]]:
        """What a person reads: every column but the tenant tag."""
        return [column for column in self.table.columns if column.name != TENANT_COLUMN]

    @cached_property
    def searchable(self) -> list[Column[Any]]:
        return [column for column in self.columns if isinstance(column.type, String | Text)]

    @property
    def primary_key(self) -> Column[Any]:
        return next(iter(self.table.primary_key.columns))

    def label(self, column: Column[Any]) -> str:
        return column_label(column)

    @cached_property
    def moments(self) -> list[bool]:
        """For each of `columns`, whether it holds a date or a time: a cell a page keeps on one line."""
        return [isinstance(column.type, Date | DateTime) for column in self.columns]

    @cached_property
    def references(self) -> dict[str, Column[Any]]:
        """The columns that refer to another row (foreign keys), by name."""
        return {column.name: column for column in self.columns if column.foreign_keys}

    def value(self, row: Any, column: Column[Any]) -> Any:
        """`row`'s value in `column`, for the pages. Jinja's `attr` filter would do, at about fifty
        times the cost: it checks every attribute it reads with `inspect.getattr_static`, which was
        a tenth of a records page's time."""
        return getattr(row, column.key)

    def shown(self, row: Any, column: Column[Any], zone: tzinfo | None = None) -> str:
        """`row`'s value in `column` as a page shows it: times in `zone` (the tenant's; UTC when
        none is given), yes or no, nothing for empty."""
        value = self.value(row, column)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "Yes" if value else "No"
        if isinstance(value, datetime):
            moment = in_zone(value, zone)
            return moment.isoformat(sep=" ", timespec="seconds" if moment.second else "minutes")
        if isinstance(value, Decimal):
            return f"{value:f}"
        return value.isoformat() if isinstance(value, date) else str(value)


@dataclass
class RecordSchema:
    tables: dict[str, RecordTable] = field(default_factory=dict)

    def table(self, name: str) -> RecordTable:
        if name not in self.tables:
            raise NotFound(f"There is no table {name!r} here.")
        return self.tables[name]

    def referring_to(self, table: RecordTable) -> list[tuple[RecordTable, Column[Any]]]:
        """Each table and column of this schema that refers to rows of `table`, in table order."""
        return [
            (other, column)
            for other in self.tables.values()
            for column in other.references.values()
            if any(key.column.table.name == table.name for key in column.foreign_keys)
        ]


def _singular(word: str) -> str:
    """An English plural's singular, as table names are spelled: entries, churches, members."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def in_zone(moment: datetime, zone: tzinfo | None = None) -> datetime:
    """A stored time as a clock in `zone` (UTC by default) shows it, without its zone. SQLite hands
    times back without one: they are UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone or UTC).replace(tzinfo=None)


def column_label(column: Column[Any]) -> str:
    """A column as a person names it: "venue_id" is the venue, "starts_at" is "Starts at"."""
    name = column.name.removesuffix("_id") if column.foreign_keys else column.name
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True, kw_only=True)
class RecordPage(Paging):
    table: RecordTable
    rows: list[Any]
    query: str
    #: The column the rows are sorted by ("" for the default, newest first) and its direction.
    sort: str = ""
    direction: str = "asc"
    #: Only the rows whose references point to these rows: (column, id), say the districts of a
    #: province.
    pointing_to: tuple[tuple[str, int], ...] = ()


_schemas: dict[str, RecordSchema] = {}
#: The furthest page asked for: one beyond it is past the end of any table, and its offset would
#: overflow the databases' integers (SQLite's 64 bits).
LAST_PAGE = 2**31
#: The window count's label in a page's rows.
_TOTAL = "tenantry_page_total"


async def record_schema(
    data: AsyncSession, snapshot: str, tables: frozenset[str] | None = None
) -> RecordSchema:
    """The record tables of a tenant whose schema snapshot hash is `snapshot`: the tables named
    in that snapshot (`tables`; a tenant of a shared store owns only some of the store's)."""
    if snapshot not in _schemas:
        _schemas[snapshot] = await data.run_sync(_map_store, tables)
    return _schemas[snapshot]


def _map_store(session: Session, tables: frozenset[str] | None) -> RecordSchema:
    metadata = MetaData()
    metadata.reflect(session.connection(), only=lambda name, _: tables is None or name in tables)
    mapper_registry = registry(metadata=metadata)
    schema = RecordSchema()
    for name, table in sorted(metadata.tables.items()):
        if name.startswith((VERSION_TABLE_PREFIX, CHANGE_TABLE_PREFIX)) or name in TenantBase.metadata.tables:
            continue
        markers: tuple[type, ...] = (UnitRow, TenantRow) if UNIT_COLUMN in table.c else (TenantRow,)
        model = type(_class_name(name), markers, {})
        mapper_registry.map_imperatively(model, table)
        schema.tables[name] = RecordTable(name, table, model)
    return schema


def _class_name(table: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"_+", table)) + "Record"


async def list_records(
    data: AsyncSession,
    table: RecordTable,
    *,
    query: str = "",
    page: int = 1,
    per_page: int = 25,
    sort: str = "",
    direction: str = "asc",
    pointing_to: Mapping[str, object] | None = None,
) -> RecordPage:
    """One page of a table's rows visible in the session's scope, searchable, sorted by `sort`
    (one of the table's columns) or newest first; only those whose references point to the rows
    `pointing_to` names (reference column to id), when given.

    The rows are read-only: plain rows with an attribute per column, not mapped objects, which
    cost several times as much to build (change a row through `get_record`). The total comes with
    them (a window count), so a page is one statement; only a page past the end counts alone."""
    page, per_page = min(max(page, 1), LAST_PAGE), min(max(per_page, 1), 100)
    pointing = _pointing(table, pointing_to or {})
    conditions = [getattr(table.model, name) == record_id for name, record_id in pointing]
    if (query := query.strip()) and table.searchable:
        conditions.append(
            or_(*(func.lower(c).contains(query.lower(), autoescape=True) for c in table.searchable))
        )
    columns = [getattr(table.model, column.key) for column in table.columns]
    rows = select(*columns, func.count().over().label(_TOTAL)).order_by(*_order(table, sort, direction))
    found = list(await data.execute(rows.where(*conditions).offset((page - 1) * per_page).limit(per_page)))
    if found:
        total = found[0][-1]
    elif page == 1:
        total = 0
    else:
        count = select(func.count()).select_from(table.model).where(*conditions)
        total = await data.scalar(count) or 0
    return RecordPage(
        table=table,
        rows=found,
        query=query,
        total=total,
        page=page,
        per_page=per_page,
        sort=sort,
        direction=direction,
        pointing_to=pointing,
    )


def _pointing(table: RecordTable, pointing_to: Mapping[str, object]) -> tuple[tuple[str, int], ...]:
    """`pointing_to` checked: each a reference column of `table` and the id of a row it may hold."""
    pointing = []
    for name, raw in pointing_to.items():
        column = table.references.get(name)
        if column is None:
            references = ", ".join(table.references) or "no other rows"
            raise InvalidInput(f"Rows of {table.title.lower()} refer to {references}; not to {name!r}.")
        text = str(raw).strip()
        if not text.isdigit() or not holds(column, int(text)):
            raise InvalidInput(
                f"Name a {column_label(column).lower()} by its number, such as 12.", field=name
            )
        pointing.append((name, int(text)))
    return tuple(pointing)


def _order(table: RecordTable, sort: str, direction: str) -> list[ColumnElement[Any]]:
    if not sort:
        return [table.primary_key.desc()]
    columns = {column.name: column for column in table.columns}
    if sort not in columns:
        raise InvalidInput(f"Rows can be sorted by {', '.join(columns)}; not by {sort!r}.", field="sort")
    if direction not in SORT_DIRECTIONS:
        raise InvalidInput("The sort direction is asc or desc.", field="dir")
    column = columns[sort]
    ordered = column.asc() if direction == "asc" else column.desc()
    # Empty values last either way, on every backend; the id keeps pages stable among equals.
    return [ordered.nulls_last(), table.primary_key.asc()]


async def get_record(data: AsyncSession, table: RecordTable, record_id: int) -> Any:
    """One row by id, if the session's scope can see it. Another scope's row is "not found"."""
    row = await data.scalar(select(table.model).where(table.primary_key == record_id))
    if row is None:
        raise NotFound(NO_SUCH_RECORD)
    return row


async def create_record(data: AsyncSession, table: RecordTable, values: dict[str, Any]) -> Any:
    """A new row from checked `values` (column keys to Python values), stamped with the scope's
    tenant, read back with what the database filled in (its id, defaults)."""
    row = table.model(**values)
    async with _saving(table), data.begin_nested():
        data.add(row)
    await data.refresh(row)
    return row


async def update_record(data: AsyncSession, table: RecordTable, row: Any, values: dict[str, Any]) -> Any:
    """`row` (found with get_record) with checked `values` written over its own."""
    async with _saving(table), data.begin_nested():
        for key, value in values.items():
            setattr(row, key, value)
    await data.refresh(row)
    return row


async def delete_record(data: AsyncSession, schema: RecordSchema, table: RecordTable, row: Any) -> None:
    """Deletes `row` (found with get_record), unless other rows still refer to it."""
    record_id = getattr(row, table.primary_key.key)
    try:
        async with data.begin_nested():
            # A statement rather than session.delete: its count tells a row deleted meanwhile
            # (the unit of work would only warn). The scope's criteria apply to it all the same.
            deleted = await data.execute(delete(table.model).where(table.primary_key == record_id))
    except IntegrityError:
        holders = await _referring(data, schema, table, record_id)
        where = f"in {' and '.join(holders)}" if holders else "some of them outside what you can see"
        raise Conflict(
            f"Other records still refer to this one ({where}). Change or delete them first."
        ) from None
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(NO_SUCH_RECORD)


async def _referring(
    data: AsyncSession, schema: RecordSchema, table: RecordTable, record_id: Any
) -> list[str]:
    """The tables (as their titles) with rows in view that keep `record_id` from being deleted."""
    holders: list[str] = []
    for other, column in schema.referring_to(table):
        key = next(key for key in column.foreign_keys if key.column.table.name == table.name)
        if other.title.lower() in holders or (key.ondelete or "NO ACTION").upper() not in _KEEPING:
            continue
        found = select(func.count()).select_from(other.model).where(column == record_id)
        if await data.scalar(found):
            holders.append(other.title.lower())
    return holders


#: What a foreign key does when the row it points to is deleted, that keeps the row from going.
_KEEPING = ("RESTRICT", "NO ACTION")


@asynccontextmanager
async def _saving(table: RecordTable) -> AsyncIterator[None]:
    """Around a savepoint that writes a row: its refusals become errors on the fields."""
    try:
        yield
    except OutOfScope:
        if UNIT_COLUMN not in table.table.c:
            raise
        raise InvalidFields(
            {UNIT_COLUMN: "Choose one of your own units: records are kept in them."}
        ) from None
    except (IntegrityError, DataError) as error:
        raise _refusal(table, str(error.orig)) from None
    except StaleDataError:
        # The UPDATE matched no row: it was deleted after it was read.
        raise NotFound(NO_SUCH_RECORD) from None


def _refusal(table: RecordTable, message: str) -> DomainError:
    """What the database refused, said of the field it concerns. The database's own words stay in
    the server: they may quote other rows' values."""
    constraint = _named_constraint(table, message)
    if isinstance(constraint, UniqueConstraint):
        return _taken(table, [column.name for column in constraint.columns])
    if isinstance(constraint, CheckConstraint):
        rule = str(constraint.sqltext)
        mentioned = [column for column in table.columns if re.search(rf"\b{column.name}\b", rule)]
        if mentioned:
            return InvalidFields({mentioned[0].key: f"This value breaks the rule “{rule}”."})
    if isinstance(constraint, ForeignKeyConstraint):
        column = next(iter(constraint.columns))
        return InvalidFields({column.key: f"Choose a {column_label(column).lower()} that exists here."})
    if unique := re.search(r"UNIQUE constraint failed: (.+)", message):
        return _taken(table, [name.split(".")[-1].strip() for name in unique.group(1).split(",")])
    if missing := re.search(r'NOT NULL constraint failed: \w+\.(\w+)|null value in column "(\w+)"', message):
        name = missing.group(1) or missing.group(2)
        if name in table.table.c:
            return InvalidFields({name: f"Fill in {column_label(table.table.c[name]).lower()}."})
    return Conflict("The database refused these values, so nothing was saved. Check them and try again.")


def _named_constraint(table: RecordTable, message: str) -> Constraint | None:
    named = (c for c in table.table.constraints if isinstance(c.name, str) and c.name)
    return next((c for c in named if re.search(rf"\b{re.escape(str(c.name))}\b", message)), None)


def _taken(table: RecordTable, names: list[str]) -> DomainError:
    columns = [table.table.c[name] for name in names if name != TENANT_COLUMN and name in table.table.c]
    if not columns:
        return Conflict(f"This would repeat a row of {table.title.lower()}.")
    *others, last = columns
    message = f"Another row of {table.title.lower()} already has this {column_label(last).lower()}"
    if others:
        message += " with the same " + " and ".join(column_label(c).lower() for c in others)
    return InvalidFields({last.key: message + "."})
