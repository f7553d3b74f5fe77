"""Recording jobs and waiting on their durable state in the landlord database."""

from __future__ import annotations

from typing import Any

from services import jobs
from services.models import Job, JobStatus
from services.settings import Settings
from tests.services.running import Background, wait_for
from tests.support import run_db
from tests.workers import jobkinds

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def record(settings: Settings, kind: str = jobkinds.RECORDS_A_RUN, **payload: Any) -> Job:
    """Record a job (committed, queued) as the portal does before it sends the id to the broker."""
    return run_db(settings, lambda session: jobs.record_job(session, kind, payload=payload))


def job(settings: Settings, job_id: int) -> Job:
    return run_db(settings, lambda session: session.get_one(Job, job_id))


def runs_of(settings: Settings, job_id: int) -> dict[str, Any]:
    return run_db(settings, lambda session: jobkinds.runs_of(session, job_id))


def wait_until_finished(
    settings: Settings, job_id: int, *, timeout: float = 30, worker: Background | None = None
) -> Job:
    """The job once it succeeded or failed; fails early when the worker process died."""

    def finished() -> Job | None:
        if worker is not None:
            worker.check_running()
        found = job(settings, job_id)
        return found if found.status in FINISHED else None

    return wait_for(finished, timeout, what=f"job {job_id} to finish")
