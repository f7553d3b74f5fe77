"""The `move` job: a tenant's store moved to another kind of store.

    lock → capture on → [unchanged since] → dump → checksum → manifest → copy → validate →
    maintenance on → writes drained → catch up → swap → capture off → maintenance off

The tenant keeps serving while it is copied: `capture on` has triggers note the key of every row
written from then on (services.moves.capture), and the dump reads one consistent snapshot. Its
rows go through a portable backup (recorded among its backups, and verified by the move itself):
the archive is restored into a new store beside the one in use, named after the job, and
compared with the archive's manifest, every table's row count and checksum. Only then does the
tenant show its maintenance page (its API answers 503): its writes in flight end (`writes
drained`), the rows written during the copy are copied again as they are now and the copy is
measured against the store in use (`catch up`, services.moves.catch_up), and one landlord
transaction points the tenant at the new store. `freeze_ms` is that wait, maintenance on to off;
`copy_ms` the copy. Until the swap commits the tenant's store is the old one, whole: a worker killed
before it leaves the tenant there, and the job resumes (a failure drops what it built, removes the
capture and ends the maintenance).

Into a shared store, the archive is proved and caught up in a staging store first; then, in the
swap, the tenant's rows go into the shared store in one transaction of its own, counted and hashed
against the staging store's before it commits (the restore's way, services.backups.restores), its
layers' tables made there first when no shared tenant has them yet. That load is part of the wait.

The store the tenant left is kept for TENANTRY_MOVE_RETENTION_DAYS (services.moves.kept drops it
then). A move back finds, in `unchanged since`, whether the tenant's rows are still what the move
copied and the store it left is still there at the same layer revisions: then it goes back to that
store as it is, and the copy steps are settled; otherwise it is copied back like any move.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.audit.trail import Actor, record
from services.backups.dump import dump_store
from services.backups.restorable import compare_with_manifest, restore_backup, totals
from services.backups.restore import continue_ids_of, differences, forget_runs, layer_by_key, measure_store
from services.backups.restores import put_rows_into_shared
from services.backups.steps import BackupRun, checksum, dump, record_backup_failure, record_manifest
from services.db import Database
from services.errors import Conflict
from services.jobs import StepFunction, settle_steps
from services.layers.catalogue import Layer, load_catalogue
from services.layers.footprint import layer_tables
from services.layers.migrator import current_revision, current_revisions, upgrade_layer
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    JobStep,
    OldStore,
    Tenant,
    TenantMove,
    TenantStatus,
    Verification,
)
from services.models.types import utcnow
from services.moves.capture import captured_changes, start_capture, stop_capture
from services.moves.catch_up import catch_up, compare_stores
from services.moves.requests import (
    CAPTURE_OFF,
    CAPTURE_ON,
    CATCH_UP,
    COPY_STEPS,
    LOCK,
    MAINTENANCE_OFF,
    MAINTENANCE_ON,
    MOVE,
    MOVE_STEP_NAMES,
    SWAP,
    UNCHANGED_SINCE,
    describe_kind,
    from_kind,
    to_kind,
)
from services.provisioning.steps import record_snapshot
from services.server_limits import ServerWork
from services.settings import Settings
from services.store_jobs import WRITES_DRAINED, maintenance_until, writes_drained
from services.tenancy.stores import (
    StoreLocation,
    allocate_store,
    drop_store,
    one_at_a_time,
    plan_store,
    remove_tenant_rows,
    store_exists,
    stored_location,
)

#: Who the trail says moved a tenant once its move is done (the request is the asker's own entry).
MOVES = Actor(email="system:move")


@dataclass
class MoveRun(BackupRun):
    """What every step of one move works with: a backup run's (its backup is the move's copy of
    the tenant), and the move."""

    move_id: int = 0

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {**super().named_in(payload), "move_id": int(payload["move_id"])}

    @property
    def work(self) -> Path:
        return self.settings.data_dir / "work" / f"move-{self.job_id}"

    async def move(self, session: AsyncSession) -> TenantMove:
        return await session.get_one(TenantMove, self.move_id)

    def new_store(self, tenant: Tenant, move: TenantMove) -> StoreLocation:
        """Where the tenant goes: a store of its own named after the job ("__" is in no slug, so no
        tenant's own store has the name), or the shared store."""
        name = tenant.slug if move.to_isolation == IsolationMode.SHARED else f"{tenant.slug}__m{self.job_id}"
        return plan_store(
            self.settings, name, move.to_isolation, backend=move.to_backend, server=move.to_server
        )

    def built(self, tenant: Tenant, move: TenantMove) -> StoreLocation:
        """The store the copy is restored into: the new store, or for a shared store a staging
        store where the copy is proved before its rows go in."""
        if move.to_isolation != IsolationMode.SHARED:
            return self.new_store(tenant, move)
        staging = f"{tenant.slug}__m{self.job_id}"
        return plan_store(
            self.settings,
            staging,
            IsolationMode.DATABASE,
            purpose="scratch",
            backend=move.to_backend,
            server=move.to_server,
        )

    def left(self, move: TenantMove) -> StoreLocation:
        """The store `move` took its tenant out of."""
        return stored_location(
            self.settings, move.from_backend, move.from_isolation, move.from_store, move.from_server
        )

    def layers(self, tenant: Tenant) -> list[Layer]:
        """The tenant's layers, its kept modules' included."""
        catalogue = load_catalogue(self.settings.layers_dir)
        modules = catalogue.in_apply_order([*tenant.modules, *tenant.kept_modules])
        return catalogue.layers_for(tenant.template, modules, tenant.slug)


async def lock(run: MoveRun, session: AsyncSession) -> str:
    said = await run.take_lock("move", why=" with this tenant")
    tenant, move, backup = await run.tenant(session), await run.move(session), await run.backup(session)
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        raise Conflict(f"{tenant.slug} is {tenant.status}; only an active tenant moves.")
    new = run.new_store(tenant, move)
    if new.is_shared:
        await _check_shared_layers(run, tenant, new)
    move.to_store, backup.status = new.name, JobStatus.RUNNING
    going = describe_kind(run.settings, to_kind(move))
    if move.back_of is not None:
        return f"{said}; it goes back to {going}"
    return f"{said}; it goes to {going}, {new.name}"


async def capture_on(run: MoveRun, session: AsyncSession) -> str:
    """Before anything is read for the copy: every write to the tenant's store is noted from now on
    (services.moves.capture), while the tenant keeps serving."""
    tenant = await run.tenant(session)
    current = run.store(tenant)
    watched = await start_capture(current, run.job_id, tenant.id)
    return (
        f"writes to the {watched} tables of {current.name} are noted from now on; {tenant.slug} keeps serving"
    )


async def unchanged_since(run: MoveRun, session: AsyncSession) -> str:
    """A move back: whether the store the tenant left can be taken back as it is."""
    tenant, move = await run.tenant(session), await run.move(session)
    assert move.back_of is not None
    earlier = await session.get_one(TenantMove, move.back_of)
    why_not = await _why_copy_back(run, session, tenant, earlier)
    if why_not is not None:
        return f"{why_not}: {tenant.slug} is copied back into a new store"
    settled = f"not needed: nothing was written since move #{earlier.id}"
    await settle_steps(session, run.job_id, dict.fromkeys(COPY_STEPS, settled))
    await run.remember(session, taken_back=True)
    await session.delete(await run.backup(session))  # never taken: the earlier move's copy is the same
    move.backup_id, move.to_store = earlier.backup_id, earlier.from_store
    return f"nothing was written since move #{earlier.id}: {tenant.slug} goes back to {earlier.from_store} as it left it"


async def _why_copy_back(
    run: MoveRun, session: AsyncSession, tenant: Tenant, earlier: TenantMove
) -> str | None:
    """Why the store `earlier` left cannot be taken back as it is, or None when it can."""
    if earlier.old_store != OldStore.KEPT:
        return f"the store move #{earlier.id} left is no longer kept"
    copied = await session.get(Backup, earlier.backup_id) if earlier.backup_id is not None else None
    if copied is None or copied.manifest is None:
        return f"the copy move #{earlier.id} made is no longer kept, so what changed since cannot be told"
    current, left = run.store(tenant), run.left(earlier)
    measured = await measure_store(current, tenant_id=tenant.id if current.is_shared else None)
    if changed := differences(copied.manifest, measured, compare_schema=False):
        return f"{len(changed)} table(s) changed since move #{earlier.id}"
    if not await store_exists(left):
        return f"the store move #{earlier.id} left, {left.name}, is missing"
    if await _layer_versions(left, run.layers(tenant)) != await _layer_versions(current, run.layers(tenant)):
        return f"the store move #{earlier.id} left is at other layer revisions now"
    return None


async def _layer_versions(location: StoreLocation, layers: list[Layer]) -> dict[str, str | None]:
    store = location.open()
    try:
        return await current_revisions(store, layers)
    finally:
        await store.dispose()


async def copy(run: MoveRun, session: AsyncSession) -> str:
    backup, tenant, move = await run.backup(session), await run.tenant(session), await run.move(session)
    built = run.built(tenant, move)
    if built.key == run.store(tenant).key:  # never: the names differ by construction
        raise RuntimeError(f"refusing to copy {tenant.slug} over its store in use, {built.name}")
    await drop_store(built)  # what an attempt that died left half-built
    await restore_backup(run, backup, built)
    assert backup.manifest is not None
    where = "a staging store" if move.to_isolation == IsolationMode.SHARED else "the new store"
    return f"{totals(backup.manifest)} copied into {where}, {built.backend} {built.name}"


async def validate(run: MoveRun, session: AsyncSession) -> str:
    """The copy against the archive's manifest; the backup is then verified, the copy its proof."""
    backup, tenant, move = await run.backup(session), await run.tenant(session), await run.move(session)
    said = await compare_with_manifest(backup, run.built(tenant, move))
    backup.verification, backup.verified_at = Verification.VERIFIED, utcnow()
    backup.verification_detail = f"restored by move #{move.id}: {said}"
    return said


async def catch_up_step(run: MoveRun, session: AsyncSession) -> str:
    """With the tenant closed to writes: the rows written during the copy go into it again as they
    are now, and the copy is then measured against the store in use (counts and checksums)."""
    tenant, move, payload = await run.tenant(session), await run.move(session), await run.payload(session)
    current = run.store(tenant)
    if payload.get("taken_back"):
        assert move.back_of is not None
        target = run.left(await session.get_one(TenantMove, move.back_of))
    else:
        target = run.built(tenant, move)
    changes = await captured_changes(current, run.job_id)
    caught = await catch_up(current, target, changes, tenant.id)
    tables, rows = await compare_stores(current, target, tenant.id, set(changes))
    await run.remember(session, rows=rows, tables=tables)
    return (
        f"{caught:,} row(s) written during the copy caught up; {target.name} holds what {current.name} "
        f"holds: {tables} tables, {rows:,} rows, the counts the same, and the checksums of the "
        f"{len(changes)} table(s) written"
    )


async def swap(run: MoveRun, session: AsyncSession) -> str:
    """Point the tenant at its new store, in this step's landlord transaction (into a shared store,
    its rows go in first, in one transaction of that store). Ids there continue after every id the
    store it leaves handed out."""
    tenant, move, payload = await run.tenant(session), await run.move(session), await run.payload(session)
    current = run.store(tenant)
    if payload.get("taken_back"):
        assert move.back_of is not None
        earlier = await session.get_one(TenantMove, move.back_of)
        new = run.left(earlier)
        await continue_ids_of(current, new)
        said = f"{tenant.slug} is back in {new.name}, as move #{earlier.id} left it, caught up"
    else:
        new = run.new_store(tenant, move)
        said = f"{tenant.slug} now uses {new.name}"
        if new.is_shared:
            said = await _into_shared_store(run, session, tenant, move, new)
        await continue_ids_of(current, new)
    move.rows, move.tables = payload["rows"], payload["tables"]
    tenant.isolation, tenant.store_backend, tenant.store_name = new.isolation, new.backend, new.name
    tenant.store_server = new.server_name
    only = await layer_tables(run.layers(tenant)) if new.is_shared else None
    await record_snapshot(session, tenant, new, only)
    move.to_store = new.name
    move.old_store = OldStore.KEPT
    move.kept_until = utcnow() + timedelta(days=run.settings.move_retention_days)
    # A store the tenant left before and is in again is in use: never dropped as a kept one.
    await session.execute(
        update(TenantMove)
        .where(
            TenantMove.tenant_id == tenant.id,
            TenantMove.id != move.id,
            TenantMove.old_store == OldStore.KEPT,
            TenantMove.from_backend == new.backend,
            TenantMove.from_isolation == new.isolation,
            TenantMove.from_store == new.name,
            TenantMove.from_server.is_not_distinct_from(new.server_name),
        )
        .values(old_store=OldStore.IN_USE, kept_until=None)
    )
    return f"{said}; the store it left, {current.name}, is kept until {move.kept_until:%Y-%m-%d %H:%M} UTC"


async def capture_off(run: MoveRun, session: AsyncSession) -> str:
    """Once the swap has committed: the change capture goes from the store the tenant left, and a
    staging store (a move into a shared store) with it."""
    tenant, move = await run.tenant(session), await run.move(session)
    left = run.left(move)
    await stop_capture(left, run.job_id)
    said = f"the change capture is gone from {left.name}"
    if move.to_isolation == IsolationMode.SHARED and not (await run.payload(session)).get("taken_back"):
        await drop_store(run.built(tenant, move))
        said += "; the staging store is dropped"
    return said


async def maintenance_off(run: MoveRun, session: AsyncSession) -> str:
    tenant, move = await run.tenant(session), await run.move(session)
    tenant.status = TenantStatus.ACTIVE
    steps = {
        step.name: step for step in await session.scalars(select(JobStep).where(JobStep.job_id == run.job_id))
    }
    now = utcnow()
    frozen_at, copy_started, copied_at = (
        steps[MAINTENANCE_ON].finished_at,
        steps["dump"].started_at,
        steps["validate"].finished_at,
    )
    move.finished_at = now
    move.freeze_ms = round((now - frozen_at).total_seconds() * 1000) if frozen_at else None
    taken_back = (await run.payload(session)).get("taken_back")
    if copy_started is not None and copied_at is not None and not taken_back:
        move.copy_ms = round((copied_at - copy_started).total_seconds() * 1000)
    detail = {
        "move": move.id,
        "from": describe_kind(run.settings, from_kind(move)),
        "to": describe_kind(run.settings, to_kind(move)),
        "rows": move.rows,
        "tables": move.tables,
        "copy_ms": move.copy_ms,
        "freeze_ms": move.freeze_ms,
        "job": run.job_id,
    }
    await record(
        session, action="tenant.moved", actor=MOVES, tenant_id=tenant.id, target=tenant.slug, detail=detail
    )
    held = f"{move.freeze_ms / 1000:.1f} s" if move.freeze_ms is not None else "the move"
    return f"{tenant.slug} is active again in {describe_kind(run.settings, to_kind(move))}; its writes waited {held}"


MOVE_STEPS: list[tuple[str, StepFunction[MoveRun]]] = [
    (LOCK, lock),
    (CAPTURE_ON, capture_on),
    (UNCHANGED_SINCE, unchanged_since),
    ("dump", dump),
    ("checksum", checksum),
    ("manifest", record_manifest),
    ("copy", copy),
    ("validate", validate),
    (MAINTENANCE_ON, maintenance_until("the move is done")),
    (WRITES_DRAINED, writes_drained),
    (CATCH_UP, catch_up_step),
    (SWAP, swap),
    (CAPTURE_OFF, capture_off),
    (MAINTENANCE_OFF, maintenance_off),
]
assert [name for name, _ in MOVE_STEPS if name != UNCHANGED_SINCE] == MOVE_STEP_NAMES


# Into a shared store ------------------------------------------------------------------------------


async def _check_shared_layers(run: MoveRun, tenant: Tenant, shared: StoreLocation) -> None:
    """A tenant goes into a shared store only where each of its layers is at the same revision as
    in its own store, or not in the shared store yet (its tables are then made there)."""
    layers = run.layers(tenant)
    ours = await _layer_versions(run.store(tenant), layers)
    if not await store_exists(shared):
        return
    async with one_at_a_time(shared, "layers"):  # not while another move is making its tables
        theirs = await _layer_versions(shared, layers)
    for layer in layers:
        if theirs[layer.key] is not None and theirs[layer.key] != ours[layer.key]:
            raise Conflict(
                f"The shared store has {layer.key} at revision {theirs[layer.key]} and {tenant.slug} at "
                f"{ours[layer.key]}: bring them to the same revision (a rollout) and move it then."
            )


async def _into_shared_store(
    run: MoveRun, session: AsyncSession, tenant: Tenant, move: TenantMove, shared: StoreLocation
) -> str:
    """The caught-up copy's rows put into the shared store in one transaction of it, hashed against
    what the staging store holds (kept until the swap has committed: the swap may run again)."""
    backup, staging = await run.backup(session), run.built(tenant, move)
    assert backup.manifest is not None
    if not await store_exists(staging):  # never: a missing SQLite file would read as no rows at all
        raise RuntimeError(f"the staging store {staging.name} of {tenant.slug} is missing")
    await _prepare_shared_store(run, tenant, shared, backup.manifest)
    shutil.rmtree(run.work, ignore_errors=True)
    try:
        taken = await dump_store(staging, BackupFormat.PORTABLE, run.work, tenant_id=tenant.id)
        caught_up = {
            **backup.manifest,
            "tables": {name: table.as_json() for name, table in taken.tables.items()},
        }
        rows, renumbered, _ = await put_rows_into_shared(
            tenant.id, caught_up, run.work, shared, source=f"the caught-up copy of {tenant.slug}"
        )
    finally:
        shutil.rmtree(run.work, ignore_errors=True)
    said = f"{rows:,} rows of {tenant.slug} put into the shared store in one transaction"
    if renumbered:
        said += f" ({renumbered:,} got new ids, as the shared store had given theirs to other tenants)"
    return said


async def _prepare_shared_store(
    run: MoveRun, tenant: Tenant, shared: StoreLocation, manifest: dict[str, Any]
) -> None:
    """The shared store made if missing, and the tables of the tenant's layers no shared tenant
    has yet made there, at the archive's revisions."""
    await allocate_store(shared)
    catalogue = load_catalogue(run.settings.layers_dir)
    # One move at a time makes tables there: another, beside it, would find a layer half made (at
    # an earlier revision than its copy's) and refuse.
    async with one_at_a_time(shared, "layers"):
        store = shared.open()
        try:
            for entry in manifest["layers"]:
                layer = layer_by_key(catalogue, entry["key"])
                found = await current_revision(store, layer)
                if found is None:
                    await upgrade_layer(store, layer, forget_runs, target=entry["revision"])
                elif found != entry["revision"]:
                    raise Conflict(
                        f"The shared store has {layer.key} at revision {found} and the copy of {tenant.slug} "
                        f"at {entry['revision']}: bring them to the same revision (a rollout) and move it then."
                    )
        finally:
            await store.dispose()


# After a failure ------------------------------------------------------------------------------------


async def _undo(run: MoveRun, _failure: Exception) -> None:
    """After a failure, not an interruption (the job will not resume): what the move built but
    never swapped in goes (rows it put into a shared store included), the tenant leaves
    maintenance in the store it had, and an unfinished backup is marked failed."""
    async with run.landlord.session() as session:
        tenant, move, payload = await run.tenant(session), await run.move(session), await run.payload(session)
        move.finished_at = utcnow()
        if move.to_store is None:
            return  # it never held the tenant's lock: whatever the tenant is in is another job's doing
        if await store_exists(run.left(move)):
            await stop_capture(run.left(move), run.job_id)
        if not payload.get("taken_back"):
            await _drop_what_it_built(run, session, tenant, move)
        if tenant.status == TenantStatus.MAINTENANCE:
            tenant.status = TenantStatus.ACTIVE
    if await _backup_exists(run):
        await record_backup_failure(run, "the move it was taken for stopped first")


async def _drop_what_it_built(run: MoveRun, session: AsyncSession, tenant: Tenant, move: TenantMove) -> None:
    """The store the copy went into, unless the tenant is in it now (a staging store never is), and
    until the swap the tenant's rows it put into a shared store."""
    current, built, new = run.store(tenant), run.built(tenant, move), run.new_store(tenant, move)
    if built.key != current.key and (move.old_store is None or new.is_shared):
        await drop_store(built)
    until_swapped = move.old_store is None and new.is_shared and new.key != current.key
    if until_swapped and not await _kept_there(session, tenant, new):
        await remove_tenant_rows(new, tenant.id)


async def _kept_there(session: AsyncSession, tenant: Tenant, shared: StoreLocation) -> bool:
    """Whether an earlier move left the tenant's rows in `shared`, kept so it can move back."""
    kept = await session.scalar(
        select(TenantMove.id).where(
            TenantMove.tenant_id == tenant.id,
            TenantMove.old_store == OldStore.KEPT,
            TenantMove.from_isolation == IsolationMode.SHARED,
            TenantMove.from_backend == shared.backend,
            TenantMove.from_store == shared.name,
            TenantMove.from_server.is_not_distinct_from(shared.server_name),
        )
    )
    return kept is not None


async def _backup_exists(run: MoveRun) -> bool:
    async with run.landlord.session() as session:
        return await session.get(Backup, run.backup_id) is not None


@jobs.job_handler(MOVE, server_work=ServerWork.RESTORE)
async def move_tenant(database: Database, job: Job, settings: Settings) -> None:
    await MoveRun.of(database, job, settings).run_holding_the_lock(MOVE_STEPS, on_failure=_undo)
