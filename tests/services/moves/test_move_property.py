"""Whatever a tenant holds comes through its moves unchanged: Hypothesis fills a tenant's tables
with random rows (the backup property's: text in any script, edge-of-range integers, decimals,
dates and times from year 1, NULLs, CHAR(3), units whose parents come after them or form a loop;
tests/services/backups/test_restore_property.py), the move job takes the tenant along a tour of
kinds of store that ends in the kind it started in, and after every move its store has each
table's row count and checksum as before and exactly the rows that were written, ids included:
the shared store holds no other tenant, so no row is given a new id.

The tours: on SQLite, database → shared → database; with TENANTRY_TEST_POSTGRES_URL, from a
SQLite file to a PostgreSQL schema, the shared database, a schema, a database, a schema and back
into a SQLite file (database ↔ schema ↔ shared, SQLite ↔ PostgreSQL). Each world (landlord,
tenant) is made once per test and refilled for every example.

And the staging store a move into the shared store proves its copy in is dropped once the rows
are in: no copy of the tenant stays behind but the store it left."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.models import IsolationMode, JobStatus, TenantStatus
from services.moves.requests import MoveTarget
from services.moves.steps import MoveRun
from services.tenancy.stores import POSTGRESQL, SQLITE, store_exists
from tests.services.backups.support import MODULES, TEMPLATE, fill
from tests.services.backups.test_restore_property import (
    OURS,
    _read,
    _root_unit,
    _write,
    as_written,
    tenant_rows,
)
from tests.services.moves.support import content_of
from tests.services.moves.test_moves import move
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import fresh_postgres_database, requires_postgres

SLUG = "harbour-club"
#: The kinds of store (backend, isolation) a tenant is moved to, in turn, from a SQLite file of its
#: own; the last is the kind it started in.
Tour = list[tuple[str, str]]
SQLITE_TOUR: Tour = [(SQLITE, IsolationMode.SHARED), (SQLITE, IsolationMode.DATABASE)]
#: Every way between database, schema and shared database, and both ways between SQLite and
#: PostgreSQL, in as few new databases as that takes (a schema is made quicker than a database).
POSTGRES_TOUR: Tour = [
    (POSTGRESQL, IsolationMode.SCHEMA),
    (POSTGRESQL, IsolationMode.SHARED),
    (POSTGRESQL, IsolationMode.SCHEMA),
    (POSTGRESQL, IsolationMode.DATABASE),
    (POSTGRESQL, IsolationMode.SCHEMA),
    (SQLITE, IsolationMode.DATABASE),
]
#: Examples per tour; each moves the tenant along the whole tour. The first is Hypothesis's simplest:
#: no rows but those provisioning made.
EXAMPLES = {"sqlite": 5, "postgres": 2}


@dataclass(frozen=True)
class World:
    """An installation with a tenant in a SQLite file of its own, provisioned once, and the tour it
    is moved along."""

    installation: Installation
    tenant_id: int
    #: Its root unit, which random units may hang under (no move gives it another id).
    root_unit: int
    tour: Tour


def _world(installation: Installation, tour: Tour) -> World:
    async def provision(landlord: Landlord) -> tuple[int, int]:
        tenant, job = await landlord.provision(SLUG, TEMPLATE, MODULES)
        assert (tenant.status, tenant.store_backend, job.error) == (TenantStatus.ACTIVE, SQLITE, None)
        return tenant.id, await _root_unit(landlord.store(tenant), tenant)

    tenant_id, root_unit = installation.run(provision)
    return World(installation, tenant_id, root_unit, tour)


@pytest.fixture
def sqlite_world(sqlite_installation: Installation) -> World:
    return _world(sqlite_installation, SQLITE_TOUR)


@pytest.fixture
def postgres_world(sqlite_installation: Installation) -> Iterator[World]:
    """The tenant is provisioned in a SQLite file; the installation is then given a PostgreSQL
    tenant server, as one that grows does, and has every kind of store."""
    with fresh_postgres_database() as server:
        world = _world(sqlite_installation, POSTGRES_TOUR)
        on_postgres = replace(sqlite_installation.settings, tenant_postgres_url=server)
        yield replace(world, installation=Installation(on_postgres, sqlite_installation.isolation))


async def _tour(landlord: Landlord, world: World, data: st.DataObject) -> None:
    tenant = await landlord.tenant(world.tenant_id)
    location = landlord.store(tenant)
    ours = data.draw(tenant_rows(OURS, world.root_unit), label="the tenant's rows")
    await _write(location, tenant.id, ours)
    written = await _read(location, tenant.id)
    assert written == as_written(ours), "the tenant's store holds what was written"
    before = await content_of(location, tenant)

    for backend, isolation in world.tour:
        tenant, job, _moved = await move(landlord, tenant, MoveTarget(isolation, backend))
        where = f"into {isolation} on {backend}"
        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), where
        assert (tenant.status, tenant.store_backend, tenant.isolation) == (
            TenantStatus.ACTIVE,
            backend,
            isolation,
        )
        location = landlord.store(tenant)
        assert await content_of(location, tenant) == before, f"{where}: counts or checksums differ"
        assert await _read(location, tenant.id) == written, f"{where}: the rows are not the tenant's rows"


QUICKLY = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=EXAMPLES["sqlite"], deadline=None, suppress_health_check=QUICKLY)
@given(data=st.data())
def test_random_rows_come_back_from_a_move_into_the_shared_sqlite_store_and_out_again(
    sqlite_world: World, data: st.DataObject
) -> None:
    sqlite_world.installation.run(lambda landlord: _tour(landlord, sqlite_world, data))


@requires_postgres
@settings(max_examples=EXAMPLES["postgres"], deadline=None, suppress_health_check=QUICKLY)
@given(data=st.data())
def test_random_rows_come_back_from_moves_between_every_kind_of_postgresql_store_and_sqlite(
    postgres_world: World, data: st.DataObject
) -> None:
    postgres_world.installation.run(lambda landlord: _tour(landlord, postgres_world, data))


def test_a_move_into_the_shared_store_drops_the_staging_store_its_copy_was_proved_in(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, _job = await landlord.provision(SLUG, TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)

        tenant, job, moved = await move(landlord, tenant, MoveTarget(IsolationMode.SHARED))

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert moved.backup_id is not None
        run = MoveRun(
            landlord.settings, landlord.database, job.id, tenant.id, moved.backup_id, move_id=moved.id
        )
        staging = run.built(tenant, moved)
        assert staging.name != landlord.store(tenant).name
        assert not await store_exists(staging), f"{staging.name} still holds a whole copy of {SLUG}"

    sqlite_installation.run(scenario)
