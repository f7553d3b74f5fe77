"""Running a rollout: its tenants go wave after wave, each in a job of its own on the one job
machinery (services.jobs), so rollouts spread over every worker, survive a worker's death (a job
resumes where it stopped) and never run beside a backup, restore or module change of the same
tenant (they take its lock).

    start → advance → rollout_tenant jobs (lock → [safety backup] → migrate) → advance → …

`advance` is the rollout's one decision point, called when it starts, when one of its tenants
finishes and when it is resumed: under the rollout row's lock it applies the halt rule, finishes
the rollout, or starts the next tenants of the current wave within its concurrency (overall and per
database server). A wave starts when the one before it has ended.

Never half-way: a tenant runs one revision per transaction; when one fails, the tenant is taken
back to the revisions it had before this rollout, so it ends at the target or where it started.
The revisions a tenant started at are committed before its first change, so a resumed job, and a
rollback, know where that was."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import lazyload

from services import jobs
from services.backups.requests import _record_failure
from services.backups.safety import (
    SAFETY_BACKUP_ID,
    SAFETY_BACKUP_STEPS,
    record_safety_backup,
    safety_backup_steps,
    safety_run,
)
from services.db import Database
from services.errors import Conflict, DomainError
from services.jobs import StepFunction
from services.layers.catalogue import Layer, load_catalogue
from services.layers.history import record_run
from services.layers.migrator import (
    BASE,
    UP,
    MigrationFailed,
    Recorder,
    RevisionRun,
    Timeouts,
    current_revision,
    downgrade_layer,
    needs_quiet,
    revisions,
    upgrade_layer,
)
from services.models import (
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
from services.settings import Settings
from services.store_jobs import LOCK_STEP
from services.tenancy.context import tenant_context
from services.tenant_locks import TenantBusy, release_tenant_lock

ROLLOUT_TENANT = "rollout_tenant"
MIGRATE_STEP = "migrate"


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
        layer=spec.layer,
        revision=spec.revision,
        selection=spec.selection.as_json(),
        canary=spec.canary,
        wave_size=spec.wave_size,
        concurrency=spec.concurrency,
        per_server=spec.per_server,
        halt_after_failures=spec.halt_after_failures,
        halt_failure_percent=spec.halt_failure_percent,
        lock_timeout_ms=spec.lock_timeout_ms,
        statement_timeout_ms=spec.statement_timeout_ms,
        backup_first=spec.backup_first,
        force=spec.force,
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


async def advance(session: AsyncSession, rollout_id: int) -> Rollout:
    """Apply the halt rule, finish the rollout, or start the next tenants of its current wave.
    It reads counts and the current wave's queued tenants, not every tenant, so its cost does not
    grow with the fleet."""
    # A write first: the rollout row's lock (the database's write lock on SQLite), so that two
    # tenants finishing at once decide one after the other, each seeing what the other started.
    await session.execute(update(Rollout).where(Rollout.id == rollout_id).values(status=Rollout.status))
    rollout = await session.get_one(Rollout, rollout_id, populate_existing=True)
    mine = RolloutTenant.rollout_id == rollout_id
    if rollout.status == RolloutStatus.CANCELLED:
        await session.execute(
            update(RolloutTenant)
            .where(mine, RolloutTenant.status == RolloutTenantStatus.QUEUED)
            .values(status=RolloutTenantStatus.SKIPPED, error="The rollout was cancelled before its turn.")
        )
    counted = await session.execute(
        select(RolloutTenant.wave, RolloutTenant.status, func.count())
        .where(mine)
        .group_by(RolloutTenant.wave, RolloutTenant.status)
    )
    counts: dict[int, Counter[str]] = {}
    for wave, status, how_many in counted:
        counts.setdefault(wave, Counter())[status] = how_many
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
        return rollout
    if halted := _halt_reason(rollout, counts):
        rollout.status, rollout.note = RolloutStatus.HALTED, halted
        return rollout
    unfinished = [
        wave
        for wave, count in counts.items()
        if count[RolloutTenantStatus.QUEUED] or count[RolloutTenantStatus.RUNNING]
    ]
    if not unfinished:
        rollout.status, rollout.finished_at = RolloutStatus.FINISHED, utcnow()
        return rollout
    if len(running) >= rollout.concurrency:
        return rollout
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
    for members in waiting.values():
        if len(running) >= rollout.concurrency:
            break
        server = members[0].server
        if per_server[server] >= rollout.per_server:
            continue
        await _start_unit(session, rollout, members)
        running[_unit(members[0])] = server
        per_server[server] += 1
    return rollout


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


async def _start_unit(session: AsyncSession, rollout: Rollout, members: list[RolloutTenant]) -> None:
    steps = [LOCK_STEP, *(SAFETY_BACKUP_STEPS if rollout.backup_first else ()), MIGRATE_STEP]
    job = await jobs.record_job(
        session,
        ROLLOUT_TENANT,
        tenant_id=members[0].tenant_id,
        payload={"rollout_id": rollout.id, "rows": [row.id for row in members]},
        steps=steps,
    )
    for row in members:
        row.status, row.job_id, row.started_at = RolloutTenantStatus.RUNNING, job.id, utcnow()


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
    counts: dict[int, Counter[str]] = {}
    rows = await session.execute(
        select(RolloutTenant.rollout_id, RolloutTenant.status, func.count()).group_by(
            RolloutTenant.rollout_id, RolloutTenant.status
        )
    )
    for rollout_id, status, count in rows:
        counts.setdefault(rollout_id, Counter())[status] = count
    return counts


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
    """Perform the rollout's tenant jobs in this process, as a worker would, side by side as the
    rollout starts them (its concurrency), until it starts no more: the command line's way with
    the embedded broker, whose workers live in the portal's process and never hear of jobs
    recorded elsewhere."""

    async def perform(job_id: int, tenant_id: int | None) -> None:
        with tenant_context(tenant_id):
            await jobs.perform_job(database, job_id, settings)

    running: dict[int, asyncio.Task[None]] = {}
    while True:
        async with database.session() as session:
            queued = await session.execute(
                select(Job.id, Job.tenant_id)
                .join(RolloutTenant, RolloutTenant.job_id == Job.id)
                .where(RolloutTenant.rollout_id == rollout_id, Job.status == JobStatus.QUEUED)
                .distinct()
            )
            for job_id, tenant_id in queued:
                if job_id not in running:
                    running[job_id] = asyncio.create_task(perform(job_id, tenant_id))
        if not running:
            async with database.session() as session:
                return await session.get_one(Rollout, rollout_id)
        done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a job's own failure is on its record; anything else is raised here
        running = {job_id: task for job_id, task in running.items() if task not in done}


# One tenant's job ---------------------------------------------------------------------------------


@dataclass
class RolloutRun(Provisioning):
    """What every step of one tenant's rollout job works with: a provisioning run's (its layers,
    and the record of every revision it runs), and the rollout's."""

    rollout_id: int = 0
    row_ids: tuple[int, ...] = ()

    @classmethod
    def named_in(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return {"rollout_id": int(payload["rollout_id"]), "row_ids": tuple(payload["rows"])}

    async def rows(self, session: AsyncSession) -> list[RolloutTenant]:
        statement = (
            select(RolloutTenant).where(RolloutTenant.id.in_(self.row_ids)).order_by(RolloutTenant.position)
        )
        return list(await session.scalars(statement))

    async def rollout(self, session: AsyncSession) -> Rollout:
        return await session.get_one(Rollout, self.rollout_id)


async def lock(run: RolloutRun, session: AsyncSession) -> str:
    rollout, tenant = await run.rollout(session), await run.tenant(session)
    if tenant.status != TenantStatus.ACTIVE:
        raise TenantRefused(f"the tenant is {tenant.status}")
    said = await run.take_lock(
        "rollout", why=f" (rollout #{rollout.id})", patience=rollout.lock_timeout_ms / 1000
    )
    if rollout.backup_first:
        await record_safety_backup(run, session, tenant, f"rollout #{rollout.id}")
    return said


async def migrate(run: RolloutRun, session: AsyncSession) -> str:
    """Take the tenant's layers to their targets, one revision per transaction; on a failure, back
    to where they started. Says what it did; a failure is said on the tenant's row, not raised."""
    rollout, tenant, rows = await run.rollout(session), await run.tenant(session), await run.rows(session)
    targets = dict(rows[0].target_revisions)
    layers = [(layer, target) for key, target in targets.items() if (layer := run.catalogue.named(key))]
    timeouts = Timeouts(rollout.lock_timeout_ms, rollout.statement_timeout_ms)
    store = run.store(tenant).open(busy_timeout_ms=rollout.lock_timeout_ms)
    record = run.record
    try:
        started = await _started_at(run, session, rows, tenant, store, layers)
        if _needs_quiet(layers, started):
            await _quiet(run, session, rows)
        moved: list[str] = []
        try:
            for layer, target in layers:
                if applied := await _move(store, layer, target, record, timeouts):
                    moved.append(f"{layer.key} to {target} ({applied} revision(s))")
        except MigrationFailed as failure:
            back = await _take_back(store, layers, started, record, timeouts)
            for row in rows:
                row.status, row.error, row.detail = RolloutTenantStatus.FAILED, failure.message, back
                row.finished_at = utcnow()
            return f"failed: {failure.message}; {back}"
    finally:
        await store.dispose()
    said = "; ".join(moved) or "already at the target"
    for row in rows:
        row.status, row.detail, row.finished_at = RolloutTenantStatus.SUCCEEDED, said, utcnow()
    return said


def _needs_quiet(layers: list[tuple[Layer, str | None]], started: dict[str, str | None]) -> bool:
    return any(
        needs_quiet(layer, revision)
        for layer, target in layers
        for revision, _ in moves(layer, started.get(layer.key), target)
    )


async def _quiet(run: RolloutRun, session: AsyncSession, rows: list[RolloutTenant]) -> None:
    """The tenants in maintenance (the portal says so, the API answers 503) until the job ends:
    one of their revisions needs them quiet. Remembered, so that the end puts them back."""
    for row in rows:
        (await session.get_one(Tenant, row.tenant_id)).status = TenantStatus.MAINTENANCE
    await run.remember(session, quieted=[row.tenant_id for row in rows])
    await session.commit()


async def _move(
    store: Database, layer: Layer, target: str | None, record: Recorder, timeouts: Timeouts
) -> int:
    current = await current_revision(store, layer)
    steps = moves(layer, current, target)
    if not steps:
        return 0
    if steps[0][1] == UP:
        return await upgrade_layer(store, layer, record, target, timeouts=timeouts)
    return await downgrade_layer(store, layer, record, target or BASE, timeouts=timeouts)


async def _started_at(
    run: RolloutRun,
    session: AsyncSession,
    rows: list[RolloutTenant],
    tenant: Tenant,
    store: Database,
    layers: list[tuple[Layer, str | None]],
) -> dict[str, str | None]:
    """Where the layers were before this rollout touched them: read from the store and committed
    before any change, so a resumed job (and a rollback) still knows. A resumed job first puts on
    record what the store holds but the history missed (a revision committed in the store just
    before the worker died), so every revision appears in the history once."""
    if rows[0].started_at_revisions is not None:
        await _record_missed(run, session, tenant, store, layers)
        return dict(rows[0].started_at_revisions)
    found = {layer.key: await current_revision(store, layer) for layer, _ in layers}
    for row in rows:
        row.started_at_revisions = found
    await session.commit()
    return found


async def _record_missed(
    run: RolloutRun,
    session: AsyncSession,
    tenant: Tenant,
    store: Database,
    layers: list[tuple[Layer, str | None]],
) -> None:
    recorded = {
        row.layer: row.revision
        for row in await session.scalars(select(TenantLayer).where(TenantLayer.tenant_id == tenant.id))
    }
    for layer, _ in layers:
        actual = await current_revision(store, layer)
        for revision, direction in moves(layer, recorded.get(layer.key), actual):
            reached = revision if direction == UP else _below(layer, revision)
            missed = RevisionRun(layer.key, revision, direction, 0.0, reached=reached)
            await record_run(session, tenant, missed, job_id=run.job_id)
    await session.commit()


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
    for layer, _ in reversed(layers):
        start = started.get(layer.key)
        try:
            if await _move(store, layer, start, record, timeouts):
                said.append(f"{layer.key} taken back to {start or 'none'}")
        except MigrationFailed as failure:
            said.append(f"{layer.key} could not be taken back ({failure.message})")
    return "; ".join(said) or "nothing had changed"


async def _finish(run: RolloutRun, failure: Exception | None) -> None:
    """Let go of the tenant, say how a refused or failed job ended on its rows, and let the
    rollout go on."""
    await release_tenant_lock(run.landlord, run.tenant_id, run.job_id)
    async with run.landlord.session() as session:
        for tenant_id in (await run.payload(session)).get("quieted", []):
            tenant = await session.get_one(Tenant, tenant_id)
            if tenant.status == TenantStatus.MAINTENANCE:
                tenant.status = TenantStatus.ACTIVE
        if failure is not None:
            refused = isinstance(failure, jobs.StepFailed) and isinstance(
                failure.__cause__, (TenantRefused, TenantBusy)
            )
            for row in await run.rows(session):
                if row.status == RolloutTenantStatus.RUNNING:
                    row.status = RolloutTenantStatus.REFUSED if refused else RolloutTenantStatus.FAILED
                    row.error = (
                        f"Refused when its turn came: {failure.__cause__}." if refused else str(failure)
                    )
                    row.finished_at = utcnow()
            payload = (await session.get_one(Job, run.job_id)).payload
            if payload.get(SAFETY_BACKUP_ID) is not None and isinstance(failure, jobs.StepFailed):
                await _record_failure(safety_run(run, int(payload[SAFETY_BACKUP_ID])), failure)
        await advance(session, run.rollout_id)


@jobs.job_handler(ROLLOUT_TENANT)
async def rollout_tenant(database: Database, job: Job, settings: Settings) -> None:
    run = RolloutRun.of(database, job, settings)
    backup_first = SAFETY_BACKUP_STEPS[0] in {step.name for step in job.steps}
    steps: list[tuple[str, StepFunction[RolloutRun]]] = [
        (LOCK_STEP, lock),
        *(safety_backup_steps() if backup_first else ()),
        (MIGRATE_STEP, migrate),
    ]
    try:
        await jobs.run_steps(database, job.id, steps, run)
    except Exception as failure:
        await _finish(run, failure)
        raise
    await _finish(run, None)
