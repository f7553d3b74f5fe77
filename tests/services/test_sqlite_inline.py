"""A SQLite file's engine reads on the event loop and waits for the write lock in a thread: reads
are answered while another connection holds the lock, the loop keeps serving while a write waits
its turn, and what was written is there once the lock is let go."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from services.db import WRITES, Database


def _thread_of_the_call() -> int:
    return threading.get_ident()


def test_reads_run_on_the_loop_and_writes_in_the_connections_thread(tmp_path: Path) -> None:
    async def threads() -> tuple[int, int, int]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        try:
            async with database.engine.connect() as connection:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                assert driver is not None
                await driver.create_function("thread", 0, _thread_of_the_call)
                async with connection.begin():
                    await connection.execute(text("CREATE TABLE calls (thread INTEGER)"))
                    await connection.execute(text("INSERT INTO calls VALUES (thread())"))
                    read = (await connection.execute(text("SELECT thread()"))).scalar_one()
                    written = (await connection.execute(text("SELECT thread FROM calls"))).scalar_one()
            return threading.get_ident(), read, written
        finally:
            await database.dispose()

    loop_thread, read_in, written_in = asyncio.run(threads())

    assert read_in == loop_thread
    assert written_in != loop_thread


def test_a_read_is_answered_and_a_write_waits_without_holding_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    setup = sqlite3.connect(path)
    setup.executescript(
        "PRAGMA journal_mode=WAL; CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('first');"
    )
    setup.close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    async def while_the_lock_is_held() -> tuple[list[str], bool, list[str]]:
        database = Database(f"sqlite+aiosqlite:///{path}")
        writing = asyncio.Event()

        async def write() -> None:
            async with database.engine.connect() as connection:
                await connection.execution_options(**{WRITES: True})
                # Set before the write's first wait: once the reader runs, the write is waiting.
                writing.set()
                async with connection.begin():
                    await connection.execute(text("INSERT INTO notes VALUES ('second')"))

        try:
            holder.execute("BEGIN IMMEDIATE")
            writer = asyncio.create_task(write())
            await writing.wait()
            async with database.engine.connect() as connection:
                seen = list((await connection.execute(text("SELECT body FROM notes"))).scalars())
            write_waited = not writer.done()
            await asyncio.to_thread(holder.commit)
            await writer
            async with database.engine.connect() as connection:
                after = list(
                    (await connection.execute(text("SELECT body FROM notes ORDER BY rowid"))).scalars()
                )
            return seen, write_waited, after
        finally:
            holder.close()
            await database.dispose()

    seen, write_waited, after = asyncio.run(while_the_lock_is_held())

    assert seen == ["first"]
    assert write_waited
    assert after == ["first", "second"]


def test_a_use_case_that_reads_then_writes_in_a_savepoint_is_not_refused_when_another_wrote_between(
    tmp_path: Path,
) -> None:
    """A landlord session (the sqlite3 module's own transactions) reads inside a savepoint, as a
    request's use case does, while a worker commits a write in between: the use case's write must
    not be refused ("database is locked") because its reads' snapshot went stale. The savepoint
    took the write lock first, so the worker's write is the one that waits its turn."""
    path = tmp_path / "landlord.db"
    setup = sqlite3.connect(path)
    setup.executescript("PRAGMA journal_mode=WAL; CREATE TABLE jobs (kind TEXT);")
    setup.close()
    worker = sqlite3.connect(path, timeout=0.1, isolation_level=None, check_same_thread=False)

    async def use_case() -> tuple[str, list[str]]:
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with database.session() as session, session.begin_nested():
                await session.execute(text("SELECT count(*) FROM jobs"))
                try:
                    await asyncio.to_thread(worker.execute, "INSERT INTO jobs VALUES ('worker')")
                    worker_said = "written"
                except sqlite3.OperationalError as refused:
                    worker_said = str(refused)
                await session.execute(text("INSERT INTO jobs VALUES ('request')"))
            await asyncio.to_thread(worker.execute, "INSERT INTO jobs VALUES ('worker, after')")
            async with database.session() as session:
                kinds = list((await session.execute(text("SELECT kind FROM jobs ORDER BY rowid"))).scalars())
            return worker_said, kinds
        finally:
            await database.dispose()

    worker_said, kinds = asyncio.run(use_case())
    worker.close()

    assert worker_said == "database is locked", "the worker waited for the use case's lock"
    assert kinds == ["request", "worker, after"]
