"""A worker killed in the middle of a move (SIGKILL: no clean-up of any kind) never leaves a tenant
half moved. Killed at any step, the tenant is wholly in one store: the landlord names the store it
is leaving until the swap has committed, the new one from then on, and the store named holds every
row the tenant had; the tenant is in maintenance from `maintenance on` to the end. Another worker
resumes the job, and the tenant ends active in the kind of store it was moved to, with the content
it had (every table's row count and checksum), each step succeeded once, and the store it left
kept as it was.

One move is killed at each of its steps in turn, each time resumed by a new worker that the next
kill stops, and the last lets finish: on SQLite (`tenantry serve`, embedded) a move into the shared
store at every step, and once more after its rows went into the shared store and before the
landlord pointed the tenant at them (`swap:after`), then its move back while it finds out whether
the store it left is unchanged; on PostgreSQL (`tenantry worker` processes on Redis) a move into a
schema at its copy and its swap, then from there into the shared database (row-level security)
after its rows went in. The move waits at a gate (tests/workers/move_gate.py, loaded into
the worker process) so it is killed exactly there."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import (
    IsolationMode,
    JobStatus,
    OldStore,
    StepStatus,
    Tenant,
    TenantMove,
    TenantStatus,
)
from services.moves.requests import (
    COPY_STEPS,
    MAINTENANCE_ON,
    MOVE_BACK_STEP_NAMES,
    MOVE_STEP_NAMES,
    SWAP,
    UNCHANGED_SINCE,
    MoveTarget,
    RequestedMove,
    moves_of,
    request_move,
    request_move_back,
)
from services.settings import Settings
from services.tenancy.stores import StoreLocation, location_of
from tests.services.backups.support import MODULES, TEMPLATE, fill
from tests.services.moves.support import Content, content_of
from tests.services.running import Background
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.web.tenant_world import provision
from tests.workers import move_gate
from tests.workers.gate import reached
from tests.workers.gated import StartWorker, gated_settings, kill_when_reached, serving, working
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
#: Where the move into the shared SQLite store is killed, in turn: before each step's work, and
#: after the swap's (its rows are in the shared store; the landlord has not committed).
SQLITE_KILL_POINTS = [
    *MOVE_STEP_NAMES[: MOVE_STEP_NAMES.index(SWAP) + 1],
    f"{SWAP}:after",
    *MOVE_STEP_NAMES[MOVE_STEP_NAMES.index(SWAP) + 1 :],
]
#: Where its move back is killed: while it finds out whether the store it left is unchanged.
MOVE_BACK_KILL_POINTS = [UNCHANGED_SINCE]
#: Where the move into a PostgreSQL schema is killed: the copy builds a store, the swap commits.
POSTGRES_KILL_POINTS = ["copy", SWAP]
#: Where the move on into the shared PostgreSQL store is killed: its rows are in, the landlord has
#: not committed.
POSTGRES_SHARED_KILL_POINTS = [f"{SWAP}:after"]


@dataclasses.dataclass(frozen=True)
class Moving:
    """A move recorded (its job not yet run), and the tenant as it was before it."""

    job_id: int
    move_id: int
    #: The job's steps, in order.
    steps: list[str]
    #: The tenant as the move found it, in the store it leaves.
    before: Tenant
    #: What the tenant held then.
    content: Content

    def left(self, settings: Settings) -> StoreLocation:
        return location_of(settings, self.before)


def filled_tenant(settings: Settings) -> None:
    """A tenant in a database of its own, provisioned as a worker does it, with rows in a dozen tables."""
    provision(settings, SLUG, template=TEMPLATE, modules=MODULES)
    found = tenant(settings, SLUG)
    asyncio.run(fill(location_of(settings, found), found))


def measured(location: StoreLocation, found: Tenant) -> Content:
    return asyncio.run(content_of(location, found))


def record(settings: Settings, ask: Callable[[AsyncSession, Tenant], Awaitable[RequestedMove]]) -> Moving:
    """The move `ask` requests for the tenant, recorded and committed as the portal does it."""
    found = tenant(settings, SLUG)
    content = measured(location_of(settings, found), found)
    made = run_db(settings, lambda session: ask(session, found))
    steps = [step.name for step in steps_of(settings, made.job.id)]
    return Moving(made.job.id, made.move.id, steps, found, content)


def record_move(settings: Settings, target: MoveTarget) -> Moving:
    async def ask(session: AsyncSession, found: Tenant) -> RequestedMove:
        return await request_move(session, settings, found, target, requested_by="test")

    return record(settings, ask)


def record_move_back(settings: Settings) -> Moving:
    """The tenant's latest move, asked to be taken back."""

    async def ask(session: AsyncSession, found: Tenant) -> RequestedMove:
        latest = (await moves_of(session, found))[0]
        return await request_move_back(session, settings, found, latest, requested_by="test")

    return record(settings, ask)


def the_move(settings: Settings, moving: Moving) -> TenantMove:
    return run_db(settings, lambda session: session.get_one(TenantMove, moving.move_id))


def kill_at_the_gate(settings: Settings, moving: Moving, where: str, gate: Path, process: Background) -> None:
    """Wait until the worker is at the gate, SIGKILL it, and look at what it left: the tenant
    wholly in one store."""

    kill_when_reached(gate, process, f"the move to reach its gate at {where}")

    step_name = where.partition(":")[0]
    steps = {step.name: step for step in steps_of(settings, moving.job_id)}
    at = moving.steps.index(step_name)
    assert [name for name in moving.steps if steps[name].status == StepStatus.SUCCEEDED] == (
        moving.steps[:at]
    ), where
    assert steps[step_name].status == StepStatus.RUNNING, where
    assert job(settings, moving.job_id).status == JobStatus.RUNNING, where

    found, move = tenant(settings, SLUG), the_move(settings, moving)
    frozen = moving.steps.index(MAINTENANCE_ON) < at
    assert found.status == (TenantStatus.MAINTENANCE if frozen else TenantStatus.ACTIVE), where
    # One whole store, never half of one: the one the landlord names has every row.
    swapped = moving.steps.index(SWAP) < at
    named, left = location_of(settings, found), moving.left(settings)
    if swapped:
        assert (found.store_name, move.old_store) == (move.to_store, OldStore.KEPT), where
        assert named.key != left.key, where
        assert measured(left, moving.before) == moving.content, f"{where}: the store it left is untouched"
    else:
        assert (named.key, move.old_store) == (left.key, None), where
    assert measured(named, found) == moving.content, f"{where}: the store the landlord names is whole"


def run_killing_at(
    settings: Settings, moving: Moving, kill_points: list[str], gate: Path, start: StartWorker, logs: Path
) -> None:
    """Run the move, killing its worker at each kill point in turn (the next worker resumes it),
    and let the last worker finish it."""
    gate.touch()
    for number, where in enumerate(kill_points):
        with start(where, logs / f"{moving.job_id}-{number}") as process:
            kill_at_the_gate(settings, moving, where, gate, process)
        reached(gate).unlink()
    gate.unlink()
    with start(None, logs / f"{moving.job_id}-last") as last:
        wait_until_finished(settings, moving.job_id, timeout=120, worker=last)
        assert last.stop() in (0, -signal.SIGTERM), last.stderr
        assert "Traceback" not in last.stderr, last.stderr


def check_moved(
    settings: Settings, moving: Moving, kill_points: list[str], *, settled: tuple[str, ...] = ()
) -> Tenant:
    """The move succeeded, each step once (tried again once for each kill in it; never tried when
    `settled`), and the tenant is active in the kind of store it was moved to, holding what it held;
    the store it left is kept."""
    finished = job(settings, moving.job_id)
    assert (finished.status, finished.error) == (JobStatus.SUCCEEDED, None)
    move = the_move(settings, moving)
    kills = Counter(where.partition(":")[0] for where in kill_points)
    assert [(step.name, step.status, step.attempts) for step in steps_of(settings, moving.job_id)] == [
        (name, StepStatus.SUCCEEDED, 0 if name in settled else 1 + kills[name]) for name in moving.steps
    ]
    found = tenant(settings, SLUG)
    assert (found.status, found.store_backend, found.isolation, found.store_name) == (
        TenantStatus.ACTIVE,
        move.to_backend,
        move.to_isolation,
        move.to_store,
    )
    assert measured(location_of(settings, found), found) == moving.content
    assert move.old_store == OldStore.KEPT
    assert measured(moving.left(settings), moving.before) == moving.content, "the store it left is kept"
    return found


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """Where the gate's file goes: the gate is shut while it exists."""
    path = tmp_path / "move-gate"
    yield path
    path.unlink(missing_ok=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_at_every_step_of_a_move_and_its_move_back_never_leaves_the_tenant_half_moved(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    """Embedded mode: the worker lives in `tenantry serve`; started again, it sends every
    unfinished job again and the move resumes."""
    settings = gated_settings(landlord, move_gate)
    serve = serving(settings, move_gate, gate)
    filled_tenant(settings)

    into_shared = record_move(settings, MoveTarget(IsolationMode.SHARED))
    run_killing_at(settings, into_shared, SQLITE_KILL_POINTS, gate, serve, tmp_path)
    assert check_moved(settings, into_shared, SQLITE_KILL_POINTS).isolation == IsolationMode.SHARED

    back = record_move_back(settings)
    assert back.steps == MOVE_BACK_STEP_NAMES
    run_killing_at(settings, back, MOVE_BACK_KILL_POINTS, gate, serve, tmp_path)
    found = check_moved(settings, back, MOVE_BACK_KILL_POINTS, settled=COPY_STEPS)
    assert found.store_name == into_shared.before.store_name, "back in the very store it left"
    assert the_move(settings, into_shared).old_store == OldStore.IN_USE


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
@requires_redis
def test_a_worker_killed_mid_move_on_postgresql_is_replaced_and_the_tenant_is_never_half_moved(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    """PostgreSQL landlord and tenant databases, `tenantry worker` processes on Redis: the new
    worker's sweeper finds the job's expired lease and sends it again."""
    assert REDIS_URL
    settings = gated_settings(landlord, move_gate, broker_url=REDIS_URL)
    work = working(settings, move_gate, gate)
    try:
        filled_tenant(settings)
        for target, kill_points in (
            (IsolationMode.SCHEMA, POSTGRES_KILL_POINTS),
            (IsolationMode.SHARED, POSTGRES_SHARED_KILL_POINTS),
        ):
            moving = record_move(settings, MoveTarget(target))
            sender = JobQueue(settings)
            try:
                sender.send(moving.job_id, moving.before.id)
            finally:
                sender.stop()
            run_killing_at(settings, moving, kill_points, gate, work, tmp_path)
            assert check_moved(settings, moving, kill_points).isolation == target
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
        drop_tenant_databases(settings.database_url)
