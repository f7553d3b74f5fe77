"""The `tenantry` command line, run as an operator runs it: the installed entry point, in subprocesses,
configured only through TENANTRY_* environment variables."""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import socket
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.accounts import tokens, users
from services.db import Database
from services.errors import InvalidInput
from services.layers.landlord import landlord_is_current
from services.models import PlatformRole
from services.settings import Settings
from services.tenancy.tenants import register_tenant
from tests.services.running import background, free_port, migrate, run_tenantry, tenantry_env, wait_for
from tests.support import requires_redis, run_db
from tests.workers.support import on_redis

PASSWORD = re.compile(r"^Password \(shown once[^)]*\): (\S+)$", re.MULTILINE)

#: The command line's own tests start the installed console script in a new interpreter, never the
#: warm starter the other tests fork `tenantry` from (tests/services/running.py).
run_console_script = partial(run_tenantry, warm=False)
console_script_in_background = partial(background, warm=False)


def tenantry(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_console_script(args, tenantry_env(settings))


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """Exit code 2 and one line on stderr saying what is wrong; nothing on stdout, no traceback."""
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tenantry: ")
    return lines[0]


def password_in(output: str) -> str:
    found: list[str] = PASSWORD.findall(output)
    assert len(found) == 1, output
    return found[0]


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """The landlord database (SQLite, and PostgreSQL when configured), migrated in this process."""
    return migrate(settings)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """For what does not depend on the database server: SQLite only, migrated."""
    data_dir = tmp_path / "data"
    return migrate(
        Settings(
            data_dir=data_dir,
            database_url=f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}",
            broker_url="embedded",
            secret_key=secrets.token_urlsafe(32),
            admin_email="admin@localhost",
        )
    )


def test_migrate_is_needed_first_and_can_run_twice(unmigrated_settings: Settings) -> None:
    early = refused(
        tenantry(unmigrated_settings, "create-user", "--email", "ops@example.org", "--role", "landlord_admin")
    )
    assert "run `tenantry migrate` first" in early

    for _ in range(2):
        assert succeeded(tenantry(unmigrated_settings, "migrate")) == (
            "The landlord database is up to date.\n"
            "Every tenant's layers are at their heads (0 tenants in service).\n"
        )

    async def current() -> bool:
        database = Database(unmigrated_settings.database_url)
        try:
            return await landlord_is_current(unmigrated_settings, database)
        finally:
            await database.dispose()

    assert asyncio.run(current())


def test_create_user_prints_a_password_once_and_it_verifies(migrated: Settings) -> None:
    out = succeeded(
        tenantry(migrated, "create-user", "--email", " Ops@Example.org ", "--role", "landlord_admin")
    )

    assert "Created ops@example.org (landlord_admin)." in out
    password = password_in(out)
    assert out.count(password) == 1
    user = run_db(migrated, lambda session: users.authenticate(session, "ops@example.org", password))
    assert user is not None and user.platform_role == PlatformRole.LANDLORD_ADMIN
    assert user.password_hash != password
    assert run_db(migrated, lambda s: users.authenticate(s, "ops@example.org", password + "x")) is None


def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(migrated: Settings) -> None:
    run_db(migrated, lambda s: users.create_user(s, email="ops@example.org", role="landlord_admin"))

    out = succeeded(tenantry(migrated, "tokens", "create", "--email", "ops@example.org", "--name", "deploy"))

    secret = out.splitlines()[-1]
    assert secret.startswith(tokens.TOKEN_PREFIX)
    assert "scoped to the landlord" in out
    token = run_db(migrated, lambda s: tokens.authenticate_token(s, secret))
    assert token is not None
    assert (token.user.email, token.tenant, token.name) == ("ops@example.org", None, "deploy")
    assert out.count(secret) == 1

    listing = succeeded(tenantry(migrated, "tokens", "list"))
    assert secret not in listing
    row = next(line for line in listing.splitlines() if line.split()[0] == str(token.id))
    assert row.split() == [str(token.id), token.prefix, "ops@example.org", "landlord", "deploy", "active"]
    assert secret.startswith(token.prefix)

    assert (
        succeeded(tenantry(migrated, "tokens", "revoke", str(token.id))) == f"Token {token.id} is revoked.\n"
    )
    assert run_db(migrated, lambda s: tokens.authenticate_token(s, secret)) is None


def test_a_tenant_token_is_scoped_to_that_tenant(sqlite_settings: Settings) -> None:
    settings = sqlite_settings

    async def two_tenants(session: Any) -> None:
        for slug in ("acme", "globex"):
            await register_tenant(
                session, slug=slug, name=slug.title(), template="nonprofit", isolation="database"
            )

    run_db(settings, two_tenants)
    out = succeeded(
        tenantry(
            settings, "create-user", "--email", "lead@acme.org", "--role", "tenant_admin", "--tenant", "acme"
        )
    )
    assert "Created lead@acme.org (tenant_admin)." in out
    unscoped = refused(tenantry(settings, "tokens", "create", "--email", "lead@acme.org"))
    assert unscoped == "tenantry: lead@acme.org works inside a tenant; name the tenant with --tenant."

    out = succeeded(tenantry(settings, "tokens", "create", "--email", "lead@acme.org", "--tenant", "acme"))

    assert "scoped to tenant acme" in out
    secret = out.splitlines()[-1]
    token = run_db(settings, lambda s: tokens.authenticate_token(s, secret))
    assert token is not None and token.tenant is not None and token.tenant.slug == "acme"
    assert token.user.email == "lead@acme.org"
    with pytest.raises(InvalidInput, match="not a member of globex"):
        run_db(settings, lambda s: tokens.create_token(s, email="lead@acme.org", tenant_slug="globex"))


def test_mistakes_exit_2_with_one_line_and_no_traceback(sqlite_settings: Settings) -> None:
    settings = sqlite_settings
    run_db(settings, lambda s: users.create_user(s, email="ops@example.org", role="landlord_admin"))
    cases: dict[str, tuple[list[str], str]] = {
        "duplicate email": (
            ["create-user", "--email", "OPS@example.org", "--role", "landlord_admin"],
            "tenantry: A user with the email ops@example.org already exists.",
        ),
        "tenant role without a tenant": (
            ["create-user", "--email", "x@example.org", "--role", "tenant_member"],
            "tenantry: A tenant_member belongs to a tenant; name it.",
        ),
        "revoke a missing token": (["tokens", "revoke", "999"], "tenantry: There is no token 999."),
        "worker on the embedded broker": (
            ["worker"],
            "tenantry: With the embedded broker the worker runs inside `tenantry serve`. "
            "Set TENANTRY_BROKER_URL to a redis:// or amqp:// URL to run separate workers.",
        ),
    }
    env = tenantry_env(settings)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(
            zip(
                cases,
                pool.map(lambda case: run_console_script(case[0], env), cases.values()),
                strict=True,
            )
        )

    for name, (_, message) in cases.items():
        assert refused(results[name]) == message, name
    only_one_user = run_db(settings, users.list_landlord_staff)
    assert [user.email for user in only_one_user] == ["ops@example.org"]


def test_a_mistyped_setting_stops_the_command_with_one_line_naming_it(sqlite_settings: Settings) -> None:
    cases = {
        "TENANTRY_WARM_POOL": (
            "lots",
            "tenantry: TENANTRY_WARM_POOL must be a whole number, 0 or more, not 'lots'.",
        ),
        "TENANTRY_DRIFT_CHECK_HOURS": (
            "-1",
            "tenantry: TENANTRY_DRIFT_CHECK_HOURS must be a number, 0 or more, not '-1'.",
        ),
        "TENANTRY_TRUSTED_PROXIES": (
            "10.0.0.300",
            "tenantry: TENANTRY_TRUSTED_PROXIES: '10.0.0.300' is not an IP",
        ),
        "TENANTRY_SERVER_JOBS": (
            "backup=4,vacuum=2",
            "tenantry: TENANTRY_SERVER_JOBS is a list like 'backup=4,restore=2,migrate=4' (jobs at once "
            "on one database server, 1 or more); 'vacuum=2' is not one of those.",
        ),
    }
    for variable, (value, message) in cases.items():
        result = run_console_script(["tokens", "list"], {**tenantry_env(sqlite_settings), variable: value})
        assert refused(result).startswith(message), variable


def test_a_bad_role_is_refused_by_the_argument_parser(sqlite_settings: Settings) -> None:
    """argparse knows the roles: exit 2, its usage, then the one line naming the mistake and the choices."""
    result = tenantry(sqlite_settings, "create-user", "--email", "x@example.org", "--role", "owner")

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    *usage, error = result.stderr.splitlines()
    assert usage[0].startswith("usage: tenantry create-user")
    assert error.startswith("tenantry create-user: error: argument --role: invalid choice: 'owner'")
    assert "landlord_admin" in error and "tenant_member" in error
    assert run_db(sqlite_settings, lambda s: users.find_user(s, "x@example.org")) is None


def _serve_once(env: dict[str, str], logs: Path) -> tuple[str, dict[str, Any]]:
    """Start `tenantry serve`, wait until /healthz says 200, stop it with SIGTERM; its stdout and report."""
    port = free_port()
    with console_script_in_background(["serve", "--port", str(port)], env, logs) as server:

        def healthy() -> httpx.Response | None:
            server.check_running()
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        report = wait_for(healthy, 30, what="GET /healthz to answer 200", interval=0.1).json()
        # Uvicorn shuts down gracefully, then re-raises the signal: a process manager sees "terminated".
        assert server.stop() in (0, -signal.SIGTERM), server.stderr
        assert "Traceback" not in server.stderr, server.stderr
        return server.stdout, report


def test_serve_stays_one_process_with_the_embedded_broker_and_says_why(tmp_path: Path) -> None:
    env = tenantry_env(TENANTRY_DATA_DIR=str(tmp_path / "data"))

    several = run_console_script(["serve", "--workers", "2", "--port", str(free_port())], env)
    none = run_console_script(["serve", "--workers", "0"], env)

    assert several.returncode == 2, several.stdout
    assert "Traceback" not in several.stderr
    assert "embedded broker Tenantry serves from one process" in several.stderr
    assert "TENANTRY_BROKER_URL" in several.stderr, "the message names the way to serve from several"
    assert "serving at" not in several.stdout
    assert none.returncode == 2
    assert "--workers: expected a whole number of at least 1, not '0'" in none.stderr


def _web_processes(pid: int) -> list[int]:
    """The processes uvicorn started under `pid` to serve (not multiprocessing's resource tracker)."""
    children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


@requires_redis
def test_serve_runs_as_many_web_processes_as_asked_on_a_real_broker(tmp_path: Path) -> None:
    port = free_port()
    with (
        on_redis(tmp_path / "data") as env,
        console_script_in_background(
            ["serve", "--workers", "2", "--port", str(port)], env, tmp_path / "logs"
        ) as server,
    ):

        def serving() -> list[int] | None:
            server.check_running()
            try:
                answers = [httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2) for _ in range(4)]
            except httpx.TransportError:
                return None
            children = _web_processes(server.process.pid)
            return children if len(children) == 2 and all(a.status_code == 200 for a in answers) else None

        web = wait_for(serving, 60, what="two web processes answering /healthz", interval=0.2)
        report = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        assert report["broker"] == {"ok": True, "kind": "redis"}
        assert "(2 web processes;" in server.stdout
        assert server.stop() in (0, -signal.SIGTERM), server.stderr
        assert "Traceback" not in server.stderr, server.stderr
        assert not [pid for pid in web if Path(f"/proc/{pid}").exists()], "no web process outlives serve"


def test_serve_seeds_the_superadmin_once_and_keeps_its_secret_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = tenantry_env(TENANTRY_DATA_DIR=str(data_dir), TENANTRY_ADMIN_EMAIL="owner@example.org")
    secret_key = data_dir / "secret_key"

    first, report = _serve_once(env, tmp_path / "first")

    assert report == {"status": "ok", "database": {"ok": True}, "broker": {"ok": True, "kind": "embedded"}}
    assert "Superadmin created: owner@example.org" in first
    password = password_in(first)
    assert "serving at http://127.0.0.1:" in first
    assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600
    key = secret_key.read_text()
    assert len(key) >= 32

    second, _ = _serve_once(env, tmp_path / "second")

    assert "Superadmin: owner@example.org (password set earlier; it is not shown again)" in second
    assert not PASSWORD.search(second) and password not in second
    assert secret_key.read_text() == key
    assert stat.S_IMODE(secret_key.stat().st_mode) == 0o600
    settings = Settings.from_env({"TENANTRY_DATA_DIR": str(data_dir)})
    assert settings.secret_key == key
    user = run_db(settings, lambda s: users.authenticate(s, "owner@example.org", password))
    assert user is not None and user.is_superadmin


def test_serve_on_a_port_another_program_holds_says_so_and_how_to_serve_elsewhere(
    sqlite_settings: Settings,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_console_script(["serve", "--port", str(port)], tenantry_env(sqlite_settings))
    assert refused(result) == (
        f"tenantry: Port {port} on 127.0.0.1 is already in use, by another program or another Tenantry. "
        f"Stop it, or serve on another port: `tenantry serve --port {port + 1}`."
    )


def test_serve_says_it_is_serving_only_once_it_listens(sqlite_settings: Settings, tmp_path: Path) -> None:
    """A browser opened on the printed address the moment it is printed finds the server there."""
    port = free_port()
    with console_script_in_background(
        ["serve", "--port", str(port)], tenantry_env(sqlite_settings), tmp_path / "logs"
    ) as serving:

        def said_serving() -> bool:
            serving.check_running()
            return f"Tenantry is serving at http://127.0.0.1:{port}" in serving.stdout

        wait_for(said_serving, 60, what="tenantry serve to say it is serving", interval=0.01)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # not refused: listening
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        assert serving.stop() in (0, -signal.SIGTERM), serving.stderr
