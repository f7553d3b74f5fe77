"""What the benchmarks share: a scratch PostgreSQL database for one run, dropped afterwards with
every tenant store and role named after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from services.settings import PROJECT_ROOT, Settings


async def on_server(server_url: str, sql: str) -> list[asyncpg.Record]:
    """Run `sql` connected to the database the URL names (the server's `postgres` database when it
    names none): databases are made and dropped from there, so a role that may connect only to its
    own database can run the benchmarks."""
    url = make_url(server_url)
    dsn = url.set(drivername="postgresql", database=url.database or "postgres").render_as_string(
        hide_password=False
    )
    connection = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await connection.fetch(sql)
        return rows
    finally:
        await connection.close()


@asynccontextmanager
async def scratch_database(server_url: str, name: str) -> AsyncIterator[str]:
    """A new database `name` on the server, as a URL; afterwards it is dropped, with the tenant
    stores, golden images and roles the run placed beside it (all named after it)."""
    await on_server(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        for row in await on_server(
            server_url, f"SELECT datname FROM pg_database WHERE datname LIKE '{name}%'"
        ):
            await on_server(server_url, f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        for row in await on_server(server_url, f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}%'"):
            await on_server(server_url, f'DROP ROLE IF EXISTS "{row["rolname"]}"')


def scratch_settings(folder: Path, *, golden_images: bool = True) -> Settings:
    """A benchmark's installation in `folder`: the embedded broker, the project's layers, no
    landlord database yet (each backend's run names its own)."""
    return Settings(
        data_dir=folder,
        database_url="",
        broker_url="embedded",
        secret_key="benchmark",
        admin_email="admin@localhost",
        layers_dir=PROJECT_ROOT / "layers",
        golden_images=golden_images,
    )
