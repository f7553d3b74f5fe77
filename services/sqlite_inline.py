"""SQLite connections that read on the event loop and wait for locks and disks in their thread.

aiosqlite runs every call on a sqlite3 connection in a thread of the connection's own: each
statement, each batch of rows fetched, each commit hops there and back (a future, a wake-up of the
thread, a wake-up of the loop through its self-pipe). That hop costs about 0.15 ms of CPU, twenty
times what reading a row by its key costs, and a request makes a dozen of them.

A read never waits on a SQLite file in WAL mode: readers take no lock that a writer holds, and a
row read by its key, or a page of rows, takes microseconds. So reads run at once, on the loop; what
can wait stays in the thread: taking the write lock (BEGIN IMMEDIATE, or the first write of a
transaction), writes, and the commit of a transaction that wrote (which syncs the log to disk).
Everything else a connection does (connecting, PRAGMAs, closing) keeps to the thread too, and
every call on one connection still runs one after the other, as SQLAlchemy awaits each in turn.

What a read costs the loop is what it costs the database: a long scan holds the loop for its
length. Whole-store reads (snapshots, backups) go through `Database.read_whole` instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

#: Statements that read, or start or end a transaction without taking a lock (SQLite's BEGIN is
#: deferred unless it says IMMEDIATE or EXCLUSIVE).
_AT_ONCE_STATEMENTS = ("SELECT", "BEGIN", "ROLLBACK")
_LOCKING_BEGINS = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")
#: sqlite3 cursor calls that step through rows already asked for, or let go of the cursor.
_AT_ONCE_CURSOR_CALLS = frozenset({"fetchone", "fetchmany", "fetchall", "close"})


def _head(sql: str) -> str:
    return sql.lstrip()[:16].upper()


class InlineReadsConnection(aiosqlite.Connection):
    """An aiosqlite connection that runs reads at once on the calling loop (see the module)."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._thread.daemon = True  # as aiosqlite.connect makes it: never keeps a process alive
        #: The current transaction may have written: its commit syncs to disk, in the thread.
        self._wrote = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._at_once(fn, args):
            return fn(*args, **kwargs)
        self._wrote = getattr(fn, "__name__", "") != "commit"
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _at_once(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        name, owner = getattr(fn, "__name__", ""), getattr(fn, "__self__", None)
        if isinstance(owner, sqlite3.Cursor):
            if name != "execute":
                return name in _AT_ONCE_CURSOR_CALLS
            head = _head(args[0]) if args and isinstance(args[0], str) else ""
            if not head.startswith(_AT_ONCE_STATEMENTS) or head.startswith(_LOCKING_BEGINS):
                return False
            if head.startswith("ROLLBACK"):
                self._wrote = False
            return True
        if isinstance(owner, sqlite3.Connection):
            if name == "rollback":
                self._wrote = False
                return True
            return name == "cursor" or (name == "commit" and not self._wrote)
        return False


def inline_reads_connector(path: str, *, timeout: float) -> Callable[[], InlineReadsConnection]:
    """The `async_creator` of an engine on the SQLite file at `path`. `timeout`: how long a
    connection waits for another's write lock (seconds)."""

    def connect() -> InlineReadsConnection:
        # Used from the loop and from the connection's thread, one call at a time.
        return InlineReadsConnection(partial(sqlite3.connect, path, timeout=timeout, check_same_thread=False))

    return connect
