"""Moves of one tenant's store: rows per second along each path against a portable backup and
restore of the same rows, and how long a move holds the tenant's writes.

    python -m benchmarks.moves [--rows 100000] [--runs 3] [--freeze-moves 20] [--freeze-rows 300]
                               [--postgres-url postgresql+asyncpg://…]

A temporary installation (SQLite landlord; with a PostgreSQL URL, tenant stores on that server
too, in a scratch database created for the run and dropped afterwards, with every store beside it)
provisions one community_group tenant with the events and finance modules in a SQLite database and
fills it with --rows rows as benchmarks.backup does. Each round then moves it along the paths, each
move starting where the one before ended:

    SQLite database → SQLite shared → SQLite database → PostgreSQL database → PostgreSQL schema
    → PostgreSQL shared → PostgreSQL database

(without PostgreSQL, the first two), and back to a SQLite database, unmeasured, for the next round.
A move is requested (services.moves.request_move) and its job performed in this process as a worker
performs it; it is timed from the job's claim to its end. The store it left is then dropped as the
workers' sweep drops it when its retention is over, outside the timing, so that every round finds
the stores alike (no kept rows of the tenant in a shared store).

- baseline: before each move, on the same rows in the same store, the same copy without the
  move's job: a portable backup (benchmarks.backup.back_up: dump, checksum, manifest) restored
  into a new store of its own on the move's target backend (benchmarks.backup.restore: no lock,
  no maintenance, no validation, no swap; a shared store's staging and loading neither). The first
  restore of a path whose tenant is in a database store of that backend is compared with its
  manifest, outside the timing.
- freeze: the tenant serves while it is copied; only the final catch-up and the swap hold its
  writes (freeze_ms: maintenance on to off). Each path's median freeze_ms is printed beside its
  median copy_ms (dump to validate). Then, in an installation of its own, a tenant of --freeze-rows
  rows moves --freeze-moves times back and forth between a database of its own and the shared
  store, on SQLite, then on PostgreSQL; p50 and p95 of the moves' freeze_ms, for the moves into
  its own database and into the shared store apart (into a shared store the swap loads its rows).

Medians over the rounds; the ratio is the move's time against its baseline's. Where a move's time
goes is printed too: the median seconds of each of its job's steps (JobStep started and finished)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from benchmarks.backup import back_up, make_tenant, restore
from benchmarks.fleet import load_average, percentile
from benchmarks.installation import scratch_database, scratch_settings
from services import jobs
from services.backups.storage import backup_storage
from services.db import Database
from services.installation import prepare_landlord
from services.models import BackupFormat, IsolationMode, Job, JobStatus, JobStep, Tenant, TenantMove
from services.models.types import utcnow
from services.moves import kept
from services.moves import steps as _move_jobs  # noqa: F401  (registers the move job)
from services.moves.requests import BACKEND_NAMES, MOVE_STEP_NAMES, UNCHANGED_SINCE, MoveTarget, request_move
from services.settings import Settings
from services.tenancy.context import tenant_context
from services.tenancy.stores import POSTGRESQL, SQLITE

#: A kind of store: (backend, isolation).
Kind = tuple[str, str]
SQLITE_DATABASE: Kind = (SQLITE, IsolationMode.DATABASE)
SQLITE_SHARED: Kind = (SQLITE, IsolationMode.SHARED)
POSTGRES_DATABASE: Kind = (POSTGRESQL, IsolationMode.DATABASE)
POSTGRES_SCHEMA: Kind = (POSTGRESQL, IsolationMode.SCHEMA)
POSTGRES_SHARED: Kind = (POSTGRESQL, IsolationMode.SHARED)
#: The kinds of store a round takes the tenant through, in order; a path is two neighbours.
ROUND = [
    SQLITE_DATABASE,
    SQLITE_SHARED,
    SQLITE_DATABASE,
    POSTGRES_DATABASE,
    POSTGRES_SCHEMA,
    POSTGRES_SHARED,
    POSTGRES_DATABASE,
]
#: The steps a move's job runs (a move, not a move back).
STEPS = [name for name in MOVE_STEP_NAMES if name != UNCHANGED_SINCE]


def describe(kind: Kind) -> str:
    backend, isolation = kind
    return f"{BACKEND_NAMES[backend]} {isolation}"


@dataclass(frozen=True)
class Installation:
    """A landlord, with tenant stores on SQLite and, when a server is given, on PostgreSQL."""

    database: Database
    #: Every kind of store here: moves, backups and restores onto PostgreSQL use these.
    settings: Settings
    #: The same installation placing new stores on SQLite.
    sqlite: Settings

    def placing_on(self, backend: str) -> Settings:
        """The settings that place a new tenant or restored store on `backend`."""
        return self.settings if backend == POSTGRESQL else self.sqlite


@asynccontextmanager
async def installation(base: Settings, purpose: str, server_url: str | None) -> AsyncIterator[Installation]:
    """A new installation for the run, in a folder of its own (and a scratch database on the
    server, when one is given), gone afterwards."""
    name = f"tenantry_{purpose}_{secrets.token_hex(4)}"
    sqlite = replace(
        base,
        data_dir=base.data_dir / name,
        database_url=f"sqlite+aiosqlite:///{base.data_dir / name / 'landlord.db'}",
    )
    async with AsyncExitStack() as cleanup:
        settings = sqlite
        if server_url:
            tenant_server = await cleanup.enter_async_context(scratch_database(server_url, name))
            settings = replace(sqlite, tenant_postgres_url=tenant_server)
        await prepare_landlord(settings)
        database = Database(settings.database_url)
        cleanup.push_async_callback(database.dispose)
        yield Installation(database, settings, sqlite)


# Moving ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    to: Kind
    seconds: float
    rows: int
    freeze_ms: int
    copy_ms: int
    #: Each step's seconds, by name.
    steps: dict[str, float]


async def perform(here: Installation, job_id: int, tenant_id: int) -> None:
    """Perform the job here as a worker would; its failure is a SystemExit."""
    with tenant_context(tenant_id):
        await jobs.perform_job(here.database, job_id, here.settings)
    async with here.database.session() as session:
        job = await session.get_one(Job, job_id)
        if job.status != JobStatus.SUCCEEDED:
            failed = await session.scalars(
                select(JobStep).where(JobStep.job_id == job_id, JobStep.error.is_not(None))
            )
            raise SystemExit(
                f"the {job.kind} job #{job_id} ended {job.status}: {job.error} {[(s.name, s.error) for s in failed]}"
            )


async def move(here: Installation, tenant_id: int, to: Kind) -> Moved:
    """Move the tenant's store to `to`; the store it left is dropped afterwards, outside the timing."""
    backend, isolation = to
    async with here.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
        requested = await request_move(
            session, here.settings, tenant, MoveTarget(isolation=isolation, backend=backend)
        )
    started = time.perf_counter()
    await perform(here, requested.job.id, tenant_id)
    seconds = time.perf_counter() - started
    async with here.database.session() as session:
        moved = await session.get_one(TenantMove, requested.move.id)
        steps = await session.scalars(select(JobStep).where(JobStep.job_id == requested.job.id))
        durations = {step.name: step.duration_seconds or 0.0 for step in steps}
        # Its retention over at once: the sweep below drops what it left.
        moved.kept_until = utcnow()
    assert moved.rows is not None and moved.freeze_ms is not None and moved.copy_ms is not None
    await drop_left_stores(here)
    return Moved(to, seconds, moved.rows, moved.freeze_ms, moved.copy_ms, durations)


async def drop_left_stores(here: Installation) -> None:
    """What the workers' sweep does for the stores left by moves whose retention is over."""
    for job in await kept.request_due_drops(here.database, now=utcnow()):
        assert job.tenant_id is not None
        await perform(here, job.id, job.tenant_id)


async def copy_by_hand(here: Installation, tenant_id: int, to: Kind, number: int) -> float:
    """The baseline: a portable backup of the tenant restored into a new store on `to`'s backend;
    the seconds both took."""
    async with here.database.session() as session:
        tenant = await session.get_one(Tenant, tenant_id)
    backup, backup_seconds = await back_up(here.settings, here.database, tenant, BackupFormat.PORTABLE)
    # The schema is compared too, so only where the restore makes the kind of store it came from.
    same_kind = number == 0 and (tenant.store_backend, tenant.isolation) == (to[0], IsolationMode.DATABASE)
    restore_seconds = await restore(here.placing_on(to[0]), backup, number, compare=same_kind)
    assert backup.storage_key is not None
    backup_storage(here.settings).delete(backup.storage_key)
    return backup_seconds + restore_seconds


# Throughput ------------------------------------------------------------------------------------------


@dataclass
class MovePath:
    start: Kind
    to: Kind
    moves: list[Moved] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{describe(self.start)} → {describe(self.to)}"

    @property
    def median(self) -> float:
        return statistics.median(moved.seconds for moved in self.moves)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baselines)

    @property
    def copy_ms(self) -> float:
        return statistics.median(moved.copy_ms for moved in self.moves)

    @property
    def freeze_ms(self) -> float:
        return statistics.median(moved.freeze_ms for moved in self.moves)


async def measure_paths(base: Settings, rows: int, runs: int, server_url: str | None) -> list[MovePath]:
    kinds = ROUND if server_url else ROUND[:3]
    paths = [MovePath(start, to) for start, to in pairwise(kinds)]
    async with installation(base, "moves", server_url) as here:
        started = time.perf_counter()
        tenant = await make_tenant(here.sqlite, here.database, rows)
        print(f"a tenant of {rows:,} rows made in {time.perf_counter() - started:.0f}s", flush=True)
        for number in range(runs):
            started = time.perf_counter()
            for path in paths:
                path.baselines.append(await copy_by_hand(here, tenant.id, path.to, number))
                path.moves.append(await move(here, tenant.id, path.to))
            if kinds[-1] != kinds[0] and number < runs - 1:
                await move(here, tenant.id, kinds[0])
            print(f"round {number + 1} of {runs} in {time.perf_counter() - started:.0f}s", flush=True)
    return paths


# The write freeze ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Freeze:
    backend: str
    moves: list[Moved]

    @property
    def name(self) -> str:
        return f"{BACKEND_NAMES[self.backend]} database ↔ shared"

    def freeze_ms(self, isolation: str) -> list[float]:
        """The freezes of the moves into a store of `isolation`."""
        return [float(moved.freeze_ms) for moved in self.moves if moved.to[1] == isolation]


async def measure_freeze(
    base: Settings, backend: str, rows: int, moves: int, server_url: str | None
) -> Freeze:
    async with installation(base, "freeze", server_url) as here:
        tenant = await make_tenant(here.placing_on(backend), here.database, rows)
        there = [(backend, IsolationMode.SHARED), (backend, IsolationMode.DATABASE)]
        return Freeze(backend, [await move(here, tenant.id, there[number % 2]) for number in range(moves)])


# The report ------------------------------------------------------------------------------------------


def report(paths: list[MovePath], freezes: list[Freeze], runs: int) -> None:
    print(
        f"\nMoves of one tenant, median of {runs} rounds; baseline: a portable backup restored into a new store\n"
    )
    print(
        f"{'path':<42} {'rows':>9} {'median s':>9} {'rows/s':>9} {'baseline s':>11} {'vs baseline':>12}"
        f" {'copy ms':>9} {'held ms':>9}"
    )
    for path in paths:
        rows = path.moves[0].rows
        print(
            f"{path.name:<42} {rows:>9,} {path.median:>9.2f} {rows / path.median:>9,.0f} "
            f"{path.baseline:>11.2f} {path.median / path.baseline:>11.2f}x {path.copy_ms:>9,.0f} {path.freeze_ms:>9,.0f}"
        )
    for freeze in freezes:
        for isolation in (IsolationMode.DATABASE, IsolationMode.SHARED):
            held = freeze.freeze_ms(isolation)
            print(
                f"\n{freeze.name}, {len(held)} moves into the {isolation} store of a tenant of "
                f"{freeze.moves[0].rows:,} rows: writes held p50 {statistics.median(held):,.0f} ms, "
                f"p95 {percentile(held, 0.95):,.0f} ms"
            )
    print("\nWhere a move's time goes: median seconds of each step of its job\n")
    print(f"{'moves':<42} " + " ".join(f"{name.replace('maintenance', 'maint.'):>9}" for name in STEPS))
    series = [(path.name, path.moves) for path in paths]
    series += [(f"{freeze.name} ({freeze.moves[0].rows:,} rows)", freeze.moves) for freeze in freezes]
    for name, moves in series:
        medians = [statistics.median(moved.steps.get(step, 0.0) for moved in moves) for step in STEPS]
        print(f"{name:<42} " + " ".join(f"{seconds:>9.2f}" for seconds in medians))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the tenant whose moves are timed")
    parser.add_argument("--runs", type=int, default=3, help="rounds along the paths (the median is shown)")
    parser.add_argument(
        "--freeze-moves", type=int, default=20, help="moves of the small tenant on each backend"
    )
    parser.add_argument("--freeze-rows", type=int, default=300, help="rows in the small tenant")
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.freeze_rows < 100:
        parser.error("--rows must be at least 1000, --freeze-rows at least 100")
    if args.runs < 1 or args.freeze_moves < 2:
        parser.error("--runs must be at least 1, --freeze-moves at least 2")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    print(f"Load average at the start: {load_average()} on {os.cpu_count()} CPUs", flush=True)
    freezes = []
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        base = scratch_settings(Path(folder), golden_images=False)
        paths = asyncio.run(measure_paths(base, args.rows, args.runs, args.postgres_url))
        for backend in [SQLITE] + ([POSTGRESQL] if args.postgres_url else []):
            server_url = args.postgres_url if backend == POSTGRESQL else None
            freezes.append(
                asyncio.run(measure_freeze(base, backend, args.freeze_rows, args.freeze_moves, server_url))
            )
        if not args.postgres_url:
            print("PostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    report(paths, freezes, args.runs)
    print(f"\nLoad average at the end: {load_average()}")


if __name__ == "__main__":
    main()
