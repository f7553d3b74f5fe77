"""Copies of a PostgreSQL schema (pg_dump's script run under the new name): a golden image's script
is kept by the image's catalog, so that an image changed since, or made again under the same name,
is copied as it is now."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from services.db import Database, ServerEngines
from services.models import IsolationMode
from services.tenancy.stores import (
    POSTGRESQL,
    StoreLocation,
    allocate_store,
    can_copy_schemas,
    connections_kept_open,
    drop_store,
)
from tests.support import fresh_postgres_database, requires_postgres

pytestmark = [
    requires_postgres,
    pytest.mark.skipif(not can_copy_schemas(), reason="copying a schema needs pg_dump, not installed here"),
]


@pytest.fixture
def server_database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


def schema(url: str, name: str) -> StoreLocation:
    return StoreLocation(POSTGRESQL, IsolationMode.SCHEMA, name, url)


async def run_sql(url: str, sql: str) -> list[tuple[object, ...]]:
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            result = await connection.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        await database.dispose()


def tables_in(url: str, name: str) -> set[str]:
    query = f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}'"
    return {str(row[0]) for row in asyncio.run(run_sql(url, query))}


def make_image(url: str, name: str, table: str) -> None:
    async def make() -> None:
        await allocate_store(schema(url, name))
        await run_sql(url, f'CREATE TABLE "{name}".{table} (id INTEGER PRIMARY KEY)')

    asyncio.run(make())


def copy(url: str, image: str, target: str, *, unchanging: bool) -> None:
    asyncio.run(allocate_store(schema(url, target), template=schema(url, image), unchanging=unchanging))


@pytest.mark.parametrize("unchanging", [True, False], ids=["golden image", "store that may change"])
def test_a_schema_changed_since_a_copy_is_copied_as_it_is_now(server_database: str, unchanging: bool) -> None:
    make_image(server_database, "golden_a", "venues")
    copy(server_database, "golden_a", "tenant_one", unchanging=unchanging)
    asyncio.run(run_sql(server_database, "CREATE TABLE golden_a.rooms (id INTEGER PRIMARY KEY)"))

    copy(server_database, "golden_a", "tenant_two", unchanging=unchanging)

    assert tables_in(server_database, "tenant_one") == {"venues"}
    assert tables_in(server_database, "tenant_two") == {"venues", "rooms"}, "not the script of before"


def test_a_golden_schema_made_again_under_its_name_is_copied_as_it_is_now(server_database: str) -> None:
    make_image(server_database, "golden_a", "venues")
    copy(server_database, "golden_a", "tenant_one", unchanging=True)
    assert tables_in(server_database, "tenant_one") == {"venues"}

    asyncio.run(drop_store(schema(server_database, "golden_a")))  # discarded, then kept again
    make_image(server_database, "golden_a", "rooms")
    copy(server_database, "golden_a", "tenant_two", unchanging=True)

    assert tables_in(server_database, "tenant_two") == {"rooms"}, "not the dropped image's script"
    assert tables_in(server_database, "tenant_one") == {"venues"}, "an earlier copy is its own schema"


def test_a_copy_leaves_the_kept_server_connection_as_it_found_it(server_database: str) -> None:
    """pg_dump's script empties its session's search_path; a job's kept connection is used again."""
    make_image(server_database, "golden_a", "venues")

    async def copy_then_ask() -> tuple[str, str]:
        servers = ServerEngines()
        try:
            async with connections_kept_open(servers):
                engine = servers.engine(server_database)
                async with engine.connect() as connection:
                    before = str(await connection.scalar(text("SHOW search_path")))
                await allocate_store(
                    schema(server_database, "tenant_one"),
                    template=schema(server_database, "golden_a"),
                    unchanging=True,
                )
                async with engine.connect() as connection:
                    return before, str(await connection.scalar(text("SHOW search_path")))
        finally:
            await servers.dispose()

    before, after = asyncio.run(copy_then_ask())
    assert after == before
