"""Workers shared fairly between tenants: tenant A has 200 jobs queued, then tenant B asks for
one; B's job starts before A's third is done (one worker for A while B waits, not 200 jobs
ahead of B). In process on the embedded broker, and in a `tenantry worker` on Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.models import Job, JobStatus
from services.settings import Settings
from services.tenancy.tenants import register_tenant
from tests.services.running import background, tenantry_env
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.workers import jobkinds
from tests.workers.support import embedded_worker, forget_namespace, wait_until_finished
from workers.runner import JobQueue

A_JOBS = 200
#: How long each of A's jobs works: long beside a claim (a few milliseconds), short for a backup.
A_SECONDS = 1.0


def two_tenants_jobs(settings: Settings) -> tuple[list[int], int]:
    """A's 200 jobs, then B's one, recorded (committed, queued) in that order."""

    async def work(session: AsyncSession) -> tuple[list[int], int]:
        a, b = [
            await register_tenant(
                session, slug=slug, name=slug.title(), template="community_group", isolation="database"
            )
            for slug in ("noisy", "quiet")
        ]
        a_jobs = [
            (
                await jobs.record_job(
                    session, jobkinds.WORKS_A_WHILE, tenant_id=a.id, payload={"seconds": A_SECONDS}
                )
            ).id
            for _ in range(A_JOBS)
        ]
        b_job = await jobs.record_job(session, jobkinds.WORKS_A_WHILE, tenant_id=b.id, payload={"seconds": 0})
        await session.commit()
        return a_jobs, b_job.id

    return run_db(settings, work)


def send_all(sender: JobQueue, settings: Settings, job_ids: list[int]) -> None:
    """Send the jobs in this order, each in its tenant's context."""
    tenants = dict(run_db(settings, lambda session: session.execute(select(Job.id, Job.tenant_id))).all())
    for job_id in job_ids:
        sender.send(job_id, tenants[job_id])


def assert_b_went_before_as_third(settings: Settings, a_jobs: list[int], b_job: int) -> None:
    b = wait_until_finished(settings, b_job, timeout=60)
    assert b.status == JobStatus.SUCCEEDED, b.error
    finished = run_db(
        settings,
        lambda session: session.scalars(
            select(Job.finished_at).where(Job.id.in_(a_jobs)).order_by(Job.finished_at)
        ),
    )
    a_done = [at for at in finished if at is not None]
    assert b.started_at is not None
    assert len(a_done) < 3 or b.started_at < a_done[2], (b.started_at, a_done[:3])


@pytest.fixture
def embedded_queue(landlord: Settings) -> Iterator[JobQueue]:
    with embedded_worker(landlord) as queue:
        yield queue


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_the_embedded_broker_b_starts_before_as_third_job_is_done(
    landlord: Settings, embedded_queue: JobQueue
) -> None:
    a_jobs, b_job = two_tenants_jobs(landlord)

    send_all(embedded_queue, landlord, [*a_jobs, b_job])

    assert_b_went_before_as_third(landlord, a_jobs, b_job)


@requires_redis
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
def test_on_redis_b_starts_before_as_third_job_is_done(landlord: Settings, tmp_path: Path) -> None:
    assert REDIS_URL
    settings = dataclasses.replace(landlord, broker_url=REDIS_URL, job_modules=(jobkinds.MODULE,))
    a_jobs, b_job = two_tenants_jobs(settings)
    sender = JobQueue(settings)
    try:
        with background(["worker", "--threads", "2"], tenantry_env(settings), tmp_path) as worker:
            send_all(sender, settings, [*a_jobs, b_job])
            assert_b_went_before_as_third(settings, a_jobs, b_job)
            worker.check_running()
    finally:
        sender.stop()
        forget_namespace(settings.broker_url, settings.broker_namespace)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tenant_alone_runs_side_by_side_up_to_its_share(landlord: Settings) -> None:
    """With no one else waiting, a tenant's jobs take the free workers, up to TENANTRY_JOBS_PER_TENANT
    (2): of three jobs on three workers, two run side by side and the third after one of them."""
    with embedded_worker(landlord, threads=3) as queue:

        async def work(session: AsyncSession) -> list[int]:
            tenant = await register_tenant(
                session, slug="alone", name="Alone", template="community_group", isolation="database"
            )
            recorded = [
                await jobs.record_job(
                    session, jobkinds.WORKS_A_WHILE, tenant_id=tenant.id, payload={"seconds": 0.5}
                )
                for _ in range(3)
            ]
            await session.commit()
            return [job.id for job in recorded]

        recorded = run_db(landlord, work)
        send_all(queue, landlord, recorded)
        done = [wait_until_finished(landlord, job_id) for job_id in recorded]

    assert {job.status for job in done} == {JobStatus.SUCCEEDED}
    first, second, third = sorted(ran(job) for job in done)
    assert second[0] < first[1], "two ran side by side"
    assert third[0] >= min(first[1], second[1]), "the third waited for one of them"


def ran(job: Job) -> tuple[datetime, datetime]:
    """When a finished job started and finished."""
    assert job.started_at is not None and job.finished_at is not None
    return job.started_at, job.finished_at
