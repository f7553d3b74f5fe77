"""Recording jobs and waiting on their durable state in the landlord database."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dramatiq
import pika
import redis
from sqlalchemy import ScalarResult, inspect, select
from sqlalchemy.engine import make_url

from services import jobs
from services.db import Database, is_sqlite
from services.layers.catalogue import load_catalogue
from services.layers.migrator import current_revision, head, revisions
from services.models import (
    IsolationMode,
    Job,
    JobStatus,
    JobStep,
    MigrationHistory,
    StepStatus,
    Tenant,
    TenantStatus,
)
from services.provisioning.tenants import PROVISIONING_STEP_NAMES, TenantRequest, request_tenant
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.running import ROOT, Background, tenantry_env, wait_for
from tests.support import REDIS_URL, drop_named_after, run_db
from tests.workers import jobkinds
from workers.runner import JobQueue

T = TypeVar("T")

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@contextmanager
def embedded_worker(settings: Settings, threads: int = 2) -> Iterator[JobQueue]:
    """The embedded broker with a worker of `threads` threads, as `tenantry serve` starts it, but
    with idle threads waking every 0.1 s instead of every second, so that stopping takes no 2 s."""
    queue = JobQueue(settings)
    queue.worker = dramatiq.Worker(queue.broker, worker_threads=threads, worker_timeout=100)
    queue.worker.start()
    try:
        yield queue
    finally:
        queue.stop()


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


# --- Provisioning tenants through the workers -------------------------------------------------

#: A small template and its default modules (events has two revisions), quick to provision.
TEMPLATE = "community_group"
MODULES = ["events", "social_media"]
#: The env var the gate layer's migration reads (see add_gate_layer).
GATE_VARIABLE = "TENANTRY_TEST_GATE"


def request(settings: Settings, slug: str, isolation: str = IsolationMode.DATABASE) -> tuple[Tenant, Job]:
    """Ask for a tenant as the portal does: the tenant and its provisioning job, committed."""
    wanted = TenantRequest(
        slug=slug, name=f"Tenant {slug}", template=TEMPLATE, modules=MODULES, isolation=isolation
    )
    requested = run_db(settings, lambda session: request_tenant(session, settings, wanted))
    return requested.tenant, requested.job


def tenant(settings: Settings, slug: str) -> Tenant:
    statement = select(Tenant).where(Tenant.slug == slug)
    return run_db(settings, lambda session: _one(session.scalars(statement)))


def steps_of(settings: Settings, job_id: int) -> list[JobStep]:
    statement = select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.position)
    return run_db(settings, lambda session: _all(session.scalars(statement)))


def history_of(settings: Settings, tenant_id: int) -> list[MigrationHistory]:
    statement = select(MigrationHistory).where(MigrationHistory.tenant_id == tenant_id)
    return run_db(settings, lambda session: _all(session.scalars(statement.order_by(MigrationHistory.id))))


async def _all(rows: Awaitable[Any]) -> list[Any]:
    return list(await rows)


async def _one(rows: Awaitable[ScalarResult[T]]) -> T:
    return (await rows).one()


def wait_until_active(
    settings: Settings, slug: str, *, timeout: float = 60, worker: Background | None = None
) -> Tenant:
    """The tenant once it is active; fails early when it failed or the worker process died."""

    def active() -> Tenant | None:
        if worker is not None:
            worker.check_running()
        found = tenant(settings, slug)
        assert found.status != TenantStatus.FAILED, f"{slug} failed to provision: {found.error}"
        return found if found.status == TenantStatus.ACTIVE else None

    return wait_for(active, timeout, what=f"tenant {slug} to become active", interval=0.1)


def wait_until_step_running(
    settings: Settings, job_id: int, step: str, *, timeout: float = 60, worker: Background | None = None
) -> JobStep:
    def running() -> JobStep | None:
        if worker is not None:
            worker.check_running()
        found = next(row for row in steps_of(settings, job_id) if row.name == step)
        return found if found.status == StepStatus.RUNNING else None

    return wait_for(running, timeout, what=f"step {step!r} of job {job_id} to run", interval=0.1)


def in_store(settings: Settings, found: Tenant, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on the tenant's own store (as the workers open it)."""

    async def go() -> T:
        store = location_of(settings, found).open()
        try:
            return await work(store)
        finally:
            await store.dispose()

    return asyncio.run(go())


def table_names(settings: Settings, found: Tenant) -> list[str]:
    async def names(store: Database) -> list[str]:
        async with store.engine.connect() as connection:
            return await connection.run_sync(lambda sync: inspect(sync).get_table_names())

    return in_store(settings, found, names)


def assert_provisioned(settings: Settings, slug: str, *, resumed_step: str | None = None) -> Tenant:
    """The tenant is active with a store at the head of every layer; its provisioning job succeeded
    with each step once (attempted twice only for `resumed_step`, where its first worker died), and
    the landlord has exactly one successful history row per revision of each of its layers."""
    found = tenant(settings, slug)
    assert (found.status, found.error) == (TenantStatus.ACTIVE, None)
    assert found.store_name is not None
    provisioning = run_db(
        settings, lambda session: _all(session.scalars(select(Job).where(Job.tenant_id == found.id)))
    )
    assert len(provisioning) == 1
    job = provisioning[0]
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    assert job.attempts == (2 if resumed_step else 1)

    steps = steps_of(settings, job.id)
    assert [step.name for step in steps] == PROVISIONING_STEP_NAMES
    assert [(step.name, step.status, step.error) for step in steps] == [
        (name, StepStatus.SUCCEEDED, None) for name in PROVISIONING_STEP_NAMES
    ]
    names = PROVISIONING_STEP_NAMES
    resumed_at = names.index(resumed_step) if resumed_step else len(names)
    assert {step.name: step.attempts for step in steps} == {
        name: 2 if index == resumed_at else 1 for index, name in enumerate(names)
    }

    catalogue = load_catalogue(settings.layers_dir)
    layers = catalogue.layers_for(found.template, found.modules, found.slug)
    expected = Counter(
        (layer.key, revision, "up", "succeeded") for layer in layers for revision in revisions(layer)
    )
    history = history_of(settings, found.id)
    assert Counter((row.layer, row.revision, row.direction, row.outcome) for row in history) == expected
    assert {row.job_id for row in history} == {job.id}
    assert all(count == 1 for count in expected.values())

    async def applied(store: Database) -> dict[str, str | None]:
        return {layer.key: await current_revision(store, layer) for layer in layers}

    assert in_store(settings, found, applied) == {layer.key: head(layer) for layer in layers}
    return found


# --- A custom layer that holds provisioning at a gate ------------------------------------------

_GATE_MIGRATION = '''"""A test's gate: creates {table}, then waits while the file named by ${variable} exists.

Revision ID: {revision}
Revises:
"""

import asyncio
import os
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_only

revision = "{revision}"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))
    gate = Path(os.environ.get("{variable}", ""))
    if not gate.name:
        return
    Path(f"{{gate}}.reached").touch()  # the table is created, its transaction still open
    deadline = time.monotonic() + 60
    while gate.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the gate was never opened")
        # Awaited on the worker's event loop (this runs in SQLAlchemy's greenlet), so the loop stays
        # free and the job's lease keeps being renewed, as during any long migration.
        await_only(asyncio.sleep(0.05))


def downgrade() -> None:
    op.drop_table("{table}")
'''


@dataclass(frozen=True)
class Gate:
    """Where a worker stops: inside the custom layer's only revision, its transaction open."""

    path: Path
    revision: str
    table: str

    @property
    def reached(self) -> Path:
        return Path(f"{self.path}.reached")

    def close(self) -> None:
        """Shut: the next worker to run the revision waits here."""
        self.path.touch()
        self.reached.unlink(missing_ok=True)

    def open(self) -> None:
        self.path.unlink(missing_ok=True)


def layers_with_gate(tmp_path: Path, slug: str) -> tuple[Path, Gate]:
    """A copy of layers/ with a custom layer for `slug` whose migration waits at a gate."""
    layers = tmp_path / "layers"
    shutil.copytree(ROOT / "layers", layers, ignore=shutil.ignore_patterns("__pycache__"))
    versions = layers / "custom" / slug / "versions"
    versions.mkdir(parents=True)
    suffix = slug.replace("-", "_")
    gate = Gate(tmp_path / "gate", revision=f"{suffix}_0001", table=f"gate_{suffix}")
    (versions / f"{suffix}_0001_gate.py").write_text(
        _GATE_MIGRATION.format(revision=gate.revision, table=gate.table, variable=GATE_VARIABLE)
    )
    return layers, gate


# --- Processes and shared servers --------------------------------------------------------------


@contextmanager
def on_redis(data_dir: Path, **variables: str) -> Iterator[dict[str, str]]:
    """The environment of `tenantry` processes of one installation in `data_dir` on the suite's
    Redis, in a broker namespace of its own that is forgotten on the way out."""
    assert REDIS_URL
    namespace = f"test-{secrets.token_hex(4)}"
    try:
        yield tenantry_env(
            None,
            TENANTRY_DATA_DIR=str(data_dir),
            TENANTRY_BROKER_URL=REDIS_URL,
            TENANTRY_BROKER_NAMESPACE=namespace,
            **variables,
        )
    finally:
        forget_namespace(REDIS_URL, namespace)


def forget_namespace(broker_url: str, namespace: str) -> None:
    """Remove what a test's namespace left on a shared Redis or RabbitMQ."""
    if broker_url.startswith("redis"):
        client = redis.Redis.from_url(broker_url)
        try:
            keys = list(client.scan_iter(f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
        return
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(f"{namespace}-jobs{suffix}")
    finally:
        connection.close()


def drop_tenant_databases(database_url: str) -> None:
    """On PostgreSQL: drop the tenant stores and golden images made beside a test's landlord database
    (named after it); schema-isolated stores live inside it and go with it."""
    if is_sqlite(database_url):
        return
    landlord = make_url(database_url).database
    assert landlord is not None, database_url
    asyncio.run(drop_named_after(database_url, landlord, keep=landlord))
