"""The actors. Each takes ids, opens the worker's landlord database and calls a service."""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from services import jobs
from services.db import Database
from services.settings import Settings
from services.tenancy.context import current_tenant_id, tenant_context
from workers.context import run_in_worker_loop

RUN_JOB = "run_job"
#: The services that register kinds of job (services.jobs.job_handler): a worker runs only the
#: kinds it knows, so each is imported wherever actors are declared.
JOB_MODULES = (
    "services.backups",
    "services.lifecycle.deletion",
    "services.modules.steps",
    "services.moves.kept",
    "services.moves.merge",
    "services.moves.plans",
    "services.moves.split",
    "services.moves.steps",
    "services.provisioning.custom",
    "services.provisioning.tenants",
    "services.provisioning.warm_pool",
    "services.rollouts.drift_checks",
    "services.rollouts.runs",
    "services.tenant_usage",
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
    #: Tenants found to have their share of the workers, until when (time.monotonic()): their next
    #: jobs wait without asking the landlord again, so a backlog of hundreds is passed over in
    #: milliseconds and the job of a tenant behind it starts.
    busy_until: dict[int, float] = field(default_factory=dict)

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


#: How long a job that must wait (its tenant has its share of the workers, or its server no room
#: for its work) waits before it is sent again: twice as long each time it is, up to the longest
#: (so a backlog costs a few claims a second).
FIRST_WAIT_MS = 250
LONGEST_WAIT_MS = 5000
#: How long a tenant found busy is taken to stay so by this worker process.
BUSY_SECONDS = 0.2
_WAITED = "tenantry_waited"


def declare_actors(broker: dramatiq.Broker, runtime: WorkerRuntime) -> None:
    def run_job(job_id: int) -> None:
        database, settings, tenant_id = runtime.database(), runtime.settings, current_tenant_id()
        try:
            if tenant_id is not None and runtime.busy_until.get(tenant_id, 0.0) > time.monotonic():
                raise jobs.TenantBusy(f"job {job_id} waits for its tenant's share of the workers")
            run_in_worker_loop(lambda: jobs.perform_job(database, job_id, settings, share_workers=True))
        except jobs.MustWait as waiting:
            if isinstance(waiting, jobs.TenantBusy) and tenant_id is not None:
                runtime.busy_until[tenant_id] = time.monotonic() + BUSY_SECONDS
            message = CurrentMessage.get_current_message()
            waited = int(message.options.get(_WAITED, 0)) if message is not None else 0
            wait = min(LONGEST_WAIT_MS, FIRST_WAIT_MS * 2**waited)
            send_job(broker, job_id, tenant_id, delay_ms=wait, waited=waited + 1)

    dramatiq.actor(
        actor_name=RUN_JOB,
        queue_name=f"{runtime.settings.broker_namespace}-jobs",
        broker=broker,
        max_retries=3,
    )(run_job)


def send_job(
    broker: dramatiq.Broker,
    job_id: int,
    tenant_id: int | None = None,
    delay_ms: int | None = None,
    waited: int = 0,
) -> None:
    """Send the job's id; the tenant context middleware puts the tenant into the message. `waited`:
    how many times it was sent again because its tenant had its share of the workers."""
    options: dict[str, Any] = {_WAITED: waited} if waited else {}
    with tenant_context(tenant_id):
        broker.get_actor(RUN_JOB).send_with_options(args=(job_id,), delay=delay_ms, **options)
