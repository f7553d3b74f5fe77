"""The actors. Each takes ids, opens the worker's landlord database and calls a service."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field

import dramatiq

from services import jobs
from services.db import Database
from services.settings import Settings
from services.tenancy.context import tenant_context
from workers.context import run_in_worker_loop

RUN_JOB = "run_job"
#: The services that register kinds of job (services.jobs.job_handler): a worker runs only the
#: kinds it knows, so each is imported wherever actors are declared.
JOB_MODULES = (
    "services.backups",
    "services.modules.steps",
    "services.provisioning.custom",
    "services.provisioning.tenants",
    "services.provisioning.warm_pool",
    "services.rollouts.drift_checks",
    "services.rollouts.runs",
)
for module in JOB_MODULES:
    importlib.import_module(module)


@dataclass
class WorkerRuntime:
    """What actors share in one worker process. The database is made on first use, inside the
    worker's event loop (async engines belong to the loop that created them); jobs recorded in its
    sessions (by a job, or the backup schedules) are sent through `job_sender` on commit."""

    settings: Settings
    job_sender: jobs.JobSender
    _database: Database | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def database(self) -> Database:
        with self._lock:
            if self._database is None:
                self._database = Database(self.settings.database_url)
                jobs.send_jobs_on_commit(self._database, self.job_sender)
            return self._database

    def close(self) -> None:
        """Close the landlord connections, on the worker's event loop (where they were made)."""
        with self._lock:
            database, self._database = self._database, None
        if database is not None:
            run_in_worker_loop(database.dispose)


def declare_actors(broker: dramatiq.Broker, runtime: WorkerRuntime) -> None:
    def run_job(job_id: int) -> None:
        run_in_worker_loop(lambda: jobs.perform_job(runtime.database(), job_id, runtime.settings))

    dramatiq.actor(
        actor_name=RUN_JOB,
        queue_name=f"{runtime.settings.broker_namespace}-jobs",
        broker=broker,
        max_retries=3,
    )(run_job)


def send_job(
    broker: dramatiq.Broker, job_id: int, tenant_id: int | None = None, delay_ms: int | None = None
) -> None:
    """Send the job's id; the tenant context middleware puts the tenant into the message."""
    with tenant_context(tenant_id):
        broker.get_actor(RUN_JOB).send_with_options(args=(job_id,), delay=delay_ms)
