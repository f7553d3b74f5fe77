"""Whatever unit tree and rows a tenant holds, splitting a unit off gives the new tenant exactly that
subtree's rows and leaves the source exactly the rest: Hypothesis draws a tree of units under the
root, venues and events assigned to any unit (or none), events at any venue, and registrations for
any event; a unit is split off. Checked against a model of the rule, not against the carve:

- the new tenant holds the subtree's units (the chosen one its root), the venues and events
  assigned to them, and the registrations assigned to them or to no unit whose event went; its ids
  are 1, 2, 3 … in the old order and every reference names the row it named before (compared by
  name); a reference to a row on the other side of the cut is empty, on either side;
- the source holds exactly the rest, and its roles and settings are the new tenant's too (counts
  and checksums);
- rows that went plus rows that stayed are the rows there were: nothing lost, nothing doubled;
- a split the rule refuses (a registration whose event is on the other side) changes nothing.

Each world (landlord, tenant) is made once per test and refilled for every example."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.errors import Conflict
from services.models import JobStatus, Tenant, TenantStatus
from services.moves import split as _split_jobs  # noqa: F401  (registers the split job)
from services.moves.split import SplitTarget, plan_split, request_split
from services.tenancy.stores import StoreLocation
from tests.services.backups.support import MODULES, TEMPLATE
from tests.services.moves.support import content_of
from tests.services.provisioning.conftest import postgres_schema_installation  # noqa: F401  (a fixture)
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import requires_postgres

#: -1: the root unit; None: no unit.
Unit = int | None


@dataclass(frozen=True)
class Content:
    #: parents[i]: the unit unit i hangs under (-1: the root).
    parents: list[int]
    venues: list[Unit]
    #: (venue index or None, unit)
    events: list[tuple[int | None, Unit]]
    #: (event index, unit)
    registrations: list[tuple[int, Unit]]
    split_at: int


@st.composite
def contents(draw: st.DrawFn) -> Content:
    units = draw(st.integers(1, 6))
    parents = [draw(st.integers(-1, i - 1)) for i in range(units)]
    unit = st.sampled_from([None, -1, *range(units)])
    venues = draw(st.lists(unit, max_size=5))
    venue = st.sampled_from([None, *range(len(venues))])
    events = draw(st.lists(st.tuples(venue, unit), max_size=6))
    registrations = (
        draw(st.lists(st.tuples(st.integers(0, len(events) - 1), unit), max_size=6)) if events else []
    )
    return Content(parents, venues, events, registrations, draw(st.integers(0, units - 1)))


def _unit_name(index: Unit) -> str | None:
    return None if index is None else "Root" if index == -1 else f"Unit {index}"


@dataclass(frozen=True)
class Expected:
    """The model's answer: each table's rows by name, in the new tenant and in the source."""

    new: dict[str, set[tuple[Any, ...]]]
    source: dict[str, set[tuple[Any, ...]]]
    refused: bool


def expected(content: Content) -> Expected:
    subtree = {content.split_at}
    for index, parent in enumerate(content.parents):  # parents come before their children
        if parent in subtree:
            subtree.add(index)

    def goes(unit: Unit) -> bool:
        return unit is not None and unit in subtree

    venue_goes = [goes(unit) for unit in content.venues]
    event_goes = [goes(unit) for _, unit in content.events]
    registration_goes = [
        goes(unit) or (unit is None and event_goes[event]) for event, unit in content.registrations
    ]
    refused = any(
        went != event_goes[event]
        for went, (event, _) in zip(registration_goes, content.registrations, strict=True)
    )
    sides: dict[bool, dict[str, set[tuple[Any, ...]]]] = {}
    for side in (True, False):
        units = {
            (f"Unit {i}", None if side and i == content.split_at else _unit_name(parent))
            for i, parent in enumerate(content.parents)
            if (i in subtree) == side
        }
        if not side:
            units.add(("Root", None))
        sides[side] = {
            "units": units,
            "venues": {
                (f"Venue {i}", _unit_name(unit))
                for i, unit in enumerate(content.venues)
                if venue_goes[i] == side
            },
            "events": {
                (
                    f"Event {i}",
                    f"Venue {venue}" if venue is not None and venue_goes[venue] == side else None,
                    _unit_name(unit),
                )
                for i, (venue, unit) in enumerate(content.events)
                if event_goes[i] == side
            },
            "event_registrations": {
                (f"r{i}@x.example", f"Event {event}", _unit_name(unit))
                for i, (event, unit) in enumerate(content.registrations)
                if registration_goes[i] == side
            },
        }
    return Expected(sides[True], sides[False], refused)


# Writing and reading the tenant's rows ------------------------------------------------------------

#: Ids the test gives its rows, above any provisioning made.
BASE = 100
TABLES = ("event_registrations", "events", "venues", "unit_assignments", "units")


async def _fill(location: StoreLocation, tenant: Tenant, content: Content) -> None:
    own = f" AND tenant_id = {tenant.id}" if location.is_shared else ""
    tag = (", tenant_id", f", {tenant.id}")  # every tenant table has the column, in every mode
    store = location.open()
    try:
        async with store.engine.begin() as connection:
            root = (
                await connection.execute(text(f"SELECT id FROM units WHERE parent_id IS NULL{own}"))
            ).scalar_one()
            await connection.execute(text(f"UPDATE units SET parent_id = NULL WHERE id <> {root}{own}"))
            for table in TABLES:
                extra = f" AND id <> {root}" if table == "units" else ""
                await connection.execute(text(f"DELETE FROM {table} WHERE 1 = 1{own}{extra}"))
            await connection.execute(text(f"UPDATE units SET name = 'Root' WHERE id = {root}"))
            unit_id: dict[int | None, int | None] = {
                -1: root,
                None: None,
                **{i: BASE + i for i in range(len(content.parents))},
            }
            paths = {root: f"/{root}/"}
            for i, parent in enumerate(content.parents):
                paths[BASE + i] = f"{paths[unit_id[parent]]}{BASE + i}/"
                await connection.execute(
                    text(
                        f"INSERT INTO units (id, parent_id, name, kind, path{tag[0]}) VALUES (:id, :parent, :name, 'unit', :path{tag[1]})"
                    ),
                    {"id": BASE + i, "parent": unit_id[parent], "name": f"Unit {i}", "path": paths[BASE + i]},
                )
            for i, unit in enumerate(content.venues):
                await connection.execute(
                    text(
                        f"INSERT INTO venues (id, name, unit_id{tag[0]}) VALUES (:id, :name, :unit{tag[1]})"
                    ),
                    {"id": BASE + i, "name": f"Venue {i}", "unit": unit_id[unit]},
                )
            for i, (venue, unit) in enumerate(content.events):
                await connection.execute(
                    text(
                        f"INSERT INTO events (id, venue_id, title, starts_at, status, is_public, unit_id{tag[0]}) "
                        f"VALUES (:id, :venue, :title, '2026-05-01 18:00:00', 'draft', false, :unit{tag[1]})"
                    ),
                    {
                        "id": BASE + i,
                        "venue": None if venue is None else BASE + venue,
                        "title": f"Event {i}",
                        "unit": unit_id[unit],
                    },
                )
            for i, (event, unit) in enumerate(content.registrations):
                await connection.execute(
                    text(
                        "INSERT INTO event_registrations (id, event_id, attendee_name, attendee_email, status, unit_id"
                        f"{tag[0]}) VALUES (:id, :event, 'Ann', :email, 'registered', :unit{tag[1]})"
                    ),
                    {
                        "id": BASE + i,
                        "event": BASE + event,
                        "email": f"r{i}@x.example",
                        "unit": unit_id[unit],
                    },
                )
    finally:
        await store.dispose()


READS = {
    "units": "SELECT u.id, u.name, p.name FROM units u LEFT JOIN units p ON p.id = u.parent_id",
    "venues": "SELECT v.id, v.name, u.name FROM venues v LEFT JOIN units u ON u.id = v.unit_id",
    "events": "SELECT e.id, e.title, v.name, u.name FROM events e LEFT JOIN venues v ON v.id = e.venue_id "
    "LEFT JOIN units u ON u.id = e.unit_id",
    "event_registrations": "SELECT r.id, r.attendee_email, e.title, u.name FROM event_registrations r "
    "JOIN events e ON e.id = r.event_id LEFT JOIN units u ON u.id = r.unit_id",
}


async def _named(
    location: StoreLocation, tenant: Tenant
) -> tuple[dict[str, set[tuple[Any, ...]]], dict[str, list[int]]]:
    """Each table's rows by name (references read through their joins), and its ids in order."""
    alias = {"units": "u", "venues": "v", "events": "e", "event_registrations": "r"}
    store = location.open()
    named: dict[str, set[tuple[Any, ...]]] = {}
    ids: dict[str, list[int]] = {}
    try:
        async with store.engine.connect() as connection:
            for table, sql in READS.items():
                if location.is_shared:
                    sql += f" WHERE {alias[table]}.tenant_id = {tenant.id}"
                rows = (await connection.execute(text(sql + f" ORDER BY {alias[table]}.id"))).all()
                named[table] = {tuple(row[1:]) for row in rows}
                ids[table] = [row[0] for row in rows]
    finally:
        await store.dispose()
    return named, ids


# The worlds -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    installation: Installation
    tenant_id: int


def _world(installation: Installation) -> World:
    async def provision(landlord: Landlord) -> int:
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        assert (tenant.status, job.error) == (TenantStatus.ACTIVE, None)
        return tenant.id

    return World(installation, installation.run(provision))


@pytest.fixture
def sqlite_world(sqlite_installation: Installation) -> World:
    return _world(sqlite_installation)


@pytest.fixture
def shared_world(shared_installation: Installation) -> World:
    """The source in a shared store (SQLite, or PostgreSQL with row-level security)."""
    return _world(shared_installation)


@pytest.fixture
def postgres_world(request: pytest.FixtureRequest) -> Iterator[World]:
    yield _world(request.getfixturevalue("postgres_schema_installation"))


_examples = iter(range(10_000))


async def _split_and_check(landlord: Landlord, world: World, content: Content) -> None:
    tenant = await landlord.tenant(world.tenant_id)
    source = landlord.store(tenant)
    await _fill(source, tenant, content)
    before, _ = await _named(source, tenant)
    model = expected(content)
    into = f"part-{next(_examples)}"
    unit = f"Unit {content.split_at}"
    async with landlord.database.session() as session:
        plan = await plan_split(session, landlord.settings, tenant, unit, SplitTarget(into))
        assert bool(plan.refusals) == model.refused, plan.refusals
        if model.refused:
            with pytest.raises(Conflict):
                await request_split(session, landlord.settings, tenant, unit, SplitTarget(into))
            assert (await _named(source, tenant))[0] == before, "a refused split changes nothing"
            return
        requested = await request_split(session, landlord.settings, tenant, unit, SplitTarget(into))
    job = await landlord.perform(requested.job.id, tenant.id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
    new = await landlord.tenant(requested.new_tenant.id)
    tenant = await landlord.tenant(tenant.id)
    assert (new.status, tenant.status) == (TenantStatus.ACTIVE, TenantStatus.ACTIVE)

    went, new_ids = await _named(landlord.store(new), new)
    stayed, _ = await _named(source, tenant)
    assert went == model.new, "the new tenant holds exactly the subtree's rows"
    assert stayed == model.source, "the source holds exactly the rest"
    for table, ids in new_ids.items():
        assert ids == list(range(1, len(ids) + 1)), f"{table}: renumbered 1, 2, 3 …"
    for table in READS:
        assert len(went[table]) + len(stayed[table]) == len(before[table]), (
            f"{table}: nothing lost or doubled"
        )
    theirs, ours = await content_of(landlord.store(new), new), await content_of(source, tenant)
    for table in ("roles",):
        assert theirs[table] == ours[table], f"{table}: copied whole"
    for table in READS:
        assert theirs.get(table, (0, ""))[0] == len(model.new[table])
        assert ours.get(table, (0, ""))[0] == len(model.source[table])


QUICKLY = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=12, deadline=None, suppress_health_check=QUICKLY)
@given(content=contents())
def test_a_split_gives_the_new_tenant_the_subtree_and_the_source_the_rest(
    sqlite_world: World, content: Content
) -> None:
    sqlite_world.installation.run(lambda landlord: _split_and_check(landlord, sqlite_world, content))


@settings(max_examples=4, deadline=None, suppress_health_check=QUICKLY)
@given(content=contents())
def test_a_split_out_of_a_shared_store_leaves_the_other_rows_there(
    shared_world: World, content: Content
) -> None:
    shared_world.installation.run(lambda landlord: _split_and_check(landlord, shared_world, content))


@requires_postgres
@settings(max_examples=4, deadline=None, suppress_health_check=QUICKLY)
@given(content=contents())
def test_a_split_of_a_postgresql_schema_tenant(postgres_world: World, content: Content) -> None:
    postgres_world.installation.run(lambda landlord: _split_and_check(landlord, postgres_world, content))
