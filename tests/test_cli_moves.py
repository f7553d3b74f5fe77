"""`tenantry move` and `tenantry moves`, run as an operator runs them (the installed entry point, in
subprocesses) on one fresh SQLite installation the tests share, each moving a tenant of its own:
with the embedded broker the move runs in the command, which says each step and the figures; with
Redis it goes to the workers and `tenantry moves` follows it; mistakes are one line and exit 2."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.restore import measure_store
from services.models import IsolationMode, Job, JobStatus
from services.moves.requests import MOVE_BACK_STEP_NAMES, MOVE_STEP_NAMES, MoveTarget, request_move
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, SQLITE, location_of
from services.tenancy.tenants import get_tenant
from tests.services.provisioning.installation import copy_layers
from tests.services.rollouts.test_rollouts import add_events_revision
from tests.services.running import background, migrate, run_tenantry, tenantry_env, wait_for
from tests.support import (
    REDIS_URL,
    fresh_postgres_database,
    installation_settings,
    landlord_reader,
    requires_postgres,
    requires_redis,
    run_db,
)
from tests.test_cli import refused, succeeded, tenantry
from tests.web.tenant_world import add_rows, provision
from tests.workers.support import forget_namespace, tenant

#: The line that names the move and its job, before the steps.
MOVE_AND_JOB = re.compile(r"^Move #(\d+), job #(\d+):$", re.MULTILINE)
VENUES = [{"name": "Boat House"}, {"name": "Harbour Hall"}, {"name": "Town Hall"}]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh installation: the landlord migrated, tenants' stores SQLite files, the embedded broker."""
    data_dir = tmp_path_factory.mktemp("moves") / "data"
    data_dir.mkdir()
    return migrate(installation_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}"))


def provisioned(settings: Settings, slug: str) -> str:
    """`slug` provisioned in a SQLite file of its own, with three venues."""
    provision(settings, slug, modules=["events"])
    add_rows(settings, slug, "venues", VENUES)
    return slug


def contents(settings: Settings, slug: str) -> dict[str, tuple[int, str]]:
    """The row count and checksum of each table holding the tenant's rows, wherever its store is."""
    found = tenant(settings, slug)
    location = location_of(settings, found)
    measured = asyncio.run(measure_store(location, tenant_id=found.id if location.is_shared else None))
    return {name: (summary.rows, summary.sha256) for name, summary in measured.tables.items() if summary.rows}


def steps_said(out: str) -> list[str]:
    """The steps the command said, in order, from its lines "  <step>: <what it did>"."""
    return [match.group(1) for match in re.finditer(r"^  ([a-z ]+): \S", out, re.MULTILINE)]


def test_a_tenant_moves_into_the_shared_store_and_back_saying_its_steps_and_figures(
    installation: Settings,
) -> None:
    slug = provisioned(installation, "harbour-club")
    before = contents(installation, slug)
    own_store = tenant(installation, slug).store_name

    out = succeeded(tenantry(installation, "move", slug, "--to", "shared"))

    assert out.startswith(
        f"{slug} is moving to the shared SQLite store: it keeps serving while its rows are copied"
    )
    [(move_id, _job_id)] = MOVE_AND_JOB.findall(out)
    assert steps_said(out) == MOVE_STEP_NAMES
    rows = sum(count for count, _ in before.values())
    assert re.search(
        rf"^Moved: a SQLite database → the shared SQLite store \(\S+_shared\.db\); {rows:,} rows in "
        rf"\d+ tables, copied in \d+\.\d s; its writes waited \d+\.\d s\.$",
        out,
        re.MULTILINE,
    ), out
    assert f"The store it left, {own_store}, is kept until " in out
    assert f"`tenantry move {slug} --back` moves it back." in out
    moved = tenant(installation, slug)
    assert (moved.status, moved.isolation) == ("active", IsolationMode.SHARED)
    assert contents(installation, slug) == before

    listed = succeeded(tenantry(installation, "moves", slug))

    assert listed.startswith(f"Moves of {slug}, newest first:\n  #{move_id}: succeeded: a SQLite database → ")
    assert f"{rows:,} rows in " in listed and "asked by cli:" in listed
    assert f"`tenantry move {slug} --back` moves it back." in listed

    back = succeeded(tenantry(installation, "move", slug, "--back"))

    assert back.startswith(f"{slug} is moving back to a SQLite database")
    assert steps_said(back) == MOVE_BACK_STEP_NAMES
    assert f"  unchanged since: nothing was written since move #{move_id}" in back
    assert f"Moved: the shared SQLite store → a SQLite database ({own_store})" in back
    assert tenant(installation, slug).store_name == own_store
    assert contents(installation, slug) == before
    listed = succeeded(tenantry(installation, "moves", slug))
    newest, first = (line for line in listed.splitlines() if line.startswith("  #"))
    assert newest.startswith(
        f"  #{int(move_id) + 1} (back of #{move_id}): succeeded: the shared SQLite store"
    )
    assert first.startswith(f"  #{move_id}: succeeded")
    assert f"The store it left, {own_store}, is in use." in listed


def test_mistakes_exit_2_with_one_line_and_no_traceback(installation: Settings) -> None:
    quiet, slug = provisioned(installation, "quiet-club"), provisioned(installation, "busy-club")

    async def a_move_under_way(session: AsyncSession) -> int:
        target = MoveTarget(IsolationMode.SHARED)
        requested = await request_move(session, installation, await get_tenant(session, slug), target)
        return requested.move.id

    under_way = run_db(installation, a_move_under_way)  # recorded, never run: no worker here
    cases = {
        ("move", "no-such-club", "--to", "shared"): "tenantry: There is no tenant 'no-such-club'.",
        ("move", quiet, "--to", "schema"): f"tenantry: {quiet} cannot move to a SQLite schema here; it may "
        "move to the shared SQLite store.",
        ("move", quiet, "--back"): f"tenantry: {quiet} has no finished move to take back.",
        ("move", slug, "--to", "shared"): f"tenantry: {slug} is moving already (move #{under_way}); wait "
        "until it is done.",
    }
    env = tenantry_env(installation)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda args: run_tenantry(args, env), cases))

    for (args, message), result in zip(cases.items(), results, strict=True):
        assert refused(result) == message, args
    assert [tenant(installation, name).isolation for name in (quiet, slug)] == [IsolationMode.DATABASE] * 2


def test_a_move_that_fails_says_its_steps_error_exits_1_and_leaves_the_tenant_where_it_was(
    tmp_path: Path,
) -> None:
    """The shared store's tenants are at a newer revision of the events module than the tenant moving
    in: its lock step refuses, and the tenant stays in its own store with its rows."""
    layers = copy_layers(tmp_path)
    data_dir = tmp_path / "data"
    settings = migrate(
        replace(
            installation_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}"),
            layers_dir=layers,
        )
    )
    slug = provisioned(settings, "harbour-club")
    add_events_revision(layers)
    provision(settings, "reed-club", isolation=IsolationMode.SHARED, modules=["events"])
    before = contents(settings, slug)

    result = tenantry(settings, "move", slug, "--to", "shared")

    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    why = (
        f"The shared store has modules/events at revision events_0003 and {slug} at events_0002: bring "
        "them to the same revision (a rollout) and move it then."
    )
    [(move_id, _job_id)] = MOVE_AND_JOB.findall(result.stdout)
    assert result.stderr == f"tenantry: move #{move_id} failed at its lock step: {why}\n"
    assert f"  lock: failed: {why}" in result.stdout and "Moved:" not in result.stdout
    found = tenant(settings, slug)
    assert (found.status, found.isolation) == ("active", IsolationMode.DATABASE)
    assert contents(settings, slug) == before
    assert f"  #{move_id}: failed: a SQLite database → the shared SQLite store" in succeeded(
        tenantry(settings, "moves", slug)
    )


@requires_redis
def test_with_a_redis_broker_the_move_goes_to_the_workers_and_tenantry_moves_follows_it(
    installation: Settings, tmp_path: Path
) -> None:
    assert REDIS_URL
    slug = provisioned(installation, "relay-club")
    namespace = f"test-{secrets.token_hex(4)}"
    env = tenantry_env(installation, TENANTRY_BROKER_URL=REDIS_URL, TENANTRY_BROKER_NAMESPACE=namespace)
    try:
        out = succeeded(run_tenantry(["move", slug, "--to", "shared"], env))

        [(_, job_id)] = MOVE_AND_JOB.findall(out)
        assert out.endswith(f"  The workers have its job: follow it with `tenantry moves {slug}`.\n")
        assert "  lock:" not in out, "nothing ran here"
        listed = succeeded(run_tenantry(["moves", slug], env))
        assert ": queued: a SQLite database → the shared SQLite store" in listed

        with (
            background(["worker", "--threads", "1"], env, tmp_path / "logs") as worker,
            landlord_reader(installation) as landlord,
        ):

            async def finished(session: AsyncSession) -> Job | None:
                job = await session.get_one(Job, int(job_id))
                return job if job.finished else None

            def ended() -> Job | None:
                worker.check_running()
                return landlord.run(finished)

            job = wait_for(ended, 60, what="the worker to run the move", interval=0.1)
            assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
            assert worker.stop() in (0, -signal.SIGTERM), worker.stderr
    finally:
        forget_namespace(REDIS_URL, namespace)

    assert ": succeeded: a SQLite database → the shared SQLite store" in succeeded(
        run_tenantry(["moves", slug], env)
    )
    assert tenant(installation, slug).isolation == IsolationMode.SHARED


@requires_postgres
def test_backend_moves_a_sqlite_tenant_to_a_postgresql_schema(installation: Settings) -> None:
    slug = provisioned(installation, "pier-club")
    rows = {name: count for name, (count, _) in contents(installation, slug).items()}

    with fresh_postgres_database() as server:
        on_postgres = replace(installation, tenant_postgres_url=server)
        out = succeeded(tenantry(on_postgres, "move", slug, "--to", "schema", "--backend", POSTGRESQL))

        assert "Moved: a SQLite database → a PostgreSQL schema" in out
        moved = tenant(on_postgres, slug)
        assert (moved.store_backend, moved.isolation) == (POSTGRESQL, IsolationMode.SCHEMA)
        assert {name: count for name, (count, _) in contents(on_postgres, slug).items()} == rows

        back = succeeded(tenantry(on_postgres, "move", slug, "--back"))

        assert "Moved: a PostgreSQL schema → a SQLite database" in back
        assert tenant(on_postgres, slug).store_backend == SQLITE
