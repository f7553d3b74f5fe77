"""Fleet moves: many tenants moved to one kind of store by a plan, each by a move of its own (the
`move` job, services.moves.steps) on the one job machinery, so that a plan inherits what one move
promises: every tenant is wholly in its old store or wholly in its new one, and a worker killed
mid-move resumes it.

    dry run (plan_moves) → start_plan: its tenants' rows, the first turns → each turn records the
    tenant's move (sent on commit) → the move job ends: in the transaction that says so, its row
    says how, and `advance` hands out the next turns → … → none left: finished

`advance` is the plan's one decision point, under the plan row's lock: it applies the halt rule,
finishes the plan, or starts the next tenants of the current batch, within the plan's concurrency
(each move then waits for room on its database server like any move: services.server_limits).
A batch starts when the one before it has ended. A tenant that cannot move when its turn comes
(busy moving, no longer active) is refused, said why, and the turn passes to the next."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.backups.content import count_rows
from services.db import Database, statuses_by
from services.errors import Conflict, DomainError, InvalidFields, NotFound
from services.models import (
    IsolationMode,
    Job,
    JobStatus,
    MovePlan,
    MovePlanStatus,
    MovePlanTenant,
    MovePlanTenantStatus,
    SchemaSnapshot,
    Tenant,
    TenantMove,
    TenantStatus,
)
from services.models.types import utcnow
from services.moves.requests import MOVE, MoveTarget, check_move, describe_kind, request_move
from services.selection import Selection
from services.settings import Settings
from services.tenancy.stores import StoreLocation, location_of, server_name_of, server_of

#: What a move is guessed to take, and its rows a second, before any move here was measured.
UNMEASURED_MOVE_SECONDS = 2.0
UNMEASURED_ROWS_PER_SECOND = 20_000.0
#: A move of this many rows or more tells how fast rows are copied; a smaller one, what every
#: move pays whatever its rows.
LARGE_MOVE_ROWS = 1_000


@dataclass(frozen=True)
class MovePlanSpec:
    """What a landlord admin asks of a fleet move."""

    selection: Selection = field(default_factory=Selection)
    target: MoveTarget = field(default_factory=lambda: MoveTarget(IsolationMode.SCHEMA))
    batch_size: int = 10
    concurrency: int = 2
    #: Halt once this many tenants failed to move (None: never halt).
    halt_after_failures: int | None = 1

    def check(self, settings: Settings) -> None:
        """Raise InvalidFields naming every field that is wrong."""
        errors: dict[str, str] = {}
        if self.target.isolation not in set(IsolationMode):
            modes = ", ".join(mode.value for mode in IsolationMode)
            errors["isolation"] = f"Move to one of the isolation modes: {modes}."
        if self.target.server is not None and self.target.server not in settings.servers:
            named = ", ".join(settings.servers) or "none"
            errors["server"] = (
                f"There is no tenant server {self.target.server!r} here; the servers are: {named}."
            )
        for name in ("batch_size", "concurrency"):
            if getattr(self, name) < 1:
                errors[name] = f"{name.replace('_', ' ').capitalize()} must be at least 1."
        if self.halt_after_failures is not None and self.halt_after_failures < 1:
            errors["halt_after_failures"] = "Halt after at least one failed tenant, or leave it empty."
        if errors:
            raise InvalidFields(errors)

    @classmethod
    def of(cls, plan: MovePlan) -> MovePlanSpec:
        return cls(
            Selection.of(plan.selection),
            MoveTarget(plan.to_isolation, plan.to_backend, plan.to_server),
            plan.batch_size,
            plan.concurrency,
            plan.halt_after_failures,
        )


def describe_target(settings: Settings, target: MoveTarget) -> str:
    """'schema', 'database on postgresql', 'shared on pg-b': what a plan moves its tenants to."""
    said = str(target.isolation)
    if target.backend:
        said += f" on {target.backend}"
    if target.server:
        said += f" on {target.server}"
    return said


# The dry run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedMove:
    tenant_id: int
    slug: str
    name: str
    #: Where it goes, in words.
    going: str
    #: Rows per table in its store now (only its own rows, in a shared store).
    rows: dict[str, int]
    batch: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class MoveRefusal:
    tenant_id: int
    slug: str
    why: str


@dataclass(frozen=True)
class Throughput:
    """How long a move takes here: a part every move pays (locks, a backup's files, a new store,
    the swap), from the median small move measured, and a part for each row, from the moves big
    enough for their rows to count (the guesses above until there are such moves)."""

    seconds_per_move: float
    rows_per_second: float
    measured_moves: int
    #: The moves of LARGE_MOVE_ROWS rows or more the rate of rows was measured on.
    large_moves: int = 0

    @classmethod
    def of(cls, moves: list[tuple[int, float]]) -> Throughput:
        """From measured moves: (rows, seconds) each."""
        if not moves:
            return cls(UNMEASURED_MOVE_SECONDS, UNMEASURED_ROWS_PER_SECOND, 0)
        small = [seconds for rows, seconds in moves if rows < LARGE_MOVE_ROWS]
        fixed = statistics.median(small or [seconds for _, seconds in moves])
        large = [(rows, seconds) for rows, seconds in moves if rows >= LARGE_MOVE_ROWS]
        if not large:
            return cls(fixed, UNMEASURED_ROWS_PER_SECOND, len(moves))
        copying = sum(max(seconds - fixed, 0.001) for _, seconds in large)
        return cls(fixed, sum(rows for rows, _ in large) / copying, len(moves), len(large))

    def estimate_seconds(self, rows: int) -> float:
        return self.seconds_per_move + rows / self.rows_per_second

    def __str__(self) -> str:
        if not self.measured_moves:
            return "guessed: no move has been measured here yet"
        said = f"from {self.measured_moves} move(s) measured here: {self.seconds_per_move:.1f} s a move"
        if not self.large_moves:
            return f"{said}; rows a second guessed ({self.rows_per_second:,.0f}): no move of {LARGE_MOVE_ROWS:,} rows yet"
        return f"{said} and {self.rows_per_second:,.0f} rows a second"


@dataclass(frozen=True)
class MovePlanPreview:
    spec: MovePlanSpec
    tenants: list[PlannedMove]
    refused: list[MoveRefusal]
    throughput: Throughput

    @property
    def batches(self) -> int:
        return 1 + max((tenant.batch for tenant in self.tenants), default=-1)

    @property
    def total_rows(self) -> int:
        return sum(tenant.total_rows for tenant in self.tenants)

    @property
    def estimate_seconds(self) -> float:
        """Batches one after the other; within a batch, `concurrency` moves at a time."""
        total = 0.0
        for batch in range(self.batches):
            durations = [
                self.throughput.estimate_seconds(tenant.total_rows)
                for tenant in self.tenants
                if tenant.batch == batch
            ]
            total += max(sum(durations) / self.spec.concurrency, max(durations, default=0.0))
        return total


async def measured_throughput(session: AsyncSession) -> Throughput:
    """From the moves finished here (their copy time and rows)."""
    measured = await session.execute(
        select(TenantMove.rows, TenantMove.copy_ms).where(
            TenantMove.copy_ms.is_not(None), TenantMove.rows.is_not(None), TenantMove.copy_ms > 0
        )
    )
    return Throughput.of([(rows or 0, (copy_ms or 0) / 1000) for rows, copy_ms in measured])


async def rows_in_store(session: AsyncSession, settings: Settings, tenant: Tenant) -> dict[str, int]:
    """Rows per table of the tenant's store (its own rows only, in a shared store), counted in one
    statement over the tables its latest schema snapshot names (the store's, reflected, when it
    has none): a dry run of a thousand tenants reads each store once, briefly."""
    location: StoreLocation = location_of(settings, tenant)
    snapshot = (
        await session.get(SchemaSnapshot, tenant.schema_snapshot_id) if tenant.schema_snapshot_id else None
    )
    tables = list(snapshot.description.get("tables", {})) if snapshot is not None else None
    reader = Database(location.url, schema=location.schema)
    try:
        return await reader.read_whole(count_rows, tenant.id if location.is_shared else None, tables)
    finally:
        await reader.dispose()


def _selected(selection: Selection, settings: Settings, tenant: Tenant) -> bool:
    """Whether `selection` takes the tenant; its servers named as TENANTRY_TENANT_SERVERS names
    them (pg-a) or by address, as rollouts name them."""
    named = server_name_of(settings, tenant)
    return selection.takes(tenant, server_of(settings, tenant)) or (
        named is not None and selection.takes(tenant, named)
    )


async def plan_moves(session: AsyncSession, settings: Settings, spec: MovePlanSpec) -> MovePlanPreview:
    """The plan's dry run: which tenants move, in which batch, their rows per table, how long it
    should take, and which selected tenants cannot move and why. Reads each movable tenant's store
    to count its rows. Raises InvalidFields for a spec that cannot be run."""
    spec.check(settings)
    selected = [
        tenant
        for tenant in await session.scalars(
            select(Tenant).where(Tenant.status != TenantStatus.DELETED).order_by(Tenant.id)
        )
        if _selected(spec.selection, settings, tenant)
    ]
    planned: list[PlannedMove] = []
    refused: list[MoveRefusal] = []
    for tenant in selected:
        try:
            kind = await check_move(session, settings, tenant, spec.target)
            rows = await rows_in_store(session, settings, tenant)
        except DomainError as refusal:
            refused.append(MoveRefusal(tenant.id, tenant.slug, refusal.message))
            continue
        except (SQLAlchemyError, OSError) as unreadable:
            why = f"its store could not be read ({type(unreadable).__name__}); a move would fail."
            refused.append(MoveRefusal(tenant.id, tenant.slug, why))
            continue
        planned.append(
            PlannedMove(
                tenant.id,
                tenant.slug,
                tenant.name,
                describe_kind(settings, kind),
                rows,
                batch=len(planned) // spec.batch_size,
            )
        )
    return MovePlanPreview(spec, planned, refused, await measured_throughput(session))


# Starting, and each turn ---------------------------------------------------------------------------


async def start_plan(
    session: AsyncSession, settings: Settings, preview: MovePlanPreview, *, requested_by: str | None
) -> MovePlan:
    """Record the plan and its tenants (those refused by its dry run too, with why), and start its
    first moves (their jobs are sent when the session commits). Raises Conflict when no tenant
    can move."""
    if not preview.tenants:
        raise Conflict(
            "Nothing to move: no selected tenant can move there"
            + (f" ({len(preview.refused)} refused; the dry run says why)." if preview.refused else ".")
        )
    spec = preview.spec
    plan = MovePlan(
        status=MovePlanStatus.RUNNING,
        selection=spec.selection.as_json(),
        to_isolation=spec.target.isolation,
        to_backend=spec.target.backend,
        to_server=spec.target.server,
        batch_size=spec.batch_size,
        concurrency=spec.concurrency,
        halt_after_failures=spec.halt_after_failures,
        requested_by=requested_by,
    )
    session.add(plan)
    await session.flush()
    session.add_all(
        MovePlanTenant(
            plan_id=plan.id,
            tenant_id=tenant.tenant_id,
            batch=tenant.batch,
            position=position,
            status=MovePlanTenantStatus.QUEUED,
            planned_rows=tenant.rows,
        )
        for position, tenant in enumerate(preview.tenants)
    )
    session.add_all(
        MovePlanTenant(
            plan_id=plan.id,
            tenant_id=refusal.tenant_id,
            batch=preview.batches,
            position=len(preview.tenants) + index,
            status=MovePlanTenantStatus.REFUSED,
            planned_rows={},
            error=f"Refused at the start: {refusal.why}",
            finished_at=utcnow(),
        )
        for index, refusal in enumerate(preview.refused)
    )
    await session.flush()
    await advance(session, settings, plan.id)
    return plan


async def advance(session: AsyncSession, settings: Settings, plan_id: int) -> None:
    """Apply the halt rule, finish the plan, or start the next moves of its current batch within
    its concurrency. Reads counts and the current batch's queued rows, not every tenant."""
    # A write first: the plan row's lock (the database's write lock on SQLite), so that two moves
    # ending at once decide one after the other, each seeing what the other started.
    await session.execute(update(MovePlan).where(MovePlan.id == plan_id).values(status=MovePlan.status))
    plan = await session.get_one(MovePlan, plan_id, populate_existing=True)
    mine = MovePlanTenant.plan_id == plan_id
    if plan.status == MovePlanStatus.CANCELLED:
        await session.execute(
            update(MovePlanTenant)
            .where(mine, MovePlanTenant.status == MovePlanTenantStatus.QUEUED)
            .values(
                status=MovePlanTenantStatus.SKIPPED,
                error="The plan was cancelled before its turn.",
                finished_at=utcnow(),
            )
        )
    while True:
        counts = await statuses_by(session, MovePlanTenant.batch, MovePlanTenant.status, mine)
        moving = sum(count[MovePlanTenantStatus.MOVING] for count in counts.values())
        if plan.status != MovePlanStatus.RUNNING:
            if not moving and plan.finished_at is None and plan.status != MovePlanStatus.PAUSED:
                plan.finished_at = utcnow()
            return
        failed = sum(count[MovePlanTenantStatus.FAILED] for count in counts.values())
        failed -= plan.failures_resumed_past
        if plan.halt_after_failures and failed >= plan.halt_after_failures:
            plan.status = MovePlanStatus.HALTED
            plan.note = (
                f"Halted: {failed} tenant(s) failed to move"
                + (" since it was resumed" if plan.failures_resumed_past else "")
                + f" (the rule: halt after {plan.halt_after_failures})."
            )
            return
        unfinished = [
            batch
            for batch, count in counts.items()
            if count[MovePlanTenantStatus.QUEUED] or count[MovePlanTenantStatus.MOVING]
        ]
        if not unfinished:
            plan.status, plan.finished_at = MovePlanStatus.FINISHED, utcnow()
            return
        current = min(unfinished)
        if not await _start_turns(session, settings, plan, current, plan.concurrency - moving):
            return
        # Every queued tenant of the batch was refused and none is moving: the next batch's turn.


async def _start_turns(
    session: AsyncSession, settings: Settings, plan: MovePlan, batch: int, room: int
) -> bool:
    """Start up to `room` moves of the batch's queued tenants, in their order. True when the batch
    ended without any (each was refused): the caller looks at the next batch."""
    if room <= 0:
        return False
    queued = await session.scalars(
        select(MovePlanTenant)
        .where(
            MovePlanTenant.plan_id == plan.id,
            MovePlanTenant.batch == batch,
            MovePlanTenant.status == MovePlanTenantStatus.QUEUED,
        )
        .order_by(MovePlanTenant.position)
    )
    started = 0
    target = MoveTarget(plan.to_isolation, plan.to_backend, plan.to_server)
    asker = f"move plan #{plan.id}" + (f", {plan.requested_by}" if plan.requested_by else "")
    for row in list(queued):
        if started == room:
            return False
        try:
            async with session.begin_nested():
                requested = await request_move(session, settings, row.tenant, target, requested_by=asker)
        except DomainError as refusal:
            row.status, row.finished_at = MovePlanTenantStatus.REFUSED, utcnow()
            row.error = f"Refused when its turn came: {refusal.message}"
            continue
        row.status, row.move_id, row.started_at = MovePlanTenantStatus.MOVING, requested.move.id, utcnow()
        started += 1
    await session.flush()
    moving = await session.scalar(
        select(func.count()).where(
            MovePlanTenant.plan_id == plan.id,
            MovePlanTenant.batch == batch,
            MovePlanTenant.status == MovePlanTenantStatus.MOVING,
        )
    )
    return not moving


@jobs.when_ended(MOVE)
async def move_ended(session: AsyncSession, settings: Settings, job: Job) -> None:
    """A plan's move ended (in the transaction that says so): its row says how, and the plan
    takes its next turn. Moves asked for one by one belong to no plan: nothing to do."""
    row = await session.scalar(
        select(MovePlanTenant)
        .join(TenantMove, TenantMove.id == MovePlanTenant.move_id)
        .where(TenantMove.job_id == job.id, MovePlanTenant.status == MovePlanTenantStatus.MOVING)
    )
    if row is None:
        return
    row.finished_at = utcnow()
    if job.status == JobStatus.SUCCEEDED:
        row.status = MovePlanTenantStatus.MOVED
    else:
        row.status, row.error = MovePlanTenantStatus.FAILED, job.error or "its move failed"
    await session.flush()
    await advance(session, settings, row.plan_id)


# Pausing, resuming, cancelling ---------------------------------------------------------------------


async def find_plan(session: AsyncSession, plan_id: int) -> MovePlan:
    plan = await session.get(MovePlan, plan_id)
    if plan is None:
        raise NotFound(f"There is no move plan #{plan_id}.")
    return plan


async def pause(session: AsyncSession, settings: Settings, plan: MovePlan) -> None:
    if plan.status != MovePlanStatus.RUNNING:
        raise Conflict(f"Move plan #{plan.id} is {plan.status}; only a running plan pauses.")
    plan.status = MovePlanStatus.PAUSED


async def resume(session: AsyncSession, settings: Settings, plan: MovePlan) -> None:
    if plan.status not in (MovePlanStatus.PAUSED, MovePlanStatus.HALTED):
        raise Conflict(f"Move plan #{plan.id} is {plan.status}; only a paused or halted plan resumes.")
    plan.status, plan.note, plan.finished_at = MovePlanStatus.RUNNING, None, None
    # The halt rule counts the failures from here on: those it halted for were looked at.
    plan.failures_resumed_past = (
        await session.scalar(
            select(func.count()).where(
                MovePlanTenant.plan_id == plan.id, MovePlanTenant.status == MovePlanTenantStatus.FAILED
            )
        )
        or 0
    )
    await session.flush()
    await advance(session, settings, plan.id)


async def cancel(session: AsyncSession, settings: Settings, plan: MovePlan) -> None:
    """No tenant starts moving; those moving finish their move."""
    if plan.status in (MovePlanStatus.CANCELLED, MovePlanStatus.FINISHED):
        raise Conflict(f"Move plan #{plan.id} is {plan.status} already.")
    plan.status = MovePlanStatus.CANCELLED
    await session.flush()
    await advance(session, settings, plan.id)


# The report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MovePlanReport:
    plan: MovePlan
    tenants: list[MovePlanTenant]

    @property
    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self.tenants)

    @property
    def rows_moved(self) -> int:
        return sum(row.move.rows or 0 for row in self.moved if row.move is not None)

    @property
    def moved(self) -> list[MovePlanTenant]:
        return [row for row in self.tenants if row.status == MovePlanTenantStatus.MOVED and row.move]

    def freeze_ms(self, share: float) -> int | None:
        """The write freeze (its maintenance page) that `share` of the moved tenants stayed within."""
        freezes = sorted(
            row.move.freeze_ms for row in self.moved if row.move and row.move.freeze_ms is not None
        )
        if not freezes:
            return None
        return freezes[min(len(freezes) - 1, int(share * len(freezes)))]

    @property
    def summary(self) -> str:
        counts = self.counts
        said = ", ".join(f"{counts[status]} {status}" for status in MovePlanTenantStatus if counts[status])
        return said or "no tenant"


async def plan_report(session: AsyncSession, plan_id: int) -> MovePlanReport:
    plan = await find_plan(session, plan_id)
    rows = await session.scalars(
        select(MovePlanTenant).where(MovePlanTenant.plan_id == plan_id).order_by(MovePlanTenant.position)
    )
    return MovePlanReport(plan, list(rows.unique()))


async def list_plans(session: AsyncSession) -> list[tuple[MovePlan, Counter[str]]]:
    """Every plan, newest first, with how many of its tenants are in each status."""
    plans = list(await session.scalars(select(MovePlan).order_by(MovePlan.id.desc())))
    counts = await statuses_by(session, MovePlanTenant.plan_id, MovePlanTenant.status)
    return [(plan, counts.get(plan.id, Counter())) for plan in plans]


# Running here ---------------------------------------------------------------------------------------


async def run_here(database: Database, settings: Settings, plan_id: int) -> MovePlan:
    """Run the plan's moves in this process, side by side as the plan starts them, until it
    starts no more (services.jobs.run_jobs_here: the embedded broker's way from the command line)."""

    async def queued(session: AsyncSession) -> list[tuple[int, int | None]]:
        found = await session.execute(
            select(Job.id, Job.tenant_id)
            .join(TenantMove, TenantMove.job_id == Job.id)
            .join(MovePlanTenant, MovePlanTenant.move_id == TenantMove.id)
            .where(MovePlanTenant.plan_id == plan_id, Job.status == JobStatus.QUEUED)
        )
        return [(job_id, tenant_id) for job_id, tenant_id in found]

    await jobs.run_jobs_here(database, settings, queued)
    async with database.session() as session:
        return await session.get_one(MovePlan, plan_id)
