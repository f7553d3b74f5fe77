"""The provisioning steps, in order. Each is idempotent: run again after a crash, it finds what
it already did and does not do it twice (stores are created only when missing, each migration
revision is recorded in the store's own version table in the transaction that applies it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.errors import Conflict, InvalidInput
from services.jobs import StepFailed, StepFunction, run_steps, settle_steps
from services.layers.catalogue import Catalogue, Layer, load_catalogue
from services.layers.footprint import layer_tables
from services.layers.history import CLONED, record_clone, record_found, record_run
from services.layers.migrator import RevisionRun, current_revisions, head, upgrade_layer
from services.layers.replay import StoreWithoutRows
from services.layers.snapshot import VERSION_TABLE_PREFIX
from services.models import IsolationMode, MigrationHistory, SchemaSnapshot, Tenant, TenantStatus
from services.models.tenant import Unit
from services.people.first_admin import FIRST_ADMIN, let_first_admin_in
from services.provisioning.golden import (
    capture_golden,
    clone_golden,
    discard_golden,
    find_golden,
    golden_key,
    store_snapshot,
    supports_cloning,
)
from services.provisioning.seeding import adopt_seeded_rows, seed_rows
from services.provisioning.warm_pool import Recipe, has_pool, request_refill, take_warm_store
from services.settings import Settings
from services.store_jobs import StoreJob
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import (
    StoreLocation,
    allocate_store,
    drop_store,
    kept_store,
    plan_store,
    release_kept_stores,
    remove_tenant_rows,
    store_exists,
)

log = logging.getLogger(__name__)
NewTenantJob = TypeVar("NewTenantJob", bound=StoreJob)


@dataclass
class Provisioning(StoreJob):
    """What every step of one job that builds a tenant's store from its layers works with."""

    #: The stores the job is building, by location: each read for its schema once for all the
    #: layers its steps apply (services.layers.replay).
    _building: dict[str, StoreWithoutRows] = field(default_factory=dict, init=False, repr=False)

    @property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.settings.layers_dir)

    async def record(self, run: RevisionRun) -> None:
        """The run in the landlord's history, and where it left the layer, committed as soon as the
        revision is applied."""
        async with self.landlord.session() as session:
            await record_run(session, await self.tenant(session), run, job_id=self.job_id)

    async def cloned(
        self,
        session: AsyncSession,
        tenant: Tenant,
        description: dict[str, Any],
        sha256: str,
        *,
        also_settled: dict[str, str] | None = None,
    ) -> None:
        """The store came cloned at its layers' heads (from a golden image or the warm pool),
        proved equal to its image: history says where the layers came from, its snapshot is the
        tenant's, and the steps that would have built it pass (with `also_settled`, what else the
        cloning made unnecessary), all in the allocating step's commit."""
        versions = description["layer_versions"]
        revisions = {
            layer.key: versions.get(layer.version_table.removeprefix(VERSION_TABLE_PREFIX)) or ""
            for layer in self.catalogue.layers_for(tenant.template, tenant.modules)
        }
        record_clone(session, tenant, revisions, job_id=self.job_id)
        await _keep_snapshot(session, tenant, description, sha256)
        settled = self.at_heads(tenant, "cloned at its head", "cloned at their heads")
        if self.catalogue.custom(tenant.slug) is None:
            settled["snapshot"] = (
                f"taken when the store was cloned: {len(description['tables'])} tables, sha256 {sha256[:16]}…"
            )
        await settle_steps(session, self.job_id, settled | (also_settled or {}))

    def at_heads(self, tenant: Tenant, how: str, how_of_many: str) -> dict[str, str]:
        """What the steps applying the tenant's template and modules say when its store has them
        at their heads already (`how`, of one layer, and `how_of_many`: "cloned at its head",
        "cloned at their heads"), as the job passes them by; and the custom step's, when it has no
        custom layer."""
        said = {
            "basic": f"{how} (basic)",
            "template": f"{how} (templates/{tenant.template})",
            "modules": f"{how_of_many} ({', '.join(f'modules/{name}' for name in tenant.modules)})"
            if tenant.modules
            else "nothing to apply",
        }
        if self.catalogue.custom(tenant.slug) is None:
            said["custom"] = "no custom layer for this tenant"
        return said

    def adopted(self, tenant: Tenant) -> dict[str, str]:
        """What the steps say once the rows seeded into its warm pool store are the tenant's:
        seeding is done and, with no custom layer left to apply, so is the health check (the
        adoption named its one root unit)."""
        settled = {"seed": "roles, root unit and settings in place (seeded in the warm pool, adopted)"}
        if self.catalogue.custom(tenant.slug) is None:
            layers = self.catalogue.layers_for(tenant.template, tenant.modules)
            settled["health check"] = f"{healthy(layers)} (checked while adopting)"
        return settled

    async def apply(self, session: AsyncSession, layers: list[Layer], *, building: bool = False) -> str:
        """Apply `layers` to the tenant's store. `building`: the job is building the store, which
        holds no rows yet (unless it is a shared one, which holds other tenants')."""
        tenant = await self.tenant(session)
        location = self.store(tenant)
        store = kept_store(location)
        without_rows = None
        if building and not location.is_shared:
            without_rows = self._building.setdefault(location.key, StoreWithoutRows(store))
        applied = [
            await upgrade_layer(store, layer, self.record, without_rows=without_rows) for layer in layers
        ]
        total = sum(applied)
        if not layers:
            return "nothing to apply"
        names = ", ".join(layer.key for layer in layers)
        return f"{total} revision(s) applied ({names})" if total else f"already up to date ({names})"

    async def proved_at_heads(self, session: AsyncSession, tenant: Tenant, layers: list[Layer]) -> bool:
        """Whether this job found `layers` at their heads in the store (a shared store the tenants
        before it brought there), or cloned the store (proved equal to its image) with them at
        their heads, and has applied nothing to it since: then there is nothing to ask the store."""
        if (await self.payload(session)).get("layers_at_heads"):
            return True
        runs = (
            await session.execute(
                select(MigrationHistory.layer, MigrationHistory.revision, MigrationHistory.direction).where(
                    MigrationHistory.tenant_id == tenant.id, MigrationHistory.job_id == self.job_id
                )
            )
        ).all()
        cloned = {layer: revision for layer, revision, direction in runs if direction == CLONED}
        applied = any(direction != CLONED for _, _, direction in runs)
        return not applied and all(cloned.get(layer.key) == head(layer) for layer in layers)


async def validate(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    if tenant.isolation == IsolationMode.SHARED and run.catalogue.custom(tenant.slug) is not None:
        raise InvalidInput(
            f"{tenant.slug} has a custom layer, which changes tables that shared tenants have in common; "
            "give it database or schema isolation."
        )
    ordered = run.catalogue.resolve_modules(tenant.template, tenant.modules)
    tenant.modules = ordered
    return f"template {tenant.template}, modules: {', '.join(ordered) or 'none'}"


async def reserve_store(settings: Settings, tenant: Tenant) -> None:
    """Record where the tenant's own store goes, before it exists, so that a failure can always
    remove it. A store already there under that name was never recorded: it is not ours, and is
    left alone (Conflict), so a failure cleans nothing up and nobody's data is touched."""
    planned = plan_store(settings, tenant.slug, tenant.isolation, server=tenant.store_server)
    if await store_exists(planned):
        raise Conflict(
            f"A store named {planned.name} already exists; it was left alone. Remove it or pick another slug."
        )
    tenant.store_backend, tenant.store_name = planned.backend, planned.name


async def reserve_new_store(settings: Settings, tenant: Tenant) -> str:
    """A new tenant's store recorded (once; a resumed job finds it recorded) for a later step to make
    it from something else than its layers (a backup's copy, a split's carve); said."""
    if tenant.store_name is None:
        await reserve_store(settings, tenant)
    return f"{tenant.store_backend} store {tenant.store_name} ({tenant.isolation} isolation)"


async def allocate(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    if tenant.isolation == IsolationMode.SHARED:
        location = plan_store(run.settings, tenant.slug, tenant.isolation, server=tenant.store_server)
        tenant.store_backend, tenant.store_name = location.backend, location.name
        await allocate_store(location)
        said = f"shared {location.backend} store {location.name}"
        layers = run.catalogue.layers_for(tenant.template, tenant.modules)
        found = await current_revisions(kept_store(location), layers)
        if all(found[layer.key] == head(layer) for layer in layers):
            # Tenants before it brought the store's tables for its recipe to their heads.
            await settle_steps(
                session, run.job_id, run.at_heads(tenant, "already up to date", "already up to date")
            )
            await run.remember(session, layers_at_heads=True)
            said += f", its {len(layers)} layers already at their heads"
        return said
    if tenant.store_name is None:
        await reserve_store(run.settings, tenant)
        await session.commit()  # remembered before it exists, so a failure can always remove it
    elif await store_exists(run.store(tenant)):
        # Ours, from an attempt that died before this step succeeded (maybe mid-clone, before the
        # clone was checked): nothing after this step has touched it, so start it again.
        await drop_store(run.store(tenant))
    location = run.store(tenant)
    key = golden_key(run.catalogue, location, tenant.template, tenant.modules)
    if has_pool(run.settings, tenant.isolation):
        warm = await take_warm_store(session, run.settings, key, location)
        if warm is not None and warm.description is not None and warm.sha256 is not None:
            adopted = await adopt_seeded_rows(location, tenant.id, tenant.name)
            await run.cloned(
                session,
                tenant,
                warm.description,
                warm.sha256,
                also_settled=run.adopted(tenant) if adopted else None,
            )
            return f"took store {key[:12]}, built ahead, from the warm pool: {location.backend} store {location.name}"
    if run.settings.golden_images and supports_cloning(location):
        image = await find_golden(session, run.settings, location, key)
        if image is not None:
            await clone_golden(run.settings, location, key)
            description, sha256 = await store_snapshot(location, opened=kept_store(location))
            if sha256 == image.sha256:
                await run.cloned(session, tenant, description, sha256)
                return f"cloned golden image {key[:12]} into {location.backend} store {location.name}"
            await release_kept_stores()
            await drop_store(location)
            await discard_golden(session, run.settings, location, key)
            await allocate_store(location)
            return f"golden image {key[:12]} did not match its recorded schema; discarded it, replaying migrations"
    await allocate_store(location)
    return f"empty {location.backend} store {location.name} ({location.isolation} isolation)"


async def apply_basic(run: Provisioning, session: AsyncSession) -> str:
    return await run.apply(session, [run.catalogue.basic], building=True)


async def apply_template(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    return await run.apply(session, [run.catalogue.template(tenant.template)], building=True)


async def apply_modules(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    return await run.apply(session, [run.catalogue.modules[name] for name in tenant.modules], building=True)


async def apply_custom(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    custom = run.catalogue.custom(tenant.slug)
    return await run.apply(session, [custom]) if custom else "no custom layer for this tenant"


async def record_snapshot(
    session: AsyncSession,
    tenant: Tenant,
    location: StoreLocation,
    only: frozenset[str] | None = None,
    *,
    opened: Database | None = None,
) -> tuple[str, str]:
    """The schema of the store at `location` (of the tables `only`, for one tenant of a shared
    store) recorded as the tenant's latest snapshot, with the layer revisions it found: its hash,
    and what it holds, said. Read through the engine `opened` on it when the caller keeps one."""
    description, sha256 = await store_snapshot(location, only, opened=opened)
    return sha256, await _keep_snapshot(session, tenant, description, sha256)


async def _keep_snapshot(
    session: AsyncSession, tenant: Tenant, description: dict[str, Any], sha256: str
) -> str:
    snapshot = SchemaSnapshot(tenant_id=tenant.id, sha256=sha256, description=description)
    session.add(snapshot)
    await session.flush()
    named = {"schema_snapshot_id": snapshot.id, "schema_sha256": sha256}
    await session.execute(update(Tenant).where(Tenant.id == tenant.id).values(**named))
    if tenant not in session:  # the update has set them on the session's own copy
        tenant.schema_snapshot_id, tenant.schema_sha256 = snapshot.id, sha256
    await record_found(session, tenant, description["layer_versions"])
    return f"{len(description['tables'])} tables, sha256 {sha256[:16]}…"


async def snapshot(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    location = run.store(tenant)
    # One tenant of a shared store owns only its layers' tables (kept modules' included): its
    # snapshot is of those.
    modules = run.catalogue.in_apply_order([*tenant.modules, *tenant.kept_modules])
    only = (
        await layer_tables(run.catalogue.layers_for(tenant.template, modules)) if location.is_shared else None
    )
    sha256, detail = await record_snapshot(session, tenant, location, only, opened=kept_store(location))
    if (
        run.settings.golden_images
        and supports_cloning(location)
        and run.catalogue.custom(tenant.slug) is None
    ):
        await release_kept_stores()  # PostgreSQL copies only a database nobody is connected to
        key = golden_key(run.catalogue, location, tenant.template, tenant.modules)
        try:
            if await capture_golden(session, run.settings, location, key, sha256):
                detail += f"; kept as golden image {key[:12]}"
        except Exception as error:  # an optimisation only: the tenant is fine without it
            log.warning("golden image %s not kept: %s", key[:12], error)
            detail += "; golden image not kept (the store was busy)"
    return detail


async def seed(run: Provisioning, session: AsyncSession) -> str:
    """The rows every tenant starts with: its two roles, its root unit, its settings. A store whose
    layers this job proved at their heads (by a clone's schema hash, or finding them there in a
    shared store) is health-checked here too, in the same visit to the store: its root unit is all
    there is left to check."""
    tenant = await run.tenant(session)
    layers = run.catalogue.layers_for(tenant.template, tenant.modules, tenant.slug)
    proved = await run.proved_at_heads(session, tenant, layers)
    location = run.store(tenant)
    async with (
        enter_tenant(tenant.id, location, owner=kept_store(location)) as entered,
        entered.session() as data,
    ):
        await seed_rows(data, tenant.name)
        if proved:
            await data.flush()
            checked = await _one_root_unit(data, layers)
    if proved:
        await settle_steps(session, run.job_id, {"health check": f"{checked} (checked while seeding)"})
    return "roles, root unit and settings in place"


async def health_check(run: Provisioning, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    layers = run.catalogue.layers_for(tenant.template, tenant.modules, tenant.slug)
    location = run.store(tenant)
    found = await current_revisions(kept_store(location), layers)
    for layer in layers:
        if found[layer.key] != head(layer):
            raise RuntimeError(f"{layer.key} is at {found[layer.key]}, expected {head(layer)}")
    async with (
        enter_tenant(tenant.id, location, owner=kept_store(location)) as entered,
        entered.session() as data,
    ):
        return await _one_root_unit(data, layers)


async def _one_root_unit(data: AsyncSession, layers: list[Layer]) -> str:
    roots = await data.scalar(select(func.count()).select_from(Unit).where(Unit.parent_id.is_(None)))
    if roots != 1:
        raise RuntimeError(f"expected one root unit, found {roots}")
    return healthy(layers)


def healthy(layers: list[Layer]) -> str:
    return f"{len(layers)} layers at their heads; root unit present"


async def let_in_first_admin(run: Provisioning, session: AsyncSession) -> str:
    """The first admin named with the tenant, if any: their profile in the store, their membership
    committed with this step."""
    named = (await run.payload(session)).get(FIRST_ADMIN)
    if named is None:
        return "none named: invite one from the tenant's page"
    tenant = await run.tenant(session)
    location = run.store(tenant)
    async with (
        enter_tenant(tenant.id, location, owner=kept_store(location)) as entered,
        entered.session() as data,
    ):
        account = await let_first_admin_in(session, data, tenant, named["account_id"], named["display_name"])
    return f"{account.email} is its admin"


async def activate(run: StoreJob, session: AsyncSession) -> str:
    tenant = await run.tenant(session)
    tenant.status, tenant.error = TenantStatus.ACTIVE, None
    return f"{tenant.slug} is active"


async def activate_new_tenant(run: Provisioning, session: AsyncSession) -> str:
    """Active, and the next tenant like it thought of: its recipe's warm pool is topped up."""
    done = await activate(run, session)
    tenant = await run.tenant(session)
    recipe = Recipe(tenant.template, tuple(tenant.modules), tenant.isolation)
    if await request_refill(session, run.settings, recipe):
        done += "; its warm pool is being topped up"
    return done


PROVISIONING_STEPS: list[tuple[str, StepFunction[Provisioning]]] = [
    ("validate", validate),
    ("allocate store", allocate),
    ("basic", apply_basic),
    ("template", apply_template),
    ("modules", apply_modules),
    ("custom", apply_custom),
    ("snapshot", snapshot),
    ("seed", seed),
    ("health check", health_check),
    ("first admin", let_in_first_admin),
    ("activate", activate_new_tenant),
]


async def bring_up_new_tenant(
    run: NewTenantJob, steps: Sequence[tuple[str, StepFunction[NewTenantJob]]]
) -> None:
    """Run the steps of a job bringing a new tenant up (provisioning it, or copying a backup into
    it); after an unrecoverable failure, remove what it allocated."""
    try:
        await run_steps(run.landlord, run.job_id, steps, run)
    except StepFailed as failure:
        await release_kept_stores()
        await remove_failed_store(run, str(failure))
        raise


async def remove_failed_store(run: StoreJob, error: str) -> None:
    """After an unrecoverable failure of a job bringing a new tenant up (provisioning it, or
    copying a backup into it): remove what was allocated and say what went wrong."""
    async with run.landlord.session() as session:
        tenant = await run.tenant(session)
        if tenant.store_name is not None and tenant.isolation == IsolationMode.SHARED:
            await remove_tenant_rows(run.store(tenant), tenant.id)
        elif tenant.store_name is not None:
            await drop_store(run.store(tenant))
        tenant.store_backend = tenant.store_name = None
        tenant.status, tenant.error = TenantStatus.FAILED, error
        latest = select(SchemaSnapshot).where(SchemaSnapshot.tenant_id == tenant.id)
        for stale in await session.scalars(latest):
            await session.delete(stale)
