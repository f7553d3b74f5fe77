"""Provisioning throughput: replaying every migration through Alembic vs sending the SQL its
revisions recorded on an earlier store vs cloning a golden image vs taking a store from the warm
pool, on SQLite and PostgreSQL, in one run.

    python -m benchmarks.provisioning [--tenants 100] [--postgres-url postgresql+asyncpg://…]

Tenants cycle through the three templates with their default modules, with a store of their own
(a SQLite file, a PostgreSQL database or schema) or in the shared store, where there is nothing
to clone or take from a pool. Each tenant is timed from the request to `active`, running the
provisioning job in-process (no broker in the measure). The Alembic replay forgets the recorded
revisions before each tenant (the same work without them: the baseline); the recorded replay's
first tenant of each template records them, timed with the rest. The golden mode's first tenant of each
template builds the image; it is timed with the rest. In the warm-pool mode the fill jobs a tenant
leaves behind run between tenants, untimed, as the workers run them in the background; the first
tenant of each template finds its pool empty.
Each backend's floor is measured in the same run: what the database itself takes to make one
store with nothing of Tenantry in the way (a file copy, `CREATE DATABASE … TEMPLATE` on an open
connection, psql replaying one tenant schema's schema-only dump); every mode's p50 is printed as a
multiple of it.
PostgreSQL runs when --postgres-url or TENANTRY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url

from benchmarks.installation import scratch_database, scratch_settings
from services import jobs
from services.db import Database
from services.installation import prepare_landlord
from services.layers.catalogue import load_catalogue
from services.layers.replay import forget_recordings
from services.models import GoldenImage, Job, JobStatus, Tenant, TenantStatus
from services.provisioning.tenants import TenantRequest, request_tenant
from services.provisioning.warm_pool import FILL_WARM_POOL
from services.settings import Settings
from services.tenancy.context import tenant_context

ALEMBIC = "Alembic replay"


@dataclass(frozen=True)
class Result:
    backend: str
    mode: str
    seconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.seconds, n=20)[-1] if len(self.seconds) > 1 else self.seconds[0]

    @property
    def per_minute(self) -> float:
        return 60 * len(self.seconds) / sum(self.seconds)


async def provision_many(
    settings: Settings, count: int, isolation: str, *, prefix: str = "bench", recorded: bool = True
) -> list[float]:
    """Each tenant timed from its request to `active`; the warm pool topped up between them.
    Without `recorded`, every tenant's revisions run through Alembic."""
    catalogue = load_catalogue(settings.layers_dir)
    templates = sorted(catalogue.templates.values(), key=lambda layer: layer.name)
    database = Database(settings.database_url)
    timings = []
    try:
        for number in range(count):
            template = templates[number % len(templates)]
            if not recorded:
                forget_recordings()
            started = time.perf_counter()
            async with database.session() as session:
                tenant, job, _ = await request_tenant(
                    session,
                    settings,
                    TenantRequest(
                        f"{prefix}-{number}",
                        f"{prefix.title()} {number}",
                        template.name,
                        list(template.default_modules),
                        isolation,
                    ),
                )
            with tenant_context(tenant.id):
                await jobs.perform_job(database, job.id, settings)
            timings.append(time.perf_counter() - started)
            async with database.session() as session:
                status = (await session.get_one(Tenant, tenant.id)).status
            if status != TenantStatus.ACTIVE:
                raise SystemExit(f"{prefix}-{number} ended {status}; the benchmark stops")
            await run_waiting_fill_jobs(database, settings)
    finally:
        await database.dispose()
    return timings


async def run_waiting_fill_jobs(database: Database, settings: Settings) -> None:
    async with database.session() as session:
        waiting = await session.scalars(
            select(Job.id).where(Job.kind == FILL_WARM_POOL, Job.status == JobStatus.QUEUED)
        )
        job_ids = list(waiting)
    for job_id in job_ids:
        await jobs.perform_job(database, job_id, settings)


#: (mode, golden images, warm pool size, recorded revisions)
MODES = (
    (ALEMBIC, False, 0, False),
    ("recorded replay", False, 0, True),
    ("golden clone", True, 0, True),
    ("warm pool", True, 2, True),
)


@asynccontextmanager
async def installation(
    backend: str, base: Settings, server_url: str | None, *, golden: bool, pool: int
) -> AsyncIterator[Settings]:
    """A new, migrated landlord for one mode's run (a scratch PostgreSQL database, dropped after it
    with every store named after it, or a SQLite file), with golden images and a warm pool of
    `pool` stores, or not."""
    name = f"tenantry_bench_{secrets.token_hex(4)}"
    async with AsyncExitStack() as cleanup:
        if backend == "postgresql":
            assert server_url
            url = await cleanup.enter_async_context(scratch_database(server_url, name))
        else:
            url = f"sqlite+aiosqlite:///{base.data_dir / name}.db"
        settings = replace(
            base, database_url=url, golden_images=golden, warm_pool_size=pool, data_dir=base.data_dir / name
        )
        await prepare_landlord(settings)
        yield settings


async def run_backend(
    backend: str, base: Settings, count: int, server_url: str | None, isolation: str = "database"
) -> list[Result]:
    results = []
    label = backend if isolation == "database" else f"{backend} {isolation}"
    # Shared tenants neither record revisions (the store holds others' rows) nor clone.
    for mode, golden, pool, recorded in MODES if isolation != "shared" else MODES[:1]:
        async with installation(backend, base, server_url, golden=golden, pool=pool) as settings:
            timings = await provision_many(settings, count, isolation, recorded=recorded)
            results.append(Result(label, mode, timings))
            if mode == "golden clone":
                floor_mode, seconds = await floor(settings, isolation, count)
                results.append(Result(label, floor_mode, seconds))
    return results


async def floor(settings: Settings, isolation: str, count: int) -> tuple[str, list[float]]:
    """What the database itself takes to make one tenant's store, with nothing of Tenantry in the
    way, `count` times: a copy of a golden image's file (SQLite), `CREATE DATABASE … TEMPLATE` of it
    on one open connection (PostgreSQL databases), or psql replaying a tenant schema's schema-only
    dump under a new name (PostgreSQL schemas). The copies are removed afterwards."""
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            image = (await session.scalars(select(GoldenImage).limit(1))).one()
            tenant = (await session.scalars(select(Tenant).order_by(Tenant.id).limit(1))).one()
    finally:
        await database.dispose()
    if settings.tenant_server_url is None:
        return "floor: file copy", await _copies(Path(image.store_name), count)
    server = make_url(settings.tenant_server_url).set(drivername="postgresql")
    if isolation == "schema":
        return "floor: psql dump", await _psql_replays(server, tenant.store_name or "", count)
    # Named after the run's landlord database, so the run's clean-up drops them should this stop.
    prefix = f"{make_url(settings.database_url).database}_floor"
    return "floor: TEMPLATE", await _template_copies(server, image.store_name, prefix, count)


async def _copies(image: Path, count: int) -> list[float]:
    timings = []
    for number in range(count):
        target = image.with_name(f"floor_{number}.db")
        started = time.perf_counter()
        await asyncio.to_thread(shutil.copyfile, image, target)
        timings.append(time.perf_counter() - started)
        target.unlink()
    return timings


async def _template_copies(server: URL, image: str, prefix: str, count: int) -> list[float]:
    connection = await asyncpg.connect(server.set(database="postgres").render_as_string(hide_password=False))
    timings = []
    try:
        for number in range(count):
            started = time.perf_counter()
            await connection.execute(f'CREATE DATABASE "{prefix}_{number}" TEMPLATE "{image}"')
            timings.append(time.perf_counter() - started)
        for number in range(count):
            await connection.execute(f'DROP DATABASE "{prefix}_{number}"')
    finally:
        await connection.close()
    return timings


async def _psql_replays(server: URL, schema: str, count: int) -> list[float]:
    dsn = server.set(password=None).render_as_string(hide_password=False)
    environment = {**os.environ, "PGPASSWORD": server.password or ""}
    dump = await asyncio.create_subprocess_exec(
        "pg_dump", "--schema-only", f"--schema={schema}", dsn, stdout=asyncio.subprocess.PIPE, env=environment
    )
    script, _ = await dump.communicate()
    timings = []
    for number in range(count):
        renamed = re.sub(rf"\b{re.escape(schema)}\b", f"floor_{number}", script.decode())
        started = time.perf_counter()
        replay = await asyncio.create_subprocess_exec(
            "psql",
            "--quiet",
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            dsn,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env=environment,
        )
        await replay.communicate(renamed.encode())
        timings.append(time.perf_counter() - started)
        if replay.returncode != 0:
            raise SystemExit(f"psql could not replay the dump of {schema}")
    drop = ", ".join(f'"floor_{number}"' for number in range(count))
    cleanup = await asyncio.create_subprocess_exec(
        "psql",
        "--quiet",
        "--no-psqlrc",
        dsn,
        "-c",
        f"DROP SCHEMA {drop} CASCADE",
        env=environment,
        stderr=asyncio.subprocess.DEVNULL,  # its notice lists every table the drop takes along
    )
    await cleanup.wait()
    return timings


def report(results: list[Result], count: int) -> None:
    print(f"\nProvisioning {count} tenants per run (three templates with their default modules)\n")
    print(
        f"{'backend':<18} {'mode':<18} {'p50 ms':>8} {'p95 ms':>8} {'tenants/min':>12} "
        f"{'p50 vs Alembic':>14} {'p50 / floor':>12}"
    )
    baselines = {r.backend: r for r in results if r.mode == ALEMBIC}
    floors = {r.backend: r for r in results if r.mode.startswith("floor")}
    for result in results:
        speedup = baselines[result.backend].p50 / result.p50
        floor = floors.get(result.backend)  # a shared tenant makes no store: it has none
        above_floor = f"{result.p50 / floor.p50:>11.1f}x" if floor else f"{'-':>12}"
        print(
            f"{result.backend:<18} {result.mode:<18} {1000 * result.p50:>8.1f} {1000 * result.p95:>8.1f} "
            f"{result.per_minute:>12.1f} {speedup:>13.2f}x {above_floor}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        base = scratch_settings(Path(folder))
        for isolation in ("database", "shared"):
            results += asyncio.run(run_backend("sqlite", base, args.tenants, None, isolation))
        if args.postgres_url:
            # Tenant databases go on the landlord's server, named after the landlord database.
            for isolation in ("database", "schema", "shared"):
                results += asyncio.run(
                    run_backend("postgresql", base, args.tenants, args.postgres_url, isolation)
                )
        else:
            print("PostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    report(results, args.tenants)


if __name__ == "__main__":
    main()
