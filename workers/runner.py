"""Running workers: in-process beside the web app (embedded broker) or as `tenantry worker`."""

from __future__ import annotations

import logging
import signal
import threading

import dramatiq

from services import jobs
from services.db import Database
from services.settings import Settings
from workers.actors import WorkerRuntime, declare_actors, send_job
from workers.broker import create_broker

log = logging.getLogger(__name__)


class JobQueue:
    """The broker with Tenantry's actors declared, and (when asked) a worker consuming from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = create_broker(settings)
        declare_actors(self.broker, WorkerRuntime(settings))
        self.worker: dramatiq.Worker | None = None

    def send(self, job_id: int) -> None:
        send_job(self.broker, job_id)

    def start_worker(self, threads: int = 2) -> None:
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads)
        self.worker.start()

    @property
    def worker_alive(self) -> bool:
        return self.worker is not None and all(thread.is_alive() for thread in self.worker.workers)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.broker.close()

    async def resend_unfinished_jobs(self, database: Database) -> list[int]:
        """Embedded mode keeps messages in memory: at start-up, send every unfinished job again."""
        async with database.session() as session:
            job_ids = await jobs.requeue_orphaned_jobs(session)
        for job_id in job_ids:
            self.send(job_id)
        if job_ids:
            log.info("sent %d unfinished job(s) again", len(job_ids))
        return job_ids


def run_worker_process(settings: Settings, threads: int) -> None:
    """`tenantry worker`: consume until SIGINT or SIGTERM."""
    queue = JobQueue(settings)
    queue.start_worker(threads)
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    print(f"Tenantry worker: {threads} thread(s) on {settings.broker_url}", flush=True)
    stopping.wait()
    queue.stop()
