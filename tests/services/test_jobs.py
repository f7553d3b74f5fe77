"""services.jobs against the landlord database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, update

from services import jobs
from services.db import Database
from services.models import Job, JobStatus
from services.settings import Settings
from tests.services.running import migrate
from tests.support import run_db
from tests.workers import jobkinds


@pytest.fixture
def landlord(settings: Settings) -> Settings:
    return migrate(settings)


def test_only_known_kinds_are_recorded(landlord: Settings) -> None:
    with pytest.raises(ValueError, match=r"no handler for jobs of kind 'test\.nobody_handles_this'"):
        run_db(landlord, lambda s: jobs.record_job(s, "test.nobody_handles_this"))
    assert run_db(landlord, lambda s: s.scalar(select(func.count()).select_from(Job))) == 0


def test_two_deliveries_at_once_run_the_job_once(landlord: Settings) -> None:
    recorded = run_db(landlord, lambda s: jobs.record_job(s, jobkinds.RECORDS_A_RUN))

    async def deliver_twice() -> tuple[dict[str, Any], Job]:
        database = Database(landlord.database_url)
        try:
            await asyncio.gather(*(jobs.perform_job(database, recorded.id, landlord) for _ in range(2)))
            async with database.session() as session:
                return await jobkinds.runs_of(session, recorded.id), await session.get_one(Job, recorded.id)
        finally:
            await database.dispose()

    runs, done = asyncio.run(deliver_twice())
    assert runs["runs"] == 1
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)


def test_after_a_restart_unfinished_jobs_are_queued_again_and_finished_ones_left(landlord: Settings) -> None:
    async def jobs_in_every_state(session: Any) -> dict[str, int]:
        ids = {}
        for status in JobStatus:
            job = await jobs.record_job(session, jobkinds.RECORDS_A_RUN)
            await session.execute(update(Job).where(Job.id == job.id).values(status=status))
            ids[status.value] = job.id
        return ids

    ids = run_db(landlord, jobs_in_every_state)

    requeued = run_db(landlord, jobs.requeue_orphaned_jobs)

    assert [job.id for job in requeued] == sorted([ids["queued"], ids["running"]])
    states = run_db(landlord, lambda s: s.execute(select(Job.id, Job.status)))
    assert dict(states.all()) == {
        ids["queued"]: JobStatus.QUEUED,
        ids["running"]: JobStatus.QUEUED,
        ids["succeeded"]: JobStatus.SUCCEEDED,
        ids["failed"]: JobStatus.FAILED,
    }
