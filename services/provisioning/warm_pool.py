"""The warm pool: tenant stores built ahead by workers, so that a new tenant takes one (renamed
after it, its schema snapshot and layer history recorded, in the transaction of one step) instead
of waiting for its store to be built.

A pool belongs to a recipe: what a golden image is keyed by (backend, isolation, template,
modules and every layer's head; `services.provisioning.golden.golden_key`). A recipe has a pool
once a tenant has asked for it: after each new tenant, a fill job tops the recipe's pool up to
`Settings.warm_pool_size` stores and removes those its recipe left behind at older layer heads.
A pool store is built as a tenant's own would be (its golden image cloned, or its layers
replayed), and joins the pool only once its schema is hashed (and, for a clone, equals its
image's) and its starting rows are seeded (`services.provisioning.seeding`): the tenant taking it
adopts them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.db import Database
from services.errors import InvalidInput
from services.layers.catalogue import Catalogue, load_catalogue
from services.layers.migrator import RevisionRun, upgrade_layer
from services.layers.replay import StoreWithoutRows
from services.models import IsolationMode, Job, JobStatus, WarmStore, WarmStoreStatus
from services.provisioning.golden import (
    clone_golden,
    find_golden,
    golden_key,
    store_snapshot,
    supports_cloning,
)
from services.provisioning.seeding import UNCLAIMED, UNCLAIMED_NAME, seed_rows
from services.settings import Settings
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import (
    StoreLocation,
    StoreMissing,
    allocate_store,
    drop_store,
    plan_store,
    rename_store,
    stored_location,
)

FILL_WARM_POOL = "fill_warm_pool"
FILL_STEP = "fill the pool"


@dataclass(frozen=True)
class Recipe:
    """What a pool's stores are built from."""

    template: str
    modules: tuple[str, ...]
    isolation: str

    def key(self, settings: Settings, catalogue: Catalogue) -> str:
        return golden_key(catalogue, self.location(settings, "key"), self.template, list(self.modules))

    def location(self, settings: Settings, name: str) -> StoreLocation:
        return plan_store(settings, name, self.isolation, purpose="warm")

    def as_payload(self) -> dict[str, Any]:
        return {"template": self.template, "modules": list(self.modules), "isolation": self.isolation}

    @classmethod
    def of_payload(cls, payload: dict[str, Any]) -> Recipe:
        return cls(payload["template"], tuple(payload["modules"]), payload["isolation"])


def has_pool(settings: Settings, isolation: str) -> bool:
    """Whether new tenants of this isolation are given warm stores: the shared store exists
    already, so only tenants with a database or schema of their own are."""
    return settings.warm_pool_size > 0 and isolation != IsolationMode.SHARED


def _location_of(settings: Settings, warm: WarmStore) -> StoreLocation:
    return stored_location(settings, warm.backend, warm.isolation, warm.store_name)


async def take_warm_store(
    session: AsyncSession, settings: Settings, key: str, target: StoreLocation
) -> WarmStore | None:
    """Take a ready store of the recipe `key` from its pool and rename it to `target`: its row is
    deleted in `session`'s transaction, so until that commits no other tenant can take it, and if
    it never commits the row comes back (its store, already renamed, is then found missing by the
    next taker and forgotten). None when the pool has no store to give."""
    while True:
        candidate = await session.scalar(
            select(WarmStore.id)
            .where(WarmStore.recipe == key, WarmStore.status == WarmStoreStatus.READY)
            .order_by(WarmStore.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if candidate is None:
            return None
        warm: WarmStore | None = await session.scalar(
            delete(WarmStore)
            .where(WarmStore.id == candidate, WarmStore.status == WarmStoreStatus.READY)
            .returning(WarmStore)
        )
        if warm is None:
            continue  # another tenant took it a moment ago
        try:
            await rename_store(_location_of(settings, warm), target)
        except StoreMissing:
            continue  # taken by a tenant whose step never committed; the row goes with this one
        return warm


async def request_refill(session: AsyncSession, settings: Settings, recipe: Recipe) -> bool:
    """After a new tenant of `recipe`: record a job to top its pool up, unless it is full or a
    fill job for it is already waiting or running. Sent when `session` commits."""
    if not has_pool(settings, recipe.isolation):
        return False
    key = recipe.key(settings, load_catalogue(settings.layers_dir))
    if await _kept_in(session, key) >= settings.warm_pool_size:
        return False
    return await _request_fill(session, recipe)


async def _request_fill(session: AsyncSession, recipe: Recipe) -> bool:
    unfinished = await session.scalars(
        select(Job.payload).where(Job.kind == FILL_WARM_POOL, Job.status.in_(JobStatus.unfinished()))
    )
    if any(Recipe.of_payload(payload) == recipe for payload in unfinished):
        return False
    await jobs.record_job(session, FILL_WARM_POOL, payload=recipe.as_payload(), steps=[FILL_STEP])
    return True


@dataclass(frozen=True)
class Pool:
    """One recipe's pool as the landlord dashboard shows it."""

    recipe: Recipe
    backend: str
    ready: int
    building: int
    #: Its stores are at older layer heads: no tenant is given them, the next fill removes them.
    behind: bool


async def warm_pools(session: AsyncSession, settings: Settings) -> list[Pool]:
    """Every recipe's pool, by template, modules and isolation."""
    catalogue = load_catalogue(settings.layers_dir)
    counted: dict[tuple[Recipe, str, str], dict[str, int]] = {}
    for warm in await session.scalars(select(WarmStore).order_by(WarmStore.id)):
        recipe = Recipe(warm.template, tuple(warm.modules), warm.isolation)
        counts = counted.setdefault((recipe, warm.backend, warm.recipe), {})
        counts[warm.status] = counts.get(warm.status, 0) + 1
    return sorted(
        (
            Pool(
                recipe,
                backend,
                counts.get(WarmStoreStatus.READY, 0),
                counts.get(WarmStoreStatus.BUILDING, 0),
                behind=key != _current_key(settings, catalogue, recipe),
            )
            for (recipe, backend, key), counts in counted.items()
        ),
        key=lambda pool: (pool.recipe.template, pool.recipe.modules, pool.recipe.isolation, pool.behind),
    )


def _current_key(settings: Settings, catalogue: Catalogue, recipe: Recipe) -> str | None:
    """The recipe's key at today's layer heads; None when its template or a module is gone."""
    try:
        return recipe.key(settings, catalogue)
    except (LookupError, InvalidInput):
        return None


async def tend_warm_pools(database: Database, settings: Settings) -> int:
    """The workers' sweep: a fill job (sent on commit) for every pool a release left at older
    layer heads, so the next tenant of its recipe finds it rebuilt, and for every pool holding more
    stores than the pool size (lowered since, or 0), so it is trimmed. Returns how many."""
    async with database.session() as session:
        untended = [
            pool.recipe
            for pool in await warm_pools(session, settings)
            if pool.behind or pool.ready + pool.building > settings.warm_pool_size
        ]
        return sum([await _request_fill(session, recipe) for recipe in dict.fromkeys(untended)])


@dataclass
class PoolFill:
    """One fill job's work: the recipe whose pool it tops up."""

    settings: Settings
    landlord: Database
    job_id: int
    recipe: Recipe

    @property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.settings.layers_dir)


async def fill(run: PoolFill, session: AsyncSession) -> str:
    """Remove what an earlier attempt of this job left half-built, what the recipe left at older
    layer heads and what the pool holds beyond its size, then build stores until it holds
    `warm_pool_size`."""
    key, size = run.recipe.key(run.settings, run.catalogue), run.settings.warm_pool_size
    half_built = list(
        await session.scalars(
            select(WarmStore).where(
                WarmStore.job_id == run.job_id, WarmStore.status == WarmStoreStatus.BUILDING
            )
        )
    )
    ready = [
        warm
        for warm in await session.scalars(
            select(WarmStore)
            .where(
                WarmStore.template == run.recipe.template,
                WarmStore.isolation == run.recipe.isolation,
                WarmStore.status == WarmStoreStatus.READY,
            )
            .order_by(WarmStore.id)
        )
        if tuple(warm.modules) == run.recipe.modules
    ]
    stale = [warm for warm in ready if warm.recipe != key]
    surplus = [warm for warm in ready if warm.recipe == key][size:]
    await session.commit()
    await _remove(run, [*half_built, *stale, *surplus])
    built = 0
    while await _kept(run.landlord, key) < size:
        await _build(run, key)
        built += 1
        await jobs.say_in_step(run.landlord, run.job_id, FILL_STEP, f"{built} store(s) built so far")
    said = [f"{built} store(s) built; {await _kept(run.landlord, key)} ready for {run.recipe.template}"]
    for removed, why in (
        (stale, "left at older layer heads"),
        (surplus, "beyond the pool's size"),
        (half_built, "half-built by an earlier attempt"),
    ):
        if removed:
            said.append(f"{len(removed)} {why} removed")
    return "; ".join(said)


async def _kept(landlord: Database, key: str) -> int:
    async with landlord.session() as session:
        return await _kept_in(session, key)


async def _kept_in(session: AsyncSession, key: str) -> int:
    """How many stores the pool of recipe `key` holds, ready or being built."""
    count = await session.scalar(select(func.count()).select_from(WarmStore).where(WarmStore.recipe == key))
    return count or 0


async def _remove(run: PoolFill, stores: list[WarmStore]) -> None:
    """Drop the pool's `stores`, each before its row (a crash between leaves a row whose store is
    missing, which a taker skips)."""
    for warm in stores:
        await drop_store(_location_of(run.settings, warm))
        async with run.landlord.session() as session:
            await session.execute(delete(WarmStore).where(WarmStore.id == warm.id))


async def _build(run: PoolFill, key: str) -> None:
    """One store for the pool: recorded as building before it exists (so that a crash leaves
    nothing unrecorded behind), then built, hashed, seeded for whichever tenant takes it, and made
    ready."""
    recipe, settings = run.recipe, run.settings
    location = recipe.location(settings, f"{key[:12]}_{secrets.token_hex(4)}")
    async with run.landlord.session() as session:
        warm = WarmStore(
            recipe=key,
            backend=location.backend,
            isolation=recipe.isolation,
            template=recipe.template,
            modules=list(recipe.modules),
            store_name=location.name,
            status=WarmStoreStatus.BUILDING,
            job_id=run.job_id,
        )
        session.add(warm)
    try:
        description, sha256 = await _built_store(run, key, location)
        async with enter_tenant(UNCLAIMED, location) as entered, entered.session() as data:
            await seed_rows(data, UNCLAIMED_NAME)
    except BaseException:
        await drop_store(location)
        async with run.landlord.session() as session:
            await session.execute(delete(WarmStore).where(WarmStore.id == warm.id))
        raise
    async with run.landlord.session() as session:
        await session.execute(
            update(WarmStore)
            .where(WarmStore.id == warm.id)
            .values(status=WarmStoreStatus.READY, sha256=sha256, description=description)
        )


async def _built_store(run: PoolFill, key: str, location: StoreLocation) -> tuple[dict[str, Any], str]:
    """The store at `location` built from the recipe's golden image when it has a good one, by
    replaying its layers otherwise; its snapshot and hash."""
    settings, recipe = run.settings, run.recipe
    if settings.golden_images and supports_cloning(location):
        async with run.landlord.session() as session:
            image = await find_golden(session, settings, location, key)
        if image is not None:
            await clone_golden(settings, location, key)
            description, sha256 = await store_snapshot(location)
            if sha256 == image.sha256:
                return description, sha256
            await drop_store(location)
    await allocate_store(location)
    store = location.open()
    try:
        building = StoreWithoutRows(store)
        for layer in run.catalogue.layers_for(recipe.template, list(recipe.modules)):
            await upgrade_layer(store, layer, _unrecorded, without_rows=building)
    finally:
        await store.dispose()
    return await store_snapshot(location)


async def _unrecorded(run: RevisionRun) -> None:
    """A pool store belongs to no tenant yet: its runs go into no tenant's history (the tenant
    taking it records its layers as cloned)."""


@jobs.job_handler(FILL_WARM_POOL)
async def fill_warm_pool(database: Database, job: Job, settings: Settings) -> None:
    run = PoolFill(settings, database, job.id, Recipe.of_payload(job.payload))
    await jobs.run_steps(database, job.id, [(FILL_STEP, fill)], run)
