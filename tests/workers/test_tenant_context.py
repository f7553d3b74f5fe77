"""The tenant context travels with the job's message: written into its options when it is sent,
kept when Dramatiq's Retries sends it again, and required by a tenant's job when it runs."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq.middleware import Retries

from services import jobs
from services.db import Database
from services.models import IsolationMode, JobStatus, StepStatus, TenantStatus
from services.provisioning.tenants import PROVISIONING_STEP_NAMES
from services.settings import Settings
from services.tenancy.context import current_tenant_id, tenant_context
from services.tenancy.stores import plan_store, store_exists
from tests.support import requires_postgres
from tests.workers.support import (
    assert_provisioned,
    drop_tenant_databases,
    request,
    steps_of,
    tenant,
    wait_until_active,
    wait_until_finished,
)
from workers.actors import RUN_JOB
from workers.context import TENANT_OPTION
from workers.runner import JobQueue


class Recorder(dramatiq.Middleware):
    """What the broker enqueued and what the worker took, with each message's options."""

    def __init__(self) -> None:
        self.enqueued: list[dramatiq.Message[Any]] = []
        self.processed: list[dict[str, Any]] = []

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None
    ) -> None:
        self.enqueued.append(message)

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        self.processed.append(dict(message.options))


@pytest.fixture
def stores(landlord: Settings) -> Iterator[Settings]:
    yield landlord
    drop_tenant_databases(landlord.database_url)


def test_a_job_is_sent_with_its_tenant_in_the_message_options(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'landlord.db'}",
        broker_url="embedded",
        secret_key="not-used",
        admin_email="admin@localhost",
        broker_namespace=f"test-{secrets.token_hex(4)}",
    )
    queue = JobQueue(settings)  # a StubBroker, and no worker: the messages stay in its queue
    try:
        queue.send(41, 7)
        queue.send(42)
        with tenant_context(9):  # sent while serving another tenant: each job names its own
            queue.send(43, 7)
            queue.send(44)
        queued = queue.broker.queues[f"{settings.broker_namespace}-jobs"]
        messages = [dramatiq.Message.decode(data) for data in list(queued.queue)]
    finally:
        queue.stop()

    assert [(message.actor_name, message.args) for message in messages] == [
        (RUN_JOB, (job_id,)) for job_id in (41, 42, 43, 44)
    ]
    assert [message.options.get(TENANT_OPTION) for message in messages] == [7, None, 7, None]
    assert TENANT_OPTION not in messages[1].options


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_message_retried_by_dramatiq_keeps_its_tenant(
    landlord: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, job = request(landlord, "retry-club")
    queue = JobQueue(landlord)
    recorder = Recorder()
    queue.broker.add_middleware(recorder)
    retries = next(m for m in queue.broker.middleware if isinstance(m, Retries))
    monkeypatch.setattr(retries, "min_backoff", 20)  # retry in milliseconds, not in 15 s

    real_perform_job = jobs.perform_job
    contexts: list[int | None] = []

    async def landlord_unreachable_once(
        database: Database, job_id: int, settings: Settings, *, share_workers: bool = False
    ) -> None:
        contexts.append(current_tenant_id())
        if len(contexts) == 1:
            raise ConnectionError("the landlord database is restarting")
        await real_perform_job(database, job_id, settings, share_workers=share_workers)

    monkeypatch.setattr(jobs, "perform_job", landlord_unreachable_once)
    queue.start_worker()
    try:
        queue.send(job.id, job.tenant_id)
        wait_until_active(landlord, "retry-club")
    finally:
        queue.stop()

    # Sent; sent again by Retries to the delay queue; moved back to the queue when its delay passed.
    sent, retried, due = recorder.enqueued
    jobs_queue = sent.queue_name
    assert [m.queue_name for m in recorder.enqueued] == [jobs_queue, f"{jobs_queue}.DQ", jobs_queue]
    assert {m.message_id for m in recorder.enqueued} == {sent.message_id}
    assert sent.options[TENANT_OPTION] == found.id
    assert (retried.options["retries"], retried.options[TENANT_OPTION]) == (1, found.id)
    assert (due.options["retries"], due.options[TENANT_OPTION]) == (1, found.id)
    assert [options[TENANT_OPTION] for options in recorder.processed] == [found.id, found.id]
    assert contexts == [found.id, found.id], "each delivery ran inside the tenant's context"
    assert_provisioned(landlord, "retry-club")


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgres", marks=requires_postgres)], indirect=True
)
def test_a_tenant_job_sent_without_its_tenant_is_refused(stores: Settings) -> None:
    found, job = request(stores, "no-context-club")
    queue = JobQueue(stores)
    queue.start_worker()
    try:
        # Not through JobQueue.send: straight to the actor, outside any tenant context.
        queue.broker.get_actor(RUN_JOB).send(job.id)
        done = wait_until_finished(stores, job.id)
    finally:
        queue.stop()

    assert done.status == JobStatus.FAILED
    assert done.error is not None
    assert "ran outside its context" in done.error and f"tenant {found.id}" in done.error, done.error
    assert [(step.status, step.attempts) for step in steps_of(stores, job.id)] == [
        (StepStatus.PENDING, 0)
    ] * len(PROVISIONING_STEP_NAMES), "no step ran"
    after = tenant(stores, "no-context-club")
    assert (after.store_backend, after.store_name) == (None, None)
    assert after.status != TenantStatus.ACTIVE
    planned = plan_store(stores, "no-context-club", IsolationMode.DATABASE)
    assert not asyncio.run(store_exists(planned)), "no store was allocated"
    assert not (stores.data_dir / "tenants").exists() or not any((stores.data_dir / "tenants").iterdir())
