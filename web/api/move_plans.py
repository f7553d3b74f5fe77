"""/api/v1/move-plans: fleet moves, many tenants moved to one kind of store batch after batch; a
plan's dry run, starting one and following it, and pausing, resuming or cancelling it. Each change
is on the audit trail, naming the token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import MovePlan, MovePlanTenant
from services.moves import recorded
from services.moves.plans import (
    MovePlanPreview,
    MovePlanReport,
    MovePlanSpec,
    Throughput,
    describe_target,
    list_plans,
    plan_moves,
    plan_report,
)
from services.moves.requests import MoveTarget
from services.settings import Settings
from web.api.responses import error
from web.api.schemas import RefusalOut, SelectionIn, Stored
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession, settings_of

_DEFAULT = MovePlanSpec()
NOTHING_TO_MOVE = error("Nothing to move: no selected tenant can move there (the dry run says why)")
REFUSED_CHANGE = error("The plan is not in a state that allows this (the detail says which it is in)")


@dataclass
class MovePlanIn:
    #: database, schema or shared: where every selected tenant's store goes.
    isolation: str
    #: sqlite or postgresql; left out or null: each tenant's own backend.
    backend: Literal["sqlite", "postgresql"] | None = None
    #: A tenant server by name (TENANTRY_TENANT_SERVERS); left out or null: the one each tenant is on.
    server: str | None = None
    selection: SelectionIn = field(default_factory=SelectionIn)
    #: Tenants per batch; a batch starts when the one before it has ended.
    batch_size: Stored = _DEFAULT.batch_size
    #: Tenants moving at once.
    concurrency: Stored = _DEFAULT.concurrency
    #: Halt once this many tenants failed to move; null: never halt.
    halt_after_failures: Stored | None = _DEFAULT.halt_after_failures

    def spec(self) -> MovePlanSpec:
        return MovePlanSpec(
            selection=self.selection.selection(),
            target=MoveTarget(self.isolation, self.backend, self.server),
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            halt_after_failures=self.halt_after_failures,
        )


@dataclass(frozen=True)
class PlannedMoveOut:
    slug: str
    name: str
    #: Where its store goes, in words.
    going: str
    #: Rows per table in its store now (only its own rows, in a shared store).
    rows: dict[str, int]
    total_rows: int
    #: 0: the first.
    batch: int


@dataclass(frozen=True)
class ThroughputOut:
    """How fast moves went here, which the estimate is made from."""

    #: Where the figures come from, in a sentence: measured moves, or guesses before any.
    summary: str
    seconds_per_move: float
    rows_per_second: float
    #: Moves measured here; 0: the figures are guesses.
    measured_moves: int

    @classmethod
    def of(cls, throughput: Throughput) -> ThroughputOut:
        return cls(
            str(throughput),
            throughput.seconds_per_move,
            throughput.rows_per_second,
            throughput.measured_moves,
        )


@dataclass(frozen=True)
class MovePlanPreviewOut:
    """What a fleet move would do now; nothing is changed."""

    target: str
    selection: str
    tenants: list[PlannedMoveOut]
    #: Selected tenants that cannot move, and why.
    refused: list[RefusalOut]
    batches: int
    total_rows: int
    estimate_seconds: float
    throughput: ThroughputOut

    @classmethod
    def of(cls, settings: Settings, preview: MovePlanPreview) -> MovePlanPreviewOut:
        tenants = [
            PlannedMoveOut(
                tenant.slug, tenant.name, tenant.going, tenant.rows, tenant.total_rows, tenant.batch
            )
            for tenant in preview.tenants
        ]
        return cls(
            target=describe_target(settings, preview.spec.target),
            selection=str(preview.spec.selection),
            tenants=tenants,
            refused=[RefusalOut(refusal.slug, refusal.why) for refusal in preview.refused],
            batches=preview.batches,
            total_rows=preview.total_rows,
            estimate_seconds=preview.estimate_seconds,
            throughput=ThroughputOut.of(preview.throughput),
        )


@dataclass(frozen=True)
class MoveFiguresOut:
    """A plan tenant's move (`GET /api/v1/tenants/{slug}/moves/{id}` has the rest of it)."""

    id: int
    #: Rows and tables the tenant took to its new store (once it is there).
    rows: int | None
    tables: int | None
    #: From the start of the copy to the new store proved equal to the old one.
    copy_ms: int | None
    #: How long the tenant's writes waited (it showed its maintenance page).
    freeze_ms: int | None


@dataclass(frozen=True)
class MovePlanTenantOut:
    slug: str
    batch: int
    #: queued, moving, moved, failed (wholly in its old store still), refused or skipped.
    status: str
    #: Why it failed, was refused or skipped.
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    #: Its move, once its turn came.
    move: MoveFiguresOut | None

    @classmethod
    def of(cls, row: MovePlanTenant) -> MovePlanTenantOut:
        move = row.move
        return cls(
            slug=row.tenant.slug,
            batch=row.batch,
            status=row.status,
            error=row.error,
            started_at=row.started_at,
            finished_at=row.finished_at,
            move=None
            if move is None
            else MoveFiguresOut(move.id, move.rows, move.tables, move.copy_ms, move.freeze_ms),
        )


@dataclass(frozen=True)
class MovePlanOut:
    id: int
    #: running, paused, halted (its halt rule was crossed), cancelled or finished.
    status: str
    #: Why it halted, when it did.
    note: str | None
    #: Where its tenants go, said in words.
    target: str
    #: database, schema or shared.
    isolation: str
    #: null: each tenant's own backend.
    backend: str | None
    #: null: the server each tenant is on.
    server: str | None
    #: Which tenants, as asked: {"templates": [...], "modules": [...], ...}; empty: every tenant.
    selection: dict[str, list[str]]
    batch_size: int
    concurrency: int
    halt_after_failures: int | None
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None
    #: How many of its tenants are in each status.
    tenants_by_status: dict[str, int]
    #: The rest only when one plan is asked for (null in the list of plans). Rows its tenants took
    #: to their new stores.
    rows_moved: int | None = None
    #: The write freeze half of its moved tenants stayed within, and 95 in 100 of them (null: none
    #: moved yet).
    freeze_p50_ms: int | None = None
    freeze_p95_ms: int | None = None
    #: Each tenant, in order.
    tenants: list[MovePlanTenantOut] | None = None

    @classmethod
    def of(cls, settings: Settings, plan: MovePlan, counts: Mapping[str, int]) -> MovePlanOut:
        return cls(
            id=plan.id,
            status=plan.status,
            note=plan.note,
            target=describe_target(settings, MovePlanSpec.of(plan).target),
            isolation=plan.to_isolation,
            backend=plan.to_backend,
            server=plan.to_server,
            selection=plan.selection,
            batch_size=plan.batch_size,
            concurrency=plan.concurrency,
            halt_after_failures=plan.halt_after_failures,
            requested_by=plan.requested_by,
            created_at=plan.created_at,
            finished_at=plan.finished_at,
            tenants_by_status=dict(counts),
        )

    @classmethod
    def reported(cls, settings: Settings, report: MovePlanReport) -> MovePlanOut:
        return replace(
            cls.of(settings, report.plan, report.counts),
            rows_moved=report.rows_moved,
            freeze_p50_ms=report.freeze_ms(0.5),
            freeze_p95_ms=report.freeze_ms(0.95),
            tenants=[MovePlanTenantOut.of(row) for row in report.tenants],
        )


async def _changed(session: AsyncSession, settings: Settings, plan: MovePlan) -> MovePlanOut:
    """The plan as a change left it, committed (the moves it starts are sent)."""
    await session.commit()
    return MovePlanOut.reported(settings, await plan_report(session, plan.id))


class MovePlansApiController(Controller):
    path = "/move-plans"
    tags = ["move plans"]
    guards = [signed_in, landlord_token]

    @post(
        "/dry-run",
        status_code=HTTP_200_OK,
        summary="A fleet move's dry run: each tenant it would move, its rows and batch, and those it refuses",
        description="Nothing is changed. Each tenant's store is read to count its rows; the estimate "
        "comes from the moves measured here. The body is the one `POST /api/v1/move-plans` takes.",
    )
    async def dry_run(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[MovePlanIn, Body()]
    ) -> MovePlanPreviewOut:
        settings = settings_of(request)
        return MovePlanPreviewOut.of(settings, await plan_moves(db_session, settings, data.spec()))

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Start a fleet move: its tenants move batch after batch, each by a move of its own",
        description="The tenants its dry run refuses are on the plan too, as refused, with why.",
        responses={409: NOTHING_TO_MOVE},
    )
    async def start(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[MovePlanIn, Body()]
    ) -> Response[MovePlanOut]:
        settings = settings_of(request)
        plan = await recorded.start_plan(db_session, settings, caller_of(request), data.spec())
        body = await _changed(db_session, settings, plan)
        return Response(
            body, status_code=HTTP_201_CREATED, headers={"Location": f"/api/v1/move-plans/{body.id}"}
        )

    @get("/", summary="Every fleet move, newest first, with how many of its tenants are in each status")
    async def list_move_plans(
        self, request: Request[Any, Any, Any], db_session: DbSession
    ) -> list[MovePlanOut]:
        settings = settings_of(request)
        return [MovePlanOut.of(settings, plan, counts) for plan, counts in await list_plans(db_session)]

    @get(
        "/{plan_id:int}",
        summary="A fleet move and each of its tenants: batch, status, error, its move's figures",
    )
    async def get_move_plan(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> MovePlanOut:
        return MovePlanOut.reported(settings_of(request), await plan_report(db_session, plan_id))

    @post(
        "/{plan_id:int}/pause",
        status_code=HTTP_200_OK,
        summary="Pause a running fleet move: no tenant starts moving; those moving finish",
        responses={409: REFUSED_CHANGE},
    )
    async def pause(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> MovePlanOut:
        settings = settings_of(request)
        plan = await recorded.pause_plan(db_session, settings, caller_of(request), plan_id)
        return await _changed(db_session, settings, plan)

    @post(
        "/{plan_id:int}/resume",
        status_code=HTTP_200_OK,
        summary="Resume a paused or halted fleet move where it stopped",
        description="Its halt rule counts the failures from here on.",
        responses={409: REFUSED_CHANGE},
    )
    async def resume(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> MovePlanOut:
        settings = settings_of(request)
        plan = await recorded.resume_plan(db_session, settings, caller_of(request), plan_id)
        return await _changed(db_session, settings, plan)

    @post(
        "/{plan_id:int}/cancel",
        status_code=HTTP_200_OK,
        summary="Cancel a fleet move: tenants that have not started are skipped; those moving finish",
        responses={409: REFUSED_CHANGE},
    )
    async def cancel(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> MovePlanOut:
        settings = settings_of(request)
        plan = await recorded.cancel_plan(db_session, settings, caller_of(request), plan_id)
        return await _changed(db_session, settings, plan)
