"""The rows that refer to a row: a province's districts, an event's registrations.

Only the tenant's enabled tables are asked (the schema the request sees), and through the
request's scoped session, so a member finds only the rows of their units among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.tenant_data.forms import label_column, row_name
from services.tenant_data.records import RecordSchema, RecordTable, column_label

#: How many rows of each table a row's page lists; the rest are on the table's page, filtered.
SHOWN = 10


@dataclass(frozen=True)
class NamedRow:
    id: Any
    #: What names the row ("Amsterdam-Noord"), or its number ("#12") when nothing does.
    name: str


@dataclass(frozen=True)
class ReferringRows:
    """The rows of `table` whose `column` refers to one row: the first few by name, and how many
    there are in all."""

    table: RecordTable
    column: Column[Any]
    rows: list[NamedRow]
    total: int
    #: How they refer ("parent"), when the table refers to such rows in more than one way or to
    #: its own rows; None when the table's name says it.
    role: str | None = None


async def referring_rows(
    data: AsyncSession, schema: RecordSchema, table: RecordTable, record_id: Any, *, shown: int = SHOWN
) -> list[ReferringRows]:
    """For each table and column of `schema` referring to `table`, the rows in view that refer to
    the row `record_id`; tables with none are left out."""
    referring = schema.referring_to(table)
    found = []
    for other, column in referring:
        ways = sum(1 for each, _ in referring if each is other)
        rows, total = await _rows_referring(data, other, column, record_id, shown)
        if total:
            role = column_label(column).lower() if ways > 1 or other is table else None
            found.append(ReferringRows(other, column, rows, total, role))
    return found


async def _rows_referring(
    data: AsyncSession, table: RecordTable, column: Column[Any], record_id: Any, shown: int
) -> tuple[list[NamedRow], int]:
    """The first `shown` rows of `table` whose `column` holds `record_id`, by name, and their count."""
    key = getattr(table.model, table.primary_key.key)
    label = label_column(table.table)
    name = getattr(table.model, label.key) if label is not None else null()
    statement = (
        select(key, name, func.count().over())
        .where(getattr(table.model, column.key) == record_id)
        .order_by(key if label is None else name, key)
        .limit(shown)
    )
    found = (await data.execute(statement)).all()
    rows = [NamedRow(row_id, row_name(named) or f"#{row_id}") for row_id, named, _ in found]
    return rows, found[0][2] if found else 0
