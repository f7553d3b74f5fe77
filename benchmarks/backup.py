"""Backup and restore throughput of one tenant, native and portable, on SQLite and PostgreSQL.

    python -m benchmarks.backup [--rows 100000] [--runs 3] [--postgres-url postgresql+asyncpg://…]

A temporary installation (SQLite landlord) provisions one community_group tenant with the events
and finance modules in its own store (a SQLite file; a PostgreSQL database on the given server,
created for the run and dropped afterwards) and fills it with N rows over seven tables: units,
venues, events, registrations, accounts, budgets, transactions (text, integers, decimals, dates,
times, booleans, NULLs).

- backup: what the backup job does before it verifies, in this process: the dump (the SQLite
  backup API or pg_dump, or the rows as JSON lines; every table counted and hashed from the same
  view), the archive put into backup storage, its SHA-256, its manifest read back.
- restore: the archive checked and unpacked, and restored with restore_into into a new store (the
  file copied back, the pg_dump script played by psql, or an empty store migrated to the
  manifest's layer revisions and the rows loaded). The first restore of each format is compared
  with the manifest (counts and checksums), outside the timing.

MB/s counts the archive's data uncompressed (the SQLite file, the SQL script, the JSON lines), so
the formats' figures count different bytes; rows/s counts the tenant's rows. Medians over the
runs; the last column is the time against the native format's in the same run."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import secrets
import shutil
import statistics
import tarfile
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, insert, select
from sqlalchemy.engine import Connection

from benchmarks.installation import scratch_database, scratch_settings
from services import jobs
from services.backups import request_backup
from services.backups.archive import MANIFEST, check_archive, extract_archive
from services.backups.postgres import have_postgres_tools
from services.backups.restore import differences, measure_store, restore_into
from services.backups.steps import BackupRun, checksum, dump, record_manifest
from services.backups.storage import BackupStorage, backup_storage
from services.db import Database
from services.installation import prepare_landlord
from services.layers.ownership import TENANT_COLUMN
from services.models import Backup, BackupFormat, IsolationMode, JobStatus, Tenant, TenantStatus
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import Settings
from services.tenancy.context import tenant_context
from services.tenancy.stores import drop_store, location_of, plan_store

TEMPLATE, MODULES = "community_group", ["events", "finance"]
#: How the rows are shared among the tables (units and accounts first: the others point at them).
SHARES = {
    "units": 0.01,
    "venues": 0.01,
    "finance_accounts": 0.001,
    "events": 0.25,
    "event_registrations": 0.35,
    "budgets": 0.01,
}
_BATCH = 5000


@dataclass(frozen=True)
class Timing:
    backend: str
    format: str
    step: str
    seconds: list[float]
    data_bytes: int
    archive_bytes: int
    rows: int

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mb_per_second(self) -> float:
        return self.data_bytes / 1_000_000 / self.median

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.median


# The tenant ------------------------------------------------------------------------------------------


def _rows(table: str, count: int, ids: dict[str, list[int]], pick: random.Random) -> list[dict[str, Any]]:
    """`count` rows for `table`, pointing at rows already made (`ids`)."""
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    made: list[dict[str, Any]] = []
    for number in range(count):
        when = moment + timedelta(minutes=pick.randrange(500_000), microseconds=pick.randrange(1_000_000))
        unit = pick.choice(ids.get("units", ids["root"])) if pick.random() < 0.8 else None
        if table == "units":
            made.append(
                {
                    "parent_id": ids["root"][0],
                    "name": f"Ward {number}",
                    "kind": "ward",
                    "path": f"/w{number}/",
                }
            )
        elif table == "venues":
            made.append(
                {
                    "name": f"Hall {number}",
                    "city": pick.choice(["Hull", "York", "Leeds", None]),
                    "seats": pick.randrange(20, 2000),
                    "unit_id": unit,
                    "address": f"{number} Quay Street",
                }
            )
        elif table == "finance_accounts":
            made.append(
                {
                    "code": f"{4000 + number}",
                    "name": f"Account {number}",
                    "kind": pick.choice(["income", "expense"]),
                    "currency": "EUR",
                    "is_active": pick.random() < 0.9,
                    "unit_id": unit,
                }
            )
        elif table == "events":
            made.append(
                {
                    "venue_id": pick.choice(ids["venues"]),
                    "title": f"Regatta nº {number} — Ünal's cup",
                    "description": "Boats, tea and a long afternoon on the water. " * pick.randrange(0, 4)
                    or None,
                    "starts_at": when,
                    "ends_at": when + timedelta(hours=3) if pick.random() < 0.7 else None,
                    "status": pick.choice(["draft", "published", "completed"]),
                    "is_public": pick.random() < 0.5,
                    "unit_id": unit,
                    "capacity": pick.choice([None, 50, 120, 400]),
                }
            )
        elif table == "event_registrations":
            made.append(
                {
                    "event_id": pick.choice(ids["events"]),
                    "attendee_name": f"Attendee {number}",
                    "attendee_email": f"attendee{number}@harbour.example",
                    "status": "registered",
                    "unit_id": unit,
                }
            )
        elif table == "budgets":
            made.append(
                {
                    "account_id": ids["finance_accounts"][number % len(ids["finance_accounts"])],
                    "name": f"Budget {number}",
                    "period_start": date(2000, 1, 1) + timedelta(days=number),
                    "period_end": date(2030, 12, 31),
                    "amount": Decimal(pick.randrange(100, 10_000_000)) / 100,
                    "currency": "EUR",
                    "unit_id": unit,
                }
            )
        else:
            made.append(
                {
                    "account_id": pick.choice(ids["finance_accounts"]),
                    "budget_id": pick.choice([None, *ids["budgets"][:50]]),
                    "occurred_on": when.date(),
                    "direction": pick.choice(["debit", "credit"]),
                    "amount": Decimal(pick.randrange(1, 5_000_000)) / 100,
                    "currency": "EUR",
                    "description": f"Donation {number}",
                    "counterparty": pick.choice([None, "Harbour Trust", "Zoë"]),
                    "reference": f"T-{number:07d}",
                    "unit_id": unit,
                }
            )
    return made


def _fill(connection: Connection, tenant_id: int, total: int) -> int:
    metadata = MetaData()
    metadata.reflect(connection)
    tables = metadata.tables
    pick = random.Random(5)
    ids: dict[str, list[int]] = {
        "root": [
            connection.execute(
                select(tables["units"].c.id).where(tables["units"].c.parent_id.is_(None))
            ).scalar_one()
        ]
    }
    counts = {name: max(1, int(total * share)) for name, share in SHARES.items()}
    counts["transactions"] = total - sum(counts.values())
    for name in [*SHARES, "transactions"]:
        table = tables[name]
        rows = _rows(name, counts[name], ids, pick)
        for start in range(0, len(rows), _BATCH):
            batch = [row | {TENANT_COLUMN: tenant_id} for row in rows[start : start + _BATCH]]
            connection.execute(insert(table), batch)
        ids[name] = list(connection.execute(select(table.c.id).order_by(table.c.id)).scalars())
    return sum(counts.values())


async def make_tenant(settings: Settings, database: Database, rows: int) -> Tenant:
    async with database.session() as session:
        tenant, job, _ = await request_tenant(
            session, settings, TenantRequest("harbour-club", "Harbour Club", TEMPLATE, MODULES, "database")
        )
    with tenant_context(tenant.id):
        await jobs.perform_job(database, job.id, settings)
    async with database.session() as session:
        tenant = await session.get_one(Tenant, tenant.id)
    if tenant.status != TenantStatus.ACTIVE:
        raise SystemExit(f"the tenant ended {tenant.status}: {tenant.error}")
    store = location_of(settings, tenant).open()
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(_fill, tenant.id, rows)
    finally:
        await store.dispose()
    return tenant


# Backing up and restoring ----------------------------------------------------------------------------


async def back_up(
    settings: Settings, database: Database, tenant: Tenant, format: str
) -> tuple[Backup, float]:
    """The backup job's work before it verifies; the seconds it took."""
    async with database.session() as session:
        requested = await request_backup(session, settings, tenant, format, requested_by="benchmark")
        requested.job.status = JobStatus.SUCCEEDED  # done here, never sent to a worker
    run = BackupRun(settings, database, requested.job.id, tenant.id, requested.backup.id)
    started = time.perf_counter()
    for step in (dump, checksum, record_manifest):
        async with database.session() as session:
            await step(run, session)
    seconds = time.perf_counter() - started
    async with database.session() as session:
        return await session.get_one(Backup, requested.backup.id), seconds


def data_bytes(storage: BackupStorage, key: str) -> int:
    """The archive's members but the manifest, uncompressed."""
    with storage.open(key) as handle, tarfile.open(fileobj=handle, mode="r:gz") as archive:
        return sum(member.size for member in archive.getmembers() if member.name != MANIFEST)


async def restore(settings: Settings, backup: Backup, number: int, *, compare: bool) -> float:
    """Restore the backup into a new store; the seconds it took. The store is dropped afterwards."""
    assert backup.storage_key is not None and backup.manifest is not None and backup.tenant_id is not None
    storage = backup_storage(settings)
    target = plan_store(
        settings, f"restore-{backup.format}-{number}", IsolationMode.DATABASE, purpose="bench"
    )
    work = settings.data_dir / "work" / f"restore-{backup.id}"
    try:
        started = time.perf_counter()
        await asyncio.to_thread(check_archive, storage, backup)
        await asyncio.to_thread(extract_archive, storage, backup.storage_key, work)
        await restore_into(settings, backup.manifest, work, target, tenant_id=backup.tenant_id)
        seconds = time.perf_counter() - started
        if compare:
            found = differences(backup.manifest, await measure_store(target), compare_schema=True)
            if found:
                raise SystemExit(f"the {backup.format} restore differs from its manifest: {found}")
    finally:
        await drop_store(target)
        shutil.rmtree(work, ignore_errors=True)
    return seconds


async def measure_backend(backend: str, settings: Settings, rows: int, runs: int) -> list[Timing]:
    database = Database(settings.database_url)
    try:
        await prepare_landlord(settings)
        started = time.perf_counter()
        tenant = await make_tenant(settings, database, rows)
        print(
            f"{backend}: a tenant of {rows:,} rows made in {time.perf_counter() - started:.0f}s", flush=True
        )
        formats = [BackupFormat.NATIVE, BackupFormat.PORTABLE]
        if backend == "postgresql" and not have_postgres_tools():
            print("PostgreSQL native skipped: pg_dump and psql are not installed")
            formats = [BackupFormat.PORTABLE]
        timings = []
        storage = backup_storage(settings)
        for format in formats:
            backups: list[Backup] = []
            backup_seconds: list[float] = []
            restore_seconds: list[float] = []
            for number in range(runs):
                backup, took = await back_up(settings, database, tenant, format)
                backups.append(backup)
                backup_seconds.append(took)
                restore_seconds.append(await restore(settings, backup, number, compare=number == 0))
            first = backups[0]
            assert first.storage_key is not None and first.manifest is not None
            size = await asyncio.to_thread(data_bytes, storage, first.storage_key)
            total = int(first.manifest["totals"]["rows"])
            for step, runs_seconds in (("backup", backup_seconds), ("restore", restore_seconds)):
                timings.append(
                    Timing(backend, format, step, runs_seconds, size, first.size_bytes or 0, total)
                )
            for backup in backups:
                assert backup.storage_key is not None
                storage.delete(backup.storage_key)
        return timings
    finally:
        await database.dispose()


async def run_backend(
    backend: str, base: Settings, rows: int, runs: int, server_url: str | None
) -> list[Timing]:
    name = f"tenantry_backup_{secrets.token_hex(4)}"
    settings = replace(
        base,
        data_dir=base.data_dir / name,
        database_url=f"sqlite+aiosqlite:///{base.data_dir / name / 'landlord.db'}",
    )
    async with AsyncExitStack() as cleanup:
        if backend == "postgresql":
            assert server_url
            tenant_server = await cleanup.enter_async_context(scratch_database(server_url, name))
            settings = replace(settings, tenant_postgres_url=tenant_server)
        return await measure_backend(backend, settings, rows, runs)


# The report ------------------------------------------------------------------------------------------


def describe_bytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def report(timings: list[Timing], rows: int, runs: int) -> None:
    print(
        f"\nBackup and restore of one tenant of {rows:,} rows (database isolation), median of {runs} runs\n"
    )
    print(
        f"{'backend':<11} {'format':<9} {'step':<8} {'archive':>9} {'data':>9} {'median s':>9} "
        f"{'MB/s':>8} {'rows/s':>10} {'vs native':>10}"
    )
    native = {(t.backend, t.step): t for t in timings if t.format == BackupFormat.NATIVE}
    for timing in timings:
        baseline = native.get((timing.backend, timing.step))
        ratio = f"{timing.median / baseline.median:>9.2f}x" if baseline else f"{'—':>10}"
        print(
            f"{timing.backend:<11} {timing.format:<9} {timing.step:<8} {describe_bytes(timing.archive_bytes):>9} "
            f"{describe_bytes(timing.data_bytes):>9} {timing.median:>9.2f} {timing.mb_per_second:>8.1f} "
            f"{timing.rows_per_second:>10,.0f} {ratio}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the tenant's store")
    parser.add_argument(
        "--runs", type=int, default=3, help="backups and restores per format (the median is shown)"
    )
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        base = scratch_settings(Path(folder), golden_images=False)
        timings += asyncio.run(run_backend("sqlite", base, args.rows, args.runs, None))
        if args.postgres_url:
            timings += asyncio.run(run_backend("postgresql", base, args.rows, args.runs, args.postgres_url))
        else:
            print("PostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    report(timings, args.rows, args.runs)


if __name__ == "__main__":
    main()
