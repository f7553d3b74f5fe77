"""A fleet made through the API: how long N tenants take from their requests to all active, and
the web process's resident memory once a request has entered every one of them.

    python -m benchmarks.fleet [--tenants 1000] [--isolation database] [--clients 8]
                               [--warm-pool 2] [--postgres-url postgresql+asyncpg://…]

A new installation (SQLite landlord, embedded broker: the web process runs the workers too) is
served as `tenantry serve` serves it (benchmarks.http.serving). A landlord token then asks for
--tenants tenants, `POST /api/v1/tenants` from --clients clients at once, the three templates in
turn with their default modules, and the run waits until every one is active (a failed one stops
it). Reported: the whole (first request to last active), tenants per minute, and each tenant's
wait from its request to active (its provisioning job's created and finished times: p50, p95).
--warm-pool sets TENANTRY_WARM_POOL (the installation's default, 2; 0: no pool).

Then every tenant is entered once: one person is made an admin of each, with a tenant token per
tenant, and `GET /api/v1/tenant/units` is asked with each token (the landlord's lookups, the
tenant's store opened, its scope entered). The web process's resident memory (VmRSS, with its
children) is printed before and after. With --postgres-url or TENANTRY_TEST_POSTGRES_URL the same
runs again with the landlord in a scratch database on that server and the tenants' stores beside
it, all dropped afterwards.

Goals: 1,000 tenants in 2 minutes or less on SQLite and 3 on PostgreSQL; 200 MB or less of
resident memory after every tenant was entered. Figures are printed, never asserted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from sqlalchemy import func, select

from benchmarks.http import fresh_settings, resident_mib, scratch_landlord, server_env, serving
from services.accounts.tokens import create_token
from services.accounts.users import create_user
from services.db import Database
from services.installation import prepare_landlord
from services.layers.catalogue import load_catalogue
from services.models import Job, Membership, Tenant, TenantRole, TenantStatus
from services.settings import Settings

DEFAULT_TENANTS = 1_000
DEFAULT_CLIENTS = 8
PORTAL_APP = "web.asgi:app"
FLEET_ADMIN = "fleet-admin@localhost"
#: How often the landlord is asked how many tenants are active, while waiting.
POLL_SECONDS = 0.5
#: The longest the run waits for the last tenant, after which it stops.
PATIENCE_SECONDS = 1_800.0


@dataclass(frozen=True)
class FleetResult:
    backend: str
    tenants: int
    seconds: float
    waits: list[float]
    rss_created_mib: float
    rss_entered_mib: float
    enter_seconds: float

    @property
    def per_minute(self) -> float:
        return 60 * self.tenants / self.seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def landlord_token(settings: Settings) -> str:
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            return (await create_token(session, email=settings.admin_email, name="fleet benchmark")).secret
    finally:
        await database.dispose()


async def request_tenants(base_url: str, token: str, slugs: list[str], isolation: str, clients: int) -> None:
    catalogue = load_catalogue(fresh_settings(Path()).layers_dir)
    templates = sorted(catalogue.templates)
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for number, slug in enumerate(slugs):
        queue.put_nowait((number, slug))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            while not queue.empty():
                number, slug = queue.get_nowait()
                body = {
                    "slug": slug,
                    "name": f"Fleet {number + 1}",
                    "template": templates[number % len(templates)],
                    "isolation": isolation,
                }
                answer = await http.post("/api/v1/tenants", json=body, timeout=120)
                if answer.status_code != 202:
                    raise SystemExit(f"POST /api/v1/tenants for {slug}: {answer.status_code} {answer.text}")

    await asyncio.gather(*(client() for _ in range(clients)))


async def wait_until_active(settings: Settings, count: int, started: float) -> None:
    database = Database(settings.database_url)
    try:
        while True:
            async with database.session() as session:
                statuses = dict(
                    (await session.execute(select(Tenant.status, func.count()).group_by(Tenant.status))).all()
                )
            if statuses.get(TenantStatus.FAILED):
                raise SystemExit(f"{statuses[TenantStatus.FAILED]} tenant(s) failed to provision")
            if statuses.get(TenantStatus.ACTIVE, 0) >= count:
                return
            if time.perf_counter() - started > PATIENCE_SECONDS:
                raise SystemExit(f"not all active after {PATIENCE_SECONDS:.0f}s: {statuses}")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await database.dispose()


async def provisioning_waits(settings: Settings) -> list[float]:
    """Each tenant's wait from its request to active: its provisioning job's created and finished."""
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            rows = (
                await session.execute(
                    select(Job.created_at, Job.finished_at).where(Job.tenant_id.is_not(None))
                )
            ).all()
    finally:
        await database.dispose()
    return [(finished - created).total_seconds() for created, finished in rows if finished is not None]


async def tenant_tokens(settings: Settings, slugs: list[str]) -> list[str]:
    """One person, an admin of every tenant, and a tenant token of theirs for each."""
    database = Database(settings.database_url)
    try:
        async with database.session() as session:
            user = (
                await create_user(
                    session, email=FLEET_ADMIN, role=TenantRole.TENANT_ADMIN, tenant_slug=slugs[0]
                )
            ).user
            tenants = {tenant.slug: tenant for tenant in await session.scalars(select(Tenant))}
            for slug in slugs[1:]:
                user.memberships.append(Membership(tenant=tenants[slug], role=TenantRole.TENANT_ADMIN))
            await session.flush()
            return [
                (await create_token(session, email=FLEET_ADMIN, tenant_slug=slug, name="fleet")).secret
                for slug in slugs
            ]
    finally:
        await database.dispose()


async def enter_every_tenant(base_url: str, tokens: list[str], clients: int) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for token in tokens:
        queue.put_nowait(token)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base_url) as http:
            while not queue.empty():
                token = queue.get_nowait()
                answer = await http.get("/api/v1/tenant/units", headers={"Authorization": f"Bearer {token}"})
                if answer.status_code != 200:
                    raise SystemExit(f"GET /api/v1/tenant/units: {answer.status_code} {answer.text}")

    await asyncio.gather(*(client() for _ in range(clients)))


def run_backend(backend: str, folder: Path, args: argparse.Namespace) -> FleetResult:
    name = f"tenantry_fleet_{os.getpid()}"
    settings = replace(fresh_settings(folder / backend), warm_pool_size=args.warm_pool)
    slugs = [f"fleet-{number + 1}" for number in range(args.tenants)]
    with asyncio.Runner() as runner, ExitStack() as cleanup:
        if backend == "postgresql":
            url = cleanup.enter_context(scratch_landlord(runner, args.postgres_url, name))
            settings = replace(settings, database_url=url, tenant_postgres_url=url)
        runner.run(prepare_landlord(settings))
        token = runner.run(landlord_token(settings))
        with serving(
            "portal", PORTAL_APP, 1, server_env(settings), settings.data_dir / "logs", "/healthz"
        ) as portal:
            base_url = f"http://127.0.0.1:{portal.port}"
            started = time.perf_counter()
            runner.run(request_tenants(base_url, token, slugs, args.isolation, args.clients))
            runner.run(wait_until_active(settings, args.tenants, started))
            seconds = time.perf_counter() - started
            rss_created = resident_mib(portal.process.pid)
            tokens = runner.run(tenant_tokens(settings, slugs))
            entering = time.perf_counter()
            runner.run(enter_every_tenant(base_url, tokens, args.clients))
            enter_seconds = time.perf_counter() - entering
            rss_entered = resident_mib(portal.process.pid)
        waits = runner.run(provisioning_waits(settings))
    return FleetResult(backend, args.tenants, seconds, waits, rss_created, rss_entered, enter_seconds)


def report(result: FleetResult, isolation: str, warm_pool: int) -> None:
    pool = f"a warm pool of {warm_pool} per recipe" if warm_pool else "no warm pool"
    print(f"\n{result.backend} ({isolation} isolation, {pool}): {result.tenants:,} tenants through the API")
    print(
        f"  all active in {result.seconds:.1f} s: {result.per_minute:,.0f} tenants a minute; "
        f"each from its request to active p50 {statistics.median(result.waits):.2f} s, "
        f"p95 {percentile(result.waits, 0.95):.2f} s"
    )
    print(
        f"  every tenant entered once in {result.enter_seconds:.1f} s "
        f"({1000 * result.enter_seconds / result.tenants:.1f} ms each)"
    )
    print(
        f"  web process resident memory: {result.rss_created_mib:.0f} MiB after creating them, "
        f"{result.rss_entered_mib:.0f} MiB after entering every one"
    )


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=DEFAULT_TENANTS)
    parser.add_argument("--isolation", default="database", choices=["database", "schema", "shared"])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="requests in flight at once")
    parser.add_argument("--warm-pool", type=int, default=2, help="stores kept built ahead per recipe")
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request the run makes
    args = parser.parse_args(argv)
    if args.tenants < 1 or args.clients < 1 or args.warm_pool < 0:
        parser.error("--tenants and --clients must be above 0, --warm-pool 0 or more")
    print(f"Load average at the start: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tenantry-fleet-") as folder:
        backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
        for backend in backends:
            if backend == "sqlite" and args.isolation == "schema":
                print("\nsqlite skipped: schema isolation is PostgreSQL's")
                continue
            report(run_backend(backend, Path(folder), args), args.isolation, args.warm_pool)
        if not args.postgres_url:
            print("\nPostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    print(f"\nLoad average at the end: {load_average()}")


if __name__ == "__main__":
    main()
