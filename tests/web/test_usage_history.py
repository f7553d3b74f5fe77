"""A tenant's usage over time: each measure kept as the day's sample (its settings page, its
landlord page, the workers' daily round of every active tenant), drawn day by day on both pages,
a day without a measure showing the one before it; and the time its jobs took each day."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.models import Job, UsageSample
from services.models.types import utcnow
from services.settings import Settings
from services.tenant_usage import SAMPLE_USAGE, request_due_usage_round
from tests.support import Credentials, run_db, signed_in
from tests.web.portal import portal
from tests.web.tenant_world import (
    add_admin,
    add_rows,
    add_units,
    no_stores_left_behind,  # noqa: F401  (autouse fixture)
    provision,
    run_as_worker,
)

SLUG = "wren-club"


def samples(settings: Settings) -> dict[date, tuple[int | None, int, int]]:
    async def work(session: AsyncSession) -> dict[date, tuple[int | None, int, int]]:
        rows = await session.scalars(select(UsageSample).order_by(UsageSample.day))
        return {row.day: (row.storage_bytes, row.rows, row.people) for row in rows}

    return run_db(settings, work)


def add_sample(settings: Settings, tenant_id: int, day: date, storage_bytes: int, rows: int) -> None:
    async def work(session: AsyncSession) -> None:
        session.add(
            UsageSample(tenant_id=tenant_id, day=day, storage_bytes=storage_bytes, rows=rows, people=1)
        )

    run_db(settings, work)


def chart_figures(page: str, chart: str) -> list[tuple[str, str]]:
    """The text alternative of a chart: (day, figure) for each day."""
    table = re.search(rf'<table class="visually-hidden" id="{chart}-figures">(.*?)</table>', page, re.DOTALL)
    assert table, f"no {chart} on the page"
    return re.findall(r'<time datetime="([^"]+)">[^<]*</time></th>\s*<td>(\d+)</td>', table.group(1))


def test_each_measure_is_the_days_sample_and_both_pages_draw_them_day_by_day(
    settings: Settings, superadmin: Credentials
) -> None:
    tenant_id = provision(settings, SLUG)
    units = add_units(settings, SLUG, [("Riverbank", None)])
    add_rows(
        settings, SLUG, "groups", [{"name": f"Group {n}", "unit_id": units["Riverbank"]} for n in range(3)]
    )
    admin = add_admin(settings, SLUG, "admin@wren.example")
    today = utcnow().date()
    add_sample(settings, tenant_id, today - timedelta(days=5), 3 * 1024 * 1024, 1)
    add_sample(settings, tenant_id, today - timedelta(days=3), 5 * 1024 * 1024, 2)

    with portal(settings) as client:
        signed_in(client, admin)
        page = client.get(f"/t/{SLUG}/settings").text
    storage, rows, people = samples(settings)[today]
    assert storage and storage > 0 and (rows, people) == (3, 1), "today's measure is kept"
    assert chart_figures(page, "usage-history-rows") == [
        ((today - timedelta(days=5)).isoformat(), "1"),
        ((today - timedelta(days=4)).isoformat(), "1"),  # no measure that day: the one before
        ((today - timedelta(days=3)).isoformat(), "2"),
        ((today - timedelta(days=2)).isoformat(), "2"),
        ((today - timedelta(days=1)).isoformat(), "2"),
        (today.isoformat(), "3"),
    ]
    assert chart_figures(page, "usage-history-storage")[:3] == [
        ((today - timedelta(days=5)).isoformat(), "3"),
        ((today - timedelta(days=4)).isoformat(), "3"),
        ((today - timedelta(days=3)).isoformat(), "5"),
    ]
    assert "of the 2000 MB allowed" in page

    with portal(settings) as client:
        signed_in(client, superadmin)
        landlord_page = client.get(f"/tenants/{SLUG}").text
    assert chart_figures(landlord_page, "usage-history-rows")[-1] == (today.isoformat(), "3")
    job_time = chart_figures(landlord_page, "job-time-chart")
    assert job_time[-1][0] == today.isoformat() and int(job_time[-1][1]) >= 0, "its provisioning, today"


def test_the_workers_measure_every_active_tenant_once_a_day(
    settings: Settings, superadmin: Credentials
) -> None:
    provision(settings, SLUG)
    provision(settings, "kite-club")

    async def round_of_the_day() -> tuple[Job | None, Job | None, Job | None]:
        landlord = Database(settings.database_url)
        try:
            assert await request_due_usage_round(landlord, settings) is None, "no round unless set"
            daily = dataclasses.replace(settings, usage_round_hours=24)
            first, second = (
                await request_due_usage_round(landlord, daily),
                await request_due_usage_round(landlord, daily),
            )
            done = await run_as_worker(landlord, settings, first) if first is not None else None
            return first, second, done
        finally:
            await landlord.dispose()

    first, second, done = asyncio.run(round_of_the_day())
    assert first is not None and first.kind == SAMPLE_USAGE
    assert second is None, "one round a day, whichever worker asks"
    assert done is not None and done.status == "succeeded", done.error if done else None
    today = utcnow().date()
    assert (
        len(run_db(settings, lambda s: s.scalars(select(UsageSample).where(UsageSample.day == today))).all())
        == 2
    )
