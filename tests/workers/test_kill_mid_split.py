"""A worker killed in the middle of a split (SIGKILL: no clean-up of any kind) never leaves the
source tenant half split. Killed at any step before the source gave its rows, the source holds
every row it had; killed after its store committed the removal but before the step was recorded,
it holds exactly what the split leaves it and the new tenant's store holds the rest, so every row
is in exactly one place. Another worker resumes the job, and the split ends with the new tenant
active holding the subtree, the source active holding the rest, each step succeeded: on SQLite
(`tenantry serve`, embedded) killed at six points, on PostgreSQL (`tenantry worker` processes on
Redis) at two.

And a split that fails after the new tenant's store was filled (its copy found damaged when it
is checked) drops that store, marks the new tenant failed and leaves the source as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from sqlalchemy import text

from services.models import JobStatus, StepStatus, Tenant, TenantStatus
from services.moves.split import (
    REMOVE_FROM_SOURCE,
    SPLIT_STEP_NAMES,
    RequestedSplit,
    SplitTarget,
    request_split,
)
from services.provisioning.tenants import can_retry
from services.settings import Settings
from services.tenancy.stores import StoreLocation, location_of, store_exists
from tests.services.moves.support import Content, content_of
from tests.services.running import wait_for
from tests.support import REDIS_URL, requires_postgres, requires_redis, run_db
from tests.web.districts import tenant_with_a_district
from tests.workers import split_gate
from tests.workers.gate import reached
from tests.workers.gated import StartWorker, gated_settings, kill_when_reached, serving, working
from tests.workers.support import (
    drop_tenant_databases,
    forget_namespace,
    steps_of,
    tenant,
    wait_until_finished,
)
from workers.runner import JobQueue

SLUG = "harbour-club"
INTO = "north-harbour"
#: Where the split is killed, in turn: before the safety backup is verified, before and after the
#: new store is filled, before the rows leave the source, after the source's removal committed but
#: before the step was recorded, and before the end.
KILL_POINTS = ["verify", "copy", "validate", REMOVE_FROM_SOURCE, f"{REMOVE_FROM_SOURCE}:after", "activate"]
#: On PostgreSQL: the new store filled, and the source's removal committed but not recorded.
POSTGRES_KILL_POINTS = ["copy", f"{REMOVE_FROM_SOURCE}:after"]


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "split-gate"
    yield path
    path.unlink(missing_ok=True)


def split_tenant(settings: Settings) -> dict[str, int]:
    """harbour-club with twenty venues, every other one in the Ward, and a member of the Ward."""
    halls = [(f"Hall {n}", "Ward" if n % 2 else "root") for n in range(20)]
    return tenant_with_a_district(settings, SLUG, halls)


def measured(settings: Settings, found: Tenant) -> Content:
    return asyncio.run(content_of(location_of(settings, found), found))


def ask(settings: Settings) -> RequestedSplit:
    found = tenant(settings, SLUG)
    return run_db(
        settings,
        lambda session: request_split(
            session, settings, found, "North", SplitTarget(INTO), requested_by="test"
        ),
    )


class Splitting(NamedTuple):
    """A split recorded (its job not yet run) on an installation whose `tenantry serve` processes
    hold it at the gate, and the source as it was."""

    settings: Settings
    start: StartWorker
    source: Tenant
    before: Content
    requested: RequestedSplit


@pytest.fixture
def splitting(landlord: Settings, gate: Path) -> Splitting:
    settings = gated_settings(landlord, split_gate)
    split_tenant(settings)
    source = tenant(settings, SLUG)
    before = measured(settings, source)
    return Splitting(settings, serving(settings, split_gate, gate), source, before, ask(settings))


def kill_at_each_point_then_finish(
    splitting: Splitting, kill_points: list[str], gate: Path, logs: Path
) -> None:
    """Kill the split's worker at each point in turn (a new worker resumes it there), looking at the
    source each time; then let a last worker finish it, and look at both tenants."""
    settings, start, source, before, requested = splitting
    gate.touch()
    rest: Content | None = None
    for number, where in enumerate(kill_points):
        with start(where, logs / f"kill-{number}") as process:
            kill_when_reached(gate, process, f"the split to reach its gate at {where}")
        reached(gate).unlink()
        steps = {step.name: step for step in steps_of(settings, requested.job.id)}
        assert steps[where.partition(":")[0]].status == StepStatus.RUNNING, where
        assert tenant(settings, SLUG).status == TenantStatus.MAINTENANCE, where
        assert tenant(settings, INTO).status == TenantStatus.PROVISIONING, where
        now = measured(settings, source)
        if where == f"{REMOVE_FROM_SOURCE}:after":
            rest = now
            assert now["venues"][0] == 10 and now["units"][0] == before["units"][0] - 2, where
        else:
            assert now == (rest or before), f"{where}: the source holds every row it had"
    gate.unlink()
    with start(None, logs / "last") as last:
        finished = wait_until_finished(settings, requested.job.id, timeout=120, worker=last)
    assert (finished.status, finished.error) == (JobStatus.SUCCEEDED, None)
    assert [step.name for step in steps_of(settings, requested.job.id)] == SPLIT_STEP_NAMES
    assert all(step.status == StepStatus.SUCCEEDED for step in steps_of(settings, requested.job.id))
    new = tenant(settings, INTO)
    assert (new.id, new.status) == (requested.new_tenant.id, TenantStatus.ACTIVE)
    assert tenant(settings, SLUG).status == TenantStatus.ACTIVE
    after = measured(settings, source)
    assert after["venues"][0] == 10 and (rest is None or after == rest), "the rows left the source once"
    theirs = measured(settings, new)
    assert (theirs["venues"][0], theirs["units"][0]) == (10, 2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tenantry_serve_killed_at_every_step_of_a_split_never_leaves_the_source_half_split(
    splitting: Splitting, gate: Path, tmp_path: Path
) -> None:
    """Embedded mode: the worker lives in `tenantry serve`; started again, it sends every
    unfinished job again and the split resumes."""
    kill_at_each_point_then_finish(splitting, KILL_POINTS, gate, tmp_path)


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=requires_postgres)], indirect=True)
@requires_redis
def test_a_worker_killed_mid_split_on_postgresql_is_replaced_and_the_source_is_never_half_split(
    landlord: Settings, gate: Path, tmp_path: Path
) -> None:
    """PostgreSQL landlord and tenant databases, `tenantry worker` processes on Redis: the new
    worker's sweeper finds the job's expired lease and sends it again."""
    assert REDIS_URL
    settings = gated_settings(landlord, split_gate, broker_url=REDIS_URL)
    try:
        split_tenant(settings)
        source = tenant(settings, SLUG)
        splitting = Splitting(
            settings, working(settings, split_gate, gate), source, measured(settings, source), ask(settings)
        )
        sender = JobQueue(settings)
        try:
            sender.send(splitting.requested.job.id, source.id)
        finally:
            sender.stop()
        kill_at_each_point_then_finish(splitting, POSTGRES_KILL_POINTS, gate, tmp_path)
    finally:
        forget_namespace(settings.broker_url, settings.broker_namespace)
        drop_tenant_databases(settings.database_url)


async def _damage(location: StoreLocation) -> None:
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DELETE FROM venues WHERE id = 1"))
    finally:
        await store.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_split_whose_copy_is_found_damaged_drops_the_new_store_and_leaves_the_source_as_it_was(
    splitting: Splitting, gate: Path, tmp_path: Path
) -> None:
    settings, start, source, before, requested = splitting

    gate.touch()
    with start("validate", tmp_path / "worker") as worker:
        wait_for(reached(gate).exists, 90, what="the split to reach its gate at validate")
        built = location_of(settings, tenant(settings, INTO))
        asyncio.run(_damage(built))
        gate.unlink()
        failed = wait_until_finished(settings, requested.job.id, timeout=90, worker=worker)

    assert failed.status == JobStatus.FAILED and "does not hold what was carved" in (failed.error or "")
    new = tenant(settings, INTO)
    assert (new.status, new.store_name) == (TenantStatus.FAILED, None)
    assert not run_db(settings, lambda session: can_retry(session, new)), "no retry would build it empty"
    assert not asyncio.run(store_exists(built)), "the new tenant's store is dropped"
    assert tenant(settings, SLUG).status == TenantStatus.ACTIVE
    assert measured(settings, source) == before, "the source is as it was"
