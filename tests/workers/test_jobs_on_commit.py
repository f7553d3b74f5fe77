"""Jobs are sent on commit: a job recorded in a transaction reaches the broker once that
transaction has committed, and never when it (or the savepoint it was recorded in) rolls back.
On the embedded broker with no worker, so every message sent stays in its queue to be counted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import dramatiq
import pytest
from sqlalchemy import select

from services import jobs
from services.db import Database
from services.errors import Conflict
from services.models import Job
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import Settings
from tests.workers import jobkinds
from tests.workers.support import MODULES, TEMPLATE
from workers.context import TENANT_OPTION
from workers.runner import JobQueue

T = TypeVar("T")


@pytest.fixture
def queue(landlord: Settings) -> Iterator[JobQueue]:
    job_queue = JobQueue(landlord)  # a StubBroker, and no worker: what is sent stays in its queue
    yield job_queue
    job_queue.stop()


def sent(queue: JobQueue) -> list[tuple[int, int | None]]:
    """Every job id in the broker's queue so far, with the tenant its message carries."""
    queued = queue.broker.queues[f"{queue.settings.broker_namespace}-jobs"]
    messages = [dramatiq.Message.decode(data) for data in list(queued.queue)]
    return [(message.args[0], message.options.get(TENANT_OPTION)) for message in messages]


def with_landlord(queue: JobQueue, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on a landlord database whose sessions send their jobs through `queue`, as the
    app's and the worker's do."""

    async def go() -> T:
        database = Database(queue.settings.database_url)
        jobs.send_jobs_on_commit(database, queue)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(go())


def recorded_jobs(queue: JobQueue) -> list[int]:
    async def ids(database: Database) -> list[int]:
        async with database.session() as session:
            return list(await session.scalars(select(Job.id).order_by(Job.id)))

    return with_landlord(queue, ids)


def test_a_job_recorded_in_a_committed_transaction_is_sent_once_after_the_commit(
    queue: JobQueue,
) -> None:
    wanted = TenantRequest("on-commit", "On commit", TEMPLATE, MODULES, "database")

    async def request_and_commit_twice(database: Database) -> tuple[int, int, list[tuple[int, int | None]]]:
        async with database.sessionmaker() as session:
            tenant, job, _ = await request_tenant(session, queue.settings, wanted)
            before_commit = sent(queue)  # the rows are flushed, not committed
            await session.commit()
            await session.commit()  # as a request's session does after a handler that committed
            return tenant.id, job.id, before_commit

    tenant_id, job_id, before_commit = with_landlord(queue, request_and_commit_twice)

    assert before_commit == []
    assert sent(queue) == [(job_id, tenant_id)]


def test_a_rolled_back_transaction_sends_none_of_its_jobs(queue: JobQueue) -> None:
    async def record_then_fail_then_commit(database: Database) -> int:
        with pytest.raises(RuntimeError):
            async with database.session() as session:
                await jobs.record_job(session, jobkinds.RECORDS_A_RUN)
                raise RuntimeError("the audit entry could not be written")
        session = database.sessionmaker()
        await jobs.record_job(session, jobkinds.RECORDS_A_RUN)
        await session.close()  # never committed: the same session begins anew
        kept = await jobs.record_job(session, jobkinds.RECORDS_A_RUN)
        await session.commit()
        await session.close()
        return kept.id

    kept = with_landlord(queue, record_then_fail_then_commit)

    assert sent(queue) == [(kept, None)]
    assert recorded_jobs(queue) == [kept]


def test_a_job_recorded_in_a_rolled_back_savepoint_is_not_sent_and_a_released_one_is(
    queue: JobQueue,
) -> None:
    async def record_around_savepoints(database: Database) -> tuple[list[int], list[tuple[int, int | None]]]:
        async def record() -> int:
            return (await jobs.record_job(session, jobkinds.RECORDS_A_RUN)).id

        async with database.session() as session:
            wanted = [await record()]
            with pytest.raises(Conflict):
                async with session.begin_nested():  # refused, as a portal form's request can be
                    await record()
                    raise Conflict("refused")
            async with session.begin_nested():
                wanted.append(await record())
                async with session.begin_nested():
                    wanted.append(await record())
            with pytest.raises(Conflict):
                async with session.begin_nested():
                    async with session.begin_nested():  # released, then rolled back with its outer one
                        await record()
                    raise Conflict("refused")
            before_commit = sent(queue)
        return wanted, before_commit

    wanted, before_commit = with_landlord(queue, record_around_savepoints)

    assert before_commit == []
    assert sent(queue) == [(job_id, None) for job_id in wanted]
    assert recorded_jobs(queue) == wanted
