"""Running a rollout: its tenants go wave after wave in lanes, jobs on the one job machinery
(services.jobs) that each take one unit (a tenant, or a shared store's tenants) after another, so
rollouts spread over every worker, survive a worker's death (a lane resumes with the unit it held)
and never run beside a backup, restore or module change of the same tenant (they take its lock).

    start → advance hands units to lanes → rollout_lane: unit (lock → [safety backup] → migrate)
    → end it and advance, in one transaction → the next unit … → none: the lane ends

`advance` is the rollout's one decision point, called when it starts, when a lane ends a unit and
when it is resumed: under the rollout row's lock it applies the halt rule, finishes the rollout,
or hands out the next units of the current wave within its concurrency (overall and per database
server). A wave starts when the one before it has ended.

Never half-way: a tenant runs one revision per transaction; when one fails, the tenant is taken
back to the revisions it had before this rollout, so it ends at the target or where it started.
Where a unit started is written on its rows with its first revision's record, so a resumed lane,
and a rollback, know where that was."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from services import jobs
from services.backups.safety import SafetyBackupFailed, new_safety_backup, take_safety_backup
from services.backups.steps import BackupRun
from services.db import Database, statuses_by
from services.errors import Conflict, DomainError
from services.layers.catalogue import Layer, load_catalogue
from services.layers.history import record_run
from services.layers.migrator import (
    UP,
    MigrationFailed,
    Recorder,
    RevisionRun,
    Timeouts,
    current_revisions,
    move_layer,
    needs_quiet,
    revisions,
)
from services.models import (
    Backup,
    Job,
    JobStatus,
    Rollout,
    RolloutStatus,
    RolloutTenant,
    RolloutTenantStatus,
    Tenant,
    TenantLayer,
    TenantStatus,
)
from services.models.types import utcnow
from services.provisioning.steps import Provisioning
from services.rollouts.plans import (
    UNSEEN_REVISION_MS,
    PlannedTenant,
    RolloutPlan,
    RolloutSpec,
    Step,
    in_waves,
    moves,
)
from services.server_limits import ServerFull, ServerWork, leave_server, wait_for_room
from services.settings import Settings
from services.tenancy.context import tenant_context
from services.tenant_locks import (
    PATIENCE_SECONDS,
    TenantBusy,
    acquire_tenant_lock,
    let_go,
    release_tenant_lock,
    take_tenant_lock_if_free,
)

ROLLOUT_LANE = "rollout_lane"

log = logging.getLogger(__name__)


class TenantRefused(DomainError):
    """The tenant cannot take part when its turn comes (not in service, or busy)."""


# Starting -----------------------------------------------------------------------------------------


async def start_rollout(
    session: AsyncSession, plan: RolloutPlan, *, requested_by: str | None, rollback_of: int | None = None
) -> Rollout:
    """Record the rollout and its tenants, and start its first tenants (their jobs are sent when
    the session commits). Raises Conflict when there is nothing to do."""
    if not plan.tenants:
        raise Conflict("Nothing to roll out: every selected tenant is at its target, or refused.")
    spec = plan.spec
    rollout = Rollout(
        status=RolloutStatus.RUNNING,
        selection=spec.selection.as_json(),
        **spec.settings(),
        rollback_of=rollback_of,
        requested_by=requested_by,
    )
    session.add(rollout)
    await session.flush()
    session.add_all(_row(rollout, position, tenant) for position, tenant in enumerate(plan.tenants))
    for refusal in plan.refused:
        tenant = await session.get_one(Tenant, refusal.tenant_id)
        session.add(
            RolloutTenant(
                rollout_id=rollout.id,
                tenant_id=tenant.id,
                wave=0,
                position=len(plan.tenants),
                server="",
                status=RolloutTenantStatus.REFUSED,
                target_revisions={},
                error=f"Refused at the start: {refusal.why}.",
            )
        )
    await session.flush()
    await advance(session, rollout.id)
    return rollout


def _row(rollout: Rollout, position: int, tenant: PlannedTenant) -> RolloutTenant:
    return RolloutTenant(
        rollout_id=rollout.id,
        tenant_id=tenant.tenant_id,
        wave=tenant.wave,
        position=position,
        server=tenant.server,
        shared_store=tenant.shared_store,
        status=RolloutTenantStatus.QUEUED,
        target_revisions=tenant.target,
    )


def _unit(row: RolloutTenant) -> str:
    return _unit_of(row.tenant_id, row.server, row.shared_store)


def _unit_of(tenant_id: int, server: str, shared_store: str | None) -> str:
    """Tenants of one shared store move as one unit."""
    return f"shared:{server}:{shared_store}" if shared_store else f"own:{tenant_id}"


# Deciding what runs next --------------------------------------------------------------------------


async def advance(session: AsyncSession, rollout_id: int, *, lane: int | None = None) -> list[RolloutTenant]:
    """Apply the halt rule, finish the rollout, or hand out the next units of its current wave
    within its concurrency: the first to `lane` (the job asking, having finished its unit), the
    others to new lanes. Returns the unit handed to `lane` (its tenants' rows; none: the lane
    ends). It reads counts and the current wave's queued tenants, not every tenant, so its cost
    does not grow with the fleet."""
    # A write first: the rollout row's lock (the database's write lock on SQLite), so that two
    # lanes finishing at once decide one after the other, each seeing what the other took.
    await session.execute(update(Rollout).where(Rollout.id == rollout_id).values(status=Rollout.status))
    rollout = await session.get_one(Rollout, rollout_id, populate_existing=True)
    mine = RolloutTenant.rollout_id == rollout_id
    if rollout.status == RolloutStatus.CANCELLED:
        await session.execute(
            update(RolloutTenant)
            .where(mine, RolloutTenant.status == RolloutTenantStatus.QUEUED)
            .values(status=RolloutTenantStatus.SKIPPED, error="The rollout was cancelled before its turn.")
        )
    counts: dict[int, Counter[str]] = await statuses_by(
        session, RolloutTenant.wave, RolloutTenant.status, mine
    )
    running = {
        _unit_of(tenant_id, server, shared_store): server
        for tenant_id, server, shared_store in await session.execute(
            select(RolloutTenant.tenant_id, RolloutTenant.server, RolloutTenant.shared_store).where(
                mine, RolloutTenant.status == RolloutTenantStatus.RUNNING
            )
        )
    }
    if rollout.status != RolloutStatus.RUNNING:
        if not running and rollout.finished_at is None and rollout.status != RolloutStatus.PAUSED:
            rollout.finished_at = utcnow()
        return []
    if halted := _halt_reason(rollout, counts):
        rollout.status, rollout.note = RolloutStatus.HALTED, halted
        return []
    unfinished = [
        wave
        for wave, count in counts.items()
        if count[RolloutTenantStatus.QUEUED] or count[RolloutTenantStatus.RUNNING]
    ]
    if not unfinished:
        rollout.status, rollout.finished_at = RolloutStatus.FINISHED, utcnow()
        return []
    if len(running) >= rollout.concurrency:
        return []
    queued = await session.scalars(
        select(RolloutTenant)
        .where(
            mine, RolloutTenant.wave == min(unfinished), RolloutTenant.status == RolloutTenantStatus.QUEUED
        )
        .order_by(RolloutTenant.position)
        .options(lazyload(RolloutTenant.tenant))
    )
    waiting: dict[str, list[RolloutTenant]] = {}
    for row in queued:
        waiting.setdefault(_unit(row), []).append(row)
    per_server = Counter(running.values())
    handed: list[RolloutTenant] = []
    for members in waiting.values():
        if len(running) >= rollout.concurrency:
            break
        server = members[0].server
        if per_server[server] >= rollout.per_server:
            continue
        if lane is not None and not handed:
            handed = members
            _hand(members, lane)
        else:
            _hand(members, (await _new_lane(session, rollout.id)).id)
        running[_unit(members[0])] = server
        per_server[server] += 1
    return handed


def _hand(members: list[RolloutTenant], lane: int) -> None:
    for row in members:
        row.status, row.job_id, row.started_at = RolloutTenantStatus.RUNNING, lane, utcnow()


async def _new_lane(session: AsyncSession, rollout_id: int) -> Job:
    """A job that runs the unit it is handed now, then asks `advance` for the next, and so on: a
    rollout's jobs are as many as its concurrency, not as its tenants. It is a fleet job (no
    tenant of its own) and enters each tenant's context in turn."""
    return await jobs.record_job(session, ROLLOUT_LANE, payload={"rollout_id": rollout_id})


def _halt_reason(rollout: Rollout, counts: dict[int, Counter[str]]) -> str | None:
    """Whether the halt rule is crossed, given each wave's tenants by status; why, said."""
    failed = sum(count[RolloutTenantStatus.FAILED] for count in counts.values())
    if rollout.halt_after_failures and failed >= rollout.halt_after_failures:
        return f"Halted: {failed} tenant(s) failed (the rule: halt after {rollout.halt_after_failures})."
    if rollout.halt_failure_percent:
        for wave, count in sorted(counts.items()):
            members = count.total() - count[RolloutTenantStatus.REFUSED]
            if not members or count[RolloutTenantStatus.QUEUED] or count[RolloutTenantStatus.RUNNING]:
                continue
            share = 100 * count[RolloutTenantStatus.FAILED] / members
            if share >= rollout.halt_failure_percent:
                return (
                    f"Halted: {share:.0f} % of wave {wave} failed "
                    f"(the rule: halt at {rollout.halt_failure_percent} %)."
                )
    return None


# Pausing, resuming, cancelling, rolling back -------------------------------------------------------


async def pause(session: AsyncSession, rollout: Rollout) -> None:
    if rollout.status != RolloutStatus.RUNNING:
        raise Conflict(f"Rollout #{rollout.id} is {rollout.status}; only a running rollout pauses.")
    rollout.status = RolloutStatus.PAUSED


async def resume(session: AsyncSession, rollout: Rollout) -> None:
    if rollout.status not in (RolloutStatus.PAUSED, RolloutStatus.HALTED):
        raise Conflict(f"Rollout #{rollout.id} is {rollout.status}; only a paused or halted rollout resumes.")
    rollout.status, rollout.note, rollout.finished_at = RolloutStatus.RUNNING, None, None
    await session.flush()
    await advance(session, rollout.id)


async def cancel(session: AsyncSession, rollout: Rollout) -> None:
    if rollout.status in (RolloutStatus.CANCELLED, RolloutStatus.FINISHED):
        raise Conflict(f"Rollout #{rollout.id} is {rollout.status} already.")
    rollout.status = RolloutStatus.CANCELLED
    await session.flush()
    await advance(session, rollout.id)


async def tenants_of(session: AsyncSession, rollout_id: int) -> list[RolloutTenant]:
    """The rollout's tenants, in their order."""
    statement = select(RolloutTenant).where(RolloutTenant.rollout_id == rollout_id)
    return list(await session.scalars(statement.order_by(RolloutTenant.position)))


async def status_counts(session: AsyncSession) -> dict[int, Counter[str]]:
    """For every rollout, how many of its tenants are in each status."""
    return await statuses_by(session, RolloutTenant.rollout_id, RolloutTenant.status)


async def rollback_plan(session: AsyncSession, settings: Settings, rollout: Rollout) -> RolloutPlan:
    """Exactly the tenants `rollout` moved go back to where it found them, newest first, in waves
    of the same sizes; those it did not move are left alone."""
    rows = await tenants_of(session, rollout.id)
    if any(row.status == RolloutTenantStatus.RUNNING for row in rows):
        raise Conflict(
            f"Rollout #{rollout.id} still has tenants migrating: pause or cancel it, then roll it back."
        )
    catalogue = load_catalogue(settings.layers_dir)
    moved = [
        row
        for row in reversed(rows)
        if row.status == RolloutTenantStatus.SUCCEEDED and row.started_at_revisions
    ]
    planned = []
    for row in moved:
        started = row.started_at_revisions or {}
        back = {key: started[key] for key in row.target_revisions if key in started}
        steps = tuple(
            (key, revision, direction)
            for key, revision_back in back.items()
            if (layer := catalogue.named(key)) is not None
            for revision, direction in moves(layer, row.target_revisions[key], revision_back)
        )
        planned.append(
            PlannedTenant(
                row.tenant_id,
                row.tenant.slug,
                row.tenant.name,
                row.server,
                row.shared_store,
                start=dict(row.target_revisions),
                target=back,
                steps=tuple(Step(*step, UNSEEN_REVISION_MS) for step in steps),
            )
        )
    # Back to where each tenant was: no revision of its own, no backup first (nothing is dropped).
    spec = replace(RolloutSpec.of(rollout), revision=None, backup_first=False)
    return RolloutPlan(spec, in_waves(planned, spec.canary, spec.wave_size), [], 0)


async def roll_back(
    session: AsyncSession, settings: Settings, rollout: Rollout, requested_by: str | None
) -> Rollout:
    plan = await rollback_plan(session, settings, rollout)
    if not plan.tenants:
        raise Conflict(f"Rollout #{rollout.id} moved no tenant: there is nothing to take back.")
    if rollout.status not in RolloutStatus.stopped():
        raise Conflict(f"Rollout #{rollout.id} is {rollout.status}: pause or cancel it first.")
    return await start_rollout(session, plan, requested_by=requested_by, rollback_of=rollout.id)


async def run_here(database: Database, settings: Settings, rollout_id: int) -> Rollout:
    """Run the rollout's lanes in this process, side by side as the rollout starts them (its
    concurrency), until it starts no more (services.jobs.run_jobs_here: the embedded broker's way
    from the command line)."""

    async def queued(session: AsyncSession) -> list[tuple[int, int | None]]:
        found = await session.execute(
            select(Job.id, Job.tenant_id)
            .join(RolloutTenant, RolloutTenant.job_id == Job.id)
            .where(RolloutTenant.rollout_id == rollout_id, Job.status == JobStatus.QUEUED)
            .distinct()
        )
        return [(job_id, tenant_id) for job_id, tenant_id in found]

    await jobs.run_jobs_here(database, settings, queued)
    async with database.session() as session:
        return await session.get_one(Rollout, rollout_id)


# One lane: a rollout's job, unit after unit ----------------------------------------------------------


@dataclass(kw_only=True)
class RolloutRun(Provisioning):
    """One unit's run in its lane: a provisioning run's (its layers, and the record of every
    revision it runs, under the lane's job) over the unit's first tenant, with the rollout, the
    tenant and the unit's rows as read when its turn came."""

    rollout: Rollout
    unit_tenant: Tenant
    rows: list[RolloutTenant]
    #: {layer: revision} where the landlord had the tenant's layers when the unit was taken up.
    recorded: dict[str, str]
    #: Whether the lane took the tenant's lock when it took the unit up (else it waits for it now).
    locked: bool
    #: The unit the lane was on when its worker died: it may have changed the store already.
    resumed: bool
    #: Owner's engines on the databases holding schemas, shared by the lane's schema tenants.
    servers: dict[str, Database]
    #: Where its layers started (found in the store, or, resumed, on the landlord's record):
    #: written on its rows with its first revision's record.
    started: dict[str, str | None] | None = None
    #: Whether its tenants were put in maintenance for a revision (None: not migrated yet).
    quieted: bool | None = None

    @property
    def row_ids(self) -> list[int]:
        return [row.id for row in self.rows]

    @property
    def layers(self) -> list[tuple[Layer, str | None]]:
        """The unit's layers and where each goes."""
        targets = self.rows[0].target_revisions.items()
        return [(layer, target) for key, target in targets if (layer := self.catalogue.named(key))]

    def open_store(self) -> Database:
        """The tenant's store as its owner; a schema on the connections of the lane's engine on
        its database, a new engine otherwise."""
        location, busy_timeout_ms = self.store(self.unit_tenant), self.rollout.lock_timeout_ms
        if location.schema is None:
            return location.open(busy_timeout_ms=busy_timeout_ms)
        if location.url not in self.servers:
            self.servers[location.url] = location.server_database(busy_timeout_ms=busy_timeout_ms)
        return location.open(busy_timeout_ms=busy_timeout_ms, sharing=self.servers[location.url])

    async def record(self, run: RevisionRun) -> None:
        """As provisioning records a revision run, with the tenant already read; the first also
        puts on the unit's rows where its layers started, in the same transaction (so a rollback,
        or a resumed lane, knows it whenever the store has changed)."""
        async with self.landlord.session() as session:
            if self.rows[0].started_at_revisions is None:
                await session.execute(_update_rows(self).values(started_at_revisions=self.started))
                for row in self.rows:
                    row.started_at_revisions = self.started
            await record_run(session, self.unit_tenant, run, job_id=self.job_id)


def _unit_rows(which: ColumnElement[bool]) -> Select[RolloutTenant]:
    return (
        select(RolloutTenant)
        .where(which)
        .order_by(RolloutTenant.position)
        .options(lazyload(RolloutTenant.tenant))
    )


@dataclass(frozen=True)
class Ended:
    """How a unit ended, written on its rows when its lane lets go of it."""

    status: str
    detail: str | None = None
    error: str | None = None


@jobs.job_handler(ROLLOUT_LANE, server_work=ServerWork.MIGRATE)
async def rollout_lane(database: Database, job: Job, settings: Settings) -> None:
    """Run the unit the lane holds, then the next `advance` hands it, until it hands none. A lane
    whose worker died resumes with the unit it held."""
    rollout_id = int(job.payload["rollout_id"])
    async with database.session() as session:
        rollout = await session.get_one(Rollout, rollout_id)
        held = RolloutTenant.job_id == job.id, RolloutTenant.status == RolloutTenantStatus.RUNNING
        rows = list(await session.scalars(_unit_rows(and_(*held))))
        unit = await _take_up(session, job.id, rows) if rows else None
    resumed = job.attempts > 1
    servers: dict[str, Database] = {}
    try:
        while unit is not None:
            tenant, recorded, locked = unit
            run = RolloutRun(
                settings,
                database,
                job.id,
                tenant.id,
                rollout=rollout,
                unit_tenant=tenant,
                rows=rows,
                recorded=recorded,
                locked=locked,
                resumed=resumed,
                servers=servers,
            )
            with tenant_context(run.tenant_id):
                ended = await run_unit(run)
            rows, unit = await _end_unit(run, ended)
            resumed = False
    finally:
        for server in servers.values():
            await server.dispose()


Unit = tuple[Tenant, dict[str, str], bool]


async def _take_up(session: AsyncSession, lane: int, rows: list[RolloutTenant]) -> Unit:
    """In the transaction that hands the unit to its lane: its tenant, where the landlord has its
    layers, and its lock, taken when free."""
    tenant = await session.get_one(Tenant, rows[0].tenant_id)
    recorded = {
        row.layer: row.revision
        for row in await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant.id))
    }
    return tenant, recorded, await take_tenant_lock_if_free(session, tenant.id, lane, "rollout")


async def run_unit(run: RolloutRun) -> Ended:
    """Lock the tenant, take its safety backup when asked, migrate. A refusal, a failed backup or a
    failed revision ends the unit, not the lane."""
    try:
        begun = run.resumed or run.rows[0].started_at_revisions is not None  # it may be quiet, by us
        if not begun and run.unit_tenant.status != TenantStatus.ACTIVE:
            raise TenantRefused(f"the tenant is {run.unit_tenant.status}")
        await _room_on_server(run, begun)
        if not run.locked:
            await acquire_tenant_lock(
                run.landlord,
                run.tenant_id,
                run.job_id,
                "rollout",
                waiting=_say_waiting(run),
                patience=run.rollout.lock_timeout_ms / 1000,
            )
            run.locked = True
        if run.rollout.backup_first:
            await _safety_backup(run)
        return await migrate(run)
    except (TenantRefused, TenantBusy, ServerFull) as refusal:
        return Ended(RolloutTenantStatus.REFUSED, error=f"Refused when its turn came: {refusal}.")
    except SafetyBackupFailed as failure:
        return Ended(RolloutTenantStatus.FAILED, error=failure.message)
    except Exception as failure:  # this tenant failed; the lane, and the rollout, go on
        log.exception("rollout #%s: tenant %s failed", run.rollout.id, run.tenant_id)
        return Ended(RolloutTenantStatus.FAILED, error=str(failure) or type(failure).__name__)


async def _room_on_server(run: RolloutRun, begun: bool) -> None:
    """Room for one more migration on the unit's server (services.server_limits). A unit not begun
    lets go of its tenant's lock while it waits, so that a job waiting for that lock, and holding
    room on the server, is not waited for in turn."""

    async def waiting(said: str) -> None:
        if run.locked and not begun:
            await release_tenant_lock(run.landlord, run.tenant_id, run.job_id)
            run.locked = False
        await _say(run, said)

    migrations = ServerWork.MIGRATE
    await wait_for_room(
        run.landlord,
        run.job_id,
        run.rows[0].server,
        migrations,
        jobs.kinds_doing(migrations),
        run.settings.server_jobs[migrations],
        waiting=waiting,
        patience=PATIENCE_SECONDS,
    )


def _say_waiting(run: RolloutRun) -> Callable[[Job], Awaitable[None]]:
    """Says on the unit's rows which job it waits for, while it waits for the tenant's lock."""

    async def waiting(holder: Job) -> None:
        await _say(run, f"waiting for {holder.kind.replace('_', ' ')} job #{holder.id} to finish")

    return waiting


async def _say(run: RolloutRun, said: str) -> None:
    """What the unit waits for, on its rows (committed at once)."""
    async with run.landlord.session() as session:
        await session.execute(_update_rows(run).values(detail=said))


def _update_rows(run: RolloutRun) -> Update:
    return update(RolloutTenant).where(RolloutTenant.id.in_(run.row_ids))


async def _safety_backup(run: RolloutRun) -> None:
    """A verified backup of the tenant before its first change. A resumed lane takes it again
    unless it was verified."""
    async with run.landlord.session() as session:
        row = await session.get_one(RolloutTenant, run.rows[0].id)
        if row.safety_backup_id is not None:
            if (await session.get_one(Backup, row.safety_backup_id)).status == JobStatus.SUCCEEDED:
                return
        else:
            before, requester = f"rollout #{run.rollout.id}", run.rollout.requested_by
            backup = new_safety_backup(run.unit_tenant, run.job_id, before, requester)
            session.add(backup)
            await session.flush()
            row.safety_backup_id = backup.id
        backup_id = row.safety_backup_id
    await take_safety_backup(BackupRun(run.settings, run.landlord, run.job_id, run.tenant_id, backup_id))


async def migrate(run: RolloutRun) -> Ended:
    """Take the tenant's layers to their targets, one revision per transaction; on a failure, back
    to where they started."""
    layers = run.layers
    timeouts = Timeouts(run.rollout.lock_timeout_ms, run.rollout.statement_timeout_ms)
    store = run.open_store()
    try:
        found = await current_revisions(store, [layer for layer, _ in layers])
        started = await _started_at(run, found)
        run.quieted = _needs_quiet(layers, started)
        if run.quieted:
            await _quiet(run)
        moved: list[str] = []
        try:
            for layer, target in layers:
                if applied := await move_layer(
                    store, layer, found[layer.key], target, run.record, timeouts=timeouts
                ):
                    moved.append(f"{layer.key} to {target} ({applied} revision(s))")
        except MigrationFailed as failure:
            back = await _take_back(store, layers, started, run.record, timeouts)
            return Ended(RolloutTenantStatus.FAILED, detail=back, error=failure.message)
    finally:
        await store.dispose()
    return Ended(RolloutTenantStatus.SUCCEEDED, detail="; ".join(moved) or "already at the target")


def _needs_quiet(layers: list[tuple[Layer, str | None]], started: dict[str, str | None]) -> bool:
    return any(
        needs_quiet(layer, revision)
        for layer, target in layers
        for revision, _ in moves(layer, started.get(layer.key), target)
    )


def _unit_tenants(run: RolloutRun) -> Update:
    return update(Tenant).where(Tenant.id.in_([row.tenant_id for row in run.rows]))


async def _quiet(run: RolloutRun) -> None:
    """The tenants in maintenance (the portal says so, the API answers 503) until the unit ends:
    one of their revisions needs them quiet."""
    async with run.landlord.session() as session:
        await session.execute(_unit_tenants(run).values(status=TenantStatus.MAINTENANCE))


async def _started_at(run: RolloutRun, found: dict[str, str | None]) -> dict[str, str | None]:
    """Where the layers were before this rollout touched them: `found` in the store, unless the
    unit is resumed. A resumed one started where its rows say, or, when its first revision's
    record never committed, where the landlord's record still has them; it first puts on record
    what the store holds but the history missed (a revision committed in the store just before
    the worker died), so every revision appears in the history once."""
    started = run.rows[0].started_at_revisions
    if started is None and run.resumed:
        started = {layer.key: run.recorded.get(layer.key) for layer, _ in run.layers}
    if started is not None:
        await _record_missed(run, found)
    run.started = dict(started if started is not None else found)
    return run.started


async def _record_missed(run: RolloutRun, found: dict[str, str | None]) -> None:
    async with run.landlord.session() as session:
        for layer, _ in run.layers:
            for revision, direction in moves(layer, run.recorded.get(layer.key), found[layer.key]):
                reached = revision if direction == UP else _below(layer, revision)
                missed = RevisionRun(layer.key, revision, direction, 0.0, reached=reached)
                await record_run(session, run.unit_tenant, missed, job_id=run.job_id)


def _below(layer: Layer, revision: str) -> str | None:
    ordered = revisions(layer)
    index = ordered.index(revision)
    return ordered[index - 1] if index > 0 else None


async def _take_back(
    store: Database,
    layers: list[tuple[Layer, str | None]],
    started: dict[str, str | None],
    record: Recorder,
    timeouts: Timeouts,
) -> str:
    """Every layer back to where it started, the last moved first. Says where each one is."""
    said = []
    now = await current_revisions(store, [layer for layer, _ in layers])
    for layer, _ in reversed(layers):
        start = started.get(layer.key)
        try:
            if await move_layer(store, layer, now[layer.key], start, record, timeouts=timeouts):
                said.append(f"{layer.key} taken back to {start or 'none'}")
        except MigrationFailed as failure:
            said.append(f"{layer.key} could not be taken back ({failure.message})")
    return "; ".join(said) or "nothing had changed"


async def _end_unit(run: RolloutRun, ended: Ended) -> tuple[list[RolloutTenant], Unit | None]:
    """In one transaction: the unit's rows say how it ended, its tenants quieted for it are back
    in service, its lock is let go, and the lane is handed its next unit, taken up (none: the
    lane ends)."""
    async with run.landlord.session() as session:
        if run.quieted is None:  # it ended before its migration: quiet only if a resumed one was
            start: dict[str, Any] | None = run.rows[0].started_at_revisions
            if start is None and run.resumed:
                start = dict(run.recorded)
            run.quieted = start is not None and _needs_quiet(run.layers, start)
        if run.quieted and run.locked:
            await session.execute(
                _unit_tenants(run)
                .where(Tenant.status == TenantStatus.MAINTENANCE)
                .values(status=TenantStatus.ACTIVE)
            )
        await session.execute(
            _update_rows(run).values(
                status=ended.status, detail=ended.detail, error=ended.error, finished_at=utcnow()
            )
        )
        await let_go(session, run.tenant_id, run.job_id)
        await leave_server(session, run.job_id)
        rows = await advance(session, run.rollout.id, lane=run.job_id)
        return rows, (await _take_up(session, run.job_id, rows) if rows else None)
