"""Tenant isolation as a property: whoever asks for whatever, an answer shows the rows of the
asker's scope and nothing else.

A world is drawn: two or three tenants in the isolation modes the backend offers (mixed in one
world, so tenants share a store or not), each with a small unit tree, an admin and members
assigned to random units, and rows in the unit-owned tables of its template (community_group's
groups and community_members, or non_profit's donors; a shared store may hold both templates).
Every row's text carries a marker naming its tenant, unit and number ("mk-1-3-17"), every unit's
name one naming its tenant and number ("un-1-3"), so a leak shows up in any answer, whatever page
it came from. Random people then ask for random pages, searches, pages of results and records,
through the real app, and each answer is held to its asker's scope: the whole tenant for an
admin, the subtrees of their units for a member, nothing of any other tenant. What a scope should
show on a page must be there too, so an empty page cannot pass.

The same visits, hundreds at once in one event loop against one app, check that nothing of one
request's scope reaches another's while they interleave.

That is CI's run: a few hundred answers per backend. `make isolation-long` (or
TENANTRY_ISOLATION_VISITS=10000) asks for a long run of that many visits in all, half on each
backend: more worlds, each visited by hundreds more seeded visits, and more rounds of concurrent
ones; every answer is counted and the count closes the run (tests/web/isolation_long_run.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import tempfile
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from services.models import IsolationMode
from services.settings import Settings
from services.tenancy.stores import available_isolation_modes
from tests.services.provisioning.installation import POSTGRES_DATABASE, SQLITE_DATABASE, fresh_installation
from tests.support import Credentials, app_for, sign_in
from tests.web.isolation_long_run import LONG_RUN_VISITS, NO_TENANT, TALLY
from tests.web.portal import BASE_URL, SESSION_COOKIE, add_token, assert_no_trace, portal, session_id
from tests.web.tenant_world import add_admin, add_member, add_rows, add_units, provision

ROW_MARKER = re.compile(r"\bmk-\d+-[0-9n]+-\d+\b")
UNIT_MARKER = re.compile(r"\bun-\d+-\d+\b")
#: Unit-owned tables of two templates, the ones rows are written to. Tenants of both templates
#: may share a store, which then has every table; each tenant must see only its template's.
TEMPLATE_TABLES = {"community_group": ("groups", "community_members"), "non_profit": ("donors",)}
TABLES = tuple(table for tables in TEMPLATE_TABLES.values() for table in tables)
#: Tables of the basic layer, and one that does not exist: never listed as records.
NOT_RECORD_TABLES = ("users", "units", "roles", "unit_assignments", "settings", "audit_entries", "nowhere")
#: Words shared by rows of every tenant, so one search matches rows on both sides of a wall.
WORDS = ("roses", "tulips", "kayaks")
SLUGS = ("club-a", "club-b", "club-c", "club-d")
PORTAL_PER_PAGE = 25
KINDS = (
    "home",
    "units",
    "tables",
    "list",
    "record",
    "not a record table",
    "audit",
    "api units",
    "api list",
    "api record",
)

Pick = Callable[[Sequence[Any]], Any]


# The plan of a world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantPlan:
    template: str
    isolation: str
    #: The parent of unit 1, 2, …; 0 is the root unit every tenant has.
    parents: tuple[int, ...]
    #: Per table, each row's unit (None: in no unit, the tenant's alone) and a word of its text.
    rows: tuple[tuple[str, tuple[tuple[int | None, str], ...]], ...]
    #: Each member's assigned units, possibly none.
    members: tuple[frozenset[int], ...]


@st.composite
def tenant_plans(draw: st.DrawFn, modes: Sequence[str]) -> TenantPlan:
    template = draw(st.sampled_from(sorted(TEMPLATE_TABLES)))
    isolation = draw(st.sampled_from(modes))
    size = draw(st.integers(1, 5))
    parents = tuple(draw(st.integers(0, unit - 1)) for unit in range(1, size + 1))
    row = st.tuples(st.one_of(st.none(), st.integers(0, size)), st.sampled_from(WORDS))
    # The first table gets enough rows for a second page of the portal's 25.
    most = {table: 40 if first else 8 for first, table in enumerate(TEMPLATE_TABLES[template], start=1)}
    rows = tuple(
        (table, tuple(draw(row) for _ in range(draw(st.integers(0, most[table])))))
        for table in TEMPLATE_TABLES[template]
    )
    # The first member has a unit or two; a second may have none (and must then see nothing).
    first = draw(st.frozensets(st.integers(0, size), min_size=1, max_size=2))
    members = (first, *draw(st.lists(st.frozensets(st.integers(0, size), max_size=2), max_size=1)))
    return TenantPlan(template, isolation, parents, rows, members)


def world_plans(modes: Sequence[str]) -> st.SearchStrategy[tuple[TenantPlan, ...]]:
    return st.lists(tenant_plans(modes), min_size=2, max_size=3).map(tuple)


# The world, as built --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    table: str
    id: int
    unit: int | None
    marker: str
    #: The values of its text columns: what a search looks in.
    texts: tuple[str, ...]

    def matches(self, query: str) -> bool:
        query = query.strip().lower()
        return not query or any(query in text.lower() for text in self.texts)


@dataclass
class Club:
    """One tenant of the world: its units by number (0 is the root) and its rows."""

    index: int
    slug: str
    name: str
    isolation: str
    tables: tuple[str, ...]
    unit_ids: dict[int, int]
    unit_names: dict[int, str]
    children: dict[int, list[int]]
    rows: list[Row] = field(default_factory=list)

    def subtree(self, unit: int) -> set[int]:
        below = {unit}
        for child in self.children.get(unit, []):
            below |= self.subtree(child)
        return below


@dataclass(frozen=True)
class Person:
    label: str
    credentials: Credentials
    token: str
    #: None for someone who belongs to no tenant (the superadmin, not switched into any).
    tenant: int | None
    is_admin: bool
    #: The unit numbers in view: every unit for an admin, the assigned subtrees for a member.
    units: frozenset[int]


@dataclass
class World:
    clubs: list[Club]
    people: list[Person]

    def club_of(self, person: Person) -> Club:
        assert person.tenant is not None, f"the {person.label} belongs to no tenant"
        return self.clubs[person.tenant]

    def rows_in_view(self, person: Person) -> list[Row]:
        if person.tenant is None:
            return []
        rows = self.clubs[person.tenant].rows
        return [row for row in rows if person.is_admin or row.unit in person.units]

    def unit_names_in_view(self, person: Person) -> set[str]:
        """The marked unit names the person may see (the root is named after the tenant)."""
        if person.tenant is None:
            return set()
        club = self.clubs[person.tenant]
        return {club.unit_names[unit] for unit in person.units if unit != 0}

    def search_for(self, table: str, person: Person, pick: Pick) -> str:
        """A search: none, a word many rows share, one row's tag, a tenant's or a unit's marker
        prefix, or LIKE wildcards that must match literally. Mostly about the asker's tenant."""
        kind = pick(("none", "none", "word", "tag", "unit", "tenant", "wildcard"))
        own = [] if person.tenant is None else [self.clubs[person.tenant]]
        if kind == "word":
            return str(pick((*WORDS, WORDS[0].upper())))
        if kind == "tag":
            rows = [row for club in [*own, *self.clubs] for row in club.rows if row.table == table]
            return str(pick([row.texts[-1].split()[0] for row in rows])) if rows else ""
        if kind in ("unit", "tenant"):
            club = pick([*own, *self.clubs])
            if kind == "tenant":
                return f"mk-{club.index}-"
            return f"mk-{club.index}-{pick(['n', *sorted(club.unit_ids)])}-"
        if kind == "wildcard":
            return str(pick(("%", "_", "mk-%-")))
        return ""

    def mode_asked(self, visit: Visit) -> str:
        """The isolation mode of the tenant a visit asks: the one its path names, or its token's."""
        tenant = self.people[visit.who].tenant if visit.is_api else visit.tenant
        return NO_TENANT if tenant is None else self.clubs[tenant].isolation

    def record_ids(self, table: str, person: Person) -> list[int]:
        """Ids of rows the asker may see first, then those of every tenant, then one of none."""
        ids = sorted({row.id for club in self.clubs for row in club.rows if row.table == table})
        mine = [row.id for row in self.rows_in_view(person) if row.table == table]
        return [*mine, *ids, (ids[-1] if ids else 0) + 1]


def unit_name(tenant: int, unit: int) -> str:
    return f"un-{tenant}-{unit}"


def row_values(table: str, marker: str, tagged: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A row of `table` whose every text names its marker or its tag, and those texts."""
    if table == "groups":
        return {"name": marker, "description": tagged}, (marker, tagged)
    email = f"{marker}@example.org"
    value: dict[str, Any] = {"name": marker, "email": email, "phone": tagged}
    if table == "community_members":
        value["joined_on"] = date(2024, 1, 1)
    return value, (marker, email, tagged)


def build_world(settings: Settings, plan: Sequence[TenantPlan], superadmin: Credentials) -> World:
    """Provision the planned tenants and write their units, people and rows, as the portal would."""
    people: list[Person] = []
    clubs: list[Club] = []
    serial = 0
    for index, tenant in enumerate(plan):
        slug = SLUGS[index]
        provision(settings, slug, template=tenant.template, isolation=tenant.isolation)
        names = {0: "root", **{unit: unit_name(index, unit) for unit in range(1, len(tenant.parents) + 1)}}
        ids = add_units(settings, slug, [(names[unit], names[parent]) for unit, parent in _units(tenant)])
        children: dict[int, list[int]] = {}
        for child, parent in _units(tenant):
            children.setdefault(parent, []).append(child)
        club_name = slug.replace("-", " ").title()
        club = Club(
            index,
            slug,
            club_name,
            tenant.isolation,
            TEMPLATE_TABLES[tenant.template],
            unit_ids={unit: ids[name] for unit, name in names.items()},
            unit_names={**names, 0: club_name},
            children=children,
        )
        for table, cells in tenant.rows:
            values, rows = [], []
            for unit, word in cells:
                serial += 1
                marker = f"mk-{index}-{'n' if unit is None else unit}-{serial}"
                value, texts = row_values(table, marker, f"tag{serial}z {word}")
                values.append({**value, "unit_id": None if unit is None else club.unit_ids[unit]})
                rows.append((unit, marker, texts))
            if values:
                row_ids = add_rows(settings, slug, table, values)
                club.rows += [Row(table, row_id, *row) for row_id, row in zip(row_ids, rows, strict=True)]
        clubs.append(club)
        admin = add_admin(settings, slug, f"admin-{index}@people.example")
        every_unit = frozenset(club.unit_ids)
        people.append(
            Person(f"admin of {slug}", admin, add_token(settings, admin.email, slug), index, True, every_unit)
        )
        for number, assigned in enumerate(tenant.members):
            email = f"member-{index}-{number}@people.example"
            member = add_member(
                settings, slug, email, unit_ids=[club.unit_ids[unit] for unit in sorted(assigned)]
            )
            in_view = frozenset(unit for top in assigned for unit in club.subtree(top))
            label = f"member of {slug} in units {sorted(assigned)}"
            people.append(Person(label, member, add_token(settings, email, slug), index, False, in_view))
    token = add_token(settings, superadmin.email)
    people.append(Person("superadmin", superadmin, token, tenant=None, is_admin=False, units=frozenset()))
    return World(clubs, people)


def _units(tenant: TenantPlan) -> list[tuple[int, int]]:
    return [(unit, parent) for unit, parent in enumerate(tenant.parents, start=1)]


# Visits -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One GET by one person: a portal page (of their tenant or another's) or a tenant API call."""

    who: int
    label: str
    kind: str
    #: The tenant the portal path names; None for the API, where the token names it.
    tenant: int | None = None
    slug: str = ""
    table: str = ""
    query: str = ""
    page: int = 1
    per_page: int = PORTAL_PER_PAGE
    record_id: int = 0
    htmx: bool = False

    @property
    def is_api(self) -> bool:
        return self.kind.startswith("api ")

    @property
    def url(self) -> str:
        paths = {
            "home": "/",
            "units": "/units",
            "tables": "/data",
            "audit": "/audit",
            "list": f"/data/{self.table}",
            "not a record table": f"/data/{self.table}",
            "record": f"/data/{self.table}/{self.record_id}",
        }
        if self.is_api:
            path = f"/api/v1/tenant{paths[self.kind.removeprefix('api ')]}"
        else:
            path = f"/t/{self.slug}{paths[self.kind]}"
        if self.kind == "list":
            return f"{path}?{urlencode({'q': self.query, 'page': self.page})}"
        if self.kind == "api list":
            return f"{path}?{urlencode({'q': self.query, 'page': self.page, 'per_page': self.per_page})}"
        return path

    def __repr__(self) -> str:
        how = "htmx " if self.htmx and self.kind == "list" else ""
        return f"<{self.label}: {how}GET {self.url}>"


#: A visit and its answer: status and body.
Answer = tuple[Visit, int, str]


def plan_visit(world: World, pick: Pick) -> Visit:
    """A visit chosen with `pick` (a Hypothesis draw, or a seeded random choice)."""
    who = pick(range(len(world.people)))
    person = world.people[who]
    kind = pick(KINDS)
    visit = Visit(who, person.label, kind)
    if not visit.is_api:
        own = [] if person.tenant is None else [person.tenant] * 2
        tenant = pick([*own, *range(len(world.clubs))])
        visit = Visit(who, person.label, kind, tenant, world.clubs[tenant].slug)
    # Mostly a table of the asker's template, sometimes another template's.
    tables = [*(world.clubs[person.tenant].tables if person.tenant is not None else ()), *TABLES]
    if kind in ("list", "api list"):
        table = pick(tables)
        query = world.search_for(table, person, pick)
        per_page = pick((1, 2, 5, 25, 100)) if kind == "api list" else PORTAL_PER_PAGE
        htmx = kind == "list" and bool(pick((False, True)))
        page = pick((1, 1, 2, 3))
        return replace(visit, table=table, query=query, page=page, per_page=per_page, htmx=htmx)
    if kind in ("record", "api record"):
        table = pick(tables)
        return replace(visit, table=table, record_id=pick(world.record_ids(table, person)))
    if kind == "not a record table":
        return replace(visit, table=pick(NOT_RECORD_TABLES))
    return visit


def tour(world: World) -> Iterator[Visit]:
    """Each person's units and the first page of each of their tables, in the portal and the API:
    every world is checked for what its scopes must show, whatever the random visits were."""
    for who, person in enumerate(world.people):
        if person.tenant is not None:
            club = world.clubs[person.tenant]
            yield Visit(who, person.label, "units", person.tenant, club.slug)
            yield Visit(who, person.label, "api units")
            for table in club.tables:
                yield Visit(who, person.label, "list", person.tenant, club.slug, table)
                yield Visit(who, person.label, "api list", table=table, per_page=100)


@st.composite
def visits(draw: st.DrawFn, world: World) -> Visit:
    return plan_visit(world, lambda options: draw(st.sampled_from(list(options))))


# What an answer must be ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    status: int
    #: The rows the answer shows, in order.
    rows: list[Row] = field(default_factory=list)
    #: How many rows a list counts in all (its other pages included).
    total: int | None = None


def expected_answer(world: World, person: Person, visit: Visit) -> Expected:
    """What the asker's own tenant must answer (another tenant's portal is simply 'not found')."""
    club = world.club_of(person)
    in_view = [row for row in world.rows_in_view(person) if row.table == visit.table]
    if visit.kind in ("list", "api list", "record", "api record") and visit.table not in club.tables:
        return Expected(404)  # another template's table, even when it is in the same shared store
    if visit.kind in ("list", "api list"):
        found = sorted((row for row in in_view if row.matches(visit.query)), key=lambda row: -row.id)
        start = (visit.page - 1) * visit.per_page
        return Expected(200, found[start : start + visit.per_page], len(found))
    if visit.kind in ("record", "api record"):
        row = next((row for row in in_view if row.id == visit.record_id), None)
        return Expected(200, [row]) if row else Expected(404)
    if visit.kind == "audit":
        return Expected(200 if person.is_admin else 403)
    return Expected(404 if visit.kind == "not a record table" else 200)


def check_answer(world: World, visit: Visit, status: int, body: str) -> None:
    """Nothing outside the asker's scope, and everything in it that the answer should show."""
    where = f"{visit!r} answered {status}"
    assert_no_trace(body)
    person = world.people[visit.who]
    inside = person.tenant is not None and (visit.is_api or visit.tenant == person.tenant)
    in_view = {row.marker for row in world.rows_in_view(person)} if inside else set()
    units_in_view = world.unit_names_in_view(person) if inside else set()
    seen_rows, seen_units = set(ROW_MARKER.findall(body)), set(UNIT_MARKER.findall(body))
    leaked = sorted((seen_rows - in_view) | (seen_units - units_in_view))
    assert not leaked, f"{where}: shows {leaked}, outside the scope of the {person.label}"
    # Staff (the superadmin, in no tenant) who open a tenant's portal are led to switch into it,
    # by its name; nobody else is shown another tenant's name, not even on their own tenant's
    # audit page: attempts on it by others are the landlord's to see.
    led_to_switch = person.tenant is None and not visit.is_api
    for club in world.clubs:
        if club.index != person.tenant and not (led_to_switch and club.index == visit.tenant):
            assert club.name not in body, f"{where}: names the tenant {club.name}"
            if club.index != visit.tenant:  # the asker named it in the path
                assert club.slug not in body, f"{where}: names the tenant {club.slug}"

    if not inside:
        # A landlord token, staff who did not switch in, or a member in another tenant's portal.
        refused = 403 if visit.is_api or led_to_switch else 404
        assert status == refused, where
        return
    expected = expected_answer(world, person, visit)
    assert status == expected.status, f"{where}, not {expected.status}"
    markers = [row.marker for row in expected.rows]
    missing = sorted(set(markers) - seen_rows)
    assert not missing, f"{where}: should show {missing}"
    assert seen_rows == set(markers), f"{where}: shows {sorted(seen_rows - set(markers))}, of other pages"
    if visit.is_api:
        _check_api_answer(world, person, visit, json.loads(body), expected, where)
    else:
        _check_portal_page(world, person, visit, body, expected, where)


def check_answers(world: World, answers: Iterable[Answer], backend: str, *, concurrently: bool) -> None:
    """Every answer checked, a wrong one not stopping the others, and counted in the long run's
    tally; then the wrong ones, if any, as one failure."""
    failures, asked = [], 0
    for visit, status, body in answers:
        asked += 1
        TALLY.count(backend, world.mode_asked(visit), concurrently=concurrently)
        try:
            check_answer(world, visit, status, body)
        except AssertionError as failure:
            failures.append(str(failure).splitlines()[0])
    TALLY.wrong += failures
    assert not failures, f"{len(failures)} of {asked} answers were wrong:\n" + "\n".join(failures[:20])


def _check_portal_page(
    world: World, person: Person, visit: Visit, body: str, expected: Expected, where: str
) -> None:
    club = world.club_of(person)
    if expected.total is not None:
        counted = f"{expected.total} row{'' if expected.total == 1 else 's'} · page {visit.page}"
        assert counted in body, f"{where}: should count {counted!r}"
    if visit.kind in ("units", "home"):
        units = world.unit_names_in_view(person)
        assert set(UNIT_MARKER.findall(body)) == units, f"{where}: should show the units {sorted(units)}"
    if visit.kind == "tables":
        listed = {table for table in TABLES if f'/data/{table}"' in body}
        assert listed == set(club.tables), f"{where}: should list {club.tables}, lists {sorted(listed)}"
    if expected.status == 200 and not person.is_admin and not (visit.kind == "list" and visit.htmx):
        count = len(person.units)
        in_view = f"{count} unit{'' if count == 1 else 's'} in view"
        assert in_view in body, f"{where}: should say {in_view!r}"


def _check_api_answer(
    world: World, person: Person, visit: Visit, answer: Any, expected: Expected, where: str
) -> None:
    club = world.club_of(person)
    if visit.kind == "api units":
        names = {club.unit_names[unit] for unit in person.units}
        assert {unit["name"] for unit in answer} == names, f"{where}: should list the units {sorted(names)}"
        assert {unit["id"] for unit in answer} == {club.unit_ids[unit] for unit in person.units}, where
    elif visit.kind == "api list" and expected.status == 200:
        assert [item["name"] for item in answer["items"]] == [row.marker for row in expected.rows], where
        assert answer["total"] == expected.total, where
        assert all("tenant_id" not in item for item in answer["items"]), where
    elif visit.kind == "api record" and expected.status == 200:
        assert (answer["id"], answer["name"]) == (expected.rows[0].id, expected.rows[0].marker), where


# Browsers -----------------------------------------------------------------------------------------


class Browsers:
    """Everyone's browser on one app: one client, each person's session cookie sent in turn."""

    def __init__(self, client: TestClient[Any], world: World) -> None:
        self.client, self.world = client, world
        self.sessions: dict[int, str] = {}

    def get(self, visit: Visit) -> tuple[int, str]:
        person = self.world.people[visit.who]
        if visit.is_api:
            headers = {"Authorization": f"Bearer {person.token}"}
        else:
            headers = {"Cookie": f"{SESSION_COOKIE}={self._session(visit.who)}"}
            if visit.htmx:
                headers["HX-Request"] = "true"
        self.client.cookies.clear()
        response = self.client.get(visit.url, headers=headers, follow_redirects=False)
        return response.status_code, response.text

    def _session(self, who: int) -> str:
        if who not in self.sessions:
            self.client.cookies.clear()
            response = sign_in(self.client, self.world.people[who].credentials)
            assert response.status_code in (302, 303), response.text
            session = session_id(self.client)
            assert session
            self.sessions[who] = session
        return self.sessions[who]


# Installations ------------------------------------------------------------------------------------


def _modes(settings: Settings) -> list[str]:
    modes = [str(mode) for mode in available_isolation_modes(settings)]
    assert IsolationMode.SHARED in modes
    return modes


@contextmanager
def fresh_settings(pristine: Settings) -> Iterator[Settings]:
    """A new installation whose landlord is a copy of `pristine`'s (migrated, with the superadmin):
    its own data dir, and on PostgreSQL its own landlord database, tenant databases, schemas and
    shared store, all dropped afterwards."""
    url = make_url(pristine.database_url)
    with tempfile.TemporaryDirectory(prefix="tenantry-isolation-") as folder:
        if url.get_backend_name() == "sqlite":
            assert url.database
            with fresh_installation(SQLITE_DATABASE, Path(folder), Path(url.database)) as installation:
                yield installation.settings
        else:
            assert url.database
            with fresh_installation(POSTGRES_DATABASE, Path(folder), url.database) as installation:
                yield installation.settings


def _backend(settings: Settings) -> str:
    return make_url(settings.database_url).get_backend_name()


#: CI's run, per backend: the worlds the property test draws, and the visits asked concurrently.
CI_WORLDS = {"sqlite": 5, "postgresql": 4}
CONCURRENT_ROUND = 300
#: Of a long run's visits, the share asked concurrently; and the seeded visits a world should get.
LONG_RUN_CONCURRENT_SHARE = 0.25
LONG_RUN_VISITS_PER_WORLD = 250


@dataclass(frozen=True)
class Budget:
    """What one backend's run asks for: CI's, or its half of a long run."""

    worlds: int
    #: Seeded visits each world gets beyond the ones Hypothesis draws.
    more_visits: int
    #: Rounds of concurrent visits, CONCURRENT_ROUND at once.
    concurrent_rounds: int

    @classmethod
    def of(cls, backend: str, long_run_visits: int = LONG_RUN_VISITS) -> Budget:
        if not long_run_visits:
            return cls(CI_WORLDS[backend], 0, 1)
        visits = math.ceil(long_run_visits / len(CI_WORLDS))
        rounds = math.ceil(visits * LONG_RUN_CONCURRENT_SHARE / CONCURRENT_ROUND)
        one_by_one = max(0, visits - rounds * CONCURRENT_ROUND)
        worlds = max(CI_WORLDS[backend], math.ceil(one_by_one / LONG_RUN_VISITS_PER_WORLD))
        return cls(worlds, math.ceil(one_by_one / worlds), rounds)


# The tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CI_WORLDS)
def test_a_long_run_asks_each_backend_for_its_half_and_ci_for_its_few_hundred(backend: str) -> None:
    ci = Budget.of(backend, long_run_visits=0)
    assert (ci.worlds, ci.more_visits, ci.concurrent_rounds) == (CI_WORLDS[backend], 0, 1)
    long = Budget.of(backend, long_run_visits=10_000)
    concurrent = long.concurrent_rounds * CONCURRENT_ROUND
    # Beyond these, every world is also toured and visited by Hypothesis's own 20 to 40.
    assert concurrent + long.worlds * long.more_visits >= 5_000
    assert (
        5_000 * LONG_RUN_CONCURRENT_SHARE <= concurrent < 5_000 * LONG_RUN_CONCURRENT_SHARE + CONCURRENT_ROUND
    )
    assert long.worlds > ci.worlds


def test_no_answer_shows_anything_outside_its_askers_scope(
    settings: Settings, superadmin: Credentials
) -> None:
    modes, backend = _modes(settings), _backend(settings)
    budget = Budget.of(backend)
    modes_asked: set[str] = set()

    # No shrinking: each step would build a world again, for minutes, and a failure already names
    # its asker, the address asked for and what leaked.
    @hypothesis_settings(
        max_examples=budget.worlds,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
    )
    @given(plan=world_plans(modes), data=st.data())
    def every_answer_stays_in_scope(plan: tuple[TenantPlan, ...], data: st.DataObject) -> None:
        with fresh_settings(settings) as installation:
            world = build_world(installation, plan, superadmin)
            planned = data.draw(st.lists(visits(world), min_size=20, max_size=40), label="visits")
            if budget.more_visits:
                # Too many for Hypothesis to draw one by one: it draws their seed, which a failure names.
                seed = data.draw(st.integers(0, 2**32 - 1), label="seed of the long run's visits")
                choices = random.Random(seed)
                planned += [plan_visit(world, choices.choice) for _ in range(budget.more_visits)]
            planned = [*tour(world), *planned]
            modes_asked.update(world.mode_asked(visit) for visit in planned)
            with portal(installation) as client:
                browsers = Browsers(client, world)
                answers = ((visit, *browsers.get(visit)) for visit in planned)
                check_answers(world, answers, backend, concurrently=False)

    every_answer_stays_in_scope()
    if LONG_RUN_VISITS:
        assert modes_asked >= set(modes), f"the long run asked no tenant in {set(modes) - modes_asked}"


def _every_mode_world(modes: Sequence[str]) -> tuple[TenantPlan, ...]:
    """A tenant in each mode and one more in the shared store, the templates alternating, so the
    shared store holds tenants of both: rows on both sides of every wall."""
    parents = (0, 0, 1, 1, 3)
    assignments = (frozenset({1}), frozenset({2, 3}), frozenset({4}), frozenset({0}))
    templates = sorted(TEMPLATE_TABLES)
    plans = []
    units = (None, 0, 1, 2, 3, 4, 5)
    for index, isolation in enumerate([*modes, IsolationMode.SHARED]):
        template = templates[index % len(templates)]
        cells = tuple((units[(row + index) % len(units)], WORDS[row % len(WORDS)]) for row in range(30))
        rows = tuple(
            (table, cells[:size]) for table, size in zip(TEMPLATE_TABLES[template], (30, 10), strict=False)
        )
        members = (assignments[index % len(assignments)],)
        plans.append(TenantPlan(template, str(isolation), parents, rows, members))
    return tuple(plans)


def _interleaved_visits(world: World, seed: int) -> list[Visit]:
    """Everyone's full lists twice over, and random visits to make a round, all shuffled together."""
    choices = random.Random(seed)
    planned = [*tour(world), *tour(world)]
    planned += [plan_visit(world, choices.choice) for _ in range(CONCURRENT_ROUND - len(planned))]
    choices.shuffle(planned)
    return planned


async def _answer_concurrently(
    settings: Settings, world: World, rounds: Sequence[list[Visit]]
) -> AsyncGenerator[list[Answer]]:
    """The answers of round after round, every visit of a round at once, through one app in this
    event loop; each person in a browser of their own."""
    with app_for(settings) as app:
        async for answers in _answers_of(app, world, rounds):
            yield answers


async def _answers_of(
    app: Litestar, world: World, rounds: Sequence[list[Visit]]
) -> AsyncGenerator[list[Answer]]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # Litestar's ASGI types are narrower
    browsers = {
        who: httpx.AsyncClient(transport=transport, base_url=BASE_URL) for who in range(len(world.people))
    }
    in_flight = peak = 0

    async def answer(visit: Visit) -> tuple[int, str]:
        nonlocal in_flight, peak
        person = world.people[visit.who]
        headers = {"Authorization": f"Bearer {person.token}"} if visit.is_api else {}
        if visit.htmx:
            headers["HX-Request"] = "true"
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            response = await browsers[visit.who].get(visit.url, headers=headers)
        finally:
            in_flight -= 1
        return response.status_code, response.text

    async with app.lifespan():
        try:
            for who in {visit.who for planned in rounds for visit in planned if not visit.is_api}:
                await _sign_in(browsers[who], world.people[who].credentials)
            for planned in rounds:
                peak = 0
                answers = await asyncio.gather(*(answer(visit) for visit in planned))
                assert peak > len(planned) // 2, f"only {peak} requests were ever under way together"
                yield [(visit, *answered) for visit, answered in zip(planned, answers, strict=True)]
        finally:
            for browser in browsers.values():
                await browser.aclose()


async def _sign_in(browser: httpx.AsyncClient, credentials: Credentials) -> None:
    page = await browser.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token, "the sign-in page carries a CSRF token"
    form = {"email": credentials.email, "password": credentials.password, "_csrf_token": token.group(1)}
    response = await browser.post("/login", data=form)
    assert response.status_code in (302, 303), response.text


def test_hundreds_of_interleaved_requests_each_see_only_their_own_scope(
    settings: Settings, superadmin: Credentials
) -> None:
    backend = _backend(settings)
    with fresh_settings(settings) as installation:
        world = build_world(installation, _every_mode_world(_modes(settings)), superadmin)
        rounds = [
            _interleaved_visits(world, 4 + number) for number in range(Budget.of(backend).concurrent_rounds)
        ]

        async def ask() -> None:
            async with aclosing(_answer_concurrently(installation, world, rounds)) as answered:
                async for answers in answered:
                    check_answers(world, answers, backend, concurrently=True)

        asyncio.run(ask())
