"""Engines and sessions. The landlord database is one engine per process (per event loop)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, event, func, select, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.engine.interfaces import CompiledCacheType
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.pool import NullPool

from services.sqlite_inline import inline_reads_connector

P = ParamSpec("P")
T = TypeVar("T")


async def statuses_by(
    session: AsyncSession,
    key: QueryableAttribute[Any],
    status: QueryableAttribute[str],
    *where: ColumnElement[bool],
) -> dict[Any, Counter[str]]:
    """How many rows are in each status, per value of `key` (a fleet's tenants per wave, batch or
    plan), in one grouped count."""
    counted = await session.execute(select(key, status, func.count()).where(*where).group_by(key, status))
    counts: dict[Any, Counter[str]] = {}
    for value, state, how_many in counted:
        counts.setdefault(value, Counter())[state] = how_many
    return counts


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names; None for another backend or a database in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


#: An execution option of a connection to a SQLite file: its transactions will write, so each begins
#: by taking the write lock (BEGIN IMMEDIATE). A transaction that read first and only then asked
#: for the lock would be refused at once ("database is locked") had another connection written in
#: between; one that takes it up front waits its turn (the busy timeout) instead.
WRITES = "tenantry_writes"
#: How long a SQLite connection waits for another's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(
    url: str,
    *,
    schema: str | None = None,
    transactional_ddl: bool = False,
    explicit_transactions: bool = False,
    busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    **pool_options: Any,
) -> AsyncEngine:
    """An async engine. SQLite files get WAL, foreign keys and a busy timeout on every connection.
    With `explicit_transactions`, SQLAlchemy rather than the sqlite3 module decides where BEGIN goes
    (so savepoints and reads are inside the transaction), and a connection with the `WRITES` option
    begins IMMEDIATE; `transactional_ddl` implies it, makes SQLite run DDL inside the transaction
    (so a migration applies whole or not at all) and always begins IMMEDIATE: two processes migrating
    one shared store queue up (busy timeout) instead of one failing when its read snapshot turns
    stale. `busy_timeout_ms`: how long a SQLite connection waits for another's write lock. On
    PostgreSQL, `schema` becomes the connection's search_path."""
    pool_options.setdefault("query_cache_size", COMPILED_SQL_KEPT)
    if not is_sqlite(url):
        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        engine = create_async_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool_options)
        _share_compiled_sql(engine)
        return engine
    timeout = busy_timeout_ms / 1000
    if path := _sqlite_file(url):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Reads run on the loop, what may wait in the connection's thread (services.sqlite_inline).
        pool_options.setdefault("async_creator", inline_reads_connector(path, timeout=timeout))
    engine = create_async_engine(url, connect_args={"timeout": timeout}, **pool_options)
    _share_compiled_sql(engine)
    event.listen(engine.sync_engine, "connect", _tune_sqlite(busy_timeout_ms))
    if transactional_ddl or explicit_transactions:
        # SQLAlchemy's recipe for pysqlite's transactions.
        event.listen(engine.sync_engine, "connect", _disable_implicit_transactions)
        event.listen(engine.sync_engine, "begin", _begin(always_immediate=transactional_ddl))
    else:
        event.listen(engine.sync_engine, "savepoint", _write_lock_before_savepoint)
    return engine


#: How many compiled statements the engines of one server keep between them (least recently used
#: go first): the landlord's, the record tables' of every schema in use, the jobs'.
COMPILED_SQL_KEPT = 3000
#: Per server (its URL without user and database; every SQLite file is one "server"), the dialect
#: of its first engine to connect and that engine's cache of compiled statements.
_compiled_sql: dict[str, tuple[Dialect, CompiledCacheType]] = {}


def _share_compiled_sql(engine: AsyncEngine) -> None:
    """Let `engine` use the compiled statements of every other engine on its server.

    SQLAlchemy keeps compiled SQL per engine, keyed by the dialect object, so a new engine (a
    tenant's store opened for the first time, a job's, a test's) compiles every statement again:
    milliseconds each for ORM statements under the tenant scope. Engines on one server speak one
    dialect, the same way: the first to connect (its dialect then knows the server) offers its
    dialect and cache, and the engines made afterwards compile with them. Compiled SQL names no
    database and no schema (a tenant schema is the connection's search_path or a schema
    translation applied as it runs), so a statement compiled for one store is right for another."""
    sync = engine.sync_engine
    url = sync.url
    server = URL.create(url.drivername, host=url.host, port=url.port, query=url.query).render_as_string()
    if (shared := _compiled_sql.get(server)) is not None:
        sync.dialect, sync._compiled_cache = shared
        return

    def offer(_dbapi: Any, _record: Any) -> None:
        # After the engine's own first-connect listener: its dialect has met the server.
        if sync._compiled_cache is not None:
            _compiled_sql.setdefault(server, (sync.dialect, sync._compiled_cache))

    event.listen(sync, "connect", offer, once=True)


def _write_lock_before_savepoint(connection: Connection, _name: str | None) -> None:
    """A savepoint outside a transaction takes the write lock first (BEGIN IMMEDIATE).

    The sqlite3 module begins a transaction only before a write, so a session's reads take no
    snapshot and its first write waits its turn for the lock (the busy timeout). But SQLite begins
    a deferred transaction at a SAVEPOINT: the reads inside it share one snapshot, and a write after
    another connection has committed cannot use that snapshot. SQLite refuses it at once ("database
    is locked"), however long the busy timeout. A use case wrapped in a savepoint (a refusal rolls
    it back) is one that writes, so its savepoint begins by waiting for the lock instead."""
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin(*, always_immediate: bool) -> Callable[[Connection], None]:
    def begin(connection: Connection) -> None:
        immediate = always_immediate or connection.get_execution_options().get(WRITES, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return begin


def _disable_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _tune_sqlite(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return tune


@asynccontextmanager
async def sqlite_foreign_keys_off(connection: AsyncConnection) -> AsyncIterator[bool]:
    """On SQLite, foreign keys off for the block, which must begin outside a transaction (the
    PRAGMA is ignored inside one): a migration's batch mode rebuilds a table by dropping it, and
    with foreign keys on that drop would cascade-delete the rows of every table referring to it.
    Yields whether the connection is SQLite's; elsewhere nothing changes. Check the result with
    `broken_foreign_key` before committing."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        await _sqlite_foreign_keys(connection, False)
    try:
        yield sqlite
    finally:
        if sqlite:
            await _sqlite_foreign_keys(connection, True)


async def _sqlite_foreign_keys(connection: AsyncConnection, enabled: bool) -> None:
    raw = await connection.get_raw_connection()
    await raw.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")  # type: ignore[union-attr]


async def broken_foreign_key(connection: AsyncConnection) -> str | None:
    """The first SQLite table whose rows name a missing row of another (None when none does)."""
    broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).first()
    return None if broken is None else str(broken[0])


@asynccontextmanager
async def committing(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """Use `session` for a block: committed when it ends normally, rolled back when it raises."""
    async with session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


class ServerEngines:
    """Engines on database servers' maintenance connections, by URL, made on first use and
    disposed together. A landlord `Database` holds one for the jobs run with it: a worker process
    then opens a PostgreSQL server's maintenance connection once, not once per job (a connection
    costs milliseconds to open, as much as the statement it runs)."""

    def __init__(self) -> None:
        self._engines: dict[str, AsyncEngine] = {}

    def engine(self, url: str) -> AsyncEngine:
        if url not in self._engines:
            self._engines[url] = create_engine(url)
        return self._engines[url]

    async def dispose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.dispose()


class Database:
    """One engine and its session factory. Create it inside the event loop that will use it."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        transactional_ddl: bool = False,
        connection_info: dict[str, Any] | None = None,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        sharing: Database | None = None,
    ) -> None:
        self.url = url
        self.schema = schema
        #: Sharing another Database's engine (and its connections): the schemas of one PostgreSQL
        #: database, worked on one after the other. Each transaction then sets its search_path.
        self.shared = sharing is not None
        self.engine: AsyncEngine
        self.sessionmaker: async_sessionmaker[AsyncSession]
        #: The maintenance engines of the servers that jobs run with this (landlord) database
        #: work on, kept between jobs (services.tenancy.stores.connections_kept_open).
        self.servers = ServerEngines()
        if sharing is not None:
            self.engine, self.sessionmaker = sharing.engine, sharing.sessionmaker
            return
        self.engine = create_engine(
            url, schema=schema, transactional_ddl=transactional_ddl, busy_timeout_ms=busy_timeout_ms
        )
        if connection_info:
            # Read by DDL hooks (services.layers.ownership) through Connection.info.
            event.listen(
                self.engine.sync_engine, "connect", lambda _dbapi, record: record.info.update(connection_info)
            )
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends normally and rolled back when it raises."""
        async with committing(self.sessionmaker()) as session:
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def search_path(self, connection: AsyncConnection) -> str | None:
        """The search_path each transaction sets, when the engine is shared; None otherwise."""
        if self.shared and self.schema:
            return connection.dialect.identifier_preparer.quote(self.schema)
        return None

    async def in_schema(self, connection: AsyncConnection) -> None:
        """Point the connection's transaction at the schema, when the engine is shared."""
        if path := self.search_path(connection):
            await connection.exec_driver_sql(f"SET LOCAL search_path TO {path}")

    async def read_whole(
        self, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`work(connection, …)`, reading much of the store on one connection that sees what is
        committed (a snapshot's reflection, a backup's rows). A SQLite file is read through a plain
        sqlite3 connection in a thread of its own: the engine's own connections read on the event
        loop (services.sqlite_inline), which a read of the whole store would hold for its length."""
        path = _sqlite_file(self.url)
        if path is None:
            async with self.engine.connect() as connection:
                return await connection.run_sync(work, *args, **kwargs)

        def read_the_file() -> T:
            engine = create_sync_engine(
                f"sqlite:///{path}",
                poolclass=NullPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
            try:
                with engine.connect() as connection:
                    return work(connection, *args, **kwargs)
            finally:
                engine.dispose()

        return await asyncio.to_thread(read_the_file)

    async def dispose(self) -> None:
        await self.servers.dispose()
        if not self.shared:
            await self.engine.dispose()
