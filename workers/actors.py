"""The actors. Each takes ids, opens the worker's landlord database and calls a service."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import dramatiq

from services import jobs
from services.db import Database
from services.settings import Settings

RUN_JOB = "run_job"


@dataclass
class WorkerRuntime:
    """What actors share in one worker process. The database is made on first use, inside the
    worker's event loop (async engines belong to the loop that created them)."""

    settings: Settings
    _database: Database | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def database(self) -> Database:
        with self._lock:
            if self._database is None:
                self._database = Database(self.settings.database_url)
            return self._database


def declare_actors(broker: dramatiq.Broker, runtime: WorkerRuntime) -> None:
    async def run_job(job_id: int) -> None:
        await jobs.perform_job(runtime.database(), job_id)

    dramatiq.actor(
        run_job,
        broker=broker,
        actor_name=RUN_JOB,
        queue_name=f"{runtime.settings.broker_namespace}-jobs",
        max_retries=3,
    )


def send_job(broker: dramatiq.Broker, job_id: int) -> None:
    broker.get_actor(RUN_JOB).send(job_id)
