"""Moving a tenant's store, as a landlord admin does: out of its own database into the shared
store and back, the way back taking the very store it left while nothing was written since, and a
copy back once something was."""

from __future__ import annotations

from services.models import IsolationMode, Job, JobStatus, OldStore, Tenant, TenantMove, TenantStatus
from services.moves import kept as _kept_jobs  # noqa: F401  (registers the drop job)
from services.moves import steps as _move_jobs  # noqa: F401  (registers the move job)
from services.moves.requests import MoveTarget, request_move, request_move_back
from services.tenancy.stores import POSTGRESQL, SQLITE, store_exists
from tests.services.backups.support import MODULES, TEMPLATE, add, fill
from tests.services.moves.support import Content, content_of, values_without_ids
from tests.services.provisioning.installation import Installation, Landlord
from tests.support import fresh_postgres_database, requires_postgres


async def contents(landlord: Landlord, tenant: Tenant) -> Content:
    return await content_of(landlord.store(tenant), tenant)


async def move(landlord: Landlord, tenant: Tenant, target: MoveTarget) -> tuple[Tenant, Job, TenantMove]:
    async with landlord.database.session() as session:
        requested = await request_move(session, landlord.settings, tenant, target, requested_by="test")
    job = await landlord.perform(requested.job.id, tenant.id)
    return await landlord.tenant(tenant.id), job, await _move(landlord, requested.move.id)


async def move_back(
    landlord: Landlord, tenant: Tenant, earlier: TenantMove
) -> tuple[Tenant, Job, TenantMove]:
    async with landlord.database.session() as session:
        requested = await request_move_back(session, landlord.settings, tenant, earlier, requested_by="test")
    job = await landlord.perform(requested.job.id, tenant.id)
    return await landlord.tenant(tenant.id), job, await _move(landlord, requested.move.id)


async def _move(landlord: Landlord, move_id: int) -> TenantMove:
    async with landlord.database.session() as session:
        return await session.get_one(TenantMove, move_id)


def test_a_tenant_moves_into_the_shared_store_and_back_to_the_store_it_left(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        before = await contents(landlord, tenant)
        own_store = landlord.store(tenant)

        tenant, job, moved = await move(landlord, tenant, MoveTarget(IsolationMode.SHARED))

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
        assert (tenant.status, tenant.isolation) == (TenantStatus.ACTIVE, IsolationMode.SHARED)
        assert await contents(landlord, tenant) == before
        assert moved.old_store == OldStore.KEPT and await store_exists(own_store)
        assert moved.rows == sum(rows for rows, _ in before.values())

        tenant, job, back = await move_back(landlord, tenant, moved)

        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
        assert tenant.store_name == own_store.name and tenant.isolation == IsolationMode.DATABASE
        assert await contents(landlord, tenant) == before
        assert (await _move(landlord, moved.id)).old_store == OldStore.IN_USE

        await add(landlord.store(tenant), tenant, "settings", key="colour", value="teal")
        changed = await contents(landlord, tenant)
        tenant, job, _again = await move_back(landlord, tenant, back)
        assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), [(s.name, s.error) for s in job.steps]
        assert tenant.isolation == IsolationMode.SHARED
        assert await contents(landlord, tenant) == changed

    sqlite_installation.run(scenario)


@requires_postgres
def test_a_tenant_moves_along_every_kind_of_store_and_its_shared_neighbours_are_untouched(
    sqlite_installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        on_postgres = landlord.with_settings(tenant_postgres_url=server)
        neighbours = []
        for installation, slug in ((landlord, "sqlite-neighbour"), (on_postgres, "pg-neighbour")):
            sharing = Landlord(installation.database, installation.settings, IsolationMode.SHARED)
            neighbour, job = await sharing.provision(slug, TEMPLATE, MODULES)
            assert job.error is None, job.error
            await fill(sharing.store(neighbour), neighbour)
            neighbours.append((neighbour, await contents(sharing, neighbour)))
        tenant, job = await landlord.provision("harbour-club", TEMPLATE, MODULES)
        await fill(landlord.store(tenant), tenant)
        before = await values_without_ids(landlord.store(tenant), tenant)

        path = [
            (POSTGRESQL, IsolationMode.SCHEMA),
            (POSTGRESQL, IsolationMode.SHARED),
            (POSTGRESQL, IsolationMode.DATABASE),
            (SQLITE, IsolationMode.SHARED),
            (SQLITE, IsolationMode.DATABASE),
        ]
        for backend, isolation in path:
            tenant, job, _moved = await move(on_postgres, tenant, MoveTarget(isolation, backend))
            assert (job.status, job.error) == (JobStatus.SUCCEEDED, None), (backend, isolation)
            assert (tenant.store_backend, tenant.isolation) == (backend, isolation)
            assert await values_without_ids(on_postgres.store(tenant), tenant) == before, (backend, isolation)
            for neighbour, theirs in neighbours:
                assert await contents(on_postgres, neighbour) == theirs, f"{neighbour.slug} is untouched"

    with fresh_postgres_database() as server:
        sqlite_installation.run(scenario)
