"""Jobs on the embedded broker, run by the in-process Dramatiq worker that `tenantry serve` starts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import update

from services.models import Job, JobStatus
from services.models.types import utcnow
from services.settings import Settings
from tests.support import run_db
from tests.workers import jobkinds
from tests.workers.support import embedded_worker, job, record, runs_of, wait_until_finished
from web.app import create_app
from workers.actors import RUN_JOB
from workers.runner import JobQueue


@pytest.fixture
def queue(landlord: Settings) -> Iterator[JobQueue]:
    # The restart test below goes through start_worker() itself.
    with embedded_worker(landlord) as job_queue:
        yield job_queue


def drain(queue: JobQueue) -> None:
    """Wait until every message sent so far has been delivered and handled (Dramatiq's own test aid)."""
    queue.broker.join(queue.broker.get_actor(RUN_JOB).queue_name, timeout=20_000)
    assert queue.worker is not None
    queue.worker.join()


def test_a_recorded_job_runs_to_success(landlord: Settings, queue: JobQueue) -> None:
    recorded = record(landlord, note="hello")
    assert recorded.status == JobStatus.QUEUED

    queue.send(recorded.id)

    done = wait_until_finished(landlord, recorded.id)
    assert (done.status, done.error, done.attempts) == (JobStatus.SUCCEEDED, None, 1)
    assert done.started_at is not None and done.finished_at is not None
    assert done.started_at <= done.finished_at
    assert runs_of(landlord, recorded.id) == {"runs": 1, "note": "hello"}


def test_a_failing_handler_marks_the_job_failed_with_its_error(landlord: Settings, queue: JobQueue) -> None:
    recorded = record(landlord, jobkinds.FAILS, message="the tenant store is unreachable")

    queue.send(recorded.id)

    done = wait_until_finished(landlord, recorded.id)
    assert done.status == JobStatus.FAILED
    assert done.error == "the tenant store is unreachable"
    assert done.finished_at is not None
    drain(queue)
    assert job(landlord, recorded.id).attempts == 1, "the failure is recorded, not retried by the broker"


def test_a_job_of_a_kind_this_version_cannot_run_fails_plainly(landlord: Settings, queue: JobQueue) -> None:
    async def insert(session: Any) -> Job:
        # As if a newer version of Tenantry had recorded it.
        unknown = Job(kind="test.from_the_future", payload={})
        session.add(unknown)
        await session.flush()
        return unknown

    recorded = run_db(landlord, insert)

    queue.send(recorded.id)

    done = wait_until_finished(landlord, recorded.id)
    assert done.status == JobStatus.FAILED
    assert "test.from_the_future" in (done.error or "")


def test_a_finished_job_is_not_run_again_when_its_message_is_sent_again(
    landlord: Settings, queue: JobQueue
) -> None:
    succeeded = record(landlord)
    failed = record(landlord, jobkinds.FAILS, message="no")
    queue.send(succeeded.id)
    queue.send(failed.id)
    first = {j.id: wait_until_finished(landlord, j.id) for j in (succeeded, failed)}

    for _ in range(2):
        queue.send(succeeded.id)
        queue.send(failed.id)
    drain(queue)

    assert runs_of(landlord, succeeded.id)["runs"] == 1
    for job_id, before in first.items():
        after = job(landlord, job_id)
        assert (after.status, after.attempts, after.finished_at, after.error) == (
            before.status,
            1,
            before.finished_at,
            before.error,
        )


def test_no_job_is_lost_when_the_embedded_worker_restarts(landlord: Settings) -> None:
    """Jobs recorded while no worker ran, and one the dead process had claimed, finish after a start."""
    waiting = record(landlord, note="recorded while the portal was down")
    interrupted = record(landlord, note="was running when the process died")

    async def die_while_running(session: Any) -> None:
        await session.execute(
            update(Job)
            .where(Job.id == interrupted.id)
            .values(status=JobStatus.RUNNING, attempts=1, started_at=utcnow())
        )

    run_db(landlord, die_while_running)
    assert job(landlord, waiting.id).status == JobStatus.QUEUED

    with TestClient(create_app(landlord), base_url="http://127.0.0.1:8000") as client:
        finished = {j.id: wait_until_finished(landlord, j.id) for j in (waiting, interrupted)}
        assert client.get("/healthz").json()["status"] == "ok"

    assert {j.status for j in finished.values()} == {JobStatus.SUCCEEDED}
    assert finished[waiting.id].attempts == 1
    assert finished[interrupted.id].attempts == 2
    assert runs_of(landlord, waiting.id)["runs"] == 1
    assert runs_of(landlord, interrupted.id)["runs"] == 1
