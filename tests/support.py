"""Helpers shared by the tests: real databases, real brokers, signing in as a browser would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.settings import Settings
from web.app import AppShape, attach, build_app

T = TypeVar("T")

POSTGRES_URL = os.environ.get("TENANTRY_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TENANTRY_TEST_REDIS_URL")
RABBITMQ_URL = os.environ.get("TENANTRY_TEST_RABBITMQ_URL")

requires_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="TENANTRY_TEST_POSTGRES_URL is not set")
requires_redis = pytest.mark.skipif(not REDIS_URL, reason="TENANTRY_TEST_REDIS_URL is not set")
requires_rabbitmq = pytest.mark.skipif(not RABBITMQ_URL, reason="TENANTRY_TEST_RABBITMQ_URL is not set")


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str


def run_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a committed landlord session of its own (outside the app's event loop)."""

    async def go() -> T:
        database = Database(settings.database_url)
        try:
            async with database.session() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(go())


class LandlordReader:
    """One landlord database kept open on one event loop, for a test that reads it hundreds of
    times: `run_db` opens and closes the database (and an event loop) for each read."""

    def __init__(self, runner: asyncio.Runner, database: Database) -> None:
        self._runner = runner
        self._database = database

    def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in a committed session of its own, seeing everything committed before."""

        async def go() -> T:
            async with self._database.session() as session:
                return await work(session)

        return self._runner.run(go())


@contextmanager
def landlord_reader(settings: Settings) -> Iterator[LandlordReader]:
    async def open_database() -> Database:  # inside the loop that will use it
        return Database(settings.database_url)

    with asyncio.Runner() as runner:
        database = runner.run(open_database())
        try:
            yield LandlordReader(runner, database)
        finally:
            runner.run(database.dispose())


#: The secret of every test installation this process makes: each has its own databases, data
#: folder and broker namespace, and installations of one secret share apps (`app_for`).
TEST_SECRET = secrets.token_urlsafe(32)


def installation_settings(data_dir: Path, database_url: str) -> Settings:
    """The settings of a test installation: embedded broker, its own broker namespace."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url="embedded",
        secret_key=TEST_SECRET,
        admin_email="admin@localhost",
        broker_namespace=f"test-{secrets.token_hex(4)}",
    )


@contextmanager
def fresh_postgres_database(template: str | None = None, *, on: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database for one test, empty or a copy of the database named `template`,
    on the test server (or the server of the URL `on`); dropped afterwards, with everything named
    after it."""
    assert POSTGRES_URL
    server = make_url(on or POSTGRES_URL)
    name = f"tenantry_test_{secrets.token_hex(6)}"
    server_url = server.render_as_string(hide_password=False)
    asyncio.run(
        _admin(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    )
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(drop_named_after(server_url, name))


#: Apps no test is using, by shape. Building an app's routes is most of what a web test spends
#: setting up (Litestar reads every handler's signature); the routes of one shape serve any
#: installation of that shape, so a test is given an idle app attached to its installation.
_IDLE_APPS: dict[AppShape, list[Litestar]] = {}


@contextmanager
def app_for(settings: Settings) -> Iterator[Litestar]:
    """An app serving the installation `settings` describe, built once per shape and process
    (web.app.attach); given back afterwards as it was lent, whatever a test wrapped around it."""
    shape = AppShape.of(settings)
    idle = _IDLE_APPS.setdefault(shape, [])
    app = idle.pop() if idle else build_app(shape)
    handler = app.asgi_handler
    attach(app, settings)
    try:
        yield app
    finally:
        app.asgi_handler = handler
        idle.append(app)


# Landlord copies on PostgreSQL ---------------------------------------------------------------------
#
# A landlord database copied from a migrated template costs the server a CREATE DATABASE (about a
# quarter of a CPU-second: it copies every catalog page) and a DROP DATABASE (a checkpoint). A test
# process runs one test at a time, so it keeps the copies it made of a template (one, unless a test
# asks for two) and puts each back as the template left it between tests: everything named after it
# is dropped, schemas other than public too, every row is deleted and the template's rows and
# sequence positions are written back. A copy whose tables, columns, indexes, triggers (or whether
# they fire) a test changed (a migration taken down, the audit trail's guard switched off) is dropped
# instead.

_SHAPE_OF_PUBLIC = """
    SELECT md5(coalesce(string_agg(item, '|' ORDER BY item), '')) FROM (
        SELECT format('c:%s.%s:%s:%s:%s', table_name, column_name, data_type, is_nullable, column_default)
          AS item FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL SELECT format('r:%s:%s:%s', relname, relrowsecurity, relforcerowsecurity) FROM pg_class
          WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
        UNION ALL SELECT 'i:' || indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL SELECT format('t:%s:%s:%s', tgrelid::regclass,
                                CASE WHEN tgisinternal THEN 'internal' ELSE tgname END, tgenabled)
          FROM pg_trigger
        UNION ALL SELECT format('f:%s:%s', proname, md5(prosrc)) FROM pg_proc
          WHERE pronamespace = 'public'::regnamespace
        UNION ALL SELECT format('p:%s:%s', tablename, policyname) FROM pg_policies
    ) AS shape
"""


@dataclass(frozen=True)
class _Pristine:
    """What a landlord copy holds before a test: its tables' rows, its sequences, its shape."""

    rows: dict[str, list[asyncpg.Record]]
    sequences: list[tuple[str, int | None]]
    shape: str


async def _read_pristine(connection: asyncpg.Connection) -> _Pristine:
    tables = [
        row["tablename"]
        for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    sequences = await connection.fetch(
        "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
    )
    return _Pristine(
        rows={table: await connection.fetch(f'SELECT * FROM "{table}"') for table in tables},
        sequences=[(row["sequencename"], row["last_value"]) for row in sequences],
        shape=await connection.fetchval(_SHAPE_OF_PUBLIC),
    )


class _LandlordCopies:
    """The landlord copies of this test process, per template, reused test after test."""

    def __init__(self) -> None:
        #: The templates whose copies are kept: databases no test changes.
        self.templates: set[str] = set()
        self._idle: dict[tuple[str, str], list[tuple[str, _Pristine]]] = {}

    @contextmanager
    def copy_of(self, template: str, server: str) -> Iterator[str]:
        idle = self._idle.setdefault((template, server), [])
        kept = idle.pop() if idle else asyncio.run(self._new_copy(template, server))
        name, pristine = kept
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            if asyncio.run(self._put_back(server, name, pristine)):
                idle.append(kept)

    def drop_copies_of(self, template: str, server: str) -> None:
        for name, _ in self._idle.pop((template, server), []):
            asyncio.run(drop_named_after(server, name))

    @staticmethod
    async def _new_copy(template: str, server: str) -> tuple[str, _Pristine]:
        name = f"tenantry_test_{secrets.token_hex(6)}"
        await _admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        connection = await asyncpg.connect(_dsn(server, name))
        try:
            return name, await _read_pristine(connection)
        finally:
            await connection.close()

    @staticmethod
    async def _put_back(server: str, name: str, pristine: _Pristine) -> bool:
        """Put the copy `name` back as it was before the test; False when it was dropped instead."""
        await drop_named_after(server, name, keep=name)
        try:
            connection = await asyncpg.connect(_dsn(server, name))
            try:
                await _restore(connection, name, pristine)
                await _drop_roles_named_after(connection, name)  # roles are the server's, not the copy's
            finally:
                await connection.close()
        except (asyncpg.PostgresError, OSError, _ShapeChanged):
            await drop_named_after(server, name)
            return False
        return True


class _ShapeChanged(Exception):
    """A test left the landlord's tables, indexes or triggers unlike the template's."""


async def _restore(connection: asyncpg.Connection, name: str, pristine: _Pristine) -> None:
    await connection.execute("SET lock_timeout = '5s'")
    await connection.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for row in await connection.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema')"
        " AND nspname NOT LIKE 'pg\\_%'"
    ):
        await connection.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    for row in await connection.fetch(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1", _like_named_after(name)
    ):
        await connection.execute(f'DROP OWNED BY "{row["rolname"]}"')
    if await connection.fetchval(_SHAPE_OF_PUBLIC) != pristine.shape:
        raise _ShapeChanged(name)
    async with connection.transaction():
        # Triggers (the audit trail's append-only guard, foreign keys) are not fired for a replica.
        await connection.execute("SET LOCAL session_replication_role = replica")
        for table, rows in pristine.rows.items():
            await connection.execute(f'DELETE FROM "{table}"')
            if rows:
                await connection.copy_records_to_table(table, records=[tuple(row) for row in rows])
        for sequence, last_value in pristine.sequences:
            await connection.execute(
                "SELECT setval($1::regclass, $2, $3)",
                f'"{sequence}"',
                last_value or 1,
                last_value is not None,
            )


def _dsn(server: str, database: str) -> str:
    return (
        make_url(server).set(drivername="postgresql", database=database).render_as_string(hide_password=False)
    )


def _like_named_after(name: str) -> str:
    return name.replace("_", r"\_") + r"\_%"


async def _admin(server: str, sql: str) -> None:
    connection = await asyncpg.connect(_dsn(server, "postgres"))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def drop_named_after(server: str, name: str, *, keep: str | None = None) -> None:
    """Drop the database `name` and every one named after it (tenant stores, golden images), but
    `keep`; then, unless `name` is kept, the roles named after it. One connection to the server."""
    connection = await asyncpg.connect(_dsn(server, "postgres"))
    try:
        for row in await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2",
            name,
            _like_named_after(name),
        ):
            if row["datname"] != keep:
                await connection.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        if keep is None:
            await _drop_roles_named_after(connection, name)
    finally:
        await connection.close()


async def _drop_roles_named_after(connection: asyncpg.Connection, name: str) -> None:
    for row in await connection.fetch(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1", _like_named_after(name)
    ):
        await connection.execute(f'DROP ROLE IF EXISTS "{row["rolname"]}"')


_LANDLORD_COPIES = _LandlordCopies()


@contextmanager
def keeping_copies_of(template: str) -> Iterator[None]:
    """While open, the copies `landlord_copy` makes of the database `template` (one that no test
    changes: migrated once per process) are kept and put back between tests; dropped at the end."""
    assert POSTGRES_URL
    _LANDLORD_COPIES.templates.add(template)
    try:
        yield
    finally:
        _LANDLORD_COPIES.templates.discard(template)
        _LANDLORD_COPIES.drop_copies_of(template, POSTGRES_URL)


def landlord_copy(template: str) -> contextlib.AbstractContextManager[str]:
    """A landlord database as the database named `template` holds it, on the test server, for one
    test: a copy kept by this process and put back between tests (see above) when `template` never
    changes (`keeping_copies_of`); otherwise a new database, dropped afterwards."""
    assert POSTGRES_URL
    if template in _LANDLORD_COPIES.templates:
        return _LANDLORD_COPIES.copy_of(template, POSTGRES_URL)
    return fresh_postgres_database(template)


def csrf_token(client: TestClient[Any]) -> str:
    """The CSRF token a page gives its forms (and its hx-headers)."""
    page = client.get("/login")
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert match, "the sign-in page carries a CSRF token"
    return match.group(1)


def sign_in(client: TestClient[Any], credentials: Credentials, *, htmx: bool = False) -> Any:
    token = csrf_token(client)
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        "/login",
        data={"email": credentials.email, "password": credentials.password, "_csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )


def signed_in(client: TestClient[Any], person: Credentials) -> TestClient[Any]:
    """`client`, signed in afresh as `person` (whoever it was signed in as before is forgotten)."""
    client.cookies.clear()
    response = sign_in(client, person)
    assert response.status_code in (302, 303), response.text
    return client


def chose_own_password(client: TestClient[Any], given: Credentials, going_to: str = "/") -> Credentials:
    """Someone signed in with a password they were given chooses their own, as the account page
    asks before anything else: their credentials from now on."""
    own = Credentials(given.email, f"{given.password}-own")
    fields = {
        "current_password": given.password,
        "new_password": own.password,
        "repeated_password": own.password,
        "next": going_to,
    }
    chosen = post_form(client, "/account/password", fields, follow_redirects=False)
    assert chosen.status_code == 303, chosen.text
    assert chosen.headers["location"] == going_to
    return own


def post_form(client: TestClient[Any], path: str, data: Mapping[str, str | list[str]], **kwargs: Any) -> Any:
    """POST a form the way the portal's pages do, with the CSRF token."""
    return client.post(path, data={**data, "_csrf_token": csrf_token(client)}, **kwargs)


@contextmanager
def before_each_statement(look: Callable[[str], None]) -> Iterator[None]:
    """While open, `look(sql)` is called before each statement goes out, on every database."""

    def before_cursor_execute(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        look(statement)

    event.listen(Engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", before_cursor_execute)


@contextmanager
def second_postgres_server() -> Iterator[str]:
    """A PostgreSQL server of its own (a new cluster in a folder of /tmp the postgres user can
    reach, on a free port of 127.0.0.1, trust authentication), made with the installed server's
    initdb and pg_ctl as the `postgres` user, and removed afterwards: its URL. Skips, saying why,
    where that cannot be done."""
    if not POSTGRES_URL:
        pytest.skip("TENANTRY_TEST_POSTGRES_URL is not set")
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not binaries:
        pytest.skip("a second PostgreSQL server needs initdb, which is not installed here")
    if os.geteuid() != 0 or shutil.which("su") is None:
        pytest.skip("a second PostgreSQL server is started as the postgres user, which needs root here")
    bin_dir = binaries[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="tenantry-second-server-"))
    shutil.chown(folder, user="postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"

    def as_postgres(command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True, timeout=60)

    as_postgres(f"{bin_dir / 'initdb'} -D {data} -A trust -U postgres")
    try:
        as_postgres(f"{bin_dir / 'pg_ctl'} -D {data} -o '{options}' -l {folder / 'log'} -w start")
        yield (
            make_url(POSTGRES_URL)
            .set(host="127.0.0.1", port=port, database="postgres")
            .render_as_string(hide_password=False)
        )
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            as_postgres(f"{bin_dir / 'pg_ctl'} -D {data} -m immediate stop")
        shutil.rmtree(folder, ignore_errors=True)
