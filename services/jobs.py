"""Jobs: the landlord database is the durable record of background work; the broker only
delivers job ids.

A worker claims a job with one conditional UPDATE and holds a lease on it, renewed while it
runs. A re-sent message finds the job claimed (lease alive) or finished and does nothing; a job
whose worker died (lease expired) is claimed again and resumes at its first unfinished step.
A job for a tenant runs only inside that tenant's context (see services.tenancy.context).

Workers are shared fairly between tenants: a tenant's job waits (`TenantBusy`; the worker sends
it again a moment later) while the tenant already runs `jobs_per_tenant` jobs, or already runs
one while another tenant's job waits with none running. So a tenant with 200 jobs queued holds one
worker while others wait, and every worker when no one else does; and a tenant with none running
always starts, so the rule never stops the whole queue.

Jobs of heavy store work (backups, restores, migrations: `job_handler(..., server_work=…)`) are
also held to the room on their tenant's database server (services.server_limits): a claim waits
(`ServerBusy`) while the server runs as many of that work as it takes at once.

A recorded job is sent on commit: `record_job` registers it on its session, and once the
session's transaction has committed its id goes to the workers through the session's
JobSender (given by the composition root, `send_jobs_on_commit`). A rolled-back transaction, or
savepoint, sends none of the jobs recorded in it (Zulip's `queue_event_on_commit`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, and_, case, event, exists, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, aliased

from services.db import Database
from services.models import Job, JobStatus, JobStep, StepStatus, StoreEntry, Tenant
from services.models.types import utcnow
from services.server_limits import ServerWork, decide_alone, room_on
from services.settings import Settings
from services.tenancy.context import current_tenant_id, tenant_context
from services.tenancy.stores import connections_kept_open, server_of

log = logging.getLogger(__name__)

JobHandler = Callable[[Database, Job, Settings], Awaitable[None]]
_handlers: dict[str, JobHandler] = {}
#: The kind of store work each kind of job does on its tenant's database server, where it does some.
_server_work: dict[str, ServerWork] = {}
#: What else is written when a job of a kind ends, in the transaction that says it ended.
JobEnded = Callable[[AsyncSession, Settings, Job], Awaitable[None]]
_when_ended: dict[str, list[JobEnded]] = {}

C = TypeVar("C")
#: A step: does its work for context C, writing landlord rows through the session it is given
#: (committed together with the step's success), and returns a sentence saying what it did.
StepFunction = Callable[[C, AsyncSession], Awaitable[str]]


class KeepsPayload:
    """A job's run whose steps keep what they learn in the job's payload, where a resumed job
    finds it."""

    job_id: int

    async def payload(self, session: AsyncSession) -> dict[str, Any]:
        # The column alone: the whole job brings its tenant and, in a second query, its steps.
        payload = await session.scalar(select(Job.payload).where(Job.id == self.job_id))
        if payload is None:
            raise LookupError(f"job #{self.job_id} is gone")
        return dict(payload)

    async def remember(self, session: AsyncSession, **values: Any) -> None:
        """Write into the job's payload, committed with the step that learnt them."""
        job = await session.get_one(Job, self.job_id)
        job.payload = {**job.payload, **values}


async def say_in_step(database: Database, job_id: int, step: str, detail: str) -> None:
    """What a step is waiting for, shown in it while it waits (committed at once)."""
    async with database.session() as session:
        await session.execute(
            update(JobStep).where(JobStep.job_id == job_id, JobStep.name == step).values(detail=detail)
        )


async def settle_steps(session: AsyncSession, job_id: int, settled: dict[str, str]) -> None:
    """Mark steps still ahead of the job succeeded, each with what made it unnecessary, in the
    commit of the step that made them so (a store cloned at its layers' heads has none to apply):
    the job then passes them by, as a resumed job passes the steps it finished."""
    now = utcnow()
    await session.execute(
        update(JobStep)
        .where(JobStep.job_id == job_id, JobStep.name.in_(settled), JobStep.status != StepStatus.SUCCEEDED)
        .values(
            status=StepStatus.SUCCEEDED,
            started_at=now,
            finished_at=now,
            detail=case(settled, value=JobStep.name),
        )
    )


class StepFailed(Exception):
    def __init__(self, step: str, error: str) -> None:
        super().__init__(f"{step}: {error}")
        self.step = step
        self.error = error


class OutsideTenantContext(RuntimeError):
    """A tenant's job reached a worker without its tenant context; it is not run."""


def job_handler(kind: str, *, server_work: ServerWork | None = None) -> Callable[[JobHandler], JobHandler]:
    """Register the service function that carries out jobs of `kind`, and the kind of store work
    it does on a database server (held to that server's room for it), if any."""

    def register(handler: JobHandler) -> JobHandler:
        _handlers[kind] = handler
        if server_work is not None:
            _server_work[kind] = server_work
        return handler

    return register


def when_ended(kind: str) -> Callable[[JobEnded], JobEnded]:
    """Register what follows, in the same transaction, when a job of `kind` ends (succeeded or
    failed; the job as it ended is given): a fleet's next turn, say. A worker killed before that
    commit leaves the job unfinished, so it resumes and ends again: nothing that follows is lost."""

    def register(follow: JobEnded) -> JobEnded:
        _when_ended.setdefault(kind, []).append(follow)
        return follow

    return register


def kinds_doing(work: ServerWork) -> list[str]:
    """The kinds of job that do `work` on a database server."""
    return [kind for kind, done in _server_work.items() if done is work]


class JobSender(Protocol):
    """Hands a committed job's id, in its tenant's context, to the workers (workers.runner.JobQueue)."""

    def send(self, job_id: int, tenant_id: int | None = None) -> None: ...


# Session.info keys: the sender a database's sessions send through, and the jobs a session has
# recorded (still uncommitted) or committed (to be sent once its transaction has ended).
_SENDER = "tenantry.job_sender"
_RECORDED = "tenantry.jobs_recorded"
_COMMITTED = "tenantry.jobs_committed"


@dataclass(frozen=True)
class _RecordedJob:
    job_id: int
    tenant_id: int | None
    #: The innermost transaction (a savepoint, or the session's own) the job was recorded in.
    transaction: SessionTransaction


def send_jobs_on_commit(database: Database, sender: JobSender) -> None:
    """From now on, jobs recorded in `database`'s sessions are sent through `sender` after their
    transaction commits. Without this (a script or test that runs jobs itself) they are only
    recorded."""
    database.sessionmaker.configure(info={_SENDER: sender})


async def record_job(
    session: AsyncSession,
    kind: str,
    *,
    tenant_id: int | None = None,
    payload: dict[str, Any] | None = None,
    steps: Sequence[str] = (),
) -> Job:
    """Write the job (queued) and its steps (pending). Its id is sent once the session commits."""
    if kind not in _handlers:
        raise ValueError(f"no handler for jobs of kind {kind!r}")
    job = Job(
        kind=kind,
        tenant_id=tenant_id,
        payload=payload or {},
        steps=[JobStep(position=position, name=name) for position, name in enumerate(steps)],
    )
    session.add(job)
    await session.flush()
    _remember_to_send(session.sync_session, job)
    return job


def _remember_to_send(session: Session, job: Job) -> None:
    if _SENDER not in session.info:
        return
    transaction = session.get_nested_transaction() or session.get_transaction()
    assert transaction is not None, "the flush has begun a transaction"
    session.info.setdefault(_RECORDED, []).append(_RecordedJob(job.id, job.tenant_id, transaction))


@event.listens_for(Session, "after_commit")
def _keep_committed_jobs(session: Session) -> None:
    # Also called when a savepoint is released: its jobs then share the fate of the transaction
    # around it. The outermost commit hands them on, to be sent once the transaction has ended.
    if not session.in_nested_transaction() and _RECORDED in session.info:
        session.info.setdefault(_COMMITTED, []).extend(session.info.pop(_RECORDED))


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_jobs(session: Session, previous_transaction: SessionTransaction) -> None:
    if _RECORDED in session.info:
        session.info[_RECORDED] = [
            recorded
            for recorded in session.info[_RECORDED]
            if not _within(recorded.transaction, previous_transaction)
        ]


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_transaction_end")
def _send_committed_jobs(session: Session, transaction: SessionTransaction) -> None:
    # Sent here, once the session is done with the transaction, rather than in after_commit: a
    # broker that refuses a message then fails the commit call cleanly (the rows stay committed
    # and queued), instead of leaving the session half-way through its commit.
    if transaction.parent is not None:
        return
    session.info.pop(_RECORDED, None)  # closed without a commit
    for recorded in session.info.pop(_COMMITTED, ()):
        session.info[_SENDER].send(recorded.job_id, recorded.tenant_id)


async def record_when_due(
    database: Database, namespace: str, hours: float, record: Callable[[AsyncSession], Awaitable[Job]]
) -> Job | None:
    """A periodic job, recorded by `record` once its slot has come (every `hours`; none when 0).
    Every worker looks; the first to store the slot's row under `namespace` records the job, the
    others find the row taken."""
    if not hours:
        return None
    now = utcnow()
    slot = int(now.timestamp() // (hours * 3600))
    try:
        async with database.session() as session:
            session.add(
                StoreEntry(
                    namespace=namespace, key=str(slot), value=b"", expires_at=now + timedelta(hours=2 * hours)
                )
            )
            await session.flush()
            return await record(session)
    except IntegrityError:
        return None


async def requeue_orphaned_jobs(session: AsyncSession) -> list[Job]:
    """After a restart of the embedded worker nothing else can be running them: queue them again."""
    await session.execute(
        update(Job)
        .where(Job.status == JobStatus.RUNNING)
        .values(status=JobStatus.QUEUED, lease_expires_at=None)
    )
    return list(await session.scalars(select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id)))


async def abandoned_jobs(session: AsyncSession) -> list[Job]:
    """Running jobs whose worker stopped renewing the lease: their worker died."""
    statement = select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < utcnow())
    return list(await session.scalars(statement.order_by(Job.id)))


class MustWait(Exception):
    """The job cannot start yet: the worker sends it again a moment later."""


class TenantBusy(MustWait):
    """The job's tenant has its share of the workers already."""


class ServerBusy(MustWait):
    """The database server of the job's tenant runs as many jobs of its kind of work as it takes."""


def _within_share(jobs_per_tenant: int, now: datetime) -> ColumnElement[bool]:
    """The claimed job's tenant may start one more: it runs fewer than `jobs_per_tenant`, and
    none at all if another tenant's job waits with nothing running."""
    running, waiting, busy = aliased(Job), aliased(Job), aliased(Job)
    runs = (
        select(func.count())
        .where(running.tenant_id == Job.tenant_id, running.status == JobStatus.RUNNING)
        .where(running.lease_expires_at >= now, running.id != Job.id)
        .scalar_subquery()
    )
    another_waits = exists().where(
        waiting.status == JobStatus.QUEUED,
        or_(waiting.tenant_id.is_(None), waiting.tenant_id != Job.tenant_id),
        ~exists().where(
            busy.tenant_id == waiting.tenant_id,
            busy.status == JobStatus.RUNNING,
            busy.lease_expires_at >= now,
        ),
    )
    return or_(Job.tenant_id.is_(None), and_(runs < jobs_per_tenant, or_(runs == 0, ~another_waits)))


async def _claim(database: Database, job_id: int, lease: timedelta, settings: Settings | None) -> Job | None:
    """The job, claimed for this worker; None when it is finished or a live worker holds it.
    With `settings` (the workers' way), TenantBusy when its tenant has its share of the workers
    already, and ServerBusy when its server has no room for its kind of work."""
    now = utcnow()
    claimable = or_(
        Job.status == JobStatus.QUEUED, (Job.status == JobStatus.RUNNING) & (Job.lease_expires_at < now)
    )
    async with database.session() as session:
        fair: ColumnElement[bool] = true()
        room: ColumnElement[bool] = true()
        server: str | None = None
        if settings is not None:
            if database.engine.dialect.name == "postgresql":
                # One claim at a time per tenant, so that two workers never both see a free share.
                await session.execute(
                    select(Tenant.id)
                    .join(Job, Job.tenant_id == Tenant.id)
                    .where(Job.id == job_id)
                    .with_for_update(of=Tenant)
                )
            fair = _within_share(settings.jobs_per_tenant, now)
            server, room = await _room_for(session, settings, job_id, now)
        claimed = await session.execute(
            update(Job)
            .where(Job.id == job_id, claimable, fair, room)
            .values(
                status=JobStatus.RUNNING,
                started_at=now,
                lease_expires_at=now + lease,
                attempts=Job.attempts + 1,
                server=server,
            )
            .returning(Job)
        )
        job = claimed.scalar_one_or_none()
        if job is not None:
            # Stamped again once granted: a job that took the room another left starts after the
            # other's end, which was stamped before that end committed (`now` may be earlier).
            job.started_at = utcnow()
        if job is None and settings is not None:
            waits = await session.execute(select(claimable, room).where(Job.id == job_id))
            found = waits.first()
            if found is not None and found[0]:
                if not found[1]:
                    raise ServerBusy(f"job {job_id} waits for room on {server}")
                raise TenantBusy(f"job {job_id} waits for its tenant's share of the workers")
        return job


async def _room_for(
    session: AsyncSession, settings: Settings, job_id: int, now: datetime
) -> tuple[str | None, ColumnElement[bool]]:
    """The server the job's store work is on, and whether it has room for it (decided alone: see
    services.server_limits). No server and always room for a job that does no store work."""
    found = (await session.execute(select(Job.kind, Job.tenant_id).where(Job.id == job_id))).first()
    work = _server_work.get(found.kind) if found is not None else None
    if found is None or work is None or found.tenant_id is None:
        return None, true()
    server = server_of(settings, await session.get_one(Tenant, found.tenant_id))
    await decide_alone(session, server)
    return server, room_on(server, kinds_doing(work), settings.server_jobs[work], now, job_id)


async def _renew_lease(database: Database, job_id: int, lease: timedelta) -> None:
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            async with database.session() as session:
                await session.execute(
                    update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() + lease)
                )
        except Exception:  # one failed renewal must not end the lease: try again at the next beat
            log.warning("could not renew the lease of job %s; trying again", job_id, exc_info=True)


async def perform_job(
    database: Database, job_id: int, settings: Settings, *, share_workers: bool = False
) -> None:
    """Claim the job and run its handler; a job claimed elsewhere or finished is left alone. With
    `share_workers` (the workers' way), MustWait when its tenant has its share of them already or
    its server no room for its work."""
    lease = timedelta(seconds=settings.job_lease_seconds)
    job = await _claim(database, job_id, lease, settings if share_workers else None)
    if job is None:
        log.info("job %s is finished or claimed by a live worker; nothing to do", job_id)
        return
    outcome, error = JobStatus.SUCCEEDED, None
    renewal = asyncio.create_task(_renew_lease(database, job_id, lease))
    try:
        if job.tenant_id is not None and current_tenant_id() != job.tenant_id:
            raise OutsideTenantContext(
                f"job {job.id} belongs to tenant {job.tenant_id} but ran outside its context"
            )
        handler = _handlers.get(job.kind)
        if handler is None:
            raise LookupError(f"this version of Tenantry cannot run jobs of kind {job.kind!r}")
        async with connections_kept_open(database.servers):
            await handler(database, job, settings)
    except Exception as exc:
        log.exception("job %s (%s) failed", job.id, job.kind)
        outcome, error = JobStatus.FAILED, str(exc) or type(exc).__name__
    finally:
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
    ending = (
        update(Job)
        .where(Job.id == job_id)
        .values(status=outcome, error=error, finished_at=utcnow(), lease_expires_at=None)
    )
    follows = _when_ended.get(job.kind, [])
    async with database.session() as session:
        if not follows:  # the job as it ended, with its steps and tenant, only for those who follow
            await session.execute(ending)
            return
        as_ended = (await session.execute(ending.returning(Job))).scalar_one()
        for follow in follows:
            await follow(session, settings, as_ended)


async def run_jobs_here(
    database: Database,
    settings: Settings,
    queued: Callable[[AsyncSession], Awaitable[Iterable[tuple[int, int | None]]]],
) -> None:
    """Run the queued jobs `queued` finds (id, tenant) in this process, as workers would, side by
    side, looking again whenever one ends (a fleet's job records the next), until it finds none
    and none runs: the command line's way with the embedded broker, whose workers live in the
    portal's process and never hear of jobs recorded elsewhere."""

    async def perform(job_id: int, tenant_id: int | None) -> None:
        with tenant_context(tenant_id):
            await perform_job(database, job_id, settings)

    running: dict[int, asyncio.Task[None]] = {}
    while True:
        async with database.session() as session:
            for job_id, tenant_id in await queued(session):
                if job_id not in running:
                    running[job_id] = asyncio.create_task(perform(job_id, tenant_id))
        if not running:
            return
        done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a job's own failure is on its record; anything else is raised here
        running = {job_id: task for job_id, task in running.items() if task not in done}


async def run_steps(
    database: Database, job_id: int, steps: Sequence[tuple[str, StepFunction[C]]], context: C
) -> None:
    """Run the job's steps in order, skipping those that already succeeded (a resumed job, or steps
    an earlier step settled). A step is marked running before it starts; it is marked succeeded,
    and the next step running, in the same commit as its own landlord writes, so a step costs the
    landlord one transaction and a settled step none. A failing step is marked failed with its
    error, and StepFailed is raised."""
    functions, order = dict(steps), [name for name, _ in steps]
    async with database.session() as session:
        step = await _start_next_step(session, job_id, order)
    while step is not None:
        name, step_id = step
        try:
            async with database.session() as session:
                detail = await functions[name](context, session)
                await _finish_step(session, step_id, StepStatus.SUCCEEDED, detail=detail)
                step = await _start_next_step(session, job_id, order)
        except Exception as exc:
            log.exception("step %r of job %s failed", name, job_id)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            async with database.session() as session:
                await _finish_step(session, step_id, StepStatus.FAILED, error=message)
            raise StepFailed(name, message) from exc


async def _start_next_step(session: AsyncSession, job_id: int, order: list[str]) -> tuple[str, int] | None:
    """Mark the job's first step in `order` that has not succeeded running, and return its name
    and id; None when every step has succeeded."""
    rows = await session.execute(
        select(JobStep.name, JobStep.id, JobStep.status).where(JobStep.job_id == job_id)
    )
    unfinished = {name: step_id for name, step_id, status in rows if status != StepStatus.SUCCEEDED}
    name = next((name for name in order if name in unfinished), None)
    if name is None:
        return None
    await session.execute(
        update(JobStep)
        .where(JobStep.id == unfinished[name])
        .values(status=StepStatus.RUNNING, started_at=utcnow(), error=None, attempts=JobStep.attempts + 1)
    )
    return name, unfinished[name]


async def _finish_step(session: AsyncSession, step_id: int, status: StepStatus, **said: str) -> None:
    await session.execute(
        update(JobStep).where(JobStep.id == step_id).values(status=status, finished_at=utcnow(), **said)
    )
