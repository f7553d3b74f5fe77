"""Tenant stores: where one tenant's business data lives, by isolation mode and backend.

database on SQLite   -> one file per tenant under <data dir>/tenants/
database on Postgres -> one database per tenant on the tenant server
schema on Postgres   -> one schema per tenant in the tenant server's database
shared on SQLite     -> one file, <data dir>/tenants/_shared.db, for every shared tenant
shared on Postgres   -> one database for every shared tenant, reached by the application through
                        a role that is subject to its row-level security
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import os
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Concatenate, NamedTuple, ParamSpec, TypeVar

from sqlalchemy import Table, delete, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.db import SQLITE_BUSY_TIMEOUT_MS, Database, ServerEngines, create_engine
from services.errors import Conflict, InvalidInput
from services.layers.catalog import catalog_key, reflected_tables
from services.layers.ownership import SHARED_STORE_ROLE, TENANT_COLUMN, TENANT_LAYER
from services.models import IsolationMode, Tenant
from services.recently_used import LeastRecentlyUsed
from services.settings import DEFAULT_SERVER, Settings

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
_IDENTIFIER_LIMIT = 63
#: The shared store's name: a slug starts with a letter, so no tenant's own store can take it.
SHARED_STORE = "_shared"
#: The files SQLite may keep beside a store's own.
_SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class StoreLocation:
    backend: str
    isolation: str
    #: The SQLite file, the PostgreSQL database, or the PostgreSQL schema.
    name: str
    #: What to connect to: the file, the tenant's database, or the server database holding the schema.
    url: str
    #: Shared stores on PostgreSQL: the role the application reads and writes as, which row-level
    #: security applies to, and the URL that connects as it.
    app_role: str | None = None
    app_url: str | None = None
    #: The PostgreSQL server it is on, by the name the settings give it (None: SQLite).
    server_name: str | None = None

    @property
    def schema(self) -> str | None:
        return self.name if self.isolation == IsolationMode.SCHEMA else None

    @property
    def is_shared(self) -> bool:
        return self.isolation == IsolationMode.SHARED

    def open(
        self, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, sharing: Database | None = None
    ) -> Database:
        """An engine on the store as its owner (migrations, provisioning). Dispose it when done;
        stores are many, connections are not. `busy_timeout_ms`: how long it waits for another
        connection's write lock on a SQLite file (every transaction of an owner's engine writes).
        `sharing`: the engine of `server_database()`, for a schema (fleet work goes from schema to
        schema of one database on the same connections)."""
        info = {TENANT_LAYER: True, SHARED_STORE_ROLE: self.app_role}
        return Database(
            self.url,
            schema=self.schema,
            transactional_ddl=True,
            connection_info=info,
            busy_timeout_ms=busy_timeout_ms,
            sharing=sharing if self.schema else None,
        )

    def server_database(self, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Database:
        """An owner's engine on the database that holds the schema, to be shared by its schemas."""
        return replace(self, isolation=IsolationMode.DATABASE).open(busy_timeout_ms=busy_timeout_ms)

    @property
    def server(self) -> str:
        """The database server the store is on, as fleet work counts servers: SQLite files are all
        on this machine ("local"); PostgreSQL stores by host and port."""
        return LOCAL_SERVER if self.backend == SQLITE else address_of(self.url)

    @property
    def key(self) -> str:
        """Identifies the store among all stores (a schema shares its server's URL)."""
        return f"{self.url}#{self.schema or ''}"


def available_isolation_modes(settings: Settings) -> list[str]:
    if settings.tenant_server_url:
        return [IsolationMode.DATABASE, IsolationMode.SCHEMA, IsolationMode.SHARED]
    return [IsolationMode.DATABASE, IsolationMode.SHARED]


def _identifier(prefix: str, slug: str) -> str:
    """A PostgreSQL name for a tenant's database or schema, kept within the 63-byte limit."""
    name = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{slug}".lower())
    if len(name) <= _IDENTIFIER_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _IDENTIFIER_LIMIT - 9]}_{digest}"


class StoreKind(NamedTuple):
    """A kind of store a tenant can have: a backend, an isolation mode, and for PostgreSQL the
    tenant server, by name."""

    backend: str
    isolation: str
    server: str | None = None


def store_kinds(settings: Settings) -> list[StoreKind]:
    """Every kind of store a tenant can have here: SQLite files always, PostgreSQL's three modes
    on each tenant server configured."""
    kinds = [StoreKind(SQLITE, IsolationMode.DATABASE), StoreKind(SQLITE, IsolationMode.SHARED)]
    for server in settings.servers:
        kinds += [
            StoreKind(POSTGRESQL, mode, server)
            for mode in (IsolationMode.DATABASE, IsolationMode.SCHEMA, IsolationMode.SHARED)
        ]
    return kinds


def kind_of(settings: Settings, tenant: Tenant) -> StoreKind:
    """The kind of store the tenant has."""
    return StoreKind(tenant.store_backend or SQLITE, tenant.isolation, server_name_of(settings, tenant))


def server_url(settings: Settings, server: str | None) -> str:
    """The URL of the tenant server named `server`; None (and "main", the name of an installation's
    one server before it named several) is the default, the first."""
    servers = settings.servers
    if not servers:
        raise InvalidInput("No PostgreSQL tenant server is configured here.", field="server")
    if server is None or (server == DEFAULT_SERVER and server not in servers):
        return next(iter(servers.values()))
    if server not in servers:
        raise InvalidInput(
            f"There is no tenant server {server!r} here; the servers are {', '.join(servers)}.",
            field="server",
        )
    return servers[server]


def server_name_of(settings: Settings, tenant: Tenant) -> str | None:
    """The name of the tenant server its store is on (None: SQLite)."""
    if tenant.store_backend == SQLITE or not settings.servers:
        return None
    return tenant.store_server if tenant.store_server in settings.servers else next(iter(settings.servers))


def plan_store(
    settings: Settings,
    slug: str,
    isolation: str,
    *,
    purpose: str = "t",
    backend: str | None = None,
    server: str | None = None,
) -> StoreLocation:
    """Where a new store for `slug` goes: on the installation's backend for new tenants, or on
    `backend` (a move); on the tenant server named `server` (None: the default). `purpose` keeps
    golden images and scratch stores apart."""
    if backend is None:
        backend = POSTGRESQL if settings.tenant_server_url else SQLITE
        if isolation not in available_isolation_modes(settings):
            modes = ", ".join(available_isolation_modes(settings))
            raise InvalidInput(
                f"Isolation {isolation!r} is not available here; choose {modes}.", field="isolation"
            )
    elif not any(kind[:2] == (backend, isolation) for kind in store_kinds(settings)):
        kinds = ", ".join(sorted({f"{mode} on {kind}" for kind, mode, _ in store_kinds(settings)}))
        raise InvalidInput(
            f"{isolation} on {backend} is not available here; choose {kinds}.", field="isolation"
        )
    if isolation == IsolationMode.SHARED:
        slug = SHARED_STORE
    if backend == SQLITE:
        path = settings.data_dir / ("tenants" if purpose == "t" else purpose) / f"{slug}.db"
        return StoreLocation(SQLITE, isolation, str(path), f"sqlite+aiosqlite:///{path}")
    name = server if server in settings.servers else next(iter(settings.servers))
    url = make_url(server_url(settings, server))
    prefix = f"{url.database or 'tenantry'}_{purpose}"
    if isolation == IsolationMode.SHARED:
        return _shared_postgres_store(
            settings, _identifier(prefix, slug), url.render_as_string(hide_password=False), name
        )
    if isolation == IsolationMode.SCHEMA:
        return StoreLocation(
            POSTGRESQL,
            isolation,
            _identifier(purpose, slug),
            url.render_as_string(hide_password=False),
            server_name=name,
        )
    database = _identifier(prefix, slug)
    return StoreLocation(
        POSTGRESQL,
        isolation,
        database,
        url.set(database=database).render_as_string(hide_password=False),
        server_name=name,
    )


LOCAL_SERVER = "local"


def address_of(url: str) -> str:
    """host:port of a PostgreSQL URL, as fleet work names servers."""
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}"


def server_of(settings: Settings, tenant: Tenant) -> str:
    """The database server the tenant's store is on, or will be once allocated (named as
    StoreLocation.server names it)."""
    if tenant.store_backend == SQLITE or not settings.servers:
        return LOCAL_SERVER
    return address_of(server_url(settings, tenant.store_server))


def location_of(settings: Settings, tenant: Tenant) -> StoreLocation:
    """The store a tenant was given when it was allocated."""
    if not tenant.store_backend or not tenant.store_name:
        raise InvalidInput(f"{tenant.slug} has no store yet.")
    if tenant.store_backend != SQLITE and settings.tenant_server_url is None:
        raise InvalidInput(f"{tenant.slug} lives on PostgreSQL, but no tenant server is configured.")
    return stored_location(
        settings, tenant.store_backend, tenant.isolation, tenant.store_name, tenant.store_server
    )


def stored_location(
    settings: Settings, backend: str, isolation: str, name: str, server: str | None = None
) -> StoreLocation:
    """Where the store recorded by its backend, isolation, name (and tenant server) is."""
    if backend == SQLITE:
        return StoreLocation(SQLITE, isolation, name, f"sqlite+aiosqlite:///{name}")
    if settings.tenant_server_url is None:
        raise InvalidInput(f"The store {name} lives on PostgreSQL, but no tenant server is configured.")
    url = server_url(settings, server)
    named = server if server in settings.servers else next(iter(settings.servers))
    if isolation == IsolationMode.SHARED:
        return _shared_postgres_store(settings, name, url, named)
    if isolation == IsolationMode.SCHEMA:
        return StoreLocation(POSTGRESQL, isolation, name, url, server_name=named)
    database_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    return StoreLocation(POSTGRESQL, isolation, name, database_url, server_name=named)


def _shared_postgres_store(settings: Settings, database: str, url: str, server_name: str) -> StoreLocation:
    server = make_url(url)
    role = _identifier(database, "app")
    # Derived from the install's secret: nothing new to keep, and the same in every process.
    password = hmac.new(settings.secret_key.encode(), role.encode(), hashlib.sha256).hexdigest()
    return StoreLocation(
        POSTGRESQL,
        IsolationMode.SHARED,
        database,
        server.set(database=database).render_as_string(hide_password=False),
        app_role=role,
        app_url=server.set(database=database, username=role, password=password).render_as_string(
            hide_password=False
        ),
        server_name=server_name,
    )


P = ParamSpec("P")
T = TypeVar("T")


@asynccontextmanager
async def store_transaction(location: StoreLocation) -> AsyncIterator[AsyncConnection]:
    """One transaction of the store, as its owner, on an engine of its own, disposed afterwards (on
    SQLite the transaction begins IMMEDIATE: the store's write lock)."""
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            yield connection
    finally:
        await store.dispose()


async def in_store_transaction(
    location: StoreLocation, work: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`work(connection, …)` in one transaction of the store (`store_transaction`)."""
    async with store_transaction(location) as connection:
        return await connection.run_sync(work, *args, **kwargs)


async def remove_tenant_rows(location: StoreLocation, tenant_id: int) -> None:
    """Delete one tenant's rows from a shared store: children before parents, and a table that
    refers to itself (units) unhooked first."""
    await in_store_transaction(location, _remove_rows, tenant_id)


def _remove_rows(connection: Connection, tenant_id: int) -> None:
    tables = [table for table in reflected_tables(connection).sorted_tables if TENANT_COLUMN in table.c]
    delete_tenant_rows(connection, tenant_id, tables)


def delete_tenant_rows(connection: Connection, tenant_id: int, tables: list[Table]) -> int:
    """Delete one tenant's rows of `tables` (parents before children, as `sorted_tables` gives
    them): children first, a row pointing at its own table (a unit's parent) let go before.
    Returns how many rows went."""
    for table in tables:
        for foreign_key in table.foreign_key_constraints:
            column = next(iter(foreign_key.columns))
            if foreign_key.referred_table is table and column.nullable:
                connection.execute(
                    update(table).where(table.c[TENANT_COLUMN] == tenant_id).values({column.name: None})
                )
    return sum(
        connection.execute(delete(table).where(table.c[TENANT_COLUMN] == tenant_id)).rowcount
        for table in reversed(tables)
    )


@dataclass
class _KeptOpen:
    #: Engines on servers' maintenance connections.
    servers: ServerEngines
    #: Owner's engines on stores, by StoreLocation.key.
    stores: dict[str, Database] = field(default_factory=dict)


_kept_open: ContextVar[_KeptOpen | None] = ContextVar("tenantry_kept_open", default=None)


@asynccontextmanager
async def connections_kept_open(servers: ServerEngines | None = None) -> AsyncIterator[None]:
    """Within the block (a job), statements on a server's maintenance connection (does a store
    exist, create, rename or drop one) reuse one connection per server, and `kept_store` gives one
    engine per store, instead of connecting each time. The stores' engines are closed when the
    block ends; the servers' too, unless they are `servers` kept beyond it (a landlord Database's,
    for every job run with it)."""
    kept = _KeptOpen(servers or ServerEngines())
    token = _kept_open.set(kept)
    try:
        yield
    finally:
        _kept_open.reset(token)
        await release_kept_stores(kept)
        if servers is None:
            await kept.servers.dispose()


def kept_store(location: StoreLocation) -> Database:
    """The block's one engine, as the store's owner, on the store at `location`: opened by the first
    step of a job that needs it and kept for the steps after it (one connection, and one warm
    statement cache, per job rather than per step). Only inside `connections_kept_open`."""
    kept = _kept_open.get()
    if kept is None:
        raise RuntimeError("a store is kept open only inside connections_kept_open()")
    if location.key not in kept.stores:
        kept.stores[location.key] = location.open()
    return kept.stores[location.key]


async def release_kept_stores(kept: _KeptOpen | None = None) -> None:
    """Close the block's engines on stores: before work that needs a store idle (a PostgreSQL
    database copied as a template, or dropped) or gone (a SQLite file removed)."""
    kept = kept or _kept_open.get()
    if kept is None:
        return
    stores, kept.stores = list(kept.stores.values()), {}
    for store in stores:
        await store.dispose()


@asynccontextmanager
async def owner_connection(location: StoreLocation) -> AsyncIterator[AsyncConnection]:
    """A connection to the store as its owner, inside `connections_kept_open`, for a few statements
    on its tables written with SQLAlchemy (not text): a schema's go through its server's kept
    maintenance connection, each table named with the schema, so that none is opened for them; a
    database's or a file's through the block's engine on the store (`kept_store`)."""
    if location.schema is None:
        async with kept_store(location).engine.connect() as connection:
            yield connection
        return
    kept = _kept_open.get()
    if kept is None:
        raise RuntimeError("an owner's connection is kept only inside connections_kept_open()")
    async with kept.servers.engine(_maintenance_url(location)).connect() as connection:
        yield await connection.execution_options(schema_translate_map={None: location.schema})


def _maintenance_url(location: StoreLocation) -> str:
    """Where a server's maintenance statements run: the database holding a schema, else the
    server's `postgres` database."""
    server = make_url(location.url)
    if location.isolation != IsolationMode.SCHEMA:
        server = server.set(database="postgres")
    return server.render_as_string(hide_password=False)


async def _on_server(location: StoreLocation, sql: str) -> list[tuple[object, ...]]:
    """Run one statement on the server's maintenance connection, outside any transaction."""
    url = _maintenance_url(location)
    kept = _kept_open.get()
    engine = create_engine(url) if kept is None else kept.servers.engine(url)
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await connection.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        if kept is None:
            await engine.dispose()


async def store_exists(location: StoreLocation) -> bool:
    if location.backend == SQLITE:
        return await asyncio.to_thread(Path(location.name).exists)
    if location.isolation == IsolationMode.SCHEMA:
        rows = await _on_server(location, f"SELECT 1 FROM pg_namespace WHERE nspname = '{location.name}'")
    else:
        rows = await _on_server(location, f"SELECT 1 FROM pg_database WHERE datname = '{location.name}'")
    return bool(rows)


_DATABASE_SIZES = text(
    "SELECT datname, pg_database_size(datname) FROM pg_database WHERE datname = ANY(:names)"
)
_SCHEMA_SIZES = text(
    "SELECT n.nspname, COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_namespace n "
    "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' "
    "WHERE n.nspname = ANY(:names) GROUP BY n.nspname"
)


async def sizes_on_disk(locations: list[StoreLocation], servers: ServerEngines) -> dict[str, int]:
    """What each store takes on disk, by `StoreLocation.key`, measured from outside the stores: a
    SQLite file (and its log) by its size, PostgreSQL databases and schemas with one question per
    server. Shared stores, and stores that are gone, are left out."""
    sizes: dict[str, int] = {}
    by_server: dict[str, list[StoreLocation]] = {}
    for location in locations:
        if location.is_shared:
            continue
        if location.backend == SQLITE:
            if (size := await asyncio.to_thread(_file_size, Path(location.name))) is not None:
                sizes[location.key] = size
        else:
            by_server.setdefault(_maintenance_url(location), []).append(location)
    for url, on_server in by_server.items():
        named = {location.name: location.key for location in on_server}
        schemas = on_server[0].isolation == IsolationMode.SCHEMA
        async with servers.engine(url).connect() as connection:
            rows = await connection.execute(
                _SCHEMA_SIZES if schemas else _DATABASE_SIZES, {"names": list(named)}
            )
            sizes.update({named[name]: int(size) for name, size in rows})
    return sizes


def _file_size(path: Path) -> int | None:
    """The file's size and its write-ahead log's; None when it is gone (even while measured)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    try:
        return size + path.with_name(f"{path.name}-wal").stat().st_size
    except FileNotFoundError:
        return size


async def allocate_store(
    location: StoreLocation, *, template: StoreLocation | None = None, unchanging: bool = False
) -> None:
    """Create the empty store (or a copy of `template`). Does nothing if it exists. `unchanging`:
    the template does not change while it exists (a golden image), so a schema's is dumped once
    per catalog (`_IMAGE_SCRIPTS`)."""
    if await store_exists(location):
        if location.app_role and not await _app_role_complete(location):
            await _create_app_role(location)  # a shared store whose creation a crash cut short
        return
    if location.backend == SQLITE:
        path = Path(location.name)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        if template is not None:
            await _copy_sqlite(Path(template.name), path)
        else:
            await asyncio.to_thread(path.touch)
        return
    if location.isolation == IsolationMode.SCHEMA:
        if template is not None:
            await _copy_schema(template, location, unchanging=unchanging)
        else:
            await _on_server(location, f'CREATE SCHEMA "{location.name}"')
        return
    clause = f' TEMPLATE "{template.name}"' if template is not None else ""
    try:
        await _on_server(location, f'CREATE DATABASE "{location.name}"{clause}')
    except DBAPIError:
        if not (location.is_shared and await store_exists(location)):
            raise  # else another tenant's provisioning created the shared store a moment ago
    if location.app_role:
        await _create_app_role(location)


async def _create_app_role(location: StoreLocation) -> None:
    """The role the application uses on a shared store: it neither owns the tables nor is a
    superuser, so row-level security applies to it. Tables grant it access as they are created.
    Its right to connect is granted last: once the database's catalog lists it, the role is whole
    (`_app_role_complete`)."""
    role, password = location.app_role, make_url(location.app_url or "").password
    assert role is not None, "only a shared store has an application role"
    # Two tenants going into a new shared store at once both make its role: one after the other
    # (the second finds the role made, and grants again what is granted), never side by side,
    # where PostgreSQL refuses the second role and concurrent grants.
    async with one_at_a_time(location, "role"):
        await _make_app_role(location, role, password)


async def _make_app_role(location: StoreLocation, role: str, password: str | None) -> None:
    await _on_server(
        location,
        f"""DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
              END IF;
            END $$""",
    )
    await _on_server(location, f"ALTER ROLE \"{role}\" PASSWORD '{password}'")
    store = create_engine(location.url)
    try:
        async with store.begin() as connection:
            await connection.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            await connection.exec_driver_sql(
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO "{role}"'
            )
    finally:
        await store.dispose()
    await _on_server(location, f'GRANT CONNECT ON DATABASE "{location.name}" TO "{role}"')


@asynccontextmanager
async def one_at_a_time(location: StoreLocation, what: str) -> AsyncIterator[None]:
    """Hold a lock named `what` on the store while the block runs, across every process of the
    installation: an advisory lock on its PostgreSQL server (its maintenance database), or on
    SQLite, whose stores are files of this machine, a lock on a file beside the store's."""
    if location.backend == SQLITE:
        async with _file_lock(Path(f"{location.name}.{what}.lock")):
            yield
        return
    key = f"tenantry.{what}.{location.name}"
    engine = create_engine(_maintenance_url(location))
    try:
        async with engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
            try:
                yield
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
    finally:
        await engine.dispose()


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as held:
        await asyncio.to_thread(fcntl.flock, held.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held.fileno(), fcntl.LOCK_UN)


async def _app_role_complete(location: StoreLocation) -> bool:
    """Whether the shared store's application role was made whole: it holds the right to connect
    that `_create_app_role` grants last (one catalog query, instead of making it again)."""
    granted = await _on_server(
        location,
        f"""SELECT 1 FROM pg_database d, aclexplode(d.datacl) a, pg_roles r
            WHERE d.datname = '{location.name}' AND r.rolname = '{location.app_role}'
              AND a.grantee = r.oid AND a.privilege_type = 'CONNECT'""",
    )
    return bool(granted)


async def drop_store(location: StoreLocation) -> None:
    """Remove the store and everything in it. Callers take a backup first when it holds data.
    A shared store holds other tenants: it is never dropped for one of them."""
    if location.is_shared:
        raise InvalidInput("A shared store holds other tenants' data; remove one tenant's rows instead.")
    if location.backend == SQLITE:
        await asyncio.to_thread(_remove_sqlite_files, Path(location.name))
        return
    if location.isolation == IsolationMode.SCHEMA:
        await _on_server(location, f'DROP SCHEMA IF EXISTS "{location.name}" CASCADE')
    else:
        await _on_server(location, f'DROP DATABASE IF EXISTS "{location.name}" WITH (FORCE)')


class StoreMissing(LookupError):
    """There is no store where one was expected (a rename whose landlord record never committed)."""


#: PostgreSQL's codes for "no such database / schema" and "that name is taken".
_MISSING_STORE = {"3D000", "3F000"}
_NAME_TAKEN = {"42P04", "42P06"}


async def rename_store(source: StoreLocation, target: StoreLocation) -> None:
    """Give the store at `source` the name `target` plans (same backend and isolation): a file
    rename, or one ALTER on the server. Raises StoreMissing when nothing is at `source`, Conflict
    when `target`'s name is taken, and leaves both as they were then."""
    if source.backend == SQLITE:
        await asyncio.to_thread(_rename_sqlite, Path(source.name), Path(target.name))
        return
    kind = "SCHEMA" if source.isolation == IsolationMode.SCHEMA else "DATABASE"
    try:
        await _on_server(source, f'ALTER {kind} "{source.name}" RENAME TO "{target.name}"')
    except DBAPIError as error:
        code = getattr(error.orig, "sqlstate", None)
        if code in _MISSING_STORE:
            raise StoreMissing(f"no {kind.lower()} named {source.name}") from error
        if code in _NAME_TAKEN:
            raise Conflict(f"A store named {target.name} already exists; it was left alone.") from error
        raise


def _rename_sqlite(source: Path, target: Path) -> None:
    if target.exists():
        raise Conflict(f"A store named {target} already exists; it was left alone.")
    if not source.exists():
        raise StoreMissing(f"no file {source}")
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in _SQLITE_SIDECARS:  # a closed store has none; moved first if it has
        sidecar = source.with_name(source.name + suffix)
        if sidecar.exists():
            sidecar.replace(target.with_name(target.name + suffix))
    source.rename(target)


def can_copy_schemas() -> bool:
    """Copying a schema needs pg_dump (PostgreSQL has no CREATE SCHEMA … TEMPLATE)."""
    return shutil.which("pg_dump") is not None


#: Unchanging schemas (golden images) as pg_dump writes them, by store and catalog: dumped once
#: per process, not once per copy (pg_dump reads the whole catalog, most of a copy's time). Asking
#: the image's catalog first costs one query, and an image changed or made again under its name
#: is dumped again. A copy is proved equal to its image by its schema hash all the same
#: (services.provisioning.golden).
_IMAGE_SCRIPTS: LeastRecentlyUsed[tuple[str, str | None], str] = LeastRecentlyUsed(64)


async def _copy_schema(source: StoreLocation, target: StoreLocation, *, unchanging: bool = False) -> None:
    """Copy a schema's tables, keys, sequences and rows into a new schema: pg_dump writes the
    source as SQL (once per catalog for an `unchanging` source), the schema's name is replaced,
    and the script runs in one transaction, in one round trip."""
    url = _maintenance_url(target)
    kept = _kept_open.get()
    engine = create_engine(url) if kept is None else kept.servers.engine(url)
    try:
        async with engine.begin() as connection:
            script = await _image_script(connection, source) if unchanging else await _dump_schema(source)
            # The schema's name is a unique identifier: it names nothing else in the script.
            renamed = re.sub(rf"\b{re.escape(source.name)}\b", target.name, script)
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute(renamed)  # type: ignore[union-attr]
            # The script empties the session's search_path; the connection may be a kept one.
            await connection.exec_driver_sql("RESET search_path")
    finally:
        if kept is None:
            await engine.dispose()


async def _image_script(connection: AsyncConnection, image: StoreLocation) -> str:
    """The unchanging schema's script, kept by its catalog (read on `connection`, in its transaction)."""
    await connection.execute(
        text("SELECT set_config('search_path', :schema, true)"), {"schema": f'"{image.name}"'}
    )
    key = (image.key, await connection.run_sync(catalog_key))
    script = _IMAGE_SCRIPTS.get(key)
    if script is None:
        script = await _dump_schema(image)
        _IMAGE_SCRIPTS.put(key, script)
    return script


async def _dump_schema(source: StoreLocation) -> str:
    """The schema as SQL, by pg_dump (psql's own commands, such as \\restrict, left out)."""
    server = make_url(source.url).set(drivername="postgresql")
    environment = {**os.environ, "PGPASSWORD": server.password or ""}
    dump = await asyncio.create_subprocess_exec(
        shutil.which("pg_dump") or "pg_dump",
        f"--schema={source.name}",
        "--no-owner",
        "--no-privileges",
        "--inserts",
        server.set(password=None).render_as_string(hide_password=False),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    output, errors = await dump.communicate()
    if dump.returncode != 0:
        raise RuntimeError(f"pg_dump could not read schema {source.name}: {errors.decode().strip()}")
    return "\n".join(line for line in output.decode().splitlines() if not line.startswith("\\"))


async def _copy_sqlite(source: Path, target: Path) -> None:
    await asyncio.to_thread(copy_sqlite_file, source, target)


def _remove_sqlite_files(path: Path) -> None:
    """The database file and the journal files SQLite may have left beside it."""
    for suffix in ("", *_SQLITE_SIDECARS):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def copy_sqlite_file(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's online backup API, written under a temporary name first
    so a crash never leaves a half-copied store behind."""
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    source_connection, target_connection = sqlite3.connect(source), sqlite3.connect(partial)
    try:
        source_connection.backup(target_connection)
    finally:
        target_connection.close()
        source_connection.close()
    partial.replace(target)
