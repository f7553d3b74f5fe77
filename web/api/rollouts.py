"""/api/v1 for fleet rollouts: where every layer stands across the tenants, a rollout's dry run,
starting one and following it, and pausing, resuming, cancelling or rolling it back. Each change
is on the audit trail, naming the token."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import load_catalogue
from services.models import Rollout, RolloutTenant
from services.rollouts import recorded
from services.rollouts.fleet import Fleet, LayerState, read_fleet
from services.rollouts.plans import RolloutPlan, RolloutSpec, describe_target, plan_rollout
from services.rollouts.runs import status_counts, tenants_of
from web.api.responses import error
from web.api.schemas import JobOut, RefusalOut, SelectionIn, Stored
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession, settings_of

_DEFAULT = RolloutSpec()
NOTHING_TO_DO = error("Nothing to roll out: every selected tenant is at its target, or refused")
REFUSED_CHANGE = error("The rollout is not in a state that allows this (the detail says which it is in)")


@dataclass
class RolloutIn:
    #: One layer (basic, templates/x, modules/x or custom/slug); left out: every layer of each tenant.
    layer: str | None = None
    #: The revision that layer goes to, up or down; left out: its head.
    revision: str | None = None
    selection: SelectionIn = field(default_factory=SelectionIn)
    #: Tenants that go first, on their own (wave 0).
    canary: Stored = _DEFAULT.canary
    #: Tenants per wave after the canary.
    wave_size: Stored = _DEFAULT.wave_size
    #: Tenants migrating at once.
    concurrency: Stored = _DEFAULT.concurrency
    #: Tenants migrating at once on one database server.
    per_server: Stored = _DEFAULT.per_server
    #: Halt once this many tenants failed; null: never on a count.
    halt_after_failures: Stored | None = _DEFAULT.halt_after_failures
    #: Halt once this share (1-100) of a wave failed; null: never on a share.
    halt_failure_percent: Stored | None = _DEFAULT.halt_failure_percent
    #: How long a revision waits for a table lock.
    lock_timeout_ms: Stored = _DEFAULT.lock_timeout_ms
    #: How long one statement may run.
    statement_timeout_ms: Stored = _DEFAULT.statement_timeout_ms
    #: Back each tenant up, and prove the backup restores, before its layers move.
    backup_first: bool = _DEFAULT.backup_first
    #: Take tenants whose latest drift check found differences too (refused otherwise).
    force: bool = _DEFAULT.force

    def spec(self) -> RolloutSpec:
        return RolloutSpec(**(asdict(self) | {"selection": self.selection.selection()}))


@dataclass(frozen=True)
class RevisionCountOut:
    #: None: none of the layer's revisions applied.
    revision: str | None
    tenants: int


@dataclass(frozen=True)
class LayerStateOut:
    #: basic, templates/x, modules/x or custom/slug.
    key: str
    title: str
    head: str | None
    #: Tenants in service that have this layer.
    tenants: int
    #: Of them, those not at its head.
    behind: int
    tenants_at: list[RevisionCountOut]

    @classmethod
    def of(cls, layer: LayerState) -> LayerStateOut:
        counts = [RevisionCountOut(revision, count) for revision, count in layer.tenants_at.most_common()]
        return cls(layer.key, layer.title, layer.head, layer.tenants, layer.behind, counts)


@dataclass(frozen=True)
class LagOut:
    layer: str
    #: None: none of its revisions applied.
    at: str | None
    head: str | None


@dataclass(frozen=True)
class TenantLagOut:
    slug: str
    name: str
    layers: list[LagOut]


@dataclass(frozen=True)
class DriftedOut:
    slug: str
    #: The drift check that found the differences.
    check: int
    checked_at: datetime
    differences: list[str]


@dataclass(frozen=True)
class FleetOut:
    """Every layer across the tenants in service, the tenants behind a layer's head, and those
    whose latest drift check found differences."""

    tenants: int
    layers: list[LayerStateOut]
    behind: list[TenantLagOut]
    drifted: list[DriftedOut]

    @classmethod
    def of(cls, fleet: Fleet) -> FleetOut:
        behind = [
            TenantLagOut(
                lag.slug, lag.name, [LagOut(layer.layer, layer.at, layer.head) for layer in lag.layers]
            )
            for lag in fleet.behind
        ]
        drifted = [
            DriftedOut(entry.slug, entry.check.id, entry.check.checked_at, list(entry.check.differences))
            for entry in fleet.drifted
        ]
        return cls(fleet.tenants, [LayerStateOut.of(layer) for layer in fleet.layers], behind, drifted)


@dataclass(frozen=True)
class PlannedStepOut:
    layer: str
    revision: str
    #: up or down.
    direction: str
    #: From the durations of this revision in the migration history.
    estimate_ms: float


@dataclass(frozen=True)
class PlannedTenantOut:
    slug: str
    name: str
    #: The database server of its store.
    server: str
    #: The shared store it is in (its tenants move together), or None.
    shared_store: str | None
    #: 0: the canary.
    wave: int
    start: dict[str, str | None]
    target: dict[str, str | None]
    #: Every revision it runs, in order.
    steps: list[PlannedStepOut]
    estimate_ms: float


@dataclass(frozen=True)
class RolloutPlanOut:
    """What a rollout would do now; nothing is changed."""

    target: str
    selection: str
    tenants: list[PlannedTenantOut]
    refused: list[RefusalOut]
    #: Selected tenants already at the target.
    at_target: int
    waves: int
    estimate_seconds: float

    @classmethod
    def of(cls, plan: RolloutPlan) -> RolloutPlanOut:
        tenants = [
            PlannedTenantOut(
                slug=tenant.slug,
                name=tenant.name,
                server=tenant.server,
                shared_store=tenant.shared_store,
                wave=tenant.wave,
                start=tenant.start,
                target=tenant.target,
                steps=[
                    PlannedStepOut(step.layer, step.revision, step.direction, step.estimate_ms)
                    for step in tenant.steps
                ],
                estimate_ms=tenant.estimate_ms,
            )
            for tenant in plan.tenants
        ]
        return cls(
            target=plan.spec.target,
            selection=str(plan.spec.selection),
            tenants=tenants,
            refused=[RefusalOut(refusal.slug, refusal.why) for refusal in plan.refused],
            at_target=plan.at_target,
            waves=plan.waves,
            estimate_seconds=plan.estimate_seconds,
        )


@dataclass(frozen=True)
class RolloutTenantOut:
    tenant: str
    #: 0: the canary.
    wave: int
    position: int
    server: str
    shared_store: str | None
    #: queued, running, succeeded, failed (taken back to where it started), refused or skipped.
    status: str
    #: Where its layers were when its turn came (None: not yet).
    started_at_revisions: dict[str, str | None] | None
    target_revisions: dict[str, str | None]
    job_id: int | None
    error: str | None
    #: What happened: the revisions run, or what was taken back.
    detail: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None

    @classmethod
    def of(cls, row: RolloutTenant) -> RolloutTenantOut:
        return cls(
            tenant=row.tenant.slug,
            wave=row.wave,
            position=row.position,
            server=row.server,
            shared_store=row.shared_store,
            status=row.status,
            started_at_revisions=row.started_at_revisions,
            target_revisions=row.target_revisions,
            job_id=row.job_id,
            error=row.error,
            detail=row.detail,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration_seconds=row.duration_seconds,
        )


@dataclass(frozen=True)
class RolloutOut:
    id: int
    #: running, paused, halted (its halt rule was crossed), cancelled or finished.
    status: str
    #: Why it halted, when it did.
    note: str | None
    #: One layer, or None: every layer of each tenant.
    layer: str | None
    #: Where that layer goes, or None: its head.
    revision: str | None
    #: The target, said in words.
    target: str
    #: Which tenants, as asked: {"templates": [...], "modules": [...], ...}; empty: every tenant.
    selection: dict[str, list[str]]
    canary: int
    wave_size: int
    concurrency: int
    per_server: int
    halt_after_failures: int | None
    halt_failure_percent: int | None
    lock_timeout_ms: int
    statement_timeout_ms: int
    backup_first: bool
    #: The rollout this one takes back.
    rollback_of: int | None
    requested_by: str | None
    created_at: datetime
    finished_at: datetime | None
    #: How many of its tenants are in each status.
    tenants_by_status: dict[str, int]
    #: Each tenant, in order; only when one rollout is asked for (null in the list of rollouts).
    tenants: list[RolloutTenantOut] | None = None

    @classmethod
    def of(
        cls, rollout: Rollout, counts: Mapping[str, int], tenants: list[RolloutTenant] | None = None
    ) -> RolloutOut:
        return cls(
            id=rollout.id,
            status=rollout.status,
            note=rollout.note,
            layer=rollout.layer,
            revision=rollout.revision,
            target=describe_target(rollout),
            selection=rollout.selection,
            canary=rollout.canary,
            wave_size=rollout.wave_size,
            concurrency=rollout.concurrency,
            per_server=rollout.per_server,
            halt_after_failures=rollout.halt_after_failures,
            halt_failure_percent=rollout.halt_failure_percent,
            lock_timeout_ms=rollout.lock_timeout_ms,
            statement_timeout_ms=rollout.statement_timeout_ms,
            backup_first=rollout.backup_first,
            rollback_of=rollout.rollback_of,
            requested_by=rollout.requested_by,
            created_at=rollout.created_at,
            finished_at=rollout.finished_at,
            tenants_by_status=dict(counts),
            tenants=None if tenants is None else [RolloutTenantOut.of(row) for row in tenants],
        )


async def _rollout_out(session: AsyncSession, rollout: Rollout) -> RolloutOut:
    """The rollout with each of its tenants."""
    rows = await tenants_of(session, rollout.id)
    return RolloutOut.of(rollout, Counter(row.status for row in rows), rows)


async def _changed(session: AsyncSession, rollout: Rollout) -> RolloutOut:
    """The rollout as a change left it, committed (the jobs it starts are sent)."""
    await session.commit()
    return await _rollout_out(session, rollout)


class RolloutsApiController(Controller):
    tags = ["rollouts"]
    guards = [signed_in, landlord_token]

    @get(
        "/fleet", summary="Every layer's head, how many tenants are at each revision, and the tenants behind"
    )
    async def fleet(self, request: Request[Any, Any, Any], db_session: DbSession) -> FleetOut:
        return FleetOut.of(await read_fleet(db_session, load_catalogue(settings_of(request).layers_dir)))

    @post(
        "/fleet/drift",
        status_code=HTTP_202_ACCEPTED,
        summary="Check every tenant in service for drift; runs as a job (202 with the job to follow)",
        description="Each tenant's store is compared with what its recorded layer revisions should give; "
        "`GET /api/v1/fleet` then lists the tenants that drifted, and the check is on the audit trail.",
    )
    async def check_drift(self, request: Request[Any, Any, Any], db_session: DbSession) -> Response[JobOut]:
        job = await recorded.check_drift_later(db_session, caller_of(request))
        await db_session.commit()
        await db_session.refresh(job, ["steps"])
        return Response(
            JobOut.of(job), status_code=HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{job.id}"}
        )

    @post(
        "/rollouts/plan",
        status_code=HTTP_200_OK,
        summary="A rollout's dry run: the tenants it would move, wave by wave, and those it refuses",
        description="Nothing is changed. The body is the one `POST /api/v1/rollouts` takes.",
    )
    async def plan(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[RolloutIn, Body()]
    ) -> RolloutPlanOut:
        return RolloutPlanOut.of(await plan_rollout(db_session, settings_of(request), data.spec()))

    @post(
        "/rollouts",
        status_code=HTTP_201_CREATED,
        summary="Start a rollout: its tenants move wave after wave, each in a job of its own",
        responses={409: NOTHING_TO_DO},
    )
    async def start(
        self, request: Request[Any, Any, Any], db_session: DbSession, data: Annotated[RolloutIn, Body()]
    ) -> Response[RolloutOut]:
        rollout = await recorded.start(db_session, settings_of(request), caller_of(request), data.spec())
        return _created(await _changed(db_session, rollout))

    @get("/rollouts", summary="Every rollout, newest first, with how many of its tenants are in each status")
    async def list_rollouts(self, db_session: DbSession) -> list[RolloutOut]:
        rollouts = await db_session.scalars(select(Rollout).order_by(Rollout.id.desc()))
        counts = await status_counts(db_session)
        return [RolloutOut.of(rollout, counts.get(rollout.id, Counter())) for rollout in rollouts]

    @get(
        "/rollouts/{rollout_id:int}",
        summary="A rollout and each of its tenants: wave, status, timings, error",
    )
    async def get_rollout(self, db_session: DbSession, rollout_id: FromPath[int]) -> RolloutOut:
        return await _rollout_out(db_session, await recorded.find_rollout(db_session, rollout_id))

    @post(
        "/rollouts/{rollout_id:int}/pause",
        status_code=HTTP_200_OK,
        summary="Pause a running rollout: no tenant starts; those migrating finish",
        responses={409: REFUSED_CHANGE},
    )
    async def pause(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> RolloutOut:
        return await _changed(db_session, await recorded.pause(db_session, caller_of(request), rollout_id))

    @post(
        "/rollouts/{rollout_id:int}/resume",
        status_code=HTTP_200_OK,
        summary="Resume a paused or halted rollout where it stopped",
        responses={409: REFUSED_CHANGE},
    )
    async def resume(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> RolloutOut:
        return await _changed(db_session, await recorded.resume(db_session, caller_of(request), rollout_id))

    @post(
        "/rollouts/{rollout_id:int}/cancel",
        status_code=HTTP_200_OK,
        summary="Cancel a rollout: tenants that have not started are skipped; those migrating finish",
        responses={409: REFUSED_CHANGE},
    )
    async def cancel(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> RolloutOut:
        return await _changed(db_session, await recorded.cancel(db_session, caller_of(request), rollout_id))

    @post(
        "/rollouts/{rollout_id:int}/rollback",
        status_code=HTTP_201_CREATED,
        summary="Roll a stopped rollout back: a new rollout takes the tenants it moved back (201 with it)",
        responses={409: error("The rollout is still moving, or moved no tenant")},
    )
    async def roll_back(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> Response[RolloutOut]:
        rollout = await recorded.roll_back(db_session, settings_of(request), caller_of(request), rollout_id)
        return _created(await _changed(db_session, rollout))


def _created(rollout: RolloutOut) -> Response[RolloutOut]:
    return Response(
        rollout, status_code=HTTP_201_CREATED, headers={"Location": f"/api/v1/rollouts/{rollout.id}"}
    )
