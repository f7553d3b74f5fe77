"""A noisy neighbour: how much tenant B's requests suffer while tenant A floods at 10x its limit.

    python -m benchmarks.limits [--seconds 30] [--rate 20] [--flood 10]

One installation (SQLite, embedded broker) with two community_group tenants of 100 `groups` rows
each on the Standard plan, an admin token for each, served as `tenantry serve` serves it. B reads
its data API (GET /api/v1/tenant/data/groups) at --rate requests a second, one at a time, and
its latencies are taken (after a second of requests not timed, that fill the server's caches) in
three phases of --seconds each (a limit is a minute's: A's first
minute-share goes through at once, and the rest of a phase is refused):

1. quiet: B alone;
2. flood, limits on: A sends --flood times its token's limit of reads (Standard: 1,200 a minute)
   on 20 connections, paced, from a process of its own (B's client is not slowed by A's);
3. flood, limits off: the same flood to the same installation served again with
   TENANTRY_RATE_LIMITS=off, the same work without the feature.

Printed: B's p50 and p99 in each phase, each p99 against the quiet one (the goal: within 1.5x
with limits on), A's requests sent, answered and refused (429), the server's CPU time in each
phase and, beyond B's own, per request of A's (what a refusal costs the server, steadier than a
p99), the flooder's own CPU time, and the load average. Timings are printed, never asserted."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from benchmarks.http import (
    HOST,
    PORTAL_APP,
    Server,
    fresh_settings,
    load_average,
    percentile,
    server_env,
    serving,
)
from benchmarks.scope import fill_tenant, provision
from services.accounts.tokens import create_token
from services.db import Database
from services.installation import prepare_landlord
from services.models import Plan
from services.settings import Settings

ROWS = 100
FLOOD_CONNECTIONS = 20
B_PATH = "/api/v1/tenant/data/groups"
A_PATH = "/api/v1/tenant/units"
#: B's requests a second for the second before each phase, not timed.
WARM_UP_RATE = 20.0


@dataclass(frozen=True)
class Phase:
    label: str
    b_latencies_ms: list[float]
    a_statuses: Counter[int]
    #: CPU seconds the server spent in the phase, and A's flooder.
    server_cpu: float
    flooder_cpu: float = 0.0

    @property
    def p50(self) -> float:
        return statistics.median(self.b_latencies_ms)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.b_latencies_ms), 0.99)


async def build(settings: Settings) -> tuple[str, str, int]:
    """Tenants A and B with rows, an admin token each; A's token's reads a minute."""
    await prepare_landlord(settings)
    landlord = Database(settings.database_url)
    try:
        tokens = []
        for slug in ("noisy", "quiet"):
            tenant = await provision(landlord, settings, slug, "database")
            world = await fill_tenant(landlord, settings, tenant, 0, ROWS)
            async with landlord.session() as session:
                token = await create_token(session, email=world.admin[0], tenant_slug=slug, name="benchmark")
                tokens.append(token.secret)
        async with landlord.session() as session:
            standard = await session.get_one(Plan, "standard")
            limit = int((standard.rate_limits or {})["each"]["read"])
    finally:
        await landlord.dispose()
    return tokens[0], tokens[1], limit


async def b_reads(port: int, token: str, rate: float, seconds: float) -> list[float]:
    """B's latencies: one request after another, started every 1/rate s."""
    latencies = []
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", headers={"Authorization": f"Bearer {token}"}
    ) as b:
        start = time.perf_counter()
        for number in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + number / rate - time.perf_counter()))
            sent = time.perf_counter()
            answer = await b.get(B_PATH)
            latencies.append((time.perf_counter() - sent) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"B was answered {answer.status_code}: the benchmark stops")
    return latencies


async def a_floods(port: int, token: str, per_second: float, seconds: float) -> Counter[int]:
    """A's flood: `per_second` requests a second over FLOOD_CONNECTIONS kept-alive connections,
    paced. Written on bare sockets, not with an HTTP client: on a machine of two cores the flooder
    shares the CPU with the server and B, and must take as little of it as it can."""
    statuses: Counter[int] = Counter()
    every = FLOOD_CONNECTIONS / per_second
    request = (
        f"GET {A_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def connection(offset: float) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        start = time.perf_counter() + offset
        try:
            for number in range(int(seconds / every)):
                await asyncio.sleep(max(0.0, start + number * every - time.perf_counter()))
                writer.write(request)
                statuses[await _read_answer(reader)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(i * every / FLOOD_CONNECTIONS) for i in range(FLOOD_CONNECTIONS)))
    return statuses


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer (with a Content-Length, as the server sends them); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return status


def flood_in_a_process(
    port: int, token: str, per_second: float, seconds: float
) -> tuple[Counter[int], float]:
    """A's flood, run in a process of its own (B's client, timing B, must not wait behind A's);
    its answers, and the CPU seconds the flooder itself used."""
    began = time.process_time()
    statuses = asyncio.run(a_floods(port, token, per_second, seconds))
    return statuses, time.process_time() - began


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def phase(
    label: str, server: Server, tokens: tuple[str, str], flood: float | None, args: argparse.Namespace
) -> Phase:
    noisy, quiet = tokens
    await b_reads(server.port, quiet, WARM_UP_RATE, 1.0)  # each server's first requests fill its caches
    began = cpu_seconds(server.process.pid)
    if not flood:
        latencies = await b_reads(server.port, quiet, args.rate, args.seconds)
        return Phase(label, latencies, Counter(), cpu_seconds(server.process.pid) - began)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as flooder:
        a = asyncio.get_running_loop().run_in_executor(
            flooder, flood_in_a_process, server.port, noisy, flood, args.seconds
        )
        latencies = await b_reads(server.port, quiet, args.rate, args.seconds)
        statuses, flooder_cpu = await a
        return Phase(label, latencies, statuses, cpu_seconds(server.process.pid) - began, flooder_cpu)


def measure(
    settings: Settings, tokens: tuple[str, str], flood: float, logs: Path, args: argparse.Namespace
) -> list[Phase]:
    phases = []
    with serving("portal", PORTAL_APP, 1, server_env(settings), logs, "/healthz") as server:
        phases.append(asyncio.run(phase("quiet: B alone", server, tokens, None, args)))
        phases.append(asyncio.run(phase("A floods, limits on", server, tokens, flood, args)))
    env = server_env(replace(settings, rate_limits=False))
    with serving("portal-unlimited", PORTAL_APP, 1, env, logs, "/healthz") as server:
        phases.append(asyncio.run(phase("A floods, limits off", server, tokens, flood, args)))
    return phases


def report(phases: list[Phase], flood: float, limit: int) -> None:
    quiet = phases[0]
    print(
        f"\nA floods at {flood:.0f} requests a second: {flood * 60 / limit:.0f}x its limit of {limit:,} reads a minute\n"
    )
    print(
        f"{'phase':24} {'B p50 ms':>9} {'B p99 ms':>9} {'p99 vs quiet':>13} {'A sent':>7} {'A 200':>6} "
        f"{'A 429':>6} {'server CPU':>11} {'per A request':>14} {'flooder CPU':>12}"
    )
    for each in phases:
        sent = sum(each.a_statuses.values())
        # The server's CPU beyond B's own (the quiet phase's), shared among A's requests.
        per_a = f"{(each.server_cpu - quiet.server_cpu) / sent * 1000:11.2f} ms" if sent else ""
        print(
            f"{each.label:24} {each.p50:9.1f} {each.p99:9.1f} {each.p99 / quiet.p99:12.2f}x "
            f"{sent:7} {each.a_statuses.get(200, 0):6} {each.a_statuses.get(429, 0):6} "
            f"{each.server_cpu:9.1f} s {per_a:>14} {each.flooder_cpu:10.1f} s"
        )
    limited = phases[1]
    refused = limited.a_statuses.get(429, 0) / max(1, sum(limited.a_statuses.values()))
    print(
        f"\nWith limits on, {refused:.0%} of A's requests were refused; goal for B: p99 within 1.5x of quiet."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="B's requests a second (600 a phase: a p99 of six, not one)"
    )
    parser.add_argument("--flood", type=float, default=10.0, help="A's rate as a multiple of its limit")
    args = parser.parse_args(argv)
    print(f"Load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory(prefix="tenantry-limits-") as folder:
        # The plans' own limits for the tenants; only the installation's are out of reach.
        settings = fresh_settings(Path(folder) / "installation")
        noisy, quiet, limit = asyncio.run(build(settings))
        flood = args.flood * limit / 60
        report(measure(settings, (noisy, quiet), flood, Path(folder) / "logs", args), flood, limit)
    print(f"\nLoad average at the end: {load_average()}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
