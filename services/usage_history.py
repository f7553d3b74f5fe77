"""A tenant's usage over time: one sample a day of its storage, rows and people (the day's latest
measure), written wherever its usage is measured (services.tenant_usage: its landlord page, its
settings page, and the workers' daily round of every active tenant) and read back, day by day, for
the charts. A day without a sample shows the latest measure before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.charts import DailyFigures, DayFigures
from services.models import UsageSample
from services.usage import MEGABYTE, Usage

#: How far back the charts of a tenant's usage look.
HISTORY_DAYS = 30


async def remember_usage(landlord: AsyncSession, tenant_id: int, usage: Usage, today: date) -> None:
    """Keep `usage` as the tenant's sample of `today`, in place of an earlier one of that day."""
    insert = sqlite_insert if landlord.get_bind().dialect.name == "sqlite" else postgresql_insert
    values = {
        "storage_bytes": usage.storage_bytes,
        "rows": sum(layer.rows for layer in usage.layers),
        "people": int(usage.people.used),
    }
    statement = insert(UsageSample).values(tenant_id=tenant_id, day=today, **values)
    await landlord.execute(statement.on_conflict_do_update(index_elements=["tenant_id", "day"], set_=values))


@dataclass(frozen=True)
class UsageHistory:
    """Day by day from the first sample in the window (None: no sample yet)."""

    #: Megabytes, rounded up; None for a tenant of a shared store.
    storage_mb: DailyFigures | None
    rows: DailyFigures
    people: DailyFigures


async def usage_history(
    landlord: AsyncSession, tenant_id: int, today: date, days: int = HISTORY_DAYS
) -> UsageHistory | None:
    first = today - timedelta(days=days - 1)
    samples = list(
        await landlord.scalars(
            select(UsageSample)
            .where(UsageSample.tenant_id == tenant_id, UsageSample.day <= today)
            .order_by(UsageSample.day)
        )
    )
    if not samples:
        return None
    by_day: list[tuple[date, UsageSample]] = []
    latest = None
    for offset in range(days):
        day = first + timedelta(days=offset)
        while samples and samples[0].day <= day:
            latest = samples.pop(0)
        if latest is not None:
            by_day.append((day, latest))

    measured = any(sample.storage_bytes is not None for _, sample in by_day)
    return UsageHistory(
        storage_mb=DailyFigures(
            ("megabytes",),
            tuple(
                DayFigures(day, {"megabytes": -(-(sample.storage_bytes or 0) // MEGABYTE)})
                for day, sample in by_day
            ),
        )
        if measured
        else None,
        rows=DailyFigures(("rows",), tuple(DayFigures(day, {"rows": sample.rows}) for day, sample in by_day)),
        people=DailyFigures(
            ("people",), tuple(DayFigures(day, {"people": sample.people}) for day, sample in by_day)
        ),
    )
