"""Jobs through Redis and RabbitMQ, run by a real `tenantry worker` process.

The worker learns the test job kinds the way a deployment learns extra ones: TENANTRY_JOB_MODULES."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from services.models import JobStatus
from services.settings import Settings
from tests.services.running import background, tenantry_env, wait_for
from tests.support import RABBITMQ_URL, REDIS_URL, requires_postgres, requires_rabbitmq, requires_redis
from tests.workers import jobkinds
from tests.workers.support import forget_namespace, job, record, runs_of, wait_until_finished
from workers.actors import send_job
from workers.broker import HEARTBEAT_TIMEOUT_SECONDS
from workers.runner import JobQueue

#: Each broker once, each landlord backend once (the full matrix doubles the time and adds little).
PAIRS = [
    pytest.param("postgres", REDIS_URL, id="redis-postgres", marks=[requires_postgres, requires_redis]),
    pytest.param("sqlite", RABBITMQ_URL, id="rabbitmq-sqlite", marks=requires_rabbitmq),
]


@pytest.fixture
def broker_settings(landlord: Settings, broker_url: str) -> Iterator[Settings]:
    """The landlord settings on a real broker, in a namespace of this test's own."""
    configured = dataclasses.replace(landlord, broker_url=broker_url, job_modules=(jobkinds.MODULE,))
    yield configured
    forget_namespace(configured.broker_url, configured.broker_namespace)


def send(settings: Settings, *job_ids: int) -> None:
    """Send job ids as a web process does: its own broker connection, no worker."""
    queue = JobQueue(settings)
    try:
        for job_id in job_ids:
            queue.send(job_id)
    finally:
        queue.stop()


@pytest.mark.parametrize(("database_url", "broker_url"), PAIRS, indirect=["database_url"])
def test_a_tenantry_worker_runs_jobs_once_each(broker_settings: Settings, tmp_path: Path) -> None:
    settings = broker_settings
    ok = record(settings, note="through the broker")
    bad = record(settings, jobkinds.FAILS, message="the backup target is full")
    # One thread, so messages are handled in the order they arrive; sent before the worker starts,
    # as the broker keeps them until someone consumes.
    send(settings, ok.id, bad.id)

    with background(["worker", "--threads", "1"], tenantry_env(settings), tmp_path / "logs") as worker:
        succeeded = wait_until_finished(settings, ok.id, worker=worker)
        failed = wait_until_finished(settings, bad.id, worker=worker)
        assert (succeeded.status, succeeded.error, succeeded.attempts) == (JobStatus.SUCCEEDED, None, 1)
        assert runs_of(settings, ok.id) == {"runs": 1, "note": "through the broker"}
        assert (failed.status, failed.error) == (JobStatus.FAILED, "the backup target is full")

        # The same ids again (a redelivery, a retry, a double click), then a fresh job behind them:
        # once that one is done, the single worker thread has handled the repeats too.
        send(settings, ok.id, bad.id, ok.id)
        behind = record(settings)
        send(settings, behind.id)
        assert wait_until_finished(settings, behind.id, worker=worker).status == JobStatus.SUCCEEDED

        assert runs_of(settings, ok.id)["runs"] == 1
        assert job(settings, ok.id).finished_at == succeeded.finished_at
        assert (job(settings, bad.id).attempts, job(settings, ok.id).attempts) == (1, 1)

        # Two SIGTERMs at once, as `timeout` sends them (to the process, then to its group): it stops.
        worker.process.send_signal(signal.SIGTERM)
        assert worker.stop() == 0, worker.stderr
    assert f"Tenantry worker: 1 thread(s) on {settings.broker_url_for_display}" in worker.stdout
    password = urlsplit(settings.broker_url).password
    assert not password or f":{password}@" not in worker.stdout + worker.stderr


@pytest.mark.parametrize(("database_url", "broker_url"), [PAIRS[0]], indirect=["database_url"])
def test_a_job_a_killed_worker_had_taken_but_not_started_runs_on_another_within_seconds(
    broker_settings: Settings, tmp_path: Path
) -> None:
    """Redis keeps a message a worker has taken until it is acknowledged; a worker SIGKILLed
    before the job started (it held the message ahead, or until its delay) must not keep it from
    the others for a minute or two (Dramatiq's own heartbeat timeout)."""
    settings, delay_seconds = broker_settings, 15
    waiting = record(settings, note="sent with a delay")
    queue = JobQueue(settings)
    try:
        send_job(queue.broker, waiting.id, delay_ms=delay_seconds * 1000)
    finally:
        queue.stop()
    client = redis.Redis.from_url(settings.broker_url)
    delayed = f"{settings.broker_namespace}:{settings.broker_namespace}-jobs.DQ"
    try:
        with background(["worker", "--threads", "1"], tenantry_env(settings), tmp_path / "first") as first:
            wait_for(lambda: client.llen(delayed) == 0, 30, what="the first worker to take the message")
            first.process.kill()
            assert first.process.wait(10) == -signal.SIGKILL
    finally:
        client.close()
    assert job(settings, waiting.id).status == JobStatus.QUEUED  # killed before the message was due

    with background(["worker", "--threads", "1"], tenantry_env(settings), tmp_path / "second") as second:
        timeout = delay_seconds + HEARTBEAT_TIMEOUT_SECONDS + 15  # well under Dramatiq's 60 s
        ran = wait_until_finished(settings, waiting.id, timeout=timeout, worker=second)
        assert second.stop() == 0, second.stderr
    assert (ran.status, runs_of(settings, waiting.id)) == (
        JobStatus.SUCCEEDED,
        {"runs": 1, "note": "sent with a delay"},
    )
