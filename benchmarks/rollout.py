"""How fast the fleet says what is behind: the question every deploy asks (`tenantry migrate` ends
with it) and every rollout plan starts from.

    python -m benchmarks.rollout [--tenants 1000] [--runs 20] [--postgres-url postgresql+asyncpg://…]

A temporary landlord database (SQLite; PostgreSQL too when a server is given) holds N active
tenants (political_party with events and membership_tiers) and their recorded layer revisions,
one tenant in ten behind on events. Nothing else exists: no tenant store is ever opened, which is
the point. Timed, medians over the runs:

- fleet: `read_fleet` (tenants, their recorded layers, each layer's head, who is behind);
- plan: `plan_rollout` for every layer to its head (the dry run), which adds each tenant's
  revisions in order, refusals and the estimate;
- baseline: the same rows read with two plain SQL statements and nothing computed.

The last column is the time against the baseline's in the same run."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from benchmarks.installation import scratch_database
from services.db import Database
from services.layers.catalogue import load_catalogue
from services.layers.landlord import migrate_landlord
from services.layers.migrator import head
from services.models import Tenant, TenantLayer, TenantStatus
from services.rollouts.fleet import read_fleet
from services.rollouts.plans import RolloutSpec, plan_rollout
from services.settings import PROJECT_ROOT, Settings

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
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

    asyncio.run(run())


if __name__ == "__main__":
    main()
