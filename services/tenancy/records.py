"""The tables templates and modules add, mapped from the store itself.

No template or module table has a hand-written model: each is reflected from a store and mapped
on the tenant markers (TenantRow, and UnitRow when it has a `unit_id`), so scoped sessions filter
and stamp its rows like any other. Stores with the same schema snapshot share one mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, ColumnElement, MetaData, String, Table, Text, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, registry

from services.errors import NotFound
from services.layers.ownership import UNIT_COLUMN
from services.layers.snapshot import VERSION_TABLE_PREFIX
from services.models.tenant import TenantBase, TenantRow, UnitRow
from services.pagination import Paging


@dataclass(frozen=True)
class RecordTable:
    name: str
    table: Table
    model: type[TenantRow]

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def columns(self) -> list[Column[Any]]:
        """What a person reads: every column but the tenant tag."""
        return [column for column in self.table.columns if column.name != "tenant_id"]

    @property
    def searchable(self) -> list[Column[Any]]:
        return [column for column in self.columns if isinstance(column.type, String | Text)]

    @property
    def primary_key(self) -> Column[Any]:
        return next(iter(self.table.primary_key.columns))


@dataclass
class RecordSchema:
    tables: dict[str, RecordTable] = field(default_factory=dict)

    def table(self, name: str) -> RecordTable:
        if name not in self.tables:
            raise NotFound(f"There is no table {name!r} here.")
        return self.tables[name]


@dataclass(frozen=True, kw_only=True)
class RecordPage(Paging):
    table: RecordTable
    rows: list[Any]
    query: str


_schemas: dict[str, RecordSchema] = {}


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
        if name.startswith(VERSION_TABLE_PREFIX) or name in TenantBase.metadata.tables:
            continue
        markers: tuple[type, ...] = (UnitRow, TenantRow) if UNIT_COLUMN in table.c else (TenantRow,)
        model = type(_class_name(name), markers, {})
        mapper_registry.map_imperatively(model, table)
        schema.tables[name] = RecordTable(name, table, model)
    return schema


def _class_name(table: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"_+", table)) + "Record"


async def list_records(
    data: AsyncSession, table: RecordTable, *, query: str = "", page: int = 1, per_page: int = 25
) -> RecordPage:
    """One page of a table's rows visible in the session's scope, newest first, searchable."""
    page, per_page = max(page, 1), min(max(per_page, 1), 100)
    condition: ColumnElement[bool] | None = None
    if (query := query.strip()) and table.searchable:
        condition = or_(*(func.lower(c).contains(query.lower(), autoescape=True) for c in table.searchable))
    count = select(func.count()).select_from(table.model)
    rows = select(table.model).order_by(table.primary_key.desc())
    if condition is not None:
        count, rows = count.where(condition), rows.where(condition)
    total = await data.scalar(count) or 0
    offset = (page - 1) * per_page
    found = list(await data.scalars(rows.offset(offset).limit(per_page))) if offset < total else []
    return RecordPage(table=table, rows=found, query=query, total=total, page=page, per_page=per_page)


async def get_record(data: AsyncSession, table: RecordTable, record_id: int) -> Any:
    """One row by id, if the session's scope can see it. Another scope's row is "not found"."""
    row = await data.scalar(select(table.model).where(table.primary_key == record_id))
    if row is None:
        raise NotFound("There is no such record here.")
    return row
