"""Several PostgreSQL tenant servers: new tenants are placed on the one with the fewest tenants (or
the least storage), their stores made there; a tenant moves from one server to another and back,
its rows whole; the store it left stays on its server until its retention ends. The second server
is a PostgreSQL cluster of its own, started by the tests (tests/support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy.engine import make_url

from services.models import IsolationMode, JobStatus, OldStore, Tenant, TenantStatus, UsageSample
from services.moves.requests import MoveTarget
from services.tenancy.stores import POSTGRESQL, store_exists
from tests.services.backups.support import MODULES, TEMPLATE, fill
from tests.services.moves.test_moves import contents, move, move_back
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import fresh_postgres_database


@pytest.fixture
def two_servers(second_server: str) -> Iterator[tuple[tuple[str, str], ...]]:
    """pg-a on the test server, pg-b on a server of its own: each a database of its own there,
    which the stores placed on it are named after (and dropped with)."""
    with fresh_postgres_database() as pg_a, fresh_postgres_database(on=second_server) as pg_b:
        yield (("pg-a", pg_a), ("pg-b", pg_b))


def port_of(landlord: Landlord, tenant: Tenant) -> int | None:
    return make_url(landlord.store(tenant).url).port


def test_new_tenants_go_to_the_server_with_the_fewest_tenants_and_their_stores_are_made_there(
    sqlite_installation: Installation, two_servers: tuple[tuple[str, str], ...]
) -> None:
    async def scenario(landlord: Landlord) -> None:
        on_two = Landlord(landlord.database, landlord.settings, IsolationMode.DATABASE).with_settings(
            tenant_servers=two_servers
        )
        placed = []
        for slug in ("alpha-club", "beta-club", "gamma-club"):
            tenant, job = await on_two.provision(slug, TEMPLATE, MODULES)
            assert (tenant.status, job.error) == (TenantStatus.ACTIVE, None)
            assert await store_exists(on_two.store(tenant))
            placed.append((tenant.store_server, port_of(on_two, tenant)))
        ports = {name: make_url(url).port for name, url in two_servers}
        assert placed == [("pg-a", ports["pg-a"]), ("pg-b", ports["pg-b"]), ("pg-a", ports["pg-a"])]

    sqlite_installation.run(scenario)


def test_with_least_storage_placement_a_new_tenant_goes_where_the_tenants_measured_smaller(
    sqlite_installation: Installation, two_servers: tuple[tuple[str, str], ...]
) -> None:
    async def scenario(landlord: Landlord) -> None:
        on_two = Landlord(landlord.database, landlord.settings, IsolationMode.DATABASE).with_settings(
            tenant_servers=two_servers, placement="least-storage"
        )
        small, _ = await on_two.provision("small-club", TEMPLATE, MODULES)
        async with on_two.database.session() as session:
            session.add(
                UsageSample(tenant_id=small.id, day=date(2026, 12, 1), storage_bytes=10**9, rows=9, people=1)
            )
        second, _ = await on_two.provision("second-club", TEMPLATE, MODULES)
        third, _ = await on_two.provision("third-club", TEMPLATE, MODULES)

        assert (small.store_server, second.store_server) == ("pg-a", "pg-b")
        assert third.store_server == "pg-b", "pg-b holds two tenants but far less storage"

    sqlite_installation.run(scenario)


def test_a_tenant_moves_to_another_server_and_back_to_the_store_it_left_there(
    sqlite_installation: Installation, two_servers: tuple[tuple[str, str], ...]
) -> None:
    async def scenario(landlord: Landlord) -> None:
        on_two = Landlord(landlord.database, landlord.settings, IsolationMode.DATABASE).with_settings(
            tenant_servers=two_servers
        )
        tenant, _ = await on_two.provision("harbour-club", TEMPLATE, MODULES)
        assert tenant.store_server == "pg-a"
        await fill(on_two.store(tenant), tenant)
        before, left = await contents(on_two, tenant), on_two.store(tenant)

        tenant, job, moved = await move(on_two, tenant, MoveTarget(IsolationMode.SCHEMA, POSTGRESQL, "pg-b"))

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert (tenant.store_server, tenant.isolation) == ("pg-b", IsolationMode.SCHEMA)
        assert port_of(on_two, tenant) == make_url(dict(two_servers)["pg-b"]).port
        assert await contents(on_two, tenant) == before
        assert (moved.from_server, moved.to_server, moved.old_store) == ("pg-a", "pg-b", OldStore.KEPT)
        assert await store_exists(left), "the store it left stays on pg-a"
        lock = next(step for step in job.steps if step.name == "lock")
        assert "a PostgreSQL schema on pg-b" in (lock.detail or "")

        tenant, job, _ = await move_back(on_two, tenant, moved)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None)
        assert (tenant.store_server, tenant.store_name) == ("pg-a", left.name)
        assert await contents(on_two, tenant) == before

    sqlite_installation.run(scenario)
