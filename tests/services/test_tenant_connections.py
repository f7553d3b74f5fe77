"""With hundreds of tenant stores, a process holds at most the configured number of connections."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.models import IsolationMode
from services.tenancy.connections import StoresBusy, TenantConnections
from services.tenancy.stores import SQLITE, StoreLocation
from tests.support import POSTGRES_URL, requires_postgres


def _sqlite_stores(folder: Path, count: int) -> list[StoreLocation]:
    folder.mkdir(parents=True, exist_ok=True)
    stores = []
    for number in range(count):
        path = folder / f"tenant-{number}.db"
        stores.append(StoreLocation(SQLITE, IsolationMode.DATABASE, str(path), f"sqlite+aiosqlite:///{path}"))
    return stores


def _open_store_files(folder: Path) -> int:
    """Connections as the operating system sees them: this process's open handles on store files."""
    handles = 0
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:
            continue
        handles += target.startswith(str(folder)) and target.endswith(".db")
    return handles


async def _hammer(connections: TenantConnections, stores: list[StoreLocation], requests: int) -> list[int]:
    """`requests` concurrent short requests on random stores; what each one read."""

    async def one(store: StoreLocation) -> int:
        async with connections.connection(store) as connection:
            return int(await connection.scalar(text("SELECT 1")))

    return await asyncio.gather(*(one(random.choice(stores)) for _ in range(requests)))


def test_hundreds_of_sqlite_stores_never_hold_more_than_the_limit(tmp_path: Path) -> None:
    stores = _sqlite_stores(tmp_path / "tenants", 300)
    limit = 8

    async def scenario() -> None:
        connections = TenantConnections(limit)
        peak = 0

        async def watch(done: asyncio.Event) -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _open_store_files(tmp_path / "tenants"))
                await asyncio.sleep(0)  # a sampler: look again each time the loop turns

        done = asyncio.Event()
        watcher = asyncio.create_task(watch(done))
        try:
            answers = await _hammer(connections, stores, 300)
        finally:
            done.set()
            await watcher
        assert answers == [1] * 300, "every request was served"
        assert 0 < peak <= limit, f"{peak} store files open at once"
        assert connections.engines <= limit
        await connections.dispose()
        assert _open_store_files(tmp_path / "tenants") == 0

    asyncio.run(scenario())


def test_a_request_that_cannot_get_a_connection_in_time_is_told_to_retry(tmp_path: Path) -> None:
    first, second = _sqlite_stores(tmp_path / "tenants", 2)

    async def scenario() -> None:
        connections = TenantConnections(1, wait_seconds=0.2)
        async with connections.connection(first):
            with pytest.raises(StoresBusy, match="Try again"):
                async with connections.connection(second):
                    pass
        async with connections.connection(second) as connection:  # free again once returned
            assert await connection.scalar(text("SELECT 1")) == 1
        await connections.dispose()

    asyncio.run(scenario())


@requires_postgres
def test_many_postgresql_databases_never_see_more_than_the_limit_from_one_process() -> None:
    assert POSTGRES_URL
    server = make_url(POSTGRES_URL)
    prefix = f"tenantry_pool_{secrets.token_hex(4)}"
    names = [f"{prefix}_{number}" for number in range(12)]
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    limit = 4

    async def scenario() -> None:
        admin = await asyncpg.connect(admin_dsn)
        try:
            for name in names:
                await admin.execute(f'CREATE DATABASE "{name}"')
            stores = [
                StoreLocation(
                    "postgresql",
                    IsolationMode.DATABASE,
                    name,
                    server.set(database=name).render_as_string(hide_password=False),
                )
                for name in names
            ]
            connections = TenantConnections(limit)
            peak = 0

            async def watch(done: asyncio.Event) -> None:
                nonlocal peak
                while not done.is_set():
                    count = await admin.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE $1", f"{prefix}_%"
                    )
                    peak = max(peak, count)
                    await asyncio.sleep(0)

            done = asyncio.Event()
            watcher = asyncio.create_task(watch(done))
            try:
                answers = await _hammer(connections, stores, 200)
            finally:
                done.set()
                await watcher
            assert answers == [1] * 200
            assert 0 < peak <= limit, f"the server saw {peak} connections from this process"
            await connections.dispose()
        finally:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

    asyncio.run(scenario())
