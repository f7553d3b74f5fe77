"""Whatever two tenants hold, merging one into the other gives the second exactly its own rows and
all of the first's, under a unit for the first's root, and leaves the first as it was: Hypothesis
draws both tenants' unit trees, venues, events and registrations (test_split_property's drawing);
the first is merged into the second. Checked by name, not by id (every reference read through its
join): nothing lost, nothing doubled, clashing venue names given the first's slug."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from sqlalchemy import text

from services.models import JobStatus, Tenant, TenantStatus
from services.moves import merge as _merge_jobs  # noqa: F401  (registers the merge job)
from services.moves.merge import request_merge
from services.tenancy.stores import StoreLocation
from tests.services.backups.support import MODULES, TEMPLATE
from tests.services.moves.test_split_property import QUICKLY, READS, Content, _fill, contents
from tests.services.provisioning.conftest import postgres_schema_installation  # noqa: F401  (a fixture)
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import requires_postgres

ALIAS = {"units": "u", "venues": "v", "events": "e", "event_registrations": "r"}


async def _counted(location: StoreLocation, tenant: Tenant) -> dict[str, Counter[tuple[Any, ...]]]:
    """Each table's rows by name, counted (two tenants' rows may read alike)."""
    store = location.open()
    found: dict[str, Counter[tuple[Any, ...]]] = {}
    try:
        async with store.engine.connect() as connection:
            for table, sql in READS.items():
                if location.is_shared:
                    sql += f" WHERE {ALIAS[table]}.tenant_id = {tenant.id}"
                found[table] = Counter(tuple(row[1:]) for row in (await connection.execute(text(sql))).all())
    finally:
        await store.dispose()
    return found


def _as_merged(
    rows: dict[str, Counter[tuple[Any, ...]]], taken: set[str], slug: str
) -> dict[str, Counter[tuple[Any, ...]]]:
    """A's rows as B should hold them: its root under B's root, venue names B has given A's slug."""
    venue = {name: f"{name} ({slug})" if name in taken else name for (name, _unit) in rows["venues"]}

    def unit(name: Any, parent: Any) -> tuple[Any, Any]:
        return (name, "Root" if parent is None else parent)

    return {
        "units": Counter({unit(*key): n for key, n in rows["units"].items()}),
        "venues": Counter({(venue[name], u): n for (name, u), n in rows["venues"].items()}),
        "events": Counter({(t, venue.get(v, v), u): n for (t, v, u), n in rows["events"].items()}),
        "event_registrations": rows["event_registrations"],
    }


async def _merge_and_check(landlord: Landlord, ids: tuple[int, int], ours: Content, theirs: Content) -> None:
    source, target = await landlord.tenant(ids[0]), await landlord.tenant(ids[1])
    await _fill(landlord.store(source), source, ours)
    await _fill(landlord.store(target), target, theirs)
    a_before = await _counted(landlord.store(source), source)
    b_before = await _counted(landlord.store(target), target)
    async with landlord.database.session() as session:
        requested = await request_merge(session, landlord.settings, source, target, requested_by="test")
    job = await landlord.perform(requested.job.id, target.id)
    assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
    source, target = await landlord.tenant(ids[0]), await landlord.tenant(ids[1])
    assert (source.status, target.status) == (TenantStatus.ACTIVE, TenantStatus.ACTIVE)

    assert await _counted(landlord.store(source), source) == a_before, "A is left as it was"
    taken = {name for (name, _unit) in b_before["venues"]}
    coming = _as_merged(a_before, taken, source.slug)
    after = await _counted(landlord.store(target), target)
    for table in READS:
        assert after[table] == b_before[table] + coming[table], table


def _world(installation: Installation) -> tuple[int, int]:
    async def provision(landlord: Landlord) -> tuple[int, int]:
        made = []
        for slug in ("otter-club", "harbour-club"):
            tenant, job = await landlord.provision(slug, TEMPLATE, MODULES)
            assert job.error is None
            made.append(tenant.id)
        return made[0], made[1]

    return installation.run(provision)


@pytest.fixture
def sqlite_world(sqlite_installation: Installation) -> tuple[Installation, tuple[int, int]]:
    return sqlite_installation, _world(sqlite_installation)


@pytest.fixture
def postgres_world(request: pytest.FixtureRequest) -> tuple[Installation, tuple[int, int]]:
    installation = request.getfixturevalue("postgres_schema_installation")
    return installation, _world(installation)


@settings(max_examples=8, deadline=None, suppress_health_check=QUICKLY)
@given(ours=contents(), theirs=contents())
def test_a_merge_gives_the_tenant_merged_into_all_of_the_others_rows(
    sqlite_world: tuple[Installation, tuple[int, int]], ours: Content, theirs: Content
) -> None:
    installation, ids = sqlite_world
    installation.run(lambda landlord: _merge_and_check(landlord, ids, ours, theirs))


@requires_postgres
@settings(max_examples=3, deadline=None, suppress_health_check=QUICKLY)
@given(ours=contents(), theirs=contents())
def test_a_merge_between_postgresql_schemas(
    postgres_world: tuple[Installation, tuple[int, int]], ours: Content, theirs: Content
) -> None:
    installation, ids = postgres_world
    installation.run(lambda landlord: _merge_and_check(landlord, ids, ours, theirs))
