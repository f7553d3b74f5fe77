"""A worker killed in the middle of a fleet move plan (SIGKILL: no clean-up of any kind) never
leaves a tenant half moved, nor the plan stuck. Killed while one tenant's rows are being copied,
and again after that tenant's move did its last step but before its job said so (the plan's next
turn is taken in that same transaction), each tenant is wholly in one store; a new worker
(`tenantry serve` embedded on SQLite, `tenantry worker` on Redis with PostgreSQL) resumes the
move, the plan takes its next turns, and every tenant ends in its new store with the rows it had.
The moves wait at a gate (tests/workers/move_gate.py, loaded into the worker process) so the
worker is killed exactly there."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import (
    IsolationMode,
    JobStatus,
    MovePlan,
    MovePlanStatus,
    MovePlanTenant,
    MovePlanTenantStatus,
    Tenant,
    TenantStatus,
)
from services.moves.plans import MovePlanSpec, plan_moves, plan_report, start_plan
from services.moves.requests import MAINTENANCE_OFF, MoveTarget
from services.selection import Selection
from services.settings import Settings
from services.tenancy.stores import location_of
from tests.services.backups.support import MODULES, TEMPLATE, fill
from tests.services.moves.support import values_without_ids
from tests.services.running import wait_for
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.web.tenant_world import provision
from tests.workers import move_gate
from tests.workers.gate import reached
from tests.workers.gated import StartWorker, gated_settings, kill_when_reached, serving, working
from tests.workers.support import drop_tenant_databases, forget_namespace, job, tenant
from workers.runner import JobQueue

SLUGS = ("alder", "birch", "cedar")
#: Where the first tenant's move is killed: while its rows are copied (the landlord still names its
#: old store), then after its last step's work (it is in the shared store; its job has not ended,
#: so the plan has not taken its next turn).
KILL_POINTS = ["copy", f"{MAINTENANCE_OFF}:after"]

Values = dict[str, list[str]]


def values_of(settings: Settings, found: Tenant) -> Values:
    return asyncio.run(values_without_ids(location_of(settings, found), found))


def plan_rows(settings: Settings, plan_id: int) -> list[MovePlanTenant]:
    async def read(session: AsyncSession) -> list[MovePlanTenant]:
        return (await plan_report(session, plan_id)).tenants

    return run_db(settings, read)


def the_plan(settings: Settings, plan_id: int) -> MovePlan:
    return run_db(settings, lambda session: session.get_one(MovePlan, plan_id))


def start(settings: Settings, target: str) -> int:
    """A plan moving the three tenants to `target`, one at a time, two to a batch: its first move
    recorded (and committed), not yet run."""
    spec = MovePlanSpec(
        Selection(isolation=(IsolationMode.DATABASE,)),
        MoveTarget(target),
        batch_size=2,
        concurrency=1,
    )

    async def go(session: AsyncSession) -> int:
        preview = await plan_moves(session, settings, spec)
        return (await start_plan(session, settings, preview, requested_by="test")).id

    return run_db(settings, go)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "move-gate"
    yield path
    path.unlink(missing_ok=True)


def run_plan_killing_its_worker(
    settings: Settings, target: str, gate: Path, start_worker: StartWorker, logs: Path
) -> None:
    """Three filled tenants moved to `target` by a plan, its worker killed at each kill point of
    the first move; each time every tenant is whole and the plan waits; a last worker finishes it."""
    before: dict[str, tuple[Tenant, Values]] = {}
    for slug in SLUGS:
        provision(settings, slug, template=TEMPLATE, modules=MODULES)
        found = tenant(settings, slug)
        asyncio.run(fill(location_of(settings, found), found))
        before[slug] = (found, values_of(settings, found))
    plan_id = start(settings, target)
    first = plan_rows(settings, plan_id)[0]
    assert (first.tenant.slug, first.status) == ("alder", MovePlanTenantStatus.MOVING)
    first_job = first.move.job_id if first.move else None
    assert first_job is not None
    if not settings.broker_is_embedded:  # as the portal would have sent it on commit
        sender = JobQueue(settings)
        try:
            sender.send(first_job, first.tenant_id)
        finally:
            sender.stop()

    gate.touch()
    for number, where in enumerate(KILL_POINTS):
        with start_worker(where, logs / f"worker-{number}") as process:
            kill_when_reached(gate, process, f"the first move to reach its gate at {where}")
        reached(gate).unlink()

        # Wholly in one store: the old one while copying, the new one once its last step ran; the
        # plan has not moved on, its next tenants still wait their turn.
        alder = tenant(settings, "alder")
        assert alder.isolation == (IsolationMode.DATABASE if where == "copy" else target), where
        assert values_of(settings, alder) == before["alder"][1], where
        assert job(settings, first_job).status == JobStatus.RUNNING, where
        assert [row.status for row in plan_rows(settings, plan_id)] == [
            MovePlanTenantStatus.MOVING,
            MovePlanTenantStatus.QUEUED,
            MovePlanTenantStatus.QUEUED,
        ], where
    gate.unlink()

    with start_worker(None, logs / "worker-last") as last:
        wait_for(
            lambda: the_plan(settings, plan_id).status == MovePlanStatus.FINISHED or None,
            180,
            what="the plan to finish",
            interval=0.2,
        )
        assert last.stop() in (0, -signal.SIGTERM), last.stderr
        assert "Traceback" not in last.stderr, last.stderr

    assert [(row.tenant.slug, row.status) for row in plan_rows(settings, plan_id)] == [
        (slug, MovePlanTenantStatus.MOVED) for slug in SLUGS
    ]
    for slug, (_, values) in before.items():
        found = tenant(settings, slug)
        assert (found.status, found.isolation) == (TenantStatus.ACTIVE, target), slug
        assert values_of(settings, found) == values, slug


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_mid_plan_leaves_every_tenant_whole_and_the_plan_resumes_to_the_end(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    """Embedded mode: the worker lives in `tenantry serve`; started again, it sends every
    unfinished job again, the move resumes, and its end takes the plan's next turn."""
    settings = gated_settings(landlord, move_gate)
    run_plan_killing_its_worker(
        settings, IsolationMode.SHARED, gate, serving(settings, move_gate, gate), tmp_path
    )


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
@requires_redis
def test_a_worker_killed_mid_plan_on_postgresql_is_replaced_and_the_plan_moves_every_tenant_whole(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    """PostgreSQL landlord and tenant databases moved into schemas, `tenantry worker` processes on
    Redis: the new worker's sweeper finds the move's expired lease and sends it again."""
    assert REDIS_URL
    settings = gated_settings(landlord, move_gate, broker_url=REDIS_URL)
    try:
        run_plan_killing_its_worker(
            settings, IsolationMode.SCHEMA, gate, working(settings, move_gate, gate), tmp_path
        )
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
        drop_tenant_databases(settings.database_url)
