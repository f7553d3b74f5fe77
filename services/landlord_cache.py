"""Answers read from the landlord database, given again while nothing there has changed.

Every request first asks who is calling (its session, its token's user and memberships): the same
rows, read again and again, and a revoke or a deactivation must be seen by the very next request,
in this process or any other. So an answer is kept together with a *mark* of the landlord
database taken just before it was read, and given again only while a fresh mark is the same, that
is while nothing at all has been committed to the landlord database since. A cheap question
(microseconds on SQLite, one round trip on PostgreSQL) replaces the lookup, and nothing needs to
remember to invalidate anything: a write no cache knows about changes the mark all the same.

- SQLite: `PRAGMA data_version` on a connection of the marks' own, which never writes; its value
  changes whenever any other connection, of any process, commits to the file.
- PostgreSQL: the server's current snapshot (`pg_current_snapshot()`). Two equal snapshots mean
  that no transaction that wrote committed in between, on any database of that server.

Commits are frequent while jobs run; then the marks change often and the caches are read through,
which costs the mark and nothing else."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import asyncpg
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from services.recently_used import LeastRecentlyUsed

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Mark = Hashable

log = logging.getLogger(__name__)
#: How long the server may take to give a mark; then the caches read through (a timeout is an
#: OSError, as a refused connection is).
ANSWER_WITHIN_SECONDS = 5.0


class LandlordMarks:
    """Marks of the landlord database: equal marks mean nothing was committed between them. When
    the database cannot be asked, the mark is new each time, and every cache reads through."""

    def __init__(self, engine: AsyncEngine) -> None:
        url = engine.url
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                raise ValueError("a database in memory has one connection; nothing would move its mark")
            self._source: _SqliteVersion | _ServerSnapshot = _SqliteVersion(url.database)
        else:
            self._source = _ServerSnapshot(url.set(drivername="postgresql"))

    async def mark(self) -> Mark:
        try:
            return await self._source.mark()
        except (OSError, sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.warning("the landlord database gave no mark; reading through", exc_info=True)
            return object()

    async def close(self) -> None:
        await self._source.close()


class _SqliteVersion:
    """`PRAGMA data_version` of a connection that never writes: it holds no snapshot (autocommit),
    and only other connections' commits move its version. Asked on the event loop: it reads a
    counter in the file's shared memory, in microseconds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._watcher: sqlite3.Connection | None = None

    async def mark(self) -> Mark:
        if self._watcher is None:
            self._watcher = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        version: int = self._watcher.execute("PRAGMA data_version").fetchone()[0]
        return version

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None


class _ServerSnapshot:
    """PostgreSQL's current snapshot, asked on one connection of its own (one round trip; through
    the engine's pool, the checkout's ping and the return's rollback would make it three). A
    connection runs one query at a time, so callers that arrive while a question is out wait for
    the next one, asked after they arrived, and share its answer."""

    def __init__(self, url: URL) -> None:
        self.dsn = url.render_as_string(hide_password=False)
        self._connection: asyncpg.Connection | None = None
        self._next: asyncio.Future[Mark] | None = None
        self._asking: asyncio.Task[None] | None = None

    async def mark(self) -> Mark:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._asking is None:
                self._asking = asyncio.create_task(self._ask_while_waited_for())
        return await asyncio.shield(self._next)

    async def _ask_while_waited_for(self) -> None:
        try:
            while (waiting := self._next) is not None:
                self._next = None
                try:
                    waiting.set_result(await self._snapshot())
                except Exception as error:
                    await self._drop_connection()
                    waiting.set_exception(error)
        finally:
            self._asking = None

    async def _snapshot(self) -> Mark:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self.dsn, timeout=ANSWER_WITHIN_SECONDS)
        snapshot: str = await self._connection.fetchval(
            "SELECT pg_current_snapshot()::text", timeout=ANSWER_WITHIN_SECONDS
        )
        return snapshot

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def close(self) -> None:
        if self._asking is not None:
            await asyncio.wait([self._asking])
        await self._drop_connection()


class UnchangedSince(Generic[K, V]):
    """Answers by key, each kept with the mark taken before it was read. Only answers that are
    not None are kept: an unknown token asked for a thousand times is looked up a thousand times,
    and fills no memory."""

    def __init__(self, marks: LandlordMarks, limit: int = 10_000) -> None:
        self.marks = marks
        self._answers: LeastRecentlyUsed[K, tuple[Mark, V]] = LeastRecentlyUsed(limit)

    async def get(
        self,
        key: K,
        read: Callable[[], Awaitable[V | None]],
        *,
        still_good: Callable[[V], bool] = lambda _: True,
    ) -> V | None:
        """The answer for `key`: the one kept, if nothing was committed since it was read and it is
        `still_good`, else `read()` afresh."""
        mark = await self.marks.mark()
        kept = self._answers.get(key)
        if kept is not None and kept[0] == mark and still_good(kept[1]):
            return kept[1]
        answer = await read()
        if answer is None:
            self._answers.pop(key)
        else:
            # The mark from before the read: a commit during the read makes the next mark differ.
            self._answers.put(key, (mark, answer))
        return answer
