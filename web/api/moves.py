"""/api/v1/tenants/{slug}/moves: a tenant's store moved to another isolation mode, backend or server, and
moved back (202 with the job to follow), and the tenant's moves with their figures.
/api/v1/tenants/{slug}/splits: a unit subtree split off into a new tenant (its dry run, and the
split started: 202 with the job); the schemas are web.api.splits'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import IsolationMode, Job, Tenant, TenantMove
from services.moves import recorded
from services.moves.merge import plan_merge, target_named
from services.moves.requests import MoveTarget, RequestedMove, find_move, latest_done, may_move_back, moves_of
from services.moves.split import plan_split
from services.tenancy.tenants import get_tenant
from web.api.responses import error
from web.api.schemas import JobOut
from web.api.splits import (
    MERGE_DESCRIPTION,
    NOT_MERGEABLE,
    NOT_SPLITTABLE,
    SPLIT_DESCRIPTION,
    SPLIT_INPUT,
    MergeIn,
    MergePlanOut,
    MergeRequestedOut,
    SplitIn,
    SplitPlanOut,
    SplitRequestedOut,
)
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession, settings_of

NOT_ACTIVE_OR_MOVING = "The tenant is not active, or a move of it is under way"


@dataclass
class MoveIn:
    isolation: IsolationMode
    #: sqlite or postgresql; left out or null: the backend the tenant is on.
    backend: Literal["sqlite", "postgresql"] | None = None
    #: A tenant server by name (TENANTRY_TENANT_SERVERS); left out or null: the one the tenant is on.
    server: str | None = None


@dataclass(frozen=True)
class StoreOut:
    #: sqlite or postgresql.
    backend: str
    #: database, schema or shared.
    isolation: str
    #: The database, schema or file's name; for the store moved to, null until the move starts.
    store: str | None
    #: The tenant server a PostgreSQL store is on, by name; null for SQLite.
    server: str | None


class MoveOut(msgspec.Struct, frozen=True):
    """A move and its figures. A msgspec Struct rather than a dataclass: its first field is called
    `from`, which no Python attribute can be."""

    id: int
    from_: StoreOut = msgspec.field(name="from")
    to: StoreOut
    #: Its job's: queued, running, succeeded or failed (null once the job record is gone).
    status: str | None
    job_id: int | None
    #: Rows and tables the tenant took to its new store (once it is there).
    rows: int | None
    tables: int | None
    #: From the start of the copy to the new store proved equal to the old one.
    copy_ms: int | None
    #: How long the tenant's writes waited (it showed its maintenance page).
    freeze_ms: int | None
    #: What became of the store it left: kept (it can move back there), in use, or dropped; null
    #: until the tenant is in its new store.
    old_store: str | None
    #: While kept: when the store it left is dropped.
    kept_until: datetime | None
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None
    #: The move this one took back.
    back_of: int | None
    #: Whether `POST …/moves/{id}/back` takes this move back now (the tenant's latest move done).
    may_move_back: bool

    @classmethod
    def of(cls, move: TenantMove, *, job: Job | None, may_move_back: bool) -> MoveOut:
        return cls(
            id=move.id,
            from_=StoreOut(move.from_backend, move.from_isolation, move.from_store, move.from_server),
            to=StoreOut(move.to_backend, move.to_isolation, move.to_store, move.to_server),
            status=job.status if job is not None else None,
            job_id=move.job_id,
            rows=move.rows,
            tables=move.tables,
            copy_ms=move.copy_ms,
            freeze_ms=move.freeze_ms,
            old_store=move.old_store,
            kept_until=move.kept_until,
            requested_by=move.requested_by,
            created_at=move.created_at,
            finished_at=move.finished_at,
            back_of=move.back_of,
            may_move_back=may_move_back,
        )


@dataclass(frozen=True)
class MoveRequestedOut:
    move: MoveOut
    job: JobOut
    message: str


def _move_out(move: TenantMove, tenant: Tenant, latest: TenantMove | None) -> MoveOut:
    """`move` as read back, with whether it can be moved back now (`latest`: the tenant's latest move done)."""
    return MoveOut.of(move, job=move.job, may_move_back=may_move_back(move, tenant, latest))


async def _accepted(session: AsyncSession, requested: RequestedMove) -> Response[MoveRequestedOut]:
    """The requested move committed (its job is sent then), as a 202 pointing at the job."""
    await session.commit()
    await session.refresh(requested.job, ["steps"])
    body = MoveRequestedOut(
        move=MoveOut.of(requested.move, job=requested.job, may_move_back=False),  # not done yet
        job=JobOut.of(requested.job),
        message=requested.message,
    )
    return Response(
        body, status_code=HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{requested.job.id}"}
    )


class MovesApiController(Controller):
    """A tenant's moves, and its splits (rows moved into a new tenant): both under the tenant."""

    path = "/tenants/{slug:str}"
    tags = ["moves"]
    guards = [signed_in, landlord_token]

    @get(
        "/moves", summary="A tenant's moves, newest first: where from, where to, the figures, the store left"
    )
    async def list_moves(self, db_session: DbSession, slug: FromPath[str]) -> list[MoveOut]:
        tenant = await get_tenant(db_session, slug)
        moves = await moves_of(db_session, tenant)
        latest = latest_done(moves)
        return [_move_out(move, tenant, latest) for move in moves]

    @get("/moves/{move_id:int}", summary="One of a tenant's moves")
    async def get_move(self, db_session: DbSession, slug: FromPath[str], move_id: FromPath[int]) -> MoveOut:
        tenant = await get_tenant(db_session, slug)
        move = await find_move(db_session, tenant, move_id)
        return _move_out(move, tenant, latest_done(await moves_of(db_session, tenant)))

    @post(
        "/moves",
        status_code=HTTP_202_ACCEPTED,
        summary="Move a tenant's store to another isolation mode, backend or server; runs as a job (202)",
        description="The tenant's rows are copied through a portable backup into a new store, proved "
        "equal to it and swapped in; the tenant shows a maintenance page, and its API answers 503, until "
        "the move is done. The store it left is kept for a while (`kept_until`), so that "
        "`POST …/moves/{id}/back` can take the tenant back to it.",
        responses={
            409: error(NOT_ACTIVE_OR_MOVING),
            422: error(
                "An isolation mode, backend or server not known or not available here, or the kind of "
                "store the tenant is in already"
            ),
        },
    )
    async def move(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[MoveIn, Body()],
    ) -> Response[MoveRequestedOut]:
        tenant = await get_tenant(db_session, slug)
        target = MoveTarget(data.isolation, data.backend, data.server)
        requested = await recorded.move(db_session, settings_of(request), caller_of(request), tenant, target)
        return await _accepted(db_session, requested)

    @post(
        "/moves/{move_id:int}/back",
        status_code=HTTP_202_ACCEPTED,
        summary="Move a tenant back where one of its moves took it from; runs as a job (202)",
        description="Only the tenant's latest move done is moved back. While the store it left is kept "
        "and nothing was written since, the tenant goes back to that very store; otherwise it is "
        "copied back into a new one.",
        responses={409: error(f"{NOT_ACTIVE_OR_MOVING}, or the move is not its latest move done")},
    )
    async def move_back(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        move_id: FromPath[int],
    ) -> Response[MoveRequestedOut]:
        tenant = await get_tenant(db_session, slug)
        move = await find_move(db_session, tenant, move_id)
        requested = await recorded.move_back(
            db_session, settings_of(request), caller_of(request), tenant, move
        )
        return await _accepted(db_session, requested)

    @post(
        "/splits/dry-run",
        status_code=HTTP_200_OK,
        summary="What splitting a unit subtree off into a new tenant would do; nothing changes",
        description=SPLIT_DESCRIPTION,
        responses={409: error(NOT_SPLITTABLE), 422: error(SPLIT_INPUT)},
    )
    async def split_dry_run(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[SplitIn, Body()],
    ) -> SplitPlanOut:
        tenant = await get_tenant(db_session, slug)
        plan = await plan_split(db_session, settings_of(request), tenant, data.unit, data.target)
        return SplitPlanOut.of(plan)

    @post(
        "/splits",
        status_code=HTTP_202_ACCEPTED,
        summary="Split a unit subtree off into a new tenant; runs as a job on the source tenant (202)",
        description=SPLIT_DESCRIPTION,
        responses={
            409: error(f"{NOT_SPLITTABLE}, or the dry run refuses it (the reasons are said)"),
            422: error(SPLIT_INPUT),
        },
    )
    async def split(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[SplitIn, Body()],
    ) -> Response[SplitRequestedOut]:
        tenant = await get_tenant(db_session, slug)
        requested = await recorded.split(
            db_session, settings_of(request), caller_of(request), tenant, data.unit, data.target
        )
        await db_session.commit()
        await db_session.refresh(requested.job, ["steps"])
        return Response(
            SplitRequestedOut.of(requested, JobOut.of(requested.job)),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{requested.job.id}"},
        )

    @post(
        "/merges/dry-run",
        status_code=HTTP_200_OK,
        summary="What merging this tenant into another would do; nothing changes",
        description=MERGE_DESCRIPTION,
        responses={409: error(NOT_MERGEABLE), 422: error("No tenant `into`, or the tenant itself")},
    )
    async def merge_dry_run(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[MergeIn, Body()],
    ) -> MergePlanOut:
        source = await get_tenant(db_session, slug)
        target = await target_named(db_session, data.into)
        return MergePlanOut.of(await plan_merge(db_session, settings_of(request), source, target))

    @post(
        "/merges",
        status_code=HTTP_202_ACCEPTED,
        summary="Merge this tenant's rows into another tenant; runs as a job on that tenant (202)",
        description=MERGE_DESCRIPTION,
        responses={
            409: error(f"{NOT_MERGEABLE}, or the dry run refuses it (the reasons are said)"),
            422: error("No tenant `into`, or the tenant itself"),
        },
    )
    async def merge(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[MergeIn, Body()],
    ) -> Response[MergeRequestedOut]:
        source = await get_tenant(db_session, slug)
        target = await target_named(db_session, data.into)
        requested = await recorded.merge(db_session, settings_of(request), caller_of(request), source, target)
        await db_session.commit()
        await db_session.refresh(requested.job, ["steps"])
        return Response(
            MergeRequestedOut.of(requested, JobOut.of(requested.job)),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{requested.job.id}"},
        )
