"""The pictures: tenants over time and jobs per day on the landlord dashboard, counted per UTC day
in the landlord database, and a job's steps in time on its page; each with its figures in words
for those who cannot see it, and an empty installation told so rather than drawn."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar.testing import TestClient
from pytest import approx
from sqlalchemy.ext.asyncio import AsyncSession

from services.charts import DailyFigures, DayFigures, jobs_per_day, tenants_over_time
from services.models import Job, JobStatus, JobStep, StepStatus
from services.models.types import utcnow
from services.settings import Settings
from services.tenancy.tenants import register_tenant
from tests.support import run_db
from tests.web.portal import add_tenant

TODAY = date(2025, 3, 30)


def at(day: date, clock: str = "12:00") -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), UTC)


def days_ago(count: int, today: date = TODAY) -> date:
    return today - timedelta(days=count)


def label(day: date) -> str:
    """A day as the charts name it."""
    return f"{day.day} {day:%b}"


def add_tenants_created(settings: Settings, *moments: datetime) -> None:
    async def work(session: AsyncSession) -> None:
        for number, moment in enumerate(moments):
            tenant = await register_tenant(
                session,
                slug=f"tenant-{number}",
                name=f"Tenant {number}",
                template="community_group",
                isolation="database",
            )
            tenant.created_at = moment
        await session.commit()

    run_db(settings, work)


def add_jobs_created(settings: Settings, *jobs: tuple[datetime, JobStatus]) -> None:
    async def work(session: AsyncSession) -> None:
        session.add_all(Job(kind="provision", status=status, created_at=moment) for moment, status in jobs)
        await session.commit()

    run_db(settings, work)


def counted(
    settings: Settings, count: Callable[[AsyncSession, date], Awaitable[DailyFigures]]
) -> DailyFigures:
    async def work(session: AsyncSession) -> DailyFigures:
        return await count(session, TODAY)

    return run_db(settings, work)


def by_day(figures: DailyFigures) -> dict[date, dict[str, int]]:
    return {day.day: day.counts for day in figures.days}


def text_of(markup: str) -> str:
    """What a screen reader reads of `markup`: its text, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def element(page: str, tag: str, element_id: str) -> str:
    """The markup of the element `<tag id="element_id">` (not nested in one of its own kind)."""
    found = re.search(rf'<{tag}\b[^>]*\bid="{element_id}".*?</{tag}>', page, re.S)
    assert found, f"no <{tag} id={element_id!r}> on the page"
    return found.group(0)


def table_rows(page: str, table_id: str) -> dict[str, list[int]]:
    """A chart's table of figures: each day (ISO) and its figures in the order of the columns."""
    rows = re.findall(
        r'<th scope="row"><time datetime="([^"]+)">[^<]*</time></th>\s*((?:<td>\d+</td>)+)',
        element(page, "table", table_id),
    )
    return {day: [int(cell) for cell in re.findall(r"<td>(\d+)</td>", cells)] for day, cells in rows}


# --- The figures -------------------------------------------------------------------------------


def test_tenants_are_counted_at_the_end_of_each_of_the_last_30_days(settings: Settings) -> None:
    add_tenants_created(
        settings,
        at(date(2025, 1, 1)),
        at(days_ago(40)),
        at(days_ago(25), "23:59:59.999999"),
        at(days_ago(2), "00:00"),
        at(days_ago(2)),
        at(TODAY),
        at(TODAY + timedelta(days=1), "00:00"),  # tomorrow: not yet
    )

    figures = by_day(counted(settings, tenants_over_time))

    assert list(figures) == [days_ago(29 - n) for n in range(30)], "30 days, the oldest first, today last"
    expected = {day: 2 for day in figures}
    expected |= {days_ago(n): 3 for n in range(25, 2, -1)}
    expected |= {days_ago(2): 5, days_ago(1): 5, TODAY: 6}
    assert {day: counts["tenants"] for day, counts in figures.items()} == expected


def test_jobs_per_day_over_the_last_14_days_say_how_many_succeeded_failed_or_are_unfinished(
    settings: Settings,
) -> None:
    add_jobs_created(
        settings,
        (at(days_ago(14), "23:59:59"), JobStatus.FAILED),  # the day before the first: left out
        (at(days_ago(13), "00:00"), JobStatus.SUCCEEDED),
        (at(days_ago(13)), JobStatus.FAILED),
        (at(days_ago(1), "23:59:59.999999"), JobStatus.SUCCEEDED),
        (at(TODAY, "00:00"), JobStatus.SUCCEEDED),
        (at(TODAY), JobStatus.SUCCEEDED),
        (at(TODAY), JobStatus.FAILED),
        (at(TODAY), JobStatus.RUNNING),
        (at(TODAY), JobStatus.QUEUED),
    )

    figures = counted(settings, jobs_per_day)

    none = {"succeeded": 0, "failed": 0, "unfinished": 0}
    assert by_day(figures) == {days_ago(13 - n): none for n in range(14)} | {
        days_ago(13): {"succeeded": 1, "failed": 1, "unfinished": 0},
        days_ago(1): {"succeeded": 1, "failed": 0, "unfinished": 0},
        TODAY: {"succeeded": 2, "failed": 1, "unfinished": 2},
    }
    assert figures.totals == {"succeeded": 4, "failed": 2, "unfinished": 2}
    assert (figures.peak, figures.axis_top, figures.axis_ticks) == (5, 5, (0, 5))


def test_an_axis_ends_on_a_round_number_at_or_above_the_busiest_day() -> None:
    def axis(peak: int) -> tuple[int, tuple[int, ...]]:
        figures = DailyFigures(series=("jobs",), days=(DayFigures(TODAY, {"jobs": peak}),))
        return figures.axis_top, figures.axis_ticks

    assert axis(0) == (1, (0, 1))
    assert axis(2) == (2, (0, 1, 2))
    assert axis(3) == (5, (0, 5))
    assert axis(7) == (10, (0, 5, 10))
    assert axis(180) == (200, (0, 100, 200))


# --- The dashboard -----------------------------------------------------------------------------


def test_the_dashboard_draws_tenants_and_jobs_over_time_and_says_their_figures(
    settings: Settings, superadmin_client: TestClient[Any]
) -> None:
    today = utcnow().date()
    add_tenants_created(settings, at(days_ago(45, today)), at(days_ago(3, today)), at(days_ago(1, today)))
    add_jobs_created(
        settings,
        (at(days_ago(3, today)), JobStatus.SUCCEEDED),
        (at(days_ago(3, today)), JobStatus.SUCCEEDED),
        (at(days_ago(1, today)), JobStatus.SUCCEEDED),
        (at(days_ago(1, today)), JobStatus.FAILED),
        (at(days_ago(1, today), "00:00"), JobStatus.QUEUED),
    )

    page = superadmin_client.get("/").text

    tenants = element(page, "article", "tenants-over-time")
    assert "Tenants over the last 30 days" in tenants
    assert '<svg role="img" aria-labelledby="tenants-chart-title tenants-chart-desc"' in tenants
    assert text_of(element(tenants, "desc", "tenants-chart-desc")) == (
        f"From 1 on {label(days_ago(29, today))} to 3 on {label(today)}; at most 3."
    )
    counts = table_rows(tenants, "tenants-chart-figures")
    assert len(counts) == 30
    assert counts[days_ago(4, today).isoformat()] == [1]
    assert counts[days_ago(2, today).isoformat()] == [2]
    assert counts[today.isoformat()] == [3]

    jobs = element(page, "article", "jobs-per-day")
    assert "Jobs per day (last 14 days)" in jobs
    assert text_of(element(jobs, "desc", "jobs-chart-desc")) == (
        f"From {label(days_ago(13, today))} to {label(today)}: 5 in all (3 succeeded, 1 failed, "
        f"1 queued or running); the most, 3, on {label(days_ago(1, today))}."
    )
    assert re.search(r"failed\s*<strong>1</strong>", jobs), "the legend shows the failures"
    counts = table_rows(jobs, "jobs-chart-figures")
    assert len(counts) == 14
    assert counts[days_ago(3, today).isoformat()] == [2, 0, 0]
    assert counts[days_ago(1, today).isoformat()] == [1, 1, 1]
    assert counts[today.isoformat()] == [0, 0, 0]
    assert jobs.count('fill="#b42318"') == 2, "one failed segment, and its swatch in the legend"


def test_an_empty_installation_says_there_is_nothing_to_draw_yet(superadmin_client: TestClient[Any]) -> None:
    response = superadmin_client.get("/")

    assert response.status_code == 200
    tenants = element(response.text, "article", "tenants-over-time")
    jobs = element(response.text, "article", "jobs-per-day")
    assert "No tenants yet." in tenants and "<svg" not in tenants
    assert "No jobs in the last 14 days." in jobs and "<svg" not in jobs


# --- A job's steps in time ---------------------------------------------------------------------

#: A step: its name, its status, and when it started and ended, in seconds from the job's start.
Step = tuple[str, StepStatus, float | None, float | None]


def add_job(
    settings: Settings, tenant_id: int, status: JobStatus, started: datetime, steps: list[Step]
) -> None:
    """A provisioning job of the tenant, started at `started`; finished, if it is, with its last step."""

    def moment(seconds: float | None) -> datetime | None:
        return None if seconds is None else started + timedelta(seconds=seconds)

    async def work(session: AsyncSession) -> None:
        ends = [end for *_, end in steps if end is not None]
        session.add(
            Job(
                kind="provision",
                tenant_id=tenant_id,
                status=status,
                started_at=started,
                finished_at=None if status in JobStatus.unfinished() else moment(max(ends)),
                steps=[
                    JobStep(
                        position=position,
                        name=name,
                        status=state,
                        started_at=moment(start),
                        finished_at=moment(end),
                    )
                    for position, (name, state, start, end) in enumerate(steps)
                ],
            )
        )
        await session.commit()

    run_db(settings, work)


def segments(timeline: str) -> dict[str, tuple[float, float, str]]:
    """Each step drawn on the timeline: where its segment starts and how wide it is (percentages
    of the bar, to a thousandth), and its colour."""
    drawn = re.findall(
        r'<rect x="([\d.e-]+)%" width="([\d.e-]+)%" height="24"\s+fill="([^"]+)"[^>]*>\s*<title>([^:<]+):',
        timeline,
    )
    return {name: (float(x), float(width), fill) for x, width, fill, name in drawn}


def test_a_finished_job_shows_each_step_as_a_segment_as_long_as_it_took(
    settings: Settings, superadmin_client: TestClient[Any]
) -> None:
    tenant = add_tenant(settings, "kestrel-trust")
    add_job(
        settings,
        tenant.id,
        JobStatus.FAILED,
        at(date(2025, 3, 30), "09:00"),
        [
            ("validate", StepStatus.SUCCEEDED, 0, 0.5),
            ("allocate store", StepStatus.SUCCEEDED, 0.5, 2),
            ("apply layers", StepStatus.FAILED, 2, 6),
            ("seed", StepStatus.PENDING, None, None),
        ],
    )

    page = superadmin_client.get("/tenants/kestrel-trust").text

    timeline = element(page, "div", "job-timeline")
    assert text_of(element(timeline, "desc", "job-timeline-desc")) == (
        "3 steps over 6.00 s; the longest, apply layers, took 4.00 s."
    )
    drawn = segments(timeline)
    assert drawn.keys() == {"validate", "allocate store", "apply layers"}, "a step not started is not drawn"
    assert drawn["validate"][:2] == approx((0, 100 * 0.5 / 6), abs=0.001)
    assert drawn["allocate store"][:2] == approx((100 * 0.5 / 6, 100 * 1.5 / 6), abs=0.001)
    assert drawn["apply layers"][:2] == approx((100 * 2 / 6, 100 * 4 / 6), abs=0.001)
    assert [fill for *_, fill in drawn.values()] == ["#1e7b4a", "#1e7b4a", "#b42318"], "failed in red"
    assert [
        text_of(item)
        for item in re.findall(r"<li>.*?</li>", element(timeline, "ol", "job-timeline-steps"), re.S)
    ] == [
        "validate: 0.50 s, from 0.00 s (succeeded)",
        "allocate store: 1.50 s, from 0.50 s (succeeded)",
        "apply layers: 4.00 s, from 2.00 s (failed)",
    ]
    assert 'data-step="seed"' in element(page, "ol", "job-steps"), "every step is still listed"


def test_a_running_job_draws_its_running_step_up_to_now_and_a_queued_one_no_timeline(
    settings: Settings, superadmin_client: TestClient[Any]
) -> None:
    tenant = add_tenant(settings, "kestrel-trust")
    add_job(
        settings,
        tenant.id,
        JobStatus.RUNNING,
        utcnow() - timedelta(seconds=10),
        [("validate", StepStatus.SUCCEEDED, 0, 2), ("allocate store", StepStatus.RUNNING, 2, None)],
    )

    page = superadmin_client.get("/tenants/kestrel-trust").text

    timeline = element(page, "div", "job-timeline")
    assert text_of(element(timeline, "desc", "job-timeline-desc")).endswith("; still running.")
    running = segments(timeline)["allocate store"]
    assert running[0] + running[1] == approx(100, abs=0.002), "it reaches the end of the bar: now"
    assert running[2] == "#8a5100"

    add_job(settings, tenant.id, JobStatus.QUEUED, utcnow(), [("validate", StepStatus.PENDING, None, None)])
    page = superadmin_client.get("/tenants/kestrel-trust").text
    assert 'id="job-timeline"' not in page
    assert 'data-step="validate"' in element(page, "ol", "job-steps")
