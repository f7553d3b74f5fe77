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
from litestar.testing import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.settings import Settings

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


def installation_settings(data_dir: Path, database_url: str) -> Settings:
    """The settings of a test installation: embedded broker, its own secret and broker namespace."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url="embedded",
        secret_key=secrets.token_urlsafe(32),
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
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def drop_everything_named_after_it() -> None:
        """The database, the tenant stores and golden images placed beside it, and their roles."""
        connection = await asyncpg.connect(dsn)
        try:
            for row in await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{name}%"
            ):
                await connection.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            for row in await connection.fetch(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE $1", f"{name}%"
            ):
                await connection.execute(f'DROP ROLE IF EXISTS "{row["rolname"]}"')
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(drop_everything_named_after_it())


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
