"""A worker killed mid-restore (SIGKILL: no clean-up of any kind) never leaves a tenant half
restored. Killed before the new store is built, after it is built but before that is recorded, or
after the swap but before the old store is dropped, the tenant is found on one whole store (the
old one, untouched, or the restored one) and in maintenance; another worker resumes the job, and
the tenant ends active on the restored store, the row deleted after the backup back, the old store
gone and the safety backup verified.

The restore waits at a gate (tests/workers/restore_gate.py, loaded into the worker process) so it
is killed exactly there."""

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
from services.backups import request_backup, request_restore
from services.backups.requests import backups_of
from services.backups.restores import RESTORE_STEP_NAMES, replacement_store
from services.db import Database
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    StepStatus,
    Tenant,
    TenantStatus,
)
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import Settings
from services.tenancy.context import tenant_context
from services.tenancy.stores import StoreLocation, location_of, store_exists
from tests.services.backups.support import MODULES, TEMPLATE, execute, fill, row_counts
from tests.services.running import Background, background, free_port
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.workers import restore_gate
from tests.workers.gated import gate_env, gated_settings, kill_when_reached
from tests.workers.support import (
    drop_tenant_databases,
    forget_namespace,
    job,
    steps_of,
    tenant,
    wait_until_finished,
)
from workers.runner import JobQueue

SLUG = "harbour-club"
#: Where the first worker is killed: before the new store is built, once it is built (before that
#: is recorded), and once the tenant points at it (before the old store is dropped).
KILL_POINTS = ["restore", "restore:after", "drop old store"]


@dataclasses.dataclass(frozen=True)
class Prepared:
    tenant: Tenant
    restore_job: int
    old: StoreLocation
    new: StoreLocation
    #: Every table's rows: as backed up (what the restore gives back), and as before the restore.
    backed_up: dict[str, int]
    before: dict[str, int]


def _perform_here(settings: Settings, job_id: int, tenant_id: int) -> Job:
    async def go() -> Job:
        database = Database(settings.database_url)
        try:
            with tenant_context(tenant_id):
                await jobs.perform_job(database, job_id, settings)
            async with database.session() as session:
                return await session.get_one(Job, job_id)
        finally:
            await database.dispose()

    return asyncio.run(go())


def prepare(settings: Settings) -> Prepared:
    """A tenant with rows, a verified portable backup of it, a row deleted since, and a restore
    recorded (not yet sent)."""
    wanted = TenantRequest(SLUG, "Harbour Club", TEMPLATE, MODULES, IsolationMode.DATABASE)
    created, provisioning, _ = run_db(settings, lambda session: request_tenant(session, settings, wanted))
    assert _perform_here(settings, provisioning.id, created.id).status == JobStatus.SUCCEEDED
    found = tenant(settings, SLUG)
    old = location_of(settings, found)
    asyncio.run(fill(old, found))
    backed_up = asyncio.run(row_counts(old))

    requested = run_db(
        settings, lambda session: request_backup(session, settings, found, BackupFormat.PORTABLE)
    )
    assert _perform_here(settings, requested.job.id, found.id).error is None
    asyncio.run(execute(old, "DELETE FROM event_registrations"))
    asyncio.run(execute(old, "DELETE FROM events WHERE title = 'Regatta 3'"))
    before = asyncio.run(row_counts(old))

    async def ask(session: AsyncSession) -> Job:
        backup = await session.get_one(Backup, requested.backup.id)
        return (await request_restore(session, settings, found, backup)).job

    restore_job = run_db(settings, ask)
    new = replacement_store(settings, found, restore_job.id)
    return Prepared(found, restore_job.id, old, new, backed_up, before)


def kill_at_the_gate(
    settings: Settings, prepared: Prepared, where: str, gate: Path, process: Background
) -> None:
    """Wait until the worker is at the gate, SIGKILL it, and look at what it left."""

    kill_when_reached(gate, process, f"the restore to reach its gate at {where}")

    step_name, _, when = where.partition(":")
    steps = {step.name: step for step in steps_of(settings, prepared.restore_job)}
    at = RESTORE_STEP_NAMES.index(step_name)
    assert [name for name in RESTORE_STEP_NAMES if steps[name].status == StepStatus.SUCCEEDED] == (
        RESTORE_STEP_NAMES[:at]
    )
    assert steps[step_name].status == StepStatus.RUNNING
    assert job(settings, prepared.restore_job).status == JobStatus.RUNNING
    found = tenant(settings, SLUG)
    assert found.status == TenantStatus.MAINTENANCE

    # One whole store, never half of one.
    swapped = RESTORE_STEP_NAMES.index("swap") < at
    assert found.store_name == (prepared.new.name if swapped else prepared.old.name)
    if swapped:
        assert asyncio.run(row_counts(prepared.new)) == prepared.backed_up
        assert asyncio.run(store_exists(prepared.old)), "not dropped yet"
    else:
        assert asyncio.run(row_counts(prepared.old)) == prepared.before, "the old store is untouched"
        built = asyncio.run(store_exists(prepared.new))
        assert built == (when == "after")
        if built:
            assert asyncio.run(row_counts(prepared.new)) == prepared.backed_up


def check_resumed(settings: Settings, prepared: Prepared, where: str) -> None:
    finished = wait_until_finished(settings, prepared.restore_job, timeout=1)
    assert (finished.status, finished.error) == (JobStatus.SUCCEEDED, None)
    resumed = where.partition(":")[0]
    assert [(step.name, step.status, step.attempts) for step in steps_of(settings, prepared.restore_job)] == [
        (name, StepStatus.SUCCEEDED, 2 if name == resumed else 1) for name in RESTORE_STEP_NAMES
    ]
    found = tenant(settings, SLUG)
    assert (found.status, found.store_name) == (TenantStatus.ACTIVE, prepared.new.name)
    assert asyncio.run(row_counts(prepared.new)) == prepared.backed_up
    assert not asyncio.run(store_exists(prepared.old))

    async def safety(session: AsyncSession) -> Backup:
        listed = await backups_of(session, found)
        [backup] = [b for b in listed if b.job_id == prepared.restore_job]
        return backup

    backup = run_db(settings, safety)
    assert (backup.status, backup.verification) == ("succeeded", "verified")
    assert backup.manifest is not None and backup.manifest["totals"]["rows"] == sum(prepared.before.values())
    leftover = run_db(settings, lambda session: session.scalar(select(Tenant.id).where(Tenant.slug != SLUG)))
    assert leftover is None


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "restore-gate"
    path.touch()
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("where", KILL_POINTS)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_mid_restore_resumes_it_and_the_tenant_is_never_half_restored(
    landlord: Settings, gate: Path, where: str, tmp_path: Path
) -> None:
    """Embedded mode: the worker lives in `tenantry serve`; started again, it sends every
    unfinished job again and the restore resumes."""
    settings = gated_settings(landlord, restore_gate)
    prepared = prepare(settings)
    env = gate_env(settings, restore_gate, gate, where)

    with background(["serve", "--port", str(free_port())], env, tmp_path / "first") as first:
        kill_at_the_gate(settings, prepared, where, gate, first)

    gate.unlink()
    with background(["serve", "--port", str(free_port())], env, tmp_path / "second") as second:
        wait_until_finished(settings, prepared.restore_job, timeout=120, worker=second)
        assert second.stop() in (0, -signal.SIGTERM), second.stderr
        assert "Traceback" not in second.stderr, second.stderr
    check_resumed(settings, prepared, where)


@pytest.mark.parametrize("where", KILL_POINTS)
@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
@requires_redis
def test_a_worker_killed_mid_restore_is_replaced_and_the_tenant_is_never_half_restored(
    landlord: Settings, gate: Path, where: str, tmp_path: Path
) -> None:
    """PostgreSQL landlord and tenant databases, `tenantry worker` processes on Redis: the new
    worker's sweeper finds the job's expired lease and sends it again."""
    assert REDIS_URL
    settings = gated_settings(landlord, restore_gate, broker_url=REDIS_URL)
    try:
        prepared = prepare(settings)
        sender = JobQueue(settings)
        try:
            sender.send(prepared.restore_job, prepared.tenant.id)
        finally:
            sender.stop()
        env = gate_env(settings, restore_gate, gate, where)

        with background(["worker", "--threads", "2"], env, tmp_path / "first") as first:
            kill_at_the_gate(settings, prepared, where, gate, first)

        gate.unlink()
        with background(["worker", "--threads", "2"], env, tmp_path / "second") as second:
            wait_until_finished(settings, prepared.restore_job, timeout=120, worker=second)
            assert second.stop() == 0, second.stderr
        check_resumed(settings, prepared, where)
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
        drop_tenant_databases(settings.database_url)
