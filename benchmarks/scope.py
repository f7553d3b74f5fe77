"""Scope's cost: the same tenant data read with and without tenant scope, per query and per request,
in one run.

    python -m benchmarks.scope [--rows 6000] [--requests 100] [--queries 300] [--postgres-url postgresql+asyncpg://…]

A temporary installation (SQLite landlord) provisions three community_group tenants in each
isolation mode (database and shared; schema too on PostgreSQL), gives each a tree of twelve units
and an equal share of N `groups` rows spread over its units, an admin, and a member assigned to
one region (three of the twelve units). The first tenant of each mode is measured:

- per query (by id, and a page of 25 with a LIKE search): one session per query on a connection
  held for the whole measure (as a request holds one): begin, the select, commit. The baseline is
  a plain AsyncSession on the store's owner connection; then the scope's criteria written into the
  statement by hand (which tells the SQL's cost from the mechanism's), and a scoped tenant session
  at tenant level (the admin's scope) and at unit level (the member's);
- per request: GET /t/<slug>/data/groups?q=<word> through the real app (httpx + ASGITransport,
  signed in) as the admin and as the member. The baseline is the same page (the same tenant
  lookup, pooled connection, list_records and template) from a route added for this run outside
  the tenant scope middleware, reading through a plain session on the owner connection. The
  middleware's own work (tenant, membership, unit subtree, connection checkout) is timed alone too.

Variants are interleaved in rotating order after a warm-up; timings are printed, never asserted.
PostgreSQL runs when --postgres-url or TENANTRY_TEST_POSTGRES_URL is set: tenant stores go on that
server, in databases and a role created for the run and dropped afterwards."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from litestar import Litestar, Request, get
from litestar.exceptions import NotAuthorizedException
from litestar.response import Template
from litestar.types import Message
from litestar.types import Scope as AsgiScope
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from benchmarks.installation import scratch_database, scratch_settings
from services import jobs
from services.db import Database, create_engine
from services.installation import prepare_landlord
from services.models import JobStatus, SchemaSnapshot, Tenant, TenantRole, User
from services.models.tenant import Unit
from services.people.people import add_person
from services.people.units import add_unit
from services.provisioning.tenants import TenantRequest, request_tenant
from services.settings import Settings
from services.tenancy.access import TenantAccess, find_open_tenant
from services.tenancy.connections import TenantConnections
from services.tenancy.context import Scope, tenant_context
from services.tenancy.sessions import scoped_session
from services.tenancy.stores import StoreLocation, location_of
from services.tenant_data.records import RecordTable, list_records, record_schema
from web.app import create_app
from web.deps import DbSession
from web.tenancy.scope import TenantScopeMiddleware

TABLE = "groups"
TENANTS_PER_MODE = 3
REGIONS, SUBUNITS = 4, 2
WORDS = ("garden", "river", "choir", "chess", "hiking", "reading", "cycling", "pottery")
BASE_URL = "http://127.0.0.1:8000"
UNSCOPED_PATH = "/bench/unscoped"
#: The pooled connections of the unscoped route (the owner's, on every store), on app.state.
UNSCOPED_CONNECTIONS = "bench_unscoped_connections"


@dataclass(frozen=True)
class Measure:
    section: str
    store: str
    what: str
    how: str
    micros: list[float]
    is_baseline: bool = False

    @property
    def p50(self) -> float:
        return statistics.median(self.micros)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.micros, n=20)[-1] if len(self.micros) > 1 else self.micros[0]


@dataclass
class World:
    """The measured tenant of one isolation mode and what its people see."""

    isolation: str
    tenant: Tenant
    location: StoreLocation
    table: RecordTable
    admin: tuple[str, str]
    member: tuple[str, str]
    member_units: frozenset[int]
    #: Rows of the measured tenant inside the member's units (every variant can read them).
    visible_ids: list[int]


def _search(table: RecordTable, word: str) -> ColumnElement[bool]:
    """The portal's search condition (services.tenant_data.records.list_records)."""
    return or_(*(func.lower(column).contains(word, autoescape=True) for column in table.searchable))


async def interleaved(
    variants: dict[str, Callable[[int], Awaitable[object]]], iterations: int, warmup: int
) -> dict[str, list[float]]:
    """Microseconds per call of each variant; each round runs every variant once, in a rotating
    order, so drift and caches weigh on all of them alike. `work(i)` gets the round number."""
    names = list(variants)
    for round_number in range(warmup):
        for name in names:
            await variants[name](round_number)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(iterations):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter_ns()
            await variants[name](round_number)
            timings[name].append((time.perf_counter_ns() - started) / 1000)
    return timings


# -- the installation -----------------------------------------------------------------------------


async def provision(landlord: Database, settings: Settings, slug: str, isolation: str) -> Tenant:
    async with landlord.session() as session:
        tenant, job, _ = await request_tenant(
            session,
            settings,
            TenantRequest(slug, slug.replace("-", " ").title(), "community_group", [], isolation),
        )
    with tenant_context(tenant.id):
        await jobs.perform_job(landlord, job.id, settings)
    async with landlord.session() as session:
        done = await session.get_one(type(job), job.id)
        if done.status != JobStatus.SUCCEEDED:
            raise SystemExit(f"provisioning {slug} ended {done.status}: {done.error}")
        return await session.get_one(Tenant, tenant.id)


async def snapshot_of(landlord: AsyncSession, tenant: Tenant) -> str:
    """The key the portal maps a tenant's record tables under (web.tenant.data.record_schema_of)."""
    sha256 = await landlord.scalar(
        select(SchemaSnapshot.sha256)
        .where(SchemaSnapshot.tenant_id == tenant.id)
        .order_by(SchemaSnapshot.id.desc())
        .limit(1)
    )
    return sha256 or f"tenant-{tenant.id}"


async def fill_tenant(
    landlord: Database, settings: Settings, tenant: Tenant, number: int, rows: int
) -> World:
    """Units, people and rows, written through a scoped session as the portal writes them."""
    location = location_of(settings, tenant)
    store = location.open()
    try:
        async with (
            landlord.session() as session,
            scoped_session(store.engine, Scope.of_tenant(tenant.id)) as data,
        ):
            root = await data.scalar(select(Unit).where(Unit.parent_id.is_(None)))
            assert root is not None
            leaves: list[int] = []
            regions: list[int] = []
            member_units: set[int] = set()
            for region_number in range(REGIONS):
                region = await add_unit(data, parent_id=root.id, name=f"Region {region_number + 1}")
                regions.append(region.id)
                branch = [region.id]
                for sub_number in range(SUBUNITS):
                    unit = await add_unit(
                        data, parent_id=region.id, name=f"Area {region_number + 1}.{sub_number + 1}"
                    )
                    branch.append(unit.id)
                leaves += branch
                if region_number == 0:
                    member_units = set(branch)
            table = (await record_schema(data, await snapshot_of(session, tenant))).table(TABLE)
            model: Any = table.model  # mapped from the store: its columns are not known to mypy
            made = []
            for row_number in range(rows):
                word = WORDS[row_number % len(WORDS)]
                made.append(
                    model(
                        name=f"{word.title()} group {number}-{row_number}",
                        description=f"Neighbours who meet for {word}, in unit order {row_number}.",
                        unit_id=leaves[(row_number // len(WORDS)) % len(leaves)],
                    )
                )
            data.add_all(made)
            await data.flush()
            visible = [row.id for row in made if row.unit_id in member_units]
            people = []
            for role in (TenantRole.TENANT_ADMIN, TenantRole.TENANT_MEMBER):
                email = f"{role.value.replace('_', '-')}@{tenant.slug}.example"
                units = regions[:1] if role == TenantRole.TENANT_MEMBER else []
                new = await add_person(
                    session,
                    data,
                    tenant,
                    email=email,
                    display_name=role.value,
                    role=role.value,
                    unit_ids=units,
                )
                people.append((new.user.email, new.password))
        async with store.engine.begin() as connection:
            await connection.exec_driver_sql("ANALYZE")
    finally:
        await store.dispose()
    return World(
        tenant.isolation,
        tenant,
        location,
        table,
        people[0],
        people[1],
        frozenset(member_units),
        visible,
    )


async def build(settings: Settings, isolations: list[str], rows: int) -> list[World]:
    await prepare_landlord(settings)
    landlord = Database(settings.database_url)
    worlds = []
    try:
        for isolation in isolations:
            for number in range(TENANTS_PER_MODE):
                tenant = await provision(landlord, settings, f"{isolation}-{number + 1}", isolation)
                share = rows // TENANTS_PER_MODE + (1 if number < rows % TENANTS_PER_MODE else 0)
                world = await fill_tenant(landlord, settings, tenant, number, share)
                if number == 0:
                    worlds.append(world)
    finally:
        await landlord.dispose()
    return worlds


# -- per query ------------------------------------------------------------------------------------


async def measure_queries(world: World, label: str, iterations: int, warmup: int) -> list[Measure]:
    tenant_id = world.tenant.id
    model: Any = world.table.model  # mapped from the store: its columns are not known to mypy
    key = world.table.primary_key
    owner = create_engine(world.location.url, schema=world.location.schema)
    connections = TenantConnections(2)
    row_security = world.location.app_role is not None
    tenant_wide, units = Scope.of_tenant(tenant_id), Scope.of_units(tenant_id, world.member_units)
    ids = world.visible_ids

    def by_hand(statement: Any, scope: Scope | None) -> Any:
        """The criteria a scoped session adds, written into the statement instead."""
        if scope is None:
            return statement
        statement = statement.where(model.tenant_id == tenant_id)
        return (
            statement
            if scope.unit_ids is None
            else statement.where(model.unit_id.in_(sorted(scope.unit_ids)))
        )

    def by_id(round_number: int, scope: Scope | None = None) -> Any:
        return by_hand(select(model).where(key == ids[round_number * 7919 % len(ids)]), scope)

    def page(round_number: int, scope: Scope | None = None) -> Any:
        word = WORDS[round_number % len(WORDS)]
        return by_hand(select(model).where(_search(world.table, word)).order_by(key.desc()).limit(25), scope)

    measures = []
    try:
        async with (
            owner.connect() as plain_connection,
            connections.connection(world.location) as scoped_connection,
        ):

            async def plain(statement: Any) -> list[Any]:
                async with AsyncSession(bind=plain_connection, expire_on_commit=False) as data:
                    found = list(await data.scalars(statement))
                    await data.commit()
                    return found

            async def scoped(scope: Scope, statement: Any) -> list[Any]:
                async with scoped_session(scoped_connection, scope, row_security=row_security) as data:
                    return list(await data.scalars(statement))

            def variant(
                query: Callable[[int, Scope | None], Any],
                *,
                session: Scope | None = None,
                written: Scope | None = None,
            ) -> Callable[[int], Awaitable[object]]:
                """The query through a scoped `session`, or a plain one with `written`'s criteria."""
                if session is not None:
                    return lambda round_number: scoped(session, query(round_number, None))
                return lambda round_number: plain(query(round_number, written))

            await _check_same_rows(plain, scoped, by_id(0), tenant_wide, units)
            for what, query in (("select by id", by_id), ("page of 25, LIKE search", page)):
                variants = {
                    "plain AsyncSession (baseline)": variant(query),
                    "plain, tenant WHERE by hand": variant(query, written=tenant_wide),
                    "scoped, tenant level (admin)": variant(query, session=tenant_wide),
                    "plain, tenant+unit WHERE by hand": variant(query, written=units),
                    "scoped, unit level (member)": variant(query, session=units),
                }
                timings = await interleaved(variants, iterations, warmup)
                for number, (how, micros) in enumerate(timings.items()):
                    measures.append(Measure("query", label, what, how, micros, is_baseline=number == 0))
    finally:
        await connections.dispose()
        await owner.dispose()
    return measures


async def _check_same_rows(
    plain: Callable[[Any], Awaitable[list[Any]]],
    scoped: Callable[[Scope, Any], Awaitable[list[Any]]],
    statement: Any,
    *scopes: Scope,
) -> None:
    """Every variant reads the row it is timed on (a variant that read nothing would look cheap)."""
    expected = [row.id for row in await plain(statement)]
    for scope in scopes:
        if [row.id for row in await scoped(scope, statement)] != expected or not expected:
            raise SystemExit(
                f"scope {scope.describe()} does not read the benchmark's row; the benchmark stops"
            )


# -- per request ----------------------------------------------------------------------------------


@get(f"{UNSCOPED_PATH}/{{slug:str}}/data/{{table:str}}", include_in_schema=False)
async def unscoped_records(
    request: Request[Any, Any, Any], db_session: DbSession, slug: str, table: str, q: str = "", page: int = 1
) -> Template:
    """The tenant data page without scope: what TenantScopeMiddleware and the scoped session add
    is left out; finding the tenant's store, the pooled connection, the query and the page stay."""
    if request.scope.get("user") is None:
        raise NotAuthorizedException("Sign in to continue.")
    tenant = await find_open_tenant(db_session, slug)
    location = replace(location_of(request.app.state.settings, tenant), app_role=None, app_url=None)
    connections: TenantConnections = request.app.state[UNSCOPED_CONNECTIONS]
    async with (
        connections.connection(location) as connection,
        AsyncSession(bind=connection, expire_on_commit=False) as data,
    ):
        schema = await record_schema(data, await snapshot_of(db_session, tenant))
        found = await list_records(data, schema.table(table), query=q, page=page)
        await data.commit()
    return Template(
        "tenant/records.html",
        context={
            "tenant": tenant,
            "access": TenantAccess(tenant, TenantRole.TENANT_ADMIN.value, "membership"),
            "scope": Scope.of_tenant(tenant.id),
            "link": lambda path="/": f"/t/{slug}{path}",
            "page": found,
        },
    )


async def signed_in(app: Litestar, email: str, password: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar's ASGI types are narrower
    client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
    form = await client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise SystemExit("the sign-in page has no CSRF token; the benchmark stops")
    answer = await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": token.group(1)}
    )
    if answer.status_code not in (302, 303):
        raise SystemExit(f"{email} could not sign in ({answer.status_code}); the benchmark stops")
    return client


async def measure_requests(
    app: Litestar, world: World, label: str, iterations: int, warmup: int
) -> list[Measure]:
    slug = world.tenant.slug
    admin, member = await signed_in(app, *world.admin), await signed_in(app, *world.member)

    def fetch(client: httpx.AsyncClient, prefix: str) -> Callable[[int], Awaitable[object]]:
        async def go(round_number: int) -> None:
            word = WORDS[round_number % len(WORDS)]
            answer = await client.get(f"{prefix}/{slug}/data/{TABLE}", params={"q": word})
            if answer.status_code != 200 or f"{word.title()} group" not in answer.text:
                raise SystemExit(f"GET {answer.url} answered {answer.status_code}; the benchmark stops")

        return go

    admin_user, member_user = await landlord_users(app, (world.admin[0], world.member[0]))
    variants = {
        "unscoped page (baseline)": fetch(admin, UNSCOPED_PATH),
        "scoped page, tenant admin": fetch(admin, "/t"),
        "scoped page, member (units)": fetch(member, "/t"),
        "middleware alone, tenant admin": middleware_alone(app, slug, admin_user),
        "middleware alone, member": middleware_alone(app, slug, member_user),
    }
    try:
        timings = await interleaved(variants, iterations, warmup)
    finally:
        await admin.aclose()
        await member.aclose()
    what = f"GET /t/{slug}/data/{TABLE}?q=…"
    return [
        Measure("request", label, what, how, micros, is_baseline=number == 0)
        for number, (how, micros) in enumerate(timings.items())
    ]


async def landlord_users(app: Litestar, emails: tuple[str, ...]) -> list[User]:
    """Users as the identity middleware hands them over: loaded from the landlord, then detached."""
    async with app.state.database.session() as session:
        found = [await session.scalar(select(User).where(User.email == email)) for email in emails]
    if None in found:
        raise SystemExit("a benchmark user is missing; the benchmark stops")
    return [user for user in found if user is not None]


def middleware_alone(app: Litestar, slug: str, user: User) -> Callable[[int], Awaitable[object]]:
    """TenantScopeMiddleware's resolution for one request, with nothing behind it."""
    middleware = TenantScopeMiddleware()

    async def nothing(_scope: AsgiScope, _receive: Any, _send: Any) -> None:
        return None

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(_message: Message) -> None:
        return None

    async def go(_round: int) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "app": app,
            "method": "GET",
            "path": f"/t/{slug}/data/{TABLE}",
            "path_params": {"slug": slug},
            "headers": [],
            "client": ("127.0.0.1", 50000),
            "state": {},
            "user": user,
            "auth": None,
        }
        await middleware.handle(scope, receive, send, nothing)  # type: ignore[arg-type]

    return go


# -- a run per backend ----------------------------------------------------------------------------


async def run_backend(
    backend: str, base: Settings, rows: int, requests: int, queries: int, server_url: str | None
) -> list[Measure]:
    name = f"tenantry_scope_{secrets.token_hex(4)}"
    settings = replace(
        base,
        data_dir=base.data_dir / name,
        database_url=f"sqlite+aiosqlite:///{base.data_dir / name / 'landlord.db'}",
    )
    isolations = ["database", "shared"]
    measures: list[Measure] = []
    async with AsyncExitStack() as cleanup:
        if backend == "postgresql":
            assert server_url
            tenant_server = await cleanup.enter_async_context(scratch_database(server_url, name))
            settings = replace(settings, tenant_postgres_url=tenant_server)
            isolations = ["database", "schema", "shared"]
        started = time.perf_counter()
        worlds = await build(settings, isolations, rows)
        print(
            f"{backend}: {len(worlds) * TENANTS_PER_MODE} tenants built in {time.perf_counter() - started:.0f}s"
        )
        started = time.perf_counter()
        for world in worlds:
            label = f"{backend} {world.isolation}"
            measures += await measure_queries(world, label, queries, max(20, queries // 10))
        print(f"{backend}: queries measured in {time.perf_counter() - started:.0f}s")
        started = time.perf_counter()
        app = create_app(settings)
        app.register(unscoped_records)
        unscoped_connections = TenantConnections(settings.tenant_connections)
        app.state[UNSCOPED_CONNECTIONS] = unscoped_connections
        # No lifespan: it would only start the embedded worker, which has no job to run here.
        try:
            for world in worlds:
                label = f"{backend} {world.isolation}"
                measures += await measure_requests(app, world, label, requests, max(10, requests // 10))
            print(f"{backend}: requests measured in {time.perf_counter() - started:.0f}s")
        finally:
            await unscoped_connections.dispose()
            await app.state.tenant_connections.dispose()
            await app.state.database.dispose()
    return measures


# -- the report -----------------------------------------------------------------------------------


def report(measures: list[Measure], rows: int, queries: int, requests: int) -> None:
    share = rows // TENANTS_PER_MODE
    units = REGIONS * (1 + SUBUNITS)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nScope's cost. {rows} `{TABLE}` rows per isolation mode: {TENANTS_PER_MODE} tenants of ~{share} "
        f"rows over {units} units;\nthe measured member sees {1 + SUBUNITS} of the {units} units "
        f"(~{share * (1 + SUBUNITS) // units} rows). Microseconds: median (p50) and p95.\n"
        f"Load average {load} on {os.cpu_count()} CPUs; variants interleaved, so ratios suffer less from it."
    )
    sections = (
        (
            "query",
            f"Per query ({queries} rounds): a session opened on a held connection, the select, commit.\n"
            "Baseline: a plain AsyncSession on the store's owner connection, no scope, no row-level security.\n"
            "'by hand': the baseline with the scope's WHERE written into the statement (the SQL's own cost).",
        ),
        (
            "request",
            f"Per request ({requests} rounds): the whole app, signed in, through httpx.ASGITransport.\n"
            "Baseline: the same page (tenant lookup, pooled connection, list_records, records.html) from a\n"
            "route added for this run outside TenantScopeMiddleware, reading through a plain session\n"
            f"(on a shared store: every tenant's rows, so it counts and searches {TENANTS_PER_MODE}x as many).\n"
            "'middleware alone': TenantScopeMiddleware resolving tenant, membership, units and connection\n"
            "with nothing behind it; its ratio is its share of the baseline page.",
        ),
    )
    for section, heading in sections:
        chosen = [measure for measure in measures if measure.section == section]
        if not chosen:
            continue
        print(f"\n{heading}\n")
        what_width = max(len(measure.what) for measure in chosen)
        print(
            f"{'store':<20} {'measure':<{what_width}} {'variant':<32} {'p50 µs':>9} {'p95 µs':>9} "
            f"{'p50 vs baseline':>16}"
        )
        baseline: Measure | None = None
        for measure in chosen:
            if measure.is_baseline:
                baseline = measure
                print()
            assert baseline is not None
            ratio = measure.p50 / baseline.p50
            print(
                f"{measure.store:<20} {measure.what:<{what_width}} {measure.how:<32} {measure.p50:>9.0f} "
                f"{measure.p95:>9.0f} {ratio:>15.2f}x"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=6000, help="groups rows per isolation mode")
    parser.add_argument("--requests", type=int, default=100, help="rounds of page requests per store")
    parser.add_argument("--queries", type=int, default=300, help="rounds of each query per store")
    parser.add_argument("--postgres-url", default=os.environ.get("TENANTRY_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    # The app turns on INFO logging for the whole process: a line per request and per migration.
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.rows < TENANTS_PER_MODE * REGIONS * (1 + SUBUNITS) * len(WORDS):
        parser.error(f"--rows must be at least {TENANTS_PER_MODE * REGIONS * (1 + SUBUNITS) * len(WORDS)}")
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
        base = scratch_settings(Path(folder))
        measures += asyncio.run(run_backend("sqlite", base, args.rows, args.requests, args.queries, None))
        if args.postgres_url:
            measures += asyncio.run(
                run_backend("postgresql", base, args.rows, args.requests, args.queries, args.postgres_url)
            )
        else:
            print("PostgreSQL skipped: pass --postgres-url or set TENANTRY_TEST_POSTGRES_URL")
    report(measures, args.rows, args.queries, args.requests)


if __name__ == "__main__":
    main()
