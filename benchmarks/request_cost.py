"""CPU per request of the portal's endpoints, in process, against a bare Litestar app.

    python -m benchmarks.request_cost [--requests 300] [--rounds 5] [--postgres-url postgresql+asyncpg://…]

The installation and the endpoints are benchmarks.http's (one tenant with 100 `groups` rows, its
admin, a tenant token and a landlord token), but nothing is served: each request goes straight
into the ASGI app through httpx's ASGI transport, one after another, on this process's event loop,
and the CPU time this process spends on it is counted (its worker threads, SQLite's included).
The bare app (`benchmarks.http:bare_app`) is measured the same way in the same run; its cost is the
ceiling's, and each endpoint's share of it is what the HTTP benchmark's ratios would be if the
server, not the load generator or the network, were the limit.

Rate limits are on (counted in memory, out of reach, as benchmarks.http sets them); the tenant
data API is measured twice more, with them on and off in alternate rounds, so what counting costs
is read in the same run.

It answers in seconds and hardly moves with the machine's load (a median of --rounds rounds of
--requests requests each), so it is the one to run before and after a change to the request path.
Figures are printed, never asserted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.http import (
    Endpoint,
    Installation,
    bare_app,
    build,
    endpoints_of,
    fresh_settings,
    scratch_landlord,
    sign_in_form,
    signed_in,
)
from services.settings import Settings
from web.app import create_app

DEFAULT_REQUESTS = 300
DEFAULT_ROUNDS = 5
WARM_UP_REQUESTS = 30


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> str:
    """The Cookie header of a browser that signed in with the form."""
    form = await client.get("/login")
    answer = await client.post("/login", data=sign_in_form(form.status_code, form.text, email, password))
    signed_in(answer.status_code, email)
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def in_process(app: Any) -> httpx.AsyncClient:
    """A client whose requests go straight into the ASGI `app`. httpx's own line per request is not
    logged: it is not the app's work, and would be counted as if it were."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://benchmark")


async def cost_of(app: Any, endpoint: Endpoint, requests: int, rounds: int) -> float:
    """The median over `rounds` of the CPU milliseconds one request of `endpoint` takes."""
    async with in_process(app) as client:
        headers = dict(endpoint.headers)
        for _ in range(WARM_UP_REQUESTS):
            answer = await client.get(endpoint.path, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"{endpoint.label} answered {answer.status_code}; the benchmark stops")
        costs = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(requests):
                await client.get(endpoint.path, headers=headers)
            costs.append((time.process_time() - started) / requests * 1000)
    return statistics.median(costs)


async def costs_in(
    settings: Settings, installation: Installation, requests: int, rounds: int, *, data_api_only: bool = False
) -> list[tuple[str, float]]:
    """Each endpoint's cost on an app with `settings` (only the tenant data API's, if asked)."""
    app = create_app(settings)
    async with app.lifespan():
        if data_api_only:
            endpoints = [e for e in endpoints_of(installation, "") if e.path.startswith("/api/v1/tenant/")]
        else:
            async with in_process(app) as client:
                cookie = await sign_in(client, *installation.admin)
            endpoints = endpoints_of(installation, cookie)
        return [
            (endpoint.label, await cost_of(bare_app if endpoint.on_bare else app, endpoint, requests, rounds))
            for endpoint in endpoints
        ]


async def measure(installation: Installation, requests: int, rounds: int) -> list[tuple[str, float]]:
    """Each endpoint's cost, then the tenant data API's again with rate limits on and off: the same
    work with and without counting, so that what counting costs is read in the same run. Those two
    take their rounds in turn, each on an app of its own: measured once after all the others, the
    API without limits came out a sixth cheaper than with them; in turn, about half that."""
    costs = await costs_in(installation.settings, installation, requests, rounds)
    unlimited = replace(installation.settings, rate_limits=False)
    limited_rounds: list[float] = []
    unlimited_rounds: list[float] = []
    for _ in range(rounds):
        for settings, kept in ((installation.settings, limited_rounds), (unlimited, unlimited_rounds)):
            [(label, cost)] = await costs_in(settings, installation, requests, 1, data_api_only=True)
            kept.append(cost)
    return [
        *costs,
        (f"{label}, in turn: rate limits on", statistics.median(limited_rounds)),
        (f"{label}, in turn: rate limits off", statistics.median(unlimited_rounds)),
    ]


def report(backend: str, costs: list[tuple[str, float]]) -> None:
    ceiling = costs[0][1]
    print(f"\n{backend}: CPU per request in process (median round)\n")
    print(f"{'endpoint':48} {'ms CPU':>8} {'of bare':>8}")
    for name, cost in costs:
        print(f"{name:48} {cost:8.2f} {ceiling / cost:8.1%}")


def run_backend(backend: str, folder: Path, args: argparse.Namespace) -> None:
    settings = fresh_settings(folder / backend)
    with asyncio.Runner() as runner, ExitStack() as cleanup:
        if backend == "postgresql":
            url = cleanup.enter_context(
                scratch_landlord(runner, args.postgres_url, f"tenantry_cost_{os.getpid()}")
            )
            settings = replace(settings, database_url=url, tenant_postgres_url=url)
        installation = runner.run(build(settings, backend, 0))
        report(backend, runner.run(measure(installation, args.requests, args.rounds)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, help="requests per round")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="rounds; the median is shown")
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    print(f"Load average at the start: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="tenantry-cost-") as folder:
        run_backend("sqlite", Path(folder), args)
        if args.postgres_url:
            run_backend("postgresql", Path(folder), args)
        else:
            print("\nPostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    print(f"\nLoad average at the end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
