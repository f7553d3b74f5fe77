"""The lease a worker holds on a running job: kept alive while the job runs, even when one renewal
fails (a landlord database restarting). A lease left to lapse would let a second worker take over a
job that is still running."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.models import Job, JobStatus
from services.models.types import utcnow
from services.settings import Settings
from tests.workers.support import job, record

#: Runs for payload["seconds"], then fails unless its lease is still alive.
OUTLIVES_ITS_LEASE = "test.outlives_its_lease"


@jobs.job_handler(OUTLIVES_ITS_LEASE)
async def outlives_its_lease(database: Database, running: Job, *_context: object) -> None:
    await asyncio.sleep(running.payload["seconds"])
    async with database.session() as session:
        lease = (await session.get_one(Job, running.id)).lease_expires_at
    if lease is None or lease <= utcnow():
        raise RuntimeError(f"the lease lapsed while the job ran (it expired at {lease})")


class RestartingLandlord(Database):
    """The landlord database, unreachable for the `unreachable`-th session opened on it."""

    def __init__(self, url: str, unreachable: int) -> None:
        super().__init__(url)
        self.opened, self.unreachable = 0, unreachable

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        self.opened += 1
        if self.opened == self.unreachable:
            raise ConnectionError("the landlord database is restarting")
        async with super().session() as session:
            yield session


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_lease_renewal_does_not_end_the_lease(landlord: Settings) -> None:
    settings = dataclasses.replace(landlord, job_lease_seconds=0.3)  # renewed every 0.1 s
    long_job = record(settings, OUTLIVES_ITS_LEASE, seconds=0.8)

    async def run() -> None:
        # Session 1 claims the job, session 2 is its first lease renewal.
        database = RestartingLandlord(settings.database_url, unreachable=2)
        try:
            await jobs.perform_job(database, long_job.id, settings)
        finally:
            await database.dispose()

    asyncio.run(run())

    done = job(settings, long_job.id)
    assert (done.status, done.error, done.attempts) == (JobStatus.SUCCEEDED, None, 1)
    assert done.lease_expires_at is None
