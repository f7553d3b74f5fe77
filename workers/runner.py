"""Running workers: in-process beside the web app (embedded broker) or as `tenantry worker`."""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence

import dramatiq

from services import jobs
from services.backups.schedules import request_due_backups
from services.db import Database
from services.lifecycle import deletion
from services.models import Job
from services.models.types import utcnow
from services.moves import kept
from services.provisioning.warm_pool import tend_warm_pools
from services.rollouts.drift_checks import request_due_drift_check
from services.settings import Settings
from services.tenant_usage import request_due_usage_round
from workers.actors import WorkerRuntime, declare_actors, send_job
from workers.broker import create_broker
from workers.context import run_in_worker_loop

log = logging.getLogger(__name__)


class _ClosesLandlordConnections(dramatiq.Middleware):
    """Closes the worker's landlord connections when it shuts down: after its threads stopped and
    before the AsyncIO middleware stops the event loop they belong to (after-hooks run in reverse
    order of the middleware list, and this one is added after AsyncIO)."""

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.runtime.close()


class JobQueue:
    """The broker with Tenantry's actors declared, and (when asked) a worker consuming from it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        for module in settings.job_modules:  # TENANTRY_JOB_MODULES: they register more job kinds
            importlib.import_module(module)
        self.broker = create_broker(settings)
        self.runtime = WorkerRuntime(settings, job_sender=self)
        declare_actors(self.broker, self.runtime)
        self.broker.add_middleware(_ClosesLandlordConnections(self.runtime))
        self.worker: dramatiq.Worker | None = None
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        # How long a consumer that found its queue empty waits before it looks again (Redis is
        # polled, backing off up to this). Fleet work sends its next job as one ends, so a long
        # wait would leave workers idle between jobs; a short one also makes stopping quick.
        self._poll_ms = 100

    def send(self, job_id: int, tenant_id: int | None = None) -> None:
        """Send a recorded (committed) job to the workers, in its tenant's context. New jobs come
        here on commit (services.jobs.send_jobs_on_commit); the queue itself sends again the jobs
        a worker left unfinished."""
        send_job(self.broker, job_id, tenant_id)

    def start_worker(self, threads: int = 2) -> None:
        self.worker = dramatiq.Worker(self.broker, worker_threads=threads, worker_timeout=self._poll_ms)
        # A worker takes no more jobs than it has threads to start them at once (Dramatiq's default
        # is twice as many): a job it held back would wait here while another worker sat idle.
        self.worker.queue_prefetch = threads
        self.worker.start()
        self._stopping.clear()
        self._sweeper = threading.Thread(
            target=self._sweep_abandoned_jobs, name="tenantry-job-sweeper", daemon=True
        )
        self._sweeper.start()

    def _sweep_abandoned_jobs(self) -> None:
        """Send again every job whose worker died mid-way (its lease expired), so it resumes."""
        interval = max(self.settings.job_lease_seconds / 2, 0.5)
        while not self._stopping.wait(interval):
            try:
                for job in run_in_worker_loop(self._abandoned_jobs):
                    log.warning("job %s lost its worker; sending it again to resume", job.id)
                    self.send(job.id, job.tenant_id)
            except Exception:
                log.exception("could not look for abandoned jobs; trying again in %.0f s", interval)
            self._request_periodic_work()

    def _request_periodic_work(self) -> None:
        """What comes due with time, each request on its own (their jobs sent on commit; every
        worker looks, one claims each): scheduled backups, stores whose grace period is over,
        stores tenants moved out of and kept long enough, the usage round, the drift check, and
        warm pools a release left behind or that grew too big. One that fails is tried again at
        the next sweep, and the others still run."""
        database, settings = self.runtime.database, self.settings
        due: list[tuple[str, Callable[[], Awaitable[Sequence[Job] | Job | int | None]]]] = [
            ("scheduled backups", lambda: request_due_backups(database(), settings, now=utcnow())),
            ("stores to drop", lambda: deletion.request_due_drops(database(), now=utcnow())),
            ("stores moved out of", lambda: kept.request_due_drops(database(), now=utcnow())),
            ("the usage round", lambda: request_due_usage_round(database(), settings)),
            ("the drift check", lambda: request_due_drift_check(database(), settings)),
            ("warm pools to tend", lambda: tend_warm_pools(database(), settings)),
        ]
        for what, request in due:
            try:
                requested = run_in_worker_loop(request)
            except Exception:
                log.exception("could not request %s; trying again at the next sweep", what)
                continue
            if isinstance(requested, Job):
                requested = [requested]
            if isinstance(requested, int):
                if requested:
                    log.info("%s: %d requested", what, requested)
                continue
            for job in requested or []:
                log.info("%s: job %s (%s) of tenant %s", what, job.id, job.kind, job.tenant_id)

    async def _abandoned_jobs(self) -> list[Job]:
        async with self.runtime.database().session() as session:
            return await jobs.abandoned_jobs(session)

    @property
    def worker_alive(self) -> bool:
        return self.worker is not None and all(thread.is_alive() for thread in self.worker.workers)

    def stop(self) -> None:
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.broker.close()

    async def resend_unfinished_jobs(self, database: Database) -> list[int]:
        """Embedded mode keeps messages in memory: at start-up, send every unfinished job again."""
        async with database.session() as session:
            unfinished = await jobs.requeue_orphaned_jobs(session)
        for job in unfinished:
            self.send(job.id, job.tenant_id)
        if unfinished:
            log.info("sent %d unfinished job(s) again", len(unfinished))
        return [job.id for job in unfinished]


def run_worker_process(settings: Settings, threads: int) -> None:
    """`tenantry worker`: consume until SIGINT or SIGTERM. The two are blocked before any thread
    starts (threads inherit the mask) and taken by the main thread with sigwait, not by a handler:
    a second signal arriving while the first is handled (`timeout` sends one to the process and one
    to its group) cannot interrupt the handling and hang it."""
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    queue = JobQueue(settings)
    queue.start_worker(threads)
    print(f"Tenantry worker: {threads} thread(s) on {settings.broker_url_for_display}", flush=True)
    signal.sigwait(stop_signals)
    queue.stop()
