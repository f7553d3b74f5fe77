"""Jobs: the landlord database is the durable record of background work; the broker only delivers
job ids. A job is claimed before it runs, so a re-sent message never runs it twice at once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.models import Job, JobStatus
from services.models.types import utcnow

log = logging.getLogger(__name__)

JobHandler = Callable[[Database, Job], Awaitable[None]]
_handlers: dict[str, JobHandler] = {}


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    """Register the service function that carries out jobs of `kind`."""

    def register(handler: JobHandler) -> JobHandler:
        _handlers[kind] = handler
        return handler

    return register


async def record_job(
    session: AsyncSession, kind: str, *, tenant_id: int | None = None, payload: dict[str, Any] | None = None
) -> Job:
    """Write the job down (queued). Send its id to the broker only after this is committed."""
    if kind not in _handlers:
        raise ValueError(f"no handler for jobs of kind {kind!r}")
    job = Job(kind=kind, tenant_id=tenant_id, payload=payload or {})
    session.add(job)
    await session.flush()
    return job


async def requeue_orphaned_jobs(session: AsyncSession) -> list[int]:
    """After a restart of the embedded worker nothing else can be running them: queue them again."""
    await session.execute(update(Job).where(Job.status == JobStatus.RUNNING).values(status=JobStatus.QUEUED))
    return list(await session.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.id)))


async def perform_job(database: Database, job_id: int) -> None:
    """Claim the job and run its handler; a job already claimed or finished is left alone."""
    async with database.session() as session:
        claimed = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=utcnow(), attempts=Job.attempts + 1)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            log.info("job %s is not queued; nothing to do", job_id)
            return
        job = await session.get_one(Job, job_id)
    handler = _handlers.get(job.kind)
    outcome, error = JobStatus.SUCCEEDED, None
    try:
        if handler is None:
            raise LookupError(f"this version of Tenantry cannot run jobs of kind {job.kind!r}")
        await handler(database, job)
    except Exception as exc:
        log.exception("job %s (%s) failed", job.id, job.kind)
        outcome, error = JobStatus.FAILED, str(exc) or type(exc).__name__
    async with database.session() as session:
        await session.execute(
            update(Job).where(Job.id == job_id).values(status=outcome, error=error, finished_at=utcnow())
        )
