"""Tenantry beside django-tenants: new tenants on the same PostgreSQL server, in one run.

    python -m benchmarks.peers [--tenants 50] [--postgres-url postgresql+asyncpg://…]

django-tenants makes a tenant by creating its schema and running its Django migrations
(`Client(...).save()`, then its domain), in the calling process. Tenantry is timed from the request
to `active` with its provisioning job run in-process (no broker in the measure), as
benchmarks/provisioning.py times it: replaying its layers into a schema, and taking a store from
the warm pool (schema and database isolation; the fill jobs a tenant leaves behind run between
tenants, untimed, as workers run them in the background). The peer's tenant app mirrors the
tables of one Tenantry tenant (the one with the median number of tables), from its schema
snapshot: the same columns, keys, foreign keys, unique constraints and indexes (not its CHECK
constraints), so both make the same schema per tenant.

django-tenants runs in a virtual environment of its own, built once under var/bench from
benchmarks/peers/django_tenants/requirements.lock (pinned, with hashes); Tenantry's environment
never holds Django."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from benchmarks.installation import scratch_database, scratch_settings
from benchmarks.provisioning import Result, installation, provision_many
from services.db import Database
from services.models import SchemaSnapshot
from services.settings import PROJECT_ROOT, Settings

PEER = Path(__file__).parent / "peers" / "django_tenants"
PEER_ENVIRONMENT = PROJECT_ROOT / "var" / "bench" / "django-tenants"
#: (isolation, mode, golden images, warm pool size) of the Tenantry runs.
TENANTRY_MODES = (
    ("schema", "recorded replay", False, 0),
    ("schema", "warm pool", True, 2),
    ("database", "warm pool", True, 2),
)


def peer_python() -> Path:
    """The peer environment's Python, built (or rebuilt when the lock file changed) first."""
    lock = PEER / "requirements.lock"
    stamp = PEER_ENVIRONMENT / ".installed"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    python = PEER_ENVIRONMENT / "bin" / "python"
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    shutil.rmtree(PEER_ENVIRONMENT, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_ENVIRONMENT)], check=True)
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(lock),
        ],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        raise SystemExit(f"django-tenants could not be installed from {lock}:\n{installed.stderr[-2000:]}")
    stamp.write_text(wanted)
    return python


async def tenantry_runs(base: Settings, count: int, server_url: str) -> tuple[list[Result], dict[str, Any]]:
    """Each Tenantry mode's timings, and the schema snapshot of the tenant with the median number
    of tables (what the peer's tenants will hold)."""
    results, described = [], []
    for isolation, mode, golden, pool in TENANTRY_MODES:
        async with installation("postgresql", base, server_url, golden=golden, pool=pool) as settings:
            results.append(
                Result(f"Tenantry {isolation}", mode, await provision_many(settings, count, isolation))
            )
            described += await _snapshots(settings)
    described.sort(key=lambda description: len(description["tables"]))
    return results, described[len(described) // 2]


async def _snapshots(settings: Settings) -> list[dict[str, Any]]:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            return list(await session.scalars(select(SchemaSnapshot.description)))
    finally:
        await database.dispose()


async def django_tenants_run(
    python: Path, count: int, server_url: str, schema: dict[str, Any]
) -> tuple[Result, int]:
    """django-tenants making `count` tenants whose app mirrors `schema` (a Tenantry snapshot); its
    timings, and how many tables each tenant's schema has (its migrations table too)."""
    async with scratch_database(server_url, "tenantry_bench_peer") as url:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with tempfile.TemporaryDirectory(prefix="tenantry-peer-") as scratch:
            result, mirrored = Path(scratch) / "result.json", Path(scratch) / "schema.json"
            mirrored.write_text(json.dumps(schema))
            process = await asyncio.create_subprocess_exec(
                str(python),
                str(PEER / "run.py"),
                "--tenants",
                str(count),
                "--scratch",
                scratch,
                "--result",
                str(result),
                env={**os.environ, "PEER_DATABASE_URL": dsn, "PEER_SCHEMA": str(mirrored)},
                stderr=asyncio.subprocess.PIPE,
            )
            _, error = await process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"the django-tenants run failed:\n{error.decode()[-3000:]}")
            measured = json.loads(result.read_text())
    return Result("django-tenants schema", "migrate", measured["seconds"]), measured["tables"]


def report(peer: Result, peer_tables: int, ours: list[Result], our_tables: int, count: int) -> None:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{count} new tenants per system on one PostgreSQL server, one after the other (load {load})\n")
    print(
        f"{'system':<24} {'mode':<10} {'tables':>6} {'p50 ms':>8} {'p95 ms':>8} {'p50 ms/table':>13} "
        f"{'faster than django-tenants (p50)':>33}"
    )
    for result, tables in [(peer, peer_tables), *((result, our_tables) for result in ours)]:
        print(
            f"{result.backend:<24} {result.mode:<10} {tables:>6} {1000 * result.p50:>8.1f} "
            f"{1000 * result.p95:>8.1f} {1000 * result.p50 / tables:>13.2f} {peer.p50 / result.p50:>32.1f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    if not args.postgres_url:
        print("The peer benchmark runs on PostgreSQL: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
        return
    python = peer_python()
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        base = scratch_settings(Path(folder))
        ours, schema = asyncio.run(tenantry_runs(base, args.tenants, args.postgres_url))
    peer, peer_tables = asyncio.run(django_tenants_run(python, args.tenants, args.postgres_url, schema))
    report(peer, peer_tables, ours, len(schema["tables"]), args.tenants)


if __name__ == "__main__":
    main()
