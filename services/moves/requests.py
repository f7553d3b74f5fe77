"""Asking for a move: where a tenant's store may go, the checks a request passes, and the move,
its portable backup and its job recorded together (the job is sent when the caller commits).

A move back asks for the store kind the tenant left; while that store is kept and nothing was
written since, the job takes it back as it is (services.moves.steps: `unchanged since`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services import jobs
from services.errors import Conflict, InvalidInput, NotFound
from services.layers.catalogue import load_catalogue
from services.models import (
    Backup,
    BackupFormat,
    IsolationMode,
    Job,
    JobStatus,
    Tenant,
    TenantMove,
    TenantStatus,
)
from services.models.types import utcnow
from services.settings import Settings
from services.store_jobs import WRITES_DRAINED
from services.tenancy.stores import POSTGRESQL, SQLITE, StoreKind, kind_of, server_name_of, store_kinds

MOVE = "move"
LOCK = "lock"
CAPTURE_ON = "capture on"
MAINTENANCE_ON = "maintenance on"
UNCHANGED_SINCE = "unchanged since"
#: The steps that copy the tenant into its new store; a move back to a store left unchanged settles them.
COPY_STEPS = ("dump", "checksum", "manifest", "copy", "validate")
CATCH_UP = "catch up"
SWAP = "swap"
CAPTURE_OFF = "capture off"
MAINTENANCE_OFF = "maintenance off"
#: Only these hold the tenant's writes: from maintenance on to off, after the copy.
FREEZE_STEPS = [MAINTENANCE_ON, WRITES_DRAINED, CATCH_UP, SWAP, CAPTURE_OFF, MAINTENANCE_OFF]
MOVE_STEP_NAMES = [LOCK, CAPTURE_ON, *COPY_STEPS, *FREEZE_STEPS]
MOVE_BACK_STEP_NAMES = [LOCK, CAPTURE_ON, UNCHANGED_SINCE, *COPY_STEPS, *FREEZE_STEPS]

BACKEND_NAMES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}


@dataclass(frozen=True)
class MoveTarget:
    """Where a tenant's store goes: an isolation mode, on a backend (None: the one it is on), on a
    tenant server by name (None: the one it is on, else the default)."""

    isolation: str
    backend: str | None = None
    server: str | None = None


def describe_kind(settings: Settings, kind: StoreKind) -> str:
    """'a PostgreSQL schema', 'the shared SQLite store', 'a PostgreSQL database on pg-b' (the server
    named where there are several)."""
    name = BACKEND_NAMES.get(kind.backend, kind.backend)
    said = (
        f"the shared {name} store" if kind.isolation == IsolationMode.SHARED else f"a {name} {kind.isolation}"
    )
    return f"{said} on {kind.server}" if kind.server and len(settings.servers) > 1 else said


def from_kind(move: TenantMove) -> StoreKind:
    return StoreKind(move.from_backend, move.from_isolation, move.from_server)


def to_kind(move: TenantMove) -> StoreKind:
    return StoreKind(move.to_backend, move.to_isolation, move.to_server)


def kinds_to_move_to(settings: Settings, tenant: Tenant) -> list[StoreKind]:
    """The kinds of store the tenant may move to: every kind here but its own, and no shared store
    for a tenant with a custom layer (it changes tables shared tenants share)."""
    custom = load_catalogue(settings.layers_dir).custom(tenant.slug) is not None
    return [
        kind
        for kind in store_kinds(settings)
        if kind != kind_of(settings, tenant) and not (custom and kind.isolation == IsolationMode.SHARED)
    ]


def _target_kind(settings: Settings, tenant: Tenant, target: MoveTarget) -> StoreKind:
    """The kind of store `target` names, its blanks filled from where the tenant is."""
    current = kind_of(settings, tenant)
    if target.server is not None and target.server not in settings.servers:
        named = ", ".join(settings.servers) or "none"
        raise InvalidInput(
            f"There is no tenant server {target.server!r} here; the servers are: {named}.", field="server"
        )
    backend = target.backend or (POSTGRESQL if target.server else current.backend)
    if backend == SQLITE:
        return StoreKind(SQLITE, target.isolation)
    server = target.server or (current.server if current.backend == POSTGRESQL else None)
    return StoreKind(backend, target.isolation, server or next(iter(settings.servers), None))


@dataclass(frozen=True)
class RequestedMove:
    move: TenantMove
    job: Job
    tenant: Tenant
    #: Where it goes, in words.
    going: str

    @property
    def message(self) -> str:
        back = " back" if self.move.back_of is not None else ""
        return (
            f"{self.tenant.slug} is moving{back} to {self.going}: it keeps serving while its rows are "
            "copied, then shows a maintenance page (its API answers 503) for the final catch-up only."
        )


async def moves_of(session: AsyncSession, tenant: Tenant) -> list[TenantMove]:
    """The tenant's moves, newest first."""
    found = await session.scalars(
        select(TenantMove).where(TenantMove.tenant_id == tenant.id).order_by(TenantMove.id.desc())
    )
    return list(found)


async def find_move(session: AsyncSession, tenant: Tenant, move_id: int) -> TenantMove:
    move = await session.get(TenantMove, move_id)
    if move is None or move.tenant_id != tenant.id:
        raise NotFound(f"{tenant.slug} has no move #{move_id}.")
    return move


async def request_move(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    target: MoveTarget,
    *,
    requested_by: str | None = None,
) -> RequestedMove:
    """Check the request and record the move, its portable backup and its job. Raises
    InvalidInput (a kind of store not here, or the one it is in), Conflict (not active; a move
    under way) or NotFound."""
    kind = await check_move(session, settings, tenant, target)
    return await _record(session, settings, tenant, kind, MOVE_STEP_NAMES, requested_by=requested_by)


async def check_move(
    session: AsyncSession, settings: Settings, tenant: Tenant, target: MoveTarget
) -> StoreKind:
    """The kind of store `tenant` would move to, when it may move there now; raises what
    request_move raises otherwise (a fleet plan's dry run says it as the tenant's refusal)."""
    await _check_may_move(session, tenant)
    kind = _target_kind(settings, tenant, target)
    if kind == kind_of(settings, tenant):
        raise InvalidInput(f"{tenant.slug} is in {describe_kind(settings, kind)} already.", field="isolation")
    choices = kinds_to_move_to(settings, tenant)
    if kind not in choices:
        listed = ", ".join(describe_kind(settings, choice) for choice in choices)
        raise InvalidInput(
            f"{tenant.slug} cannot move to {describe_kind(settings, kind)} here; it may move to {listed}.",
            field="isolation",
        )
    return kind


async def request_move_back(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    move: TenantMove,
    *,
    requested_by: str | None = None,
) -> RequestedMove:
    """Move the tenant back where `move` took it from: to the very store it left while that is
    kept and nothing was written since (the job finds out), by a copy into a new store otherwise.
    Raises Conflict (not the tenant's latest finished move; not active; a move under way)."""
    await _check_may_move(session, tenant)
    if not may_move_back(move, tenant, latest_done(await moves_of(session, tenant))):
        raise Conflict(
            f"Move #{move.id} is not the move that took {tenant.slug} where it is now; only that one "
            "is moved back."
        )
    return await _record(
        session,
        settings,
        tenant,
        from_kind(move),
        MOVE_BACK_STEP_NAMES,
        requested_by=requested_by,
        back_of=move,
    )


async def _check_may_move(session: AsyncSession, tenant: Tenant) -> None:
    if (why_not := why_not_movable(tenant)) is not None:
        raise Conflict(why_not)
    under_way = await session.scalar(
        select(TenantMove.id)
        .join(Job, Job.id == TenantMove.job_id)
        .where(TenantMove.tenant_id == tenant.id, Job.status.in_(JobStatus.unfinished()))
        .limit(1)
    )
    if under_way is not None:
        raise Conflict(f"{tenant.slug} is moving already (move #{under_way}); wait until it is done.")


def why_not_movable(tenant: Tenant) -> str | None:
    """Why the tenant cannot move now, in a sentence; None while it is active in a store."""
    if tenant.status == TenantStatus.ACTIVE and tenant.store_name and tenant.store_backend:
        return None
    state = "in maintenance" if tenant.status == TenantStatus.MAINTENANCE else str(tenant.status)
    return f"{tenant.slug} is {state}; only an active tenant moves."


async def _record(
    session: AsyncSession,
    settings: Settings,
    tenant: Tenant,
    kind: StoreKind,
    steps: list[str],
    *,
    requested_by: str | None,
    back_of: TenantMove | None = None,
) -> RequestedMove:
    assert tenant.store_backend is not None and tenant.store_name is not None
    going = describe_kind(settings, kind)
    backup = queued_portable_backup(tenant, f"move to {going}", requested_by)
    session.add(backup)
    move = TenantMove(
        tenant_id=tenant.id,
        back_of=back_of.id if back_of is not None else None,
        from_backend=tenant.store_backend,
        from_isolation=tenant.isolation,
        from_store=tenant.store_name,
        from_server=server_name_of(settings, tenant),
        to_backend=kind.backend,
        to_isolation=kind.isolation,
        to_server=kind.server,
        requested_by=requested_by,
        created_at=utcnow(),
    )
    session.add(move)
    await session.flush()
    job = await jobs.record_job(
        session,
        MOVE,
        tenant_id=tenant.id,
        payload={"move_id": move.id, "backup_id": backup.id, "requested_by": requested_by},
        steps=steps,
    )
    move.job_id, move.backup_id, backup.job_id = job.id, backup.id, job.id
    return RequestedMove(move, job, tenant, going)


def queued_portable_backup(tenant: Tenant, why: str, requested_by: str | None) -> Backup:
    """The portable backup a job of the tenant's takes of it ("move to …", "safety backup before …"),
    queued: the job's own steps take it."""
    return Backup(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        format=BackupFormat.PORTABLE,
        status=JobStatus.QUEUED,
        requested_by=why + (f", {requested_by}" if requested_by else ""),
        created_at=utcnow(),
    )


def latest_done(moves: list[TenantMove]) -> TenantMove | None:
    """The newest of `moves` (newest first) that took its tenant to its new store."""
    return next((move for move in moves if move.old_store is not None), None)


def may_move_back(move: TenantMove, tenant: Tenant, latest: TenantMove | None) -> bool:
    """Whether `move` can be taken back now: the tenant's latest move done (`latest`), the tenant
    active and still in the store it took it to."""
    return (
        tenant.status == TenantStatus.ACTIVE
        and latest is not None
        and latest.id == move.id
        and (move.to_backend, move.to_isolation, move.to_store, move.to_server)
        == (tenant.store_backend, tenant.isolation, tenant.store_name, tenant.store_server)
    )
