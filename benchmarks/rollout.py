"""How fast the fleet says what is behind, and how fast a rollout takes one additive revision to
PostgreSQL tenants.

    python -m benchmarks.rollout [--tenants 1000] [--runs 20] [--fleet 100] [--postgres-url postgresql+asyncpg://…]

**What is behind** (the question every deploy asks; `tenantry migrate` ends with it):
A temporary landlord database (SQLite; PostgreSQL too when a server is given) holds N active
tenants (political_party with events and membership_tiers) and their recorded layer revisions,
one tenant in ten behind on events. Nothing else exists: no tenant store is ever opened, which is
the point. Timed, medians over the runs:

- fleet: `read_fleet` (tenants, their recorded layers, each layer's head, who is behind);
- plan: `plan_rollout` for every layer to its head (the dry run), which adds each tenant's
  revisions in order, refusals and the estimate;
- baseline: the same rows read with two plain SQL statements and nothing computed.

The last column is the time against the baseline's in the same run.

**A rollout** (with a PostgreSQL server): `--fleet` tenants in schemas and as many in databases of
their own are provisioned (golden images). Then, for each way of running it, one more additive
basic-layer revision (a column) is rolled out to the schema tenants, then to the database tenants
(a rollout each, timed from its start to its end): in this process, as `tenantry rollout start`
does with the embedded broker; by `--workers` `tenantry worker` processes on Redis (when given);
and, the baseline, by a plain loop over the stores with the layer migrator and nothing recorded,
the way a per-schema `migrate` loop works. Then, with nothing left to do, the dry run's time."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import redis
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from benchmarks.installation import scratch_database
from benchmarks.provisioning import provision_many
from services.db import Database
from services.installation import prepare_landlord
from services.jobs import send_jobs_on_commit
from services.layers.catalogue import load_catalogue
from services.layers.landlord import migrate_landlord
from services.layers.migrator import RevisionRun, head, revisions, upgrade_layer
from services.models import Rollout, Tenant, TenantLayer, TenantStatus
from services.rollouts.fleet import read_fleet
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.rollouts.runs import run_here, start_rollout
from services.selection import Selection
from services.settings import PROJECT_ROOT, Settings
from services.tenancy.stores import location_of
from workers.runner import JobQueue

MODULES = ["events", "membership_tiers"]


async def _fill(database: Database, settings: Settings, tenants: int) -> None:
    catalogue = load_catalogue(settings.layers_dir)
    layers = catalogue.layers_for("political_party", MODULES)
    heads = {layer.key: head(layer) for layer in layers}
    async with database.session() as session:
        for number in range(tenants):
            tenant = Tenant(
                slug=f"t{number:05d}",
                name=f"Tenant {number}",
                status=TenantStatus.ACTIVE,
                template="political_party",
                modules=MODULES,
                isolation="database",
                store_backend="sqlite",
                store_name=str(settings.data_dir / "never-opened" / f"t{number}.db"),
            )
            session.add(tenant)
            await session.flush()
            for key, revision in heads.items():
                behind = key == "modules/events" and number % 10 == 0
                session.add(
                    TenantLayer(
                        tenant_id=tenant.id, layer=key, revision="events_0001" if behind else revision
                    )
                )


async def _median(work: Callable[[], Awaitable[object]], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def _measure(name: str, url: str, data_dir: Path, tenants: int, runs: int) -> None:
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        broker_url="embedded",
        secret_key="benchmark",
        admin_email="admin@localhost",
        layers_dir=PROJECT_ROOT / "layers",
    )
    database = Database(url)
    try:
        await migrate_landlord(settings, database)
        await _fill(database, settings, tenants)
        catalogue = load_catalogue(settings.layers_dir)

        async def fleet() -> object:
            async with database.session() as session:
                return await read_fleet(session, catalogue)

        async def plan() -> object:
            async with database.session() as session:
                return await plan_rollout(session, settings, RolloutSpec())

        async def baseline() -> object:
            async with database.session() as session:
                tenants_rows = (
                    await session.execute(text("SELECT id, slug, template, modules FROM tenants"))
                ).all()
                layer_rows = (
                    await session.execute(text("SELECT tenant_id, layer, revision FROM tenant_layers"))
                ).all()
                return tenants_rows, layer_rows

        answer = await fleet()
        assert len(answer.behind) == (tenants + 9) // 10  # type: ignore[attr-defined]
        base = await _median(baseline, runs)
        print(f"{name}: {tenants} tenants, {runs} runs; median seconds (x baseline)")
        print(f"  baseline (two plain SELECTs)  {base:.4f}")
        for label, work in (("fleet (who is behind)", fleet), ("plan (the dry run)", plan)):
            took = await _median(work, runs)
            print(f"  {label:<29} {took:.4f}  ({took / base:.1f}x)")
    finally:
        await database.dispose()


def _add_basic_revision(layers: Path, number: int) -> None:
    column = f"note_{number}"
    versions = layers / "basic" / "versions"
    previous = f"basic_{number - 1:04d}"
    (versions / f"basic_{number:04d}_{column}.py").write_text(
        f'''"""A note on each setting (the rollout benchmark's additive change).

Revision ID: basic_{number:04d}
Revises: {previous}
"""

import sqlalchemy as sa
from alembic import op

revision = "basic_{number:04d}"
down_revision = "{previous}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("settings", sa.Column("{column}", sa.Text))


def downgrade() -> None:
    op.drop_column("settings", "{column}")
'''
    )


ISOLATIONS = ("schema", "database")


async def _fleet_rollout(
    server_url: str, fleet: int, data_dir: Path, redis_url: str | None, workers: int
) -> None:
    name = f"tenantry_bench_fleet_{secrets.token_hex(4)}"
    async with scratch_database(server_url, name) as url:
        layers = data_dir / "layers"
        shutil.copytree(PROJECT_ROOT / "layers", layers, ignore=shutil.ignore_patterns("__pycache__"))
        settings = Settings(
            data_dir=data_dir / name,
            database_url=url,
            broker_url="embedded",
            secret_key="benchmark",
            admin_email="admin@localhost",
            layers_dir=layers,
        )
        await prepare_landlord(settings)
        started = time.perf_counter()
        for isolation in ISOLATIONS:
            await provision_many(
                replace(settings, data_dir=settings.data_dir / isolation), fleet, isolation, prefix=isolation
            )
        print(
            f"\nA rollout: {fleet} PostgreSQL tenants in schemas and {fleet} in databases of their own, "
            f"provisioned in {time.perf_counter() - started:.0f} s; one additive revision each time; "
            f"seconds (tenants a second, x the plain loop)"
        )
        spec = RolloutSpec(wave_size=50, concurrency=8, per_server=8)
        database = Database(url)
        try:

            async def here(spec: RolloutSpec) -> float:
                started = time.perf_counter()
                async with database.session() as session:
                    rollout = await start_rollout(
                        session, await plan_rollout(session, settings, spec), requested_by="benchmark"
                    )
                rollout = await run_here(database, settings, rollout.id)
                assert rollout.status == "finished", rollout.note
                return time.perf_counter() - started

            async def plain(spec: RolloutSpec) -> float:
                return await _plain_loop(database, settings, spec.selection.isolation[0])

            ways: list[tuple[str, Callable[[RolloutSpec], Awaitable[float]]]] = [
                ("rollout, one process (embedded)", here)
            ]
            if redis_url:
                through = replace(settings, broker_url=redis_url, broker_namespace=name)

                async def on_workers(spec: RolloutSpec) -> float:
                    return await _through_workers(through, spec, workers)

                ways.append((f"rollout, {workers} worker processes (Redis)", on_workers))
            ways.append(("plain loop (migrator, no record)", plain))
            figures: dict[str, dict[str, float]] = {}
            peaks: dict[str, int] = {}
            for label, way in ways:
                _add_basic_revision(layers, len(revisions(load_catalogue(layers).basic)) + 1)
                async with _peak_connections(server_url, name) as peak:
                    figures[label] = {
                        isolation: await way(replace(spec, selection=Selection(isolation=(isolation,))))
                        for isolation in ISOLATIONS
                    }
                peaks[label] = peak[0]
            baseline = figures["plain loop (migrator, no record)"]
            print(f"  {'':<38} {'schemas':>24} {'databases':>24}   peak connections")
            for label, took in figures.items():
                cells = "".join(
                    f"{took[isolation]:7.2f} s ({fleet / took[isolation]:5.1f}/s, "
                    f"{took[isolation] / baseline[isolation]:.1f}x)"
                    for isolation in ISOLATIONS
                )
                print(f"  {label:<38} {cells}   {peaks[label]:>4}")
            print(
                f"  (the rollout's concurrency: {spec.concurrency} tenants at once, {spec.per_server} per server; "
                "peak connections: the landlord's and the stores', seen every 10 ms)"
            )
            # The plain loop's revision is in the stores but on no record: up to the one before it.
            recorded = revisions(load_catalogue(layers).basic)[-2]
            started = time.perf_counter()
            async with database.session() as session:
                nothing = await plan_rollout(session, settings, RolloutSpec(layer="basic", revision=recorded))
            print(
                f"  (a dry run after: {len(nothing.tenants)} tenants would move; {time.perf_counter() - started:.3f} s)"
            )
        finally:
            await database.dispose()


@asynccontextmanager
async def _peak_connections(server_url: str, name: str) -> AsyncIterator[list[int]]:
    """The most connections open at once to the run's databases (the landlord, the server
    database holding the schemas, each tenant's database) while the block runs."""
    peak = [0]
    watcher = await asyncpg.connect(make_url(server_url).set(drivername="postgresql").render_as_string(False))

    async def watch() -> None:
        while True:
            count = f"SELECT count(*) FROM pg_stat_activity WHERE datname LIKE '{name}%'"
            peak[0] = max(peak[0], await watcher.fetchval(count))
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watch())
    try:
        yield peak
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await watcher.close()


async def _through_workers(settings: Settings, spec: RolloutSpec, workers: int) -> float:
    """The rollout started here and run by `tenantry worker` processes on the broker, with threads
    enough between them for the rollout's concurrency; timed from its start to its end (the
    workers are up before)."""
    threads = -(-spec.concurrency // workers)
    env = {
        **os.environ,
        "TENANTRY_DATABASE_URL": settings.database_url,
        "TENANTRY_BROKER_URL": settings.broker_url,
        "TENANTRY_BROKER_NAMESPACE": settings.broker_namespace,
        "TENANTRY_LAYERS_DIR": str(settings.layers_dir),
        "TENANTRY_DATA_DIR": str(settings.data_dir),
        "TENANTRY_SECRET_KEY": settings.secret_key,
        "TENANTRY_DRIFT_CHECK_HOURS": "0",
    }
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tenantry.cli", "worker", "--threads", str(threads)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    queue = JobQueue(settings)
    database = Database(settings.database_url)
    send_jobs_on_commit(database, queue)
    try:
        for process in processes:  # each says so once it consumes
            assert process.stdout is not None
            await process.stdout.readline()
        started = time.perf_counter()
        async with database.session() as session:
            rollout = await start_rollout(
                session, await plan_rollout(session, settings, spec), requested_by="benchmark"
            )
        while True:
            async with database.session() as session:
                status = (await session.get_one(Rollout, rollout.id, populate_existing=True)).status
            if status != "running":
                break
            await asyncio.sleep(0.02)
        assert status == "finished", status
        return time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()
        queue.stop()
        await database.dispose()
        client = redis.Redis.from_url(settings.broker_url)
        for key in client.scan_iter(f"{settings.broker_namespace}*"):
            client.delete(key)
        client.close()


async def _plain_loop(database: Database, settings: Settings, isolation: str) -> float:
    """The new revision applied store by store to the tenants of one isolation mode, nothing
    recorded: the baseline."""
    basic = load_catalogue(settings.layers_dir).basic
    async with database.session() as session:
        tenants = list(
            await session.scalars(select(Tenant).where(Tenant.isolation == isolation).order_by(Tenant.id))
        )

    async def forget(_run: RevisionRun) -> None:
        return None

    started = time.perf_counter()
    for tenant in tenants:
        store = location_of(settings, tenant).open()
        try:
            await upgrade_layer(store, basic, forget)
        finally:
            await store.dispose()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--fleet", type=int, default=100, help="tenants per PostgreSQL isolation mode")
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("TENANTRY_TEST_REDIS_URL"))
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the rollout on Redis")
    args = parser.parse_args(argv)
    print(
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; layers {PROJECT_ROOT / 'layers'}"
    )

    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder)
            await _measure(
                "SQLite", f"sqlite+aiosqlite:///{data / 'landlord.db'}", data, args.tenants, args.runs
            )
            if args.postgres_url:
                name = f"tenantry_bench_rollout_{secrets.token_hex(4)}"
                async with scratch_database(args.postgres_url, name) as url:
                    await _measure("PostgreSQL", url, data, args.tenants, args.runs)
                if args.fleet:
                    await _fleet_rollout(args.postgres_url, args.fleet, data, args.redis_url, args.workers)

    asyncio.run(run())


if __name__ == "__main__":
    main()
