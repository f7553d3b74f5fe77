"""A worker SIGKILLed in the middle of a rollout's wave, then a new worker: the rollout resumes and
finishes; every tenant is at the target; every revision appears in each tenant's history once,
even when the worker died after the store committed a revision and before the landlord recorded
it. Embedded (`tenantry serve`, SQLite) and `tenantry worker` processes on Redis (PostgreSQL).

The tenant job waits at a gate (tests/workers/rollout_gate.py, loaded into the worker process)
so it is killed exactly there."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.models import (
    Job,
    JobStatus,
    MigrationHistory,
    Rollout,
    RolloutStatus,
    RolloutTenant,
    RolloutTenantStatus,
    Tenant,
)
from services.provisioning.tenants import RequestedTenant, TenantRequest, request_tenant
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.rollouts.runs import start_rollout
from services.settings import Settings
from services.tenancy.context import tenant_context
from tests.services.provisioning.installation import copy_layers
from tests.services.rollouts.test_rollouts import add_events_revision
from tests.services.running import Background, background, free_port, tenantry_env, wait_for
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.workers import rollout_gate
from tests.workers.gate import reached
from tests.workers.support import drop_tenant_databases, forget_namespace
from workers.runner import JobQueue

SLUGS = ["harbour-party", "reed-party", "quay-party"]
KILL_POINTS = ["migrate", "record"]


def _perform_here(settings: Settings, job_id: int, tenant_id: int) -> None:
    async def go() -> None:
        database = Database(settings.database_url)
        try:
            with tenant_context(tenant_id):
                await jobs.perform_job(database, job_id, settings)
        finally:
            await database.dispose()

    asyncio.run(go())


def prepare(
    settings: Settings, layers: Path, sender: JobQueue | None
) -> tuple[Settings, int, dict[str, int]]:
    """Three tenants with events, a new events revision, and a rollout started (its first jobs
    sent to `sender`, or only recorded). Returns the settings with the new layers, the rollout and
    the tenants' ids."""
    ids = {}
    for slug in SLUGS:
        wanted = TenantRequest(slug, slug.title(), "political_party", ["events"], "database")

        async def ask(session: AsyncSession, wanted: TenantRequest = wanted) -> RequestedTenant:
            return await request_tenant(session, settings, wanted)

        tenant, job, _ = run_db(settings, ask)
        _perform_here(settings, job.id, tenant.id)
        ids[slug] = tenant.id
    add_events_revision(layers)
    settings = dataclasses.replace(settings, layers_dir=layers)

    async def start() -> int:
        database = Database(settings.database_url)
        if sender is not None:
            jobs.send_jobs_on_commit(database, sender)
        try:
            async with database.session() as session:
                plan = await plan_rollout(
                    session, settings, RolloutSpec(canary=1, wave_size=2, concurrency=2)
                )
                rollout = await start_rollout(session, plan, requested_by="ops@example.org")
            return rollout.id
        finally:
            await database.dispose()

    return settings, asyncio.run(start()), ids


def kill_at_the_gate(gate: Path, process: Background) -> None:
    def arrived() -> bool:
        process.check_running()
        return reached(gate).exists()

    wait_for(arrived, 90, what="the tenant job to reach its gate", interval=0.05)
    process.process.kill()
    assert process.process.wait(10) == -signal.SIGKILL


def wait_until_rollout_ends(settings: Settings, rollout_id: int, worker: Background) -> Rollout:
    def ended() -> Rollout | None:
        worker.check_running()
        rollout = run_db(settings, lambda session: session.get_one(Rollout, rollout_id))
        return rollout if rollout.status != RolloutStatus.RUNNING else None

    return wait_for(ended, 120, what=f"rollout {rollout_id} to end", interval=0.1)


def check_resumed(settings: Settings, rollout: Rollout, gated: int, where: str, attempts: int = 2) -> None:
    assert rollout.status == RolloutStatus.FINISHED, rollout.note
    rows = run_db(
        settings,
        lambda session: session.scalars(select(RolloutTenant).where(RolloutTenant.rollout_id == rollout.id)),
    )
    assert {row.tenant_id: row.status for row in rows} == {
        tenant_id: RolloutTenantStatus.SUCCEEDED for tenant_id in run_db(settings, _tenant_ids)
    }
    history = run_db(
        settings,
        lambda session: session.execute(
            select(Tenant.slug, MigrationHistory.direction, MigrationHistory.outcome)
            .join(Tenant, Tenant.id == MigrationHistory.tenant_id)
            .where(MigrationHistory.revision == "events_0003")
        ),
    )
    assert sorted(tuple(row) for row in history) == sorted((slug, "up", "succeeded") for slug in SLUGS)
    job = run_db(
        settings,
        lambda session: session.scalar(
            select(Job)
            .join(RolloutTenant, RolloutTenant.job_id == Job.id)
            .where(RolloutTenant.tenant_id == gated)
        ),
    )
    assert job is not None and job.status == JobStatus.SUCCEEDED
    assert job.attempts == attempts, where  # the lane the worker held, resumed by the next one


async def _tenant_ids(session: AsyncSession) -> list[int]:
    return list(await session.scalars(select(Tenant.id)))


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "rollout-gate"
    path.touch()
    yield path
    path.unlink(missing_ok=True)


def _settings(landlord: Settings, broker_url: str | None = None) -> Settings:
    return dataclasses.replace(
        landlord,
        job_lease_seconds=2,
        job_modules=("tests.workers.rollout_gate",),
        broker_url=broker_url or landlord.broker_url,
    )


def _gate_env(settings: Settings, gate: Path, where: str, tenant_id: int) -> dict[str, str]:
    return tenantry_env(
        settings,
        **{
            rollout_gate.GATE_VARIABLE: str(gate),
            rollout_gate.AT_VARIABLE: where,
            rollout_gate.TENANT_VARIABLE: str(tenant_id),
        },
    )


@pytest.mark.parametrize("where", KILL_POINTS)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_mid_wave_resumes_the_rollout_and_every_revision_is_recorded_once(
    landlord: Settings, gate: Path, where: str, tmp_path: Path
) -> None:
    settings, rollout_id, ids = prepare(_settings(landlord), copy_layers(tmp_path), None)
    env = _gate_env(settings, gate, where, ids["reed-party"])  # wave 1, beside quay-party

    with background(["serve", "--port", str(free_port())], env, tmp_path / "first") as first:
        kill_at_the_gate(gate, first)

    gate.unlink()
    with background(["serve", "--port", str(free_port())], env, tmp_path / "second") as second:
        rollout = wait_until_rollout_ends(settings, rollout_id, second)
        assert second.stop() in (0, -signal.SIGTERM), second.stderr
    check_resumed(settings, rollout, ids["reed-party"], where)


@pytest.mark.parametrize("where", KILL_POINTS)
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
@requires_redis
def test_a_worker_killed_mid_wave_is_replaced_and_the_rollout_finishes_with_every_revision_once(
    landlord: Settings, gate: Path, where: str, tmp_path: Path
) -> None:
    assert REDIS_URL
    settings = _settings(landlord, broker_url=REDIS_URL)
    try:
        sender = JobQueue(settings)
        try:
            settings, rollout_id, ids = prepare(settings, copy_layers(tmp_path), sender)
        finally:
            sender.stop()
        env = _gate_env(settings, gate, where, ids["reed-party"])

        with background(["worker", "--threads", "2"], env, tmp_path / "first") as first:
            kill_at_the_gate(gate, first)

        gate.unlink()
        with background(["worker", "--threads", "2"], env, tmp_path / "second") as second:
            rollout = wait_until_rollout_ends(settings, rollout_id, second)
            assert second.stop() == 0, second.stderr
        check_resumed(settings, rollout, ids["reed-party"], where)
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
        drop_tenant_databases(settings.database_url)
