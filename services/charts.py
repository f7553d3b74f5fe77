"""Figures the portal draws as charts, counted in the landlord database: how many tenants there
were at the end of each day, and how many jobs each day brought and how they ended.

Days are UTC days. Each figure is one query, however many rows there are: the day a row falls on
is a CASE over the days' boundaries, the same SQL on SQLite and PostgreSQL (whose date functions
differ, and on PostgreSQL follow the session's time zone), and the database counts per day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.models import Job, JobStatus, Tenant

TENANT_DAYS = 30
JOB_DAYS = 14
#: How the jobs of a day are split: by how they ended, or that they have not yet.
JOB_OUTCOMES = ("succeeded", "failed", "unfinished")


@dataclass(frozen=True)
class DayFigures:
    day: date
    #: One figure for each series of the chart.
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def label(self) -> str:
        """The day as an axis says it: "7 Mar"."""
        return f"{self.day.day} {self.day:%b}"


@dataclass(frozen=True)
class DailyFigures:
    """A figure for each day of a run of days, oldest first, split into named series (a bar chart
    stacks them)."""

    series: tuple[str, ...]
    days: tuple[DayFigures, ...]

    @property
    def peak(self) -> int:
        return max((day.total for day in self.days), default=0)

    @property
    def empty(self) -> bool:
        return self.peak == 0

    @property
    def totals(self) -> dict[str, int]:
        return {name: sum(day.counts[name] for day in self.days) for name in self.series}

    @property
    def axis_top(self) -> int:
        """The top of the value axis: the peak rounded up to 1, 2 or 5 times a power of ten."""
        magnitude = 1
        while True:
            for step in (1, 2, 5):
                if step * magnitude >= self.peak:
                    return step * magnitude
            magnitude *= 10

    @property
    def axis_ticks(self) -> tuple[int, ...]:
        """The values the axis names: its ends, and its middle when that is a whole number."""
        top = self.axis_top
        return (0, top // 2, top) if top % 2 == 0 else (0, top)


async def tenants_over_time(session: AsyncSession, today: date, days: int = TENANT_DAYS) -> DailyFigures:
    """How many tenants there were at the end of each of the `days` days up to `today`: every
    tenant row, from its creation (a tenant's past statuses are not kept, so no split by status)."""
    starts = _day_starts(today, days)
    day = _day_of(Tenant.created_at, starts)
    counted = select(day, func.count()).where(Tenant.created_at < starts[-1]).group_by(day)
    per_day: dict[int, int] = dict((await session.execute(counted)).all())
    existing = per_day.get(-1, 0)  # created before the first day
    figures = []
    for index, start in enumerate(starts[:-1]):
        existing += per_day.get(index, 0)
        figures.append(DayFigures(start.date(), {"tenants": existing}))
    return DailyFigures(series=("tenants",), days=tuple(figures))


async def jobs_per_day(session: AsyncSession, today: date, days: int = JOB_DAYS) -> DailyFigures:
    """The jobs created on each of the `days` days up to `today`, by outcome (`JOB_OUTCOMES`)."""
    starts = _day_starts(today, days)
    day = _day_of(Job.created_at, starts)
    counted = (
        select(day, Job.status, func.count())
        .where(Job.created_at >= starts[0], Job.created_at < starts[-1])
        .group_by(day, Job.status)
    )
    counts = [{outcome: 0 for outcome in JOB_OUTCOMES} for _ in starts[:-1]]
    for index, status, count in await session.execute(counted):
        counts[index][_outcome(status)] += count
    return DailyFigures(
        series=JOB_OUTCOMES,
        days=tuple(
            DayFigures(start.date(), day_counts)
            for start, day_counts in zip(starts[:-1], counts, strict=True)
        ),
    )


def _outcome(status: str) -> str:
    return "unfinished" if status in JobStatus.unfinished() else status


def _day_starts(today: date, days: int) -> list[datetime]:
    """Midnight (UTC) at the start of each of the `days` days up to `today`, and after the last."""
    first = today - timedelta(days=days - 1)
    return [datetime.combine(first + timedelta(days=n), time(), tzinfo=UTC) for n in range(days + 1)]


def _day_of(moment: InstrumentedAttribute[datetime], starts: list[datetime]) -> ColumnElement[Any]:
    """Which day a moment falls on: the index of its day in `starts`, -1 before the first day."""
    return case(*((moment < start, index - 1) for index, start in enumerate(starts)))


async def job_seconds_per_day(
    session: AsyncSession, tenant_id: int, today: date, days: int = JOB_DAYS
) -> DailyFigures:
    """How long the tenant's jobs that finished on each of the `days` days up to `today` took,
    in seconds (rounded up), by how they ended. A tenant's jobs of two weeks are few: they are
    added up here rather than by each database's own date arithmetic."""
    starts = _day_starts(today, days)
    finished = await session.execute(
        select(Job.started_at, Job.finished_at, Job.status).where(
            Job.tenant_id == tenant_id,
            Job.started_at.is_not(None),
            Job.finished_at >= starts[0],
            Job.finished_at < starts[-1],
        )
    )
    outcomes = ("succeeded", "failed")
    seconds = [dict.fromkeys(outcomes, 0.0) for _ in starts[:-1]]
    for started_at, finished_at, status in finished:
        if started_at is None or finished_at is None:  # not so: the query asks for finished jobs
            continue
        took = finished_at - started_at
        index = (finished_at.date() - starts[0].date()).days
        seconds[index][status if status in outcomes else "failed"] += took.total_seconds()
    return DailyFigures(
        series=outcomes,
        days=tuple(
            DayFigures(start.date(), {name: math.ceil(value) for name, value in day.items()})
            for start, day in zip(starts[:-1], seconds, strict=True)
        ),
    )
