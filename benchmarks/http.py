"""Requests per second of the served portal, against a bare Litestar app served the same way.

    python -m benchmarks.http [--seconds 10] [--rounds 3] [--connections 50] [--processes 1]
                              [--tenants 0] [--postgres-url postgresql+asyncpg://…]

A temporary installation (SQLite landlord, embedded broker) provisions one community_group tenant
(database isolation) with 100 `groups` rows, its admin, a tenant API token for that admin and a
landlord API token for the superadmin; `--tenants` adds that many more tenants. With --postgres-url
or TENANTRY_TEST_POSTGRES_URL the same is built again with the landlord in a scratch database on
that server and the tenant stores beside it, all dropped afterwards.

Each installation is served for real as `tenantry serve` serves it (`tenantry.serving.serve_web`:
uvicorn, `--processes` processes sharing one listener) in a subprocess, its settings in TENANTRY_*
variables. The baseline (the ceiling) is a bare Litestar app defined here, `GET /bare` answering a
page of 25 made-up rows as JSON, served the same way in a subprocess of its own: whatever the portal gets below it is the portal's own
work (middleware, sessions, tokens, the landlord and the tenant's store, templates).

Measured, each for --seconds after a 2-second warm-up, in --rounds rounds (round 1 of every
endpoint, then round 2 of every endpoint…; the median round is shown):

- GET /bare (the ceiling);
- GET /healthz;
- GET /api/v1/tenants with the landlord token;
- GET /api/v1/tenant/data/groups with the tenant token;
- GET /t/<slug>/data/groups, the portal's list, with the admin's session cookie (signed in over
  HTTP with the sign-in form first).

The load comes from `wrk` when it is on PATH; otherwise from a Python load generator in processes
of its own: keep-alive HTTP/1.1 connections on raw asyncio streams, each sending one GET after
another. Every endpoint is checked to answer 200 with the expected content before it is loaded,
and non-2xx answers under load are counted and reported loudly (the run then exits 1): a benchmark
of refusals measures nothing. Goals: the data API and the landlord tenants API at 25 % of the
ceiling or more, the portal list at 20 % or more. Timings are printed, never asserted, with the
load average at the start and the end, and the servers' resident memory after the runs.

On a small machine the load generator shares the CPUs with the server: its own CPU use is printed,
and a generator near a whole CPU is the limit of the figures, not the server. `--tenants` provisions
real tenants (stores of their own, from the golden image), a fraction of a second each."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from litestar import Litestar, get
from sqlalchemy import update

from services.models import Tenant
from services.rate_limits.policy import Rates, TenantRates
from services.settings import PROJECT_ROOT, Settings

# Only the standard library, Litestar and the settings are imported at the top: this module is
# also the bare app's (`serve_web("benchmarks.http:bare_app", …)`) and the load generator's, and neither
# should carry the portal's imports. The installation's helpers are imported where it is built.

TABLE = "groups"
ROWS = 100
SLUG = "bench"
ISOLATION = "database"
ADMIN_EMAIL = "admin@localhost"
#: Rate limits no load of these benchmarks reaches: every request is counted against them, as in an
#: installation, and none is refused.
UNREACHED = Rates(read=10**7, write=10**7, export=10**7, sign_in=10**7)
HOST = "127.0.0.1"
WARMUP_SECONDS = 2.0
#: How long a server may take to answer its first request (migrations are done before it starts).
START_TIMEOUT = 120.0
#: How long a server may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0
#: The generator's share of one CPU beyond which it, not the server, is likely the limit.
GENERATOR_SATURATED = 0.9
PORTAL_APP = "web.asgi:app"
BARE_APP = "benchmarks.http:bare_app"


# -- the ceiling: a bare Litestar app -------------------------------------------------------------


@get("/bare")
async def bare_rows() -> list[dict[str, Any]]:
    """A page of 25 rows as the data API answers one, made on each request as a page is read."""
    return [
        {
            "id": number,
            "name": f"Garden group {number}",
            "description": f"Neighbours who meet for gardening, in unit order {number}.",
            "unit_id": number % 12 + 1,
            "created_at": "2025-01-01T12:00:00+00:00",
        }
        for number in range(1, 26)
    ]


bare_app = Litestar(route_handlers=[bare_rows], openapi_config=None)


# -- what is measured -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    #: Served by the bare app (the ceiling) rather than the portal.
    on_bare: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    #: The share of the ceiling's req/s the portal aims at, when it has a goal.
    goal: float | None = None


@dataclass(frozen=True)
class Load:
    """One endpoint loaded for one round."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    #: Connections that failed (refused, reset, a malformed answer).
    errors: int
    #: The load generator's CPU time over the measured window, as a share of one CPU (the busiest
    #: generator process's); None for wrk.
    generator_cpu: float | None

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        """Answers that were not 2xx."""
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)


@dataclass(frozen=True)
class Installation:
    backend: str
    settings: Settings
    slug: str
    admin: tuple[str, str]
    tenant_token: str
    landlord_token: str
    tenants: int


@dataclass
class BackendResult:
    backend: str
    endpoints: list[Endpoint]
    loads: dict[str, list[Load]]
    portal_rss_mib: float
    bare_rss_mib: float
    tenants: int


def median_round(loads: list[Load]) -> Load:
    """The round with the median req/s (the lower one of two middles), kept whole: its latencies
    go with its rate."""
    return sorted(loads, key=lambda load: load.per_second)[(len(loads) - 1) // 2]


def percentile(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- the installation -----------------------------------------------------------------------------


async def build(settings: Settings, backend: str, extra_tenants: int) -> Installation:
    from benchmarks.scope import fill_tenant, provision
    from services.accounts.tokens import create_token
    from services.db import Database
    from services.installation import prepare_landlord

    await prepare_landlord(settings)
    landlord = Database(settings.database_url)
    try:
        tenant = await provision(landlord, settings, SLUG, ISOLATION)
        async with landlord.session() as session:  # counted against limits, never refused
            await session.execute(
                update(Tenant)
                .where(Tenant.id == tenant.id)
                .values(rate_limits=TenantRates(UNREACHED, UNREACHED).as_json())
            )
            await session.commit()
        world = await fill_tenant(landlord, settings, tenant, 0, ROWS)
        for number in range(extra_tenants):
            await provision(landlord, settings, f"extra-{number + 1}", ISOLATION)
        async with landlord.session() as session:
            tenant_token = await create_token(
                session, email=world.admin[0], tenant_slug=tenant.slug, name="benchmark"
            )
            landlord_token = await create_token(session, email=settings.admin_email, name="benchmark")
    finally:
        await landlord.dispose()
    return Installation(
        backend,
        settings,
        tenant.slug,
        world.admin,
        tenant_token.secret,
        landlord_token.secret,
        1 + extra_tenants,
    )


def server_env(settings: Settings) -> dict[str, str]:
    """The servers' environment: none of this process's TENANTRY_* leaks in; the installation's
    settings go as the variables they read back as, with no drift check of every tenant in the
    middle of a measure."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TENANTRY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    env.update(replace(settings, drift_check_hours=0).as_env())
    return env


# -- HTTP, one request at a time (sign-in and checks) ----------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    port: int,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> Answer:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


def cookies_of(answer: Answer, jar: dict[str, str]) -> dict[str, str]:
    """`jar` with the cookies `answer` sets (a cookie set to expire is taken out)."""
    jar = dict(jar)
    for name, value in answer.headers:
        if name.lower() != "set-cookie":
            continue
        for morsel in SimpleCookie(value).values():
            if morsel["max-age"] in ("0", "-1") or not morsel.value:
                jar.pop(morsel.key, None)
            else:
                jar[morsel.key] = morsel.value
    return jar


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in jar.items())


def sign_in_form(status: int, page: str, email: str, password: str) -> dict[str, str]:
    """The sign-in form a browser would send, with the CSRF token of the page GET /login answered."""
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page)
    if status != 200 or token is None:
        raise SystemExit(f"GET /login answered {status} without a CSRF token; the benchmark stops")
    return {"email": email, "password": password, "_csrf_token": token.group(1)}


def signed_in(status: int, email: str) -> None:
    """Stop the benchmark unless the sign-in was answered with the redirect into the portal."""
    if status not in (302, 303):
        raise SystemExit(f"{email} could not sign in ({status}); the benchmark stops")


def sign_in(port: int, email: str, password: str) -> str:
    """Sign in with the form, as a browser does; the Cookie header the signed-in browser sends."""
    form = fetch(port, "/login")
    jar = cookies_of(form, {})
    answer = fetch(
        port,
        "/login",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie_header(jar)},
        body=urlencode(sign_in_form(form.status, form.text, email, password)).encode(),
    )
    signed_in(answer.status, email)
    return cookie_header(cookies_of(answer, jar))


def check_endpoint(port: int, endpoint: Endpoint, installation: Installation) -> None:
    """One request before the load: a 200 with what the endpoint should show, or the run stops (a
    redirect to the sign-in page is fast, and worthless)."""
    answer = fetch(port, endpoint.path, headers=dict(endpoint.headers))
    problem = None
    if answer.status != 200:
        problem = f"answered {answer.status}"
    elif endpoint.path == "/bare":
        problem = None if len(answer.json()) == 25 else "did not answer 25 rows"
    elif endpoint.path == "/healthz":
        problem = None if answer.json().get("status") == "ok" else "is not ok"
    elif endpoint.path.startswith("/api/v1/tenants"):
        total = answer.json().get("total")
        problem = None if total == installation.tenants else f"counted {total} tenants"
    elif endpoint.path.startswith("/api/v1/tenant/"):
        total = answer.json().get("total")
        problem = None if total == ROWS else f"counted {total} rows, not {ROWS}"
    elif f"group 0-{ROWS - 1}" not in answer.text:  # the portal's list, newest first
        problem = "does not list the newest row"
    if problem:
        raise SystemExit(
            f"{installation.backend}: GET {endpoint.path} {problem}; the benchmark stops\n{answer.text[:2000]}"
        )


# -- the servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def wait_until_ready(server: Server, path: str) -> None:
    """Poll `path` until it answers 200, within START_TIMEOUT; a server that exits stops the run."""
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(
                f"the {server.label} server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            answer = fetch(server.port, path, timeout=5)
            if answer.status == 200:
                return
            last = f"{answer.status}: {answer.text[:300]}"
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.1)
    raise SystemExit(
        f"the {server.label} server did not answer GET {path} with 200 within {START_TIMEOUT:.0f}s "
        f"(last: {last})\n{server.log_tail()}"
    )


@contextmanager
def serving(
    label: str, app: str, processes: int, env: dict[str, str], logs: Path, ready_path: str
) -> Iterator[Server]:
    """APP served as `tenantry serve` serves the portal, in a subprocess (a session of its own, so
    its workers go with it), ready to answer; stopped with SIGTERM on the way out, then killed if it
    lingers."""
    port = free_port()
    serve = f"serve_web({app!r}, host={HOST!r}, port={port}, processes={processes})"
    command = [sys.executable, "-c", f"from tenantry.serving import serve_web; {serve}"]
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{label}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(label, process, port, log)
    try:
        wait_until_ready(server, ready_path)
        yield server
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # Workers left behind by a parent that was killed: the session's group is this server's alone.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name, in parentheses, may hold spaces; the parent's id follows the state.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, waiting = [], [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def resident_mib(pid: int) -> float:
    """VmRSS of the process and every descendant, summed, in MiB."""
    kib = 0
    for each in [pid, *descendants(pid)]:
        with suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
    return kib / 1024


# -- the load -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    """What one load generator process does; it goes to the process as JSON."""

    port: int
    path: str
    headers: list[tuple[str, str]]
    connections: int
    seconds: float
    warmup: float
    #: When the connections open (time.time()), so that every generator process starts together.
    start_at: float


async def read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, up to the blank line
                pass
            return
        await reader.readexactly(size + 2)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of one whole answer, its body read off the connection; and whether the server
    closes the connection after it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    chunked = closes = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            closes = value == b"close"
    if chunked:
        await read_chunked(reader)
    elif length is not None:
        await reader.readexactly(length)
    elif status >= 200 and status not in (204, 304):
        await reader.read()  # no length: the body ends with the connection
        closes = True
    return status, closes


async def generate(spec: LoadSpec) -> dict[str, Any]:
    """Keep-alive connections, each sending one GET after another; latencies (ms) of the answers
    that began after the warm-up and ended before the end."""
    head = f"GET {spec.path} HTTP/1.1\r\nHost: {HOST}:{spec.port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in spec.headers)
    request = (head + "\r\n").encode("latin-1")
    await asyncio.sleep(max(0.0, spec.start_at - time.time()))  # start with the other generators
    warm_end = time.perf_counter() + spec.warmup
    end = warm_end + spec.seconds
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0

    async def one_connection() -> None:
        nonlocal errors
        writer: asyncio.StreamWriter | None = None
        reader: asyncio.StreamReader | None = None
        while time.perf_counter() < end:
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, spec.port)
                started = time.perf_counter()
                writer.write(request)
                status, closes = await read_answer(reader)
                finished = time.perf_counter()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                errors += 1
                if writer is not None:
                    writer.close()
                writer = reader = None
                await asyncio.sleep(0.01)  # a server that is gone is not hammered in a tight loop
                continue
            if started >= warm_end and finished <= end:
                latencies.append((finished - started) * 1000)
                statuses[status] += 1
            if closes:
                writer.close()
                writer = reader = None
        if writer is not None:
            writer.close()

    cpu_at_warm_end: float | None = None

    async def note_cpu() -> None:
        nonlocal cpu_at_warm_end
        await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
        cpu_at_warm_end = time.process_time()

    await asyncio.gather(note_cpu(), *(one_connection() for _ in range(spec.connections)))
    cpu = time.process_time() - (cpu_at_warm_end or 0.0)
    return {
        "latencies": latencies,
        "statuses": dict(statuses),
        "errors": errors,
        "seconds": spec.seconds,
        "cpu": cpu / spec.seconds,
    }


def run_generator_process(encoded: str) -> None:
    """The hidden `--generate SPEC` mode: one generator process, its result as JSON on stdout."""
    values = json.loads(encoded)
    spec = LoadSpec(**{**values, "headers": [tuple(pair) for pair in values["headers"]]})
    print(json.dumps(asyncio.run(generate(spec))))


def load_with_python(port: int, endpoint: Endpoint, connections: int, seconds: float, processes: int) -> Load:
    shares = [connections // processes + (1 if n < connections % processes else 0) for n in range(processes)]
    start_at = time.time() + 1.0  # the generators' imports take a few tenths of a second
    children = []
    for share in shares:
        spec = LoadSpec(port, endpoint.path, list(endpoint.headers), share, seconds, WARMUP_SECONDS, start_at)
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.http", "--generate", json.dumps(asdict(spec))],
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
            )
        )
    results = []
    try:
        for child in children:
            output, _ = child.communicate(timeout=seconds + WARMUP_SECONDS + 120)
            if child.returncode != 0:
                raise SystemExit(f"a load generator exited with {child.returncode}; the benchmark stops")
            results.append(json.loads(output))
    finally:
        for child in children:
            if child.poll() is None:  # the run was stopped: no generator outlives it
                child.kill()
                child.wait()
    latencies = sorted(latency for result in results for latency in result["latencies"])
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update({int(status): count for status, count in result["statuses"].items()})
    return Load(
        requests=len(latencies),
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        statuses=dict(statuses),
        errors=sum(result["errors"] for result in results),
        generator_cpu=max(result["cpu"] for result in results),
    )


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> Load:
    """wrk's --latency report. wrk counts only answers of 400 and above as "Non-2xx or 3xx": the
    check before the load is what rules redirects out."""

    def number(pattern: str) -> re.Match[str]:
        found = re.search(pattern, output, re.MULTILINE)
        if found is None:
            raise SystemExit(f"wrk's output has no {pattern!r}:\n{output}")
        return found

    def milliseconds(share: str) -> float:
        found = number(rf"^\s*{share}%\s+([\d.]+)(us|ms|s|m)\s*$")
        return float(found.group(1)) * _WRK_UNITS[found.group(2)]

    done = number(r"(\d+) requests in ([\d.]+)(us|ms|s|m),")
    requests, measured = int(done.group(1)), float(done.group(2)) * _WRK_UNITS[done.group(3)] / 1000
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = sum(int(value) for value in socket_errors.groups()) if socket_errors else 0
    failures = int(failed.group(1)) if failed else 0
    # wrk does not tell the statuses apart: its failures are kept under 400 (400 or above).
    statuses = {200: requests - failures} | ({400: failures} if failures else {})
    return Load(requests, measured, milliseconds("50"), milliseconds("99"), statuses, errors, None)


def load_with_wrk(port: int, endpoint: Endpoint, connections: int, seconds: float) -> Load:
    def wrk(duration: float) -> str:
        headers = [argument for name, value in endpoint.headers for argument in ("-H", f"{name}: {value}")]
        command = [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",  # whole seconds only
            "--latency",
            *headers,
            f"http://{HOST}:{port}{endpoint.path}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
        if done.returncode != 0:
            raise SystemExit(f"wrk exited with {done.returncode}:\n{done.stderr}")
        return done.stdout

    wrk(WARMUP_SECONDS)
    return parse_wrk(wrk(seconds))


# -- a run per backend ----------------------------------------------------------------------------


def endpoints_of(installation: Installation, portal_cookie: str) -> list[Endpoint]:
    return [
        Endpoint("GET /bare (the ceiling)", "/bare", on_bare=True),
        Endpoint("GET /healthz", "/healthz"),
        Endpoint(
            "GET /api/v1/tenants (landlord token)",
            "/api/v1/tenants",
            headers=(("Authorization", f"Bearer {installation.landlord_token}"),),
            goal=0.25,
        ),
        Endpoint(
            f"GET /api/v1/tenant/data/{TABLE} (tenant token)",
            f"/api/v1/tenant/data/{TABLE}",
            headers=(("Authorization", f"Bearer {installation.tenant_token}"),),
            goal=0.25,
        ),
        Endpoint(
            f"GET /t/{installation.slug}/data/{TABLE} (session cookie)",
            f"/t/{installation.slug}/data/{TABLE}",
            headers=(("Cookie", portal_cookie),),
            goal=0.20,
        ),
    ]


def serve_and_measure(installation: Installation, args: argparse.Namespace, generator: str) -> BackendResult:
    logs = installation.settings.data_dir / "logs"
    env = server_env(installation.settings)
    backend = installation.backend
    with (
        serving("portal", PORTAL_APP, args.processes, env, logs, "/healthz") as portal,
        serving("bare", BARE_APP, args.processes, env, logs, "/bare") as bare,
    ):
        cookie = sign_in(portal.port, *installation.admin)
        endpoints = endpoints_of(installation, cookie)
        for endpoint in endpoints:
            check_endpoint(bare.port if endpoint.on_bare else portal.port, endpoint, installation)
        loads: dict[str, list[Load]] = {endpoint.label: [] for endpoint in endpoints}
        for round_number in range(args.rounds):
            for endpoint in endpoints:
                server = bare if endpoint.on_bare else portal
                server_alive(server)
                if generator == "wrk":
                    load = load_with_wrk(server.port, endpoint, args.connections, args.seconds)
                else:
                    load = load_with_python(
                        server.port, endpoint, args.connections, args.seconds, args.generator_processes
                    )
                loads[endpoint.label].append(load)
                trouble = f"  {load.failures} NON-2xx" if load.failures else ""
                trouble += f"  {load.errors} CONNECTION ERRORS" if load.errors else ""
                print(
                    f"{backend} round {round_number + 1}/{args.rounds}: {endpoint.label:<48} "
                    f"{load.per_second:>8.0f} req/s{trouble}",
                    flush=True,
                )
        server_alive(portal)
        return BackendResult(
            backend,
            endpoints,
            loads,
            resident_mib(portal.process.pid),
            resident_mib(bare.process.pid),
            installation.tenants,
        )


def server_alive(server: Server) -> None:
    if server.process.poll() is not None:
        raise SystemExit(
            f"the {server.label} server exited with {server.process.returncode}:\n{server.log_tail()}"
        )


@contextmanager
def scratch_landlord(runner: asyncio.Runner, server_url: str, name: str) -> Iterator[str]:
    """benchmarks.installation.scratch_database held open across blocking code: entered and left
    on the same event loop, dropped on the way out whatever happened in between."""
    from benchmarks.installation import scratch_database

    database = scratch_database(server_url, name)
    url = runner.run(database.__aenter__())
    try:
        yield url
    finally:
        runner.run(database.__aexit__(None, None, None))


def fresh_settings(data_dir: Path) -> Settings:
    """A new installation in `data_dir`: a SQLite landlord and the embedded broker, its rate limits
    on (every request counted) and out of this benchmark's reach."""
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'landlord.db'}",
        broker_url="embedded",
        secret_key=secrets.token_urlsafe(32),
        admin_email=ADMIN_EMAIL,
        layers_dir=PROJECT_ROOT / "layers",
        anonymous_rates=UNREACHED,
        staff_rates=UNREACHED,
    )


def run_backend(backend: str, folder: Path, args: argparse.Namespace, generator: str) -> BackendResult:
    name = f"tenantry_http_{secrets.token_hex(4)}"
    settings = fresh_settings(folder / name)
    with asyncio.Runner() as runner, ExitStack() as cleanup:
        if backend == "postgresql":
            url = cleanup.enter_context(scratch_landlord(runner, args.postgres_url, name))
            settings = replace(settings, database_url=url, tenant_postgres_url=url)
        started = time.perf_counter()
        installation = runner.run(build(settings, backend, args.tenants))
        print(
            f"{backend}: {installation.tenants} tenant(s) built in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        return serve_and_measure(installation, args, generator)


# -- the report -----------------------------------------------------------------------------------


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def report(result: BackendResult, args: argparse.Namespace, generator: str) -> bool:
    """The backend's table; whether every answer under load was 2xx on a connection that held."""
    chosen = {label: median_round(loads) for label, loads in result.loads.items()}
    ceiling = chosen[result.endpoints[0].label].per_second
    rounds = f"median of {args.rounds} rounds" if args.rounds > 1 else "1 round"
    print(
        f"\n{result.backend}: {args.processes} uvicorn process(es) each; {result.tenants} tenant(s); "
        f"{args.connections} connections, {args.seconds:g} s after a {WARMUP_SECONDS:g} s warm-up, {rounds}\n"
    )
    width = max(len(endpoint.label) for endpoint in result.endpoints)
    print(
        f"{'endpoint':<{width}} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8} "
        f"{'goal':>12} {'non-2xx':>8}"
    )
    clean = True
    for endpoint in result.endpoints:
        load = chosen[endpoint.label]
        share = load.per_second / ceiling if ceiling else 0.0
        goal = ""
        if endpoint.goal is not None:
            goal = f">={endpoint.goal:.0%} {'met' if share >= endpoint.goal else 'BELOW'}"
        failures = sum(each.failures for each in result.loads[endpoint.label])
        errors = sum(each.errors for each in result.loads[endpoint.label])
        clean = clean and not failures and not errors
        print(
            f"{endpoint.label:<{width}} {load.per_second:>8.0f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} "
            f"{share:>8.1%} {goal:>12} {failures:>8}" + (f"  ({errors} connection errors)" if errors else "")
        )
    print(
        "Goals: the data API and the landlord tenants API at >= 25 % of the ceiling's req/s; "
        "the portal list at >= 20 %."
    )
    cpu = [each.generator_cpu for loads in result.loads.values() for each in loads]
    if generator == "python" and all(share is not None for share in cpu):
        busiest = max(share for share in cpu if share is not None)
        warning = (
            "  ** near a whole CPU: the generator may be the limit, not the server **"
            if busiest >= GENERATOR_SATURATED
            else ""
        )
        print(f"Load generator CPU, busiest process and round: {busiest:.0%} of one CPU{warning}")
    print(
        f"Resident memory after the runs (VmRSS, uvicorn and its children): portal "
        f"{result.portal_rss_mib:.1f} MiB; bare app {result.bare_rss_mib:.1f} MiB"
    )
    return clean


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per endpoint and round (after warm-up)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every endpoint, interleaved; the median is shown"
    )
    parser.add_argument(
        "--connections", type=int, default=50, help="concurrent keep-alive connections of the load"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="uvicorn worker processes of each server (--workers)"
    )
    parser.add_argument(
        "--tenants", type=int, default=0, help="more tenants provisioned beside the measured one"
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="the load generator: wrk when on PATH (auto), or the Python one in processes of its own",
    )
    parser.add_argument(
        "--generator-processes",
        type=int,
        default=1,
        help="processes of the Python load generator, the connections shared among them",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"),
        help="also measure with the landlord and tenant stores on this PostgreSQL server "
        "(default: TENANTRY_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--generate", help=argparse.SUPPRESS)  # a load generator process's own mode
    args = parser.parse_args(argv)
    if args.generate:
        run_generator_process(args.generate)
        return
    for option in ("seconds", "rounds", "connections", "processes", "generator_processes"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be above 0")
    if args.tenants < 0:
        parser.error("--tenants must be 0 or more")
    if args.generator_processes > args.connections:
        parser.error("--generator-processes cannot be more than --connections")
    # Stopped by SIGTERM, the run still stops its servers, drops its databases and removes its files.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    elif generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH")
    described = (
        "wrk (-t2)"
        if generator == "wrk"
        else f"Python asyncio keep-alive HTTP/1.1, {args.generator_processes} process(es)"
    )
    # Litestar (bare_app) logs INFO for the whole process: migrations log a line each (the
    # landlord's and every tenant store's), and uvicorn a line for the listener it binds.
    for noisy in ("alembic", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    print(f"Load average at the start: {load_average()} on {os.cpu_count()} CPUs")
    print(f"Server processes: {args.processes} each; load generator: {described}", flush=True)
    if args.processes > 1:
        print(
            "Note: `tenantry serve` runs one process with the embedded broker (its jobs live in that "
            "process);\nthe GETs measured here send no jobs, so several are served anyway.",
            flush=True,
        )
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    results = []
    with tempfile.TemporaryDirectory(prefix="tenantry-http-") as folder:
        for backend in backends:
            results.append(run_backend(backend, Path(folder), args, generator))
    if not args.postgres_url:
        print("PostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    clean = [report(result, args, generator) for result in results]
    print(f"\nLoad average at the end: {load_average()}")
    if not all(clean):
        print(
            "\n!!! Some answers under load were not 2xx, or connections failed (see non-2xx above). !!!\n"
            "!!! Those figures measure refusals, not the portal's work.                          !!!"
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
