"""The warm pool: a new tenant takes a store built ahead for its recipe instead of waiting for its
own, the pool is topped up after it, stores left at older layer heads are never given out, and
no store is ever given to two tenants."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from services import jobs
from services.layers.catalogue import load_catalogue
from services.layers.migrator import head
from services.layers.snapshot import VERSION_TABLE_PREFIX
from services.models import Job, JobStatus, StepStatus, Tenant, TenantStatus, WarmStore, WarmStoreStatus
from services.provisioning.tenants import PROVISIONING_STEP_NAMES
from services.provisioning.warm_pool import (
    FILL_STEP,
    FILL_WARM_POOL,
    Pool,
    tend_warm_pools,
    warm_pools,
)
from services.tenancy.context import tenant_context
from services.tenancy.stores import allocate_store, drop_store, plan_store, stored_location
from tests.services.provisioning.installation import (
    POSTGRES_DATABASE,
    POSTGRES_SCHEMA,
    SQLITE_DATABASE,
    Installation,
    Landlord,
    copy_layers,
    execute,
    store_is_gone,
)
from tests.services.provisioning.test_provisioning import (
    assert_seeded,
    assert_snapshot_is_the_store,
    details,
)
from tests.services.rollouts.test_rollouts import add_party_revision
from tests.support import requires_postgres

#: Tenants with a store of their own: the shared store has no pool.
OWN_STORES = [
    pytest.param(SQLITE_DATABASE, id=SQLITE_DATABASE),
    pytest.param(POSTGRES_DATABASE, id=POSTGRES_DATABASE, marks=requires_postgres),
    pytest.param(POSTGRES_SCHEMA, id=POSTGRES_SCHEMA, marks=requires_postgres),
]
POOL = 2


async def warm_stores(landlord: Landlord) -> list[WarmStore]:
    async with landlord.database.session() as session:
        return list(await session.scalars(select(WarmStore).order_by(WarmStore.id)))


async def pools(landlord: Landlord) -> list[Pool]:
    async with landlord.database.session() as session:
        return await warm_pools(session, landlord.settings)


async def fill_jobs(landlord: Landlord) -> list[Job]:
    async with landlord.database.session() as session:
        return list(await session.scalars(select(Job).where(Job.kind == FILL_WARM_POOL).order_by(Job.id)))


async def top_up(landlord: Landlord) -> list[Job]:
    """What the workers do with the fill jobs waiting: run them. Returns them, finished."""
    waiting = [job for job in await fill_jobs(landlord) if job.status == JobStatus.QUEUED]
    return [await landlord.perform(job.id, None) for job in waiting]


async def filled_pool(landlord: Landlord) -> Tenant:
    """The first tenant of the recipe, built from its layers, and the pool it leaves full."""
    first, job = await landlord.provision("harbour-party")
    assert "warm pool is being topped up" in details(job)["activate"]
    (fill,) = await top_up(landlord)
    assert fill.status == JobStatus.SUCCEEDED, fill.error
    assert details(fill)[FILL_STEP].startswith(f"{POOL} store(s) built")
    return first


async def pool_left_behind(landlord: Landlord, layers: Path) -> list[WarmStore]:
    """A full pool, then a release that moves its template's head: the stores it leaves behind."""
    await filled_pool(landlord)
    assert await tend_warm_pools(landlord.database, landlord.settings) == 0, "nothing behind before it"
    add_party_revision(layers)
    return await warm_stores(landlord)


@pytest.mark.parametrize("installation", OWN_STORES, indirect=True)
def test_a_new_tenant_takes_a_store_built_ahead_and_the_pool_is_topped_up_after_it(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        first = await filled_pool(landlord)
        pool = await warm_stores(landlord)
        assert [warm.status for warm in pool] == [WarmStoreStatus.READY] * POOL

        second, job = await landlord.provision("river-party", name="River Party")
        steps = details(job)
        assert steps["allocate store"].startswith("took store "), steps["allocate store"]
        assert steps["basic"] == "cloned at its head (basic)", "nothing replayed"
        assert steps["snapshot"].startswith("taken when the store was cloned"), "no second snapshot"
        assert steps["seed"].endswith("(seeded in the warm pool, adopted)"), steps["seed"]
        assert steps["health check"].endswith("root unit present (checked while adopting)")
        assert [step.status for step in job.steps] == [StepStatus.SUCCEEDED] * len(PROVISIONING_STEP_NAMES)
        assert second.status == TenantStatus.ACTIVE

        taken = pool[0]
        assert second.store_name == plan_store(landlord.settings, "river-party", landlord.isolation).name, (
            "the store is renamed after the tenant it went to"
        )
        assert await store_is_gone(
            stored_location(landlord.settings, taken.backend, taken.isolation, taken.store_name)
        )
        assert await assert_snapshot_is_the_store(landlord, second) == await assert_snapshot_is_the_store(
            landlord, first
        ), "the store taken is the schema its layers build"
        await assert_seeded(landlord, second)
        catalogue = load_catalogue(landlord.settings.layers_dir)
        layers = catalogue.layers_for(second.template, second.modules)
        assert [
            (layer, revision, direction)
            for layer, revision, direction, _ in await landlord.history(second.id)
        ] == [(layer.key, head(layer), "clone") for layer in layers], (
            "history says every layer came at its head with the store"
        )

        assert [warm.id for warm in await warm_stores(landlord)] == [pool[1].id], (
            "the other stays in the pool"
        )
        (refill,) = await top_up(landlord)
        assert refill.status == JobStatus.SUCCEEDED
        assert len(await warm_stores(landlord)) == POOL, "topped up again"

    installation.run(scenario)


@pytest.mark.parametrize("installation", OWN_STORES, indirect=True)
def test_stores_left_at_older_layer_heads_are_never_given_out_and_are_rebuilt(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    installation = installation.with_layers(layers)

    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        behind = await pool_left_behind(landlord, layers)
        assert [pool.behind for pool in await pools(landlord)] == [True], "the dashboard says so"
        tenant, job = await landlord.provision("river-party")
        assert not details(job)["allocate store"].startswith("took store "), (
            "a store behind head is not taken"
        )
        assert await tend_warm_pools(landlord.database, landlord.settings) == 0, (
            "the workers' sweep finds the rebuild asked for already"
        )
        assert (
            "templates/political_party",
            "political_party_0002",
            "up",
            "succeeded",
        ) in await landlord.history(tenant.id)
        (refill,) = await top_up(landlord)
        assert "2 left at older layer heads removed" in details(refill)[FILL_STEP]
        for warm in behind:
            location = stored_location(landlord.settings, warm.backend, warm.isolation, warm.store_name)
            assert await store_is_gone(location), f"{warm.store_name} was dropped"
        rebuilt = await warm_stores(landlord)
        assert len(rebuilt) == POOL and not {warm.store_name for warm in rebuilt} & {
            warm.store_name for warm in behind
        }
        template = load_catalogue(layers).template("political_party")
        for warm in rebuilt:
            assert warm.description is not None
            versions = warm.description["layer_versions"]
            assert (
                versions[template.version_table.removeprefix(VERSION_TABLE_PREFIX)] == "political_party_0002"
            )
        _, job = await landlord.provision("reed-party")
        assert details(job)["allocate store"].startswith("took store "), "the rebuilt pool gives stores again"

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_the_workers_sweep_rebuilds_a_pool_a_release_left_behind(
    installation: Installation, tmp_path: Path
) -> None:
    layers = copy_layers(tmp_path)
    installation = installation.with_layers(layers)

    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        await pool_left_behind(landlord, layers)
        assert await tend_warm_pools(landlord.database, landlord.settings) == 1
        (refill,) = await top_up(landlord)
        assert "2 left at older layer heads removed" in details(refill)[FILL_STEP]
        assert [pool.behind for pool in await pools(landlord)] == [False]
        _, job = await landlord.provision("river-party")
        assert details(job)["allocate store"].startswith("took store ")

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_pool_store_that_is_missing_is_passed_over_and_forgotten(installation: Installation) -> None:
    """A taker whose step never committed renamed its store away and left its row: the next
    taker finds the store missing and takes the next one."""

    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        await filled_pool(landlord)
        lost, _ = await warm_stores(landlord)
        await drop_store(stored_location(landlord.settings, lost.backend, lost.isolation, lost.store_name))

        tenant, job = await landlord.provision("river-party")
        assert details(job)["allocate store"].startswith("took store ")
        assert tenant.status == TenantStatus.ACTIVE
        assert await warm_stores(landlord) == [], "both rows gone: one taken, one forgotten"
        await assert_seeded(landlord, tenant)

    installation.run(scenario)


@pytest.mark.parametrize("installation", OWN_STORES, indirect=True)
def test_tenants_provisioned_at_once_never_share_a_store_from_the_pool(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        await filled_pool(landlord)
        requested = [await landlord.request(f"party-{number}") for number in range(POOL + 2)]

        async def perform(tenant: Tenant, job: Job) -> None:
            with tenant_context(tenant.id):
                await jobs.perform_job(landlord.database, job.id, landlord.settings)

        await asyncio.gather(*(perform(tenant, job) for tenant, job in requested))
        tenants = [await landlord.tenant(tenant.id) for tenant, _ in requested]
        assert [tenant.status for tenant in tenants] == [TenantStatus.ACTIVE] * len(tenants)
        assert len({tenant.store_name for tenant in tenants}) == len(tenants), "a store each"
        took = [
            details(await landlord.job(job.id))["allocate store"].startswith("took store ")
            for _, job in requested
        ]
        assert sum(took) == POOL, "each store in the pool went to exactly one tenant"
        for tenant in tenants:
            await assert_snapshot_is_the_store(landlord, tenant)
            await assert_seeded(landlord, tenant)

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_fill_job_resumed_after_dying_mid_build_removes_what_it_left_half_built(
    installation: Installation,
) -> None:
    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        await landlord.provision("harbour-party")
        (fill,) = await fill_jobs(landlord)
        half_built = plan_store(landlord.settings, "half_built", landlord.isolation, purpose="warm")
        await allocate_store(half_built)
        async with landlord.database.session() as session:
            first = await session.get_one(Tenant, 1)
            session.add(
                WarmStore(
                    recipe="an older recipe",
                    backend=half_built.backend,
                    isolation=half_built.isolation,
                    template=first.template,
                    modules=first.modules,
                    store_name=half_built.name,
                    job_id=fill.id,
                )
            )

        (fill,) = await top_up(landlord)
        detail = details(fill)[FILL_STEP]
        assert "1 half-built by an earlier attempt removed" in detail, detail
        assert await store_is_gone(half_built)
        assert [warm.status for warm in await warm_stores(landlord)] == [WarmStoreStatus.READY] * POOL

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_without_a_pool_no_store_is_built_ahead(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        _, job = await landlord.provision("harbour-party")
        assert details(job)["activate"] == "harbour-party is active"
        assert await fill_jobs(landlord) == [] and await warm_stores(landlord) == []

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_pool_above_its_size_is_trimmed_and_a_size_of_nought_empties_it(installation: Installation) -> None:
    async def scenario(landlord: Landlord) -> None:
        await filled_pool(landlord.with_settings(warm_pool_size=POOL))
        built = await warm_stores(landlord)
        landlord = landlord.with_settings(warm_pool_size=0)
        assert await tend_warm_pools(landlord.database, landlord.settings) == 1

        (trim,) = await top_up(landlord)
        assert "2 beyond the pool's size removed" in details(trim)[FILL_STEP]
        assert await pools(landlord) == []
        for warm in built:
            location = stored_location(landlord.settings, warm.backend, warm.isolation, warm.store_name)
            assert await store_is_gone(location)
        fills = len(await fill_jobs(landlord))
        _, job = await landlord.provision("river-party")
        assert not details(job)["allocate store"].startswith("took store ")
        assert len(await fill_jobs(landlord)) == fills, "no pool, no fill"

    installation.run(scenario)


@pytest.mark.parametrize("installation", [SQLITE_DATABASE], indirect=True)
def test_a_store_built_ahead_without_its_starting_rows_is_seeded_by_the_tenant_taking_it(
    installation: Installation,
) -> None:
    """A pool store from before pool stores were seeded holds only its schema: the tenant taking it
    seeds its own rows, and is health-checked as a cloned store is."""

    async def scenario(landlord: Landlord) -> None:
        landlord = landlord.with_settings(warm_pool_size=POOL)
        await filled_pool(landlord)
        for warm in await warm_stores(landlord):
            location = stored_location(landlord.settings, warm.backend, warm.isolation, warm.store_name)
            for table in ("settings", "units", "roles"):
                await execute(location, f"DELETE FROM {table}")

        tenant, job = await landlord.provision("river-party", name="River Party")
        steps = details(job)
        assert steps["allocate store"].startswith("took store "), steps["allocate store"]
        assert steps["seed"] == "roles, root unit and settings in place"
        assert steps["health check"].endswith("(checked while seeding)")
        assert tenant.status == TenantStatus.ACTIVE
        await assert_seeded(landlord, tenant)

    installation.run(scenario)
