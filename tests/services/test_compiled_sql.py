"""Compiled SQL shared by the engines of one server: a store opened for the first time answers
from statements compiled for another, with its own rows (services.db.create_engine)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import column, select, table, text
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.engine.default import DefaultDialect

from services.db import create_engine
from tests.support import POSTGRES_URL, fresh_postgres_database, requires_postgres

THINGS = table("things", column("name"))


async def _names_and_hit(url: str, *, schema: str | None = None, owner: str) -> tuple[list[str], bool]:
    """The store's own rows (it is given one, named after `owner`), and whether the select was
    answered from compiled SQL kept by an earlier engine."""
    engine = create_engine(url, schema=schema)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE things (name text)"))
            await connection.execute(text("INSERT INTO things VALUES (:name)"), {"name": owner})
        async with engine.connect() as connection:
            result: CursorResult[tuple[str]] = await connection.execute(select(THINGS.c.name))
            names = [str(name) for name in result.scalars()]
            return names, result.context.cache_hit == DefaultDialect.CACHE_HIT
    finally:
        await engine.dispose()


def test_a_new_sqlite_store_answers_from_sql_compiled_for_another_with_its_own_rows(tmp_path: Path) -> None:
    async def run() -> list[tuple[list[str], bool]]:
        return [
            await _names_and_hit(f"sqlite+aiosqlite:///{tmp_path / f'{owner}.db'}", owner=owner)
            for owner in ("first", "second", "third")
        ]

    first, second, third = asyncio.run(run())
    assert first[0] == ["first"]
    assert second == (["second"], True)
    assert third == (["third"], True)


@requires_postgres
def test_a_new_postgresql_schema_answers_from_sql_compiled_for_another_with_its_own_rows() -> None:
    with fresh_postgres_database() as url:

        async def run() -> list[tuple[list[str], bool]]:
            engine = create_engine(url)
            async with engine.begin() as connection:
                for owner in ("north", "south"):
                    await connection.execute(text(f"CREATE SCHEMA {owner}"))
            await engine.dispose()
            # The database's own engine above compiled nothing of this select: the first schema
            # compiles it, the second reuses it on its own search_path.
            return [await _names_and_hit(url, schema=owner, owner=owner) for owner in ("north", "south")]

        north, south = asyncio.run(run())
    assert north[0] == ["north"]
    assert south == (["south"], True)


@requires_postgres
def test_an_engine_on_another_server_compiles_with_a_dialect_of_its_own(second_server: str) -> None:
    """Another server may run another version of PostgreSQL: what its engines compile is their own."""
    assert POSTGRES_URL

    async def dialect_after_connecting(url: str) -> Dialect:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.execute(select(1))
            return engine.sync_engine.dialect
        finally:
            await engine.dispose()

    async def dialects() -> tuple[Dialect, Dialect, Dialect]:
        return (
            await dialect_after_connecting(POSTGRES_URL),
            await dialect_after_connecting(second_server),
            await dialect_after_connecting(POSTGRES_URL),
        )

    first, other, again = asyncio.run(dialects())
    assert again is first
    assert other is not first
