"""The fleet (every layer's head, and the tenants behind it) and rollouts in the landlord portal: a
rollout planned with a dry run, started, followed wave by wave as it runs, and paused, resumed,
cancelled or rolled back. Each change is a plain form post: a refusal comes back as the page with
its message (409), which an HTMX request would not show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import ClientRefresh, HTMXRequest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller
from services.errors import Conflict, InvalidFields
from services.layers.catalogue import Catalogue, load_catalogue
from services.models import Rollout, RolloutStatus, RolloutTenant, RolloutTenantStatus
from services.rollouts import recorded
from services.rollouts.fleet import read_fleet
from services.rollouts.plans import RolloutPlan, RolloutSpec, describe_target, plan_rollout
from services.rollouts.runs import status_counts, tenants_of
from services.selection import Selection
from services.tenancy.stores import available_isolation_modes
from services.tenancy.tenants import plans
from web.audit import caller_of
from web.auth import landlord_staff
from web.deps import DbSession, settings_of
from web.forms import SelectionForm, whole_number

#: The form's whole numbers, in the order it shows them: (field, label, what it means). Those that
#: may be left empty turn a rule off.
NUMBER_FIELDS = (
    ("canary", "Canary", "tenants that go first, on their own (wave 0)"),
    ("wave_size", "Wave size", "tenants per wave after the canary"),
    ("concurrency", "Concurrency", "tenants migrating at once"),
    ("per_server", "Per server", "tenants migrating at once on one database server"),
    ("halt_after_failures", "Halt after K failures", "empty: never halt on a count"),
    ("halt_failure_percent", "Halt at F %", "of a wave failed; empty: never halt on a share"),
    ("lock_timeout_ms", "Lock timeout (ms)", "how long a revision waits for a table lock"),
    ("statement_timeout_ms", "Statement timeout (ms)", "how long one statement may run"),
)
OPTIONAL_NUMBERS = {"halt_after_failures", "halt_failure_percent"}
LABELS = {
    "layer": "Layer",
    "revision": "Revision",
    **{name: label for name, label, _ in NUMBER_FIELDS},
}
#: Badge colours the stylesheet has, for the statuses it has none of.
BADGES = {
    RolloutStatus.FINISHED: "ok",
    RolloutStatus.HALTED: "failed",
    RolloutStatus.PAUSED: "pending",
    RolloutStatus.CANCELLED: "pending",
    RolloutTenantStatus.REFUSED: "suspended",
    RolloutTenantStatus.SKIPPED: "pending",
}


@dataclass
class RolloutForm(SelectionForm):
    """The new-rollout form as posted: its text, read into a RolloutSpec by `spec_of`."""

    #: Empty: every layer of each tenant, to its head.
    layer: str = ""
    #: Empty: the layer's head.
    revision: str = ""
    canary: str = ""
    wave_size: str = ""
    concurrency: str = ""
    per_server: str = ""
    halt_after_failures: str = ""
    halt_failure_percent: str = ""
    lock_timeout_ms: str = ""
    statement_timeout_ms: str = ""
    backup_first: str = ""
    force: str = ""

    @classmethod
    def of(cls, spec: RolloutSpec) -> RolloutForm:
        numbers = {name: _text(getattr(spec, name)) for name, _, _ in NUMBER_FIELDS}
        return cls(layer=spec.layer or "", revision=spec.revision or "", **numbers)


def _text(number: int | None) -> str:
    return "" if number is None else str(number)


def spec_of(form: RolloutForm, catalogue: Catalogue) -> RolloutSpec:
    """The rollout the form asks for. Raises InvalidFields naming every wrong field at once."""
    errors: dict[str, str] = {}
    numbers: dict[str, Any] = {
        name: whole_number(
            getattr(form, name),
            Rollout.__table__.c[name],
            name=name,
            optional=name in OPTIONAL_NUMBERS,
            errors=errors,
        )
        for name, _, _ in NUMBER_FIELDS
    }
    selection = form.selection()
    spec = RolloutSpec(
        layer=form.layer.strip() or None,
        revision=form.revision.strip() or None,
        selection=selection,
        backup_first=bool(form.backup_first),
        force=bool(form.force),
        # A number that is not one is left at its default, so that the rules of the others are checked.
        **{name: value for name, value in numbers.items() if name not in errors},
    )
    try:
        spec.check(catalogue)
    except InvalidFields as wrong:
        errors = {**wrong.errors, **errors}
    if errors:
        raise InvalidFields(errors)
    return spec


@dataclass(frozen=True)
class RolloutView:
    """A rollout and its tenants as its page shows them."""

    rollout: Rollout
    tenants: list[RolloutTenant]

    @property
    def target(self) -> str:
        return describe_target(self.rollout)

    @property
    def selection(self) -> str:
        return str(Selection.of(self.rollout.selection))

    @property
    def counts(self) -> Counter[str]:
        return Counter(row.status for row in self.tenants)

    @property
    def refused_at_start(self) -> list[RolloutTenant]:
        """Tenants the plan refused: they never had a turn (nor a job)."""
        return [
            row for row in self.tenants if row.status == RolloutTenantStatus.REFUSED and row.job_id is None
        ]

    @property
    def waves(self) -> dict[int, list[RolloutTenant]]:
        """The tenants that had, or wait for, a turn, by wave (0: the canary)."""
        refused = {row.id for row in self.refused_at_start}
        waves: dict[int, list[RolloutTenant]] = {}
        for row in self.tenants:
            if row.id not in refused:
                waves.setdefault(row.wave, []).append(row)
        return waves

    @property
    def busy(self) -> bool:
        """Still moving: running, or with tenants migrating after a pause or cancel."""
        return self.rollout.status == RolloutStatus.RUNNING or bool(self.counts[RolloutTenantStatus.RUNNING])

    @property
    def may_roll_back(self) -> bool:
        return self.rollout.status in RolloutStatus.stopped() and any(
            row.status == RolloutTenantStatus.SUCCEEDED and row.started_at_revisions for row in self.tenants
        )


async def _rollout_view(session: AsyncSession, rollout_id: int) -> RolloutView:
    rollout = await recorded.find_rollout(session, rollout_id)
    return RolloutView(rollout, await tenants_of(session, rollout.id))


#: A change to a rollout, as the services make it: it answers the rollout to show next.
Change = Callable[[AsyncSession, Caller, int], Awaitable[Rollout]]


class RolloutsController(Controller):
    include_in_schema = False
    guards = [landlord_staff]

    async def _form_page(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        form: RolloutForm,
        *,
        errors: dict[str, str] | None = None,
        message: str | None = None,
        plan: RolloutPlan | None = None,
        status_code: int = 200,
    ) -> Template:
        settings = settings_of(request)
        context = {
            "form": form,
            "errors": errors or {},
            "message": message,
            "plan": plan,
            "catalogue": load_catalogue(settings.layers_dir),
            "plans": await plans(db_session),
            "isolation_modes": available_isolation_modes(settings),
            "numbers": NUMBER_FIELDS,
            "optional": OPTIONAL_NUMBERS,
        }
        return Template("landlord/new_rollout.html", context=context, status_code=status_code)

    async def _rollout_page(
        self, db_session: DbSession, rollout_id: int, *, message: str | None = None, status_code: int = 200
    ) -> Template:
        view = await _rollout_view(db_session, rollout_id)
        context = {
            "view": view,
            "rollout": view.rollout,
            "numbers": NUMBER_FIELDS,
            "badges": BADGES,
            "message": message,
        }
        return Template("landlord/rollout.html", context=context, status_code=status_code)

    async def _change(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: int, change: Change
    ) -> Response[Any]:
        """Make `change` and go to the rollout it answers; a refusal is said on this rollout's page."""
        try:
            async with db_session.begin_nested():
                rollout = await change(db_session, caller_of(request), rollout_id)
        except Conflict as refusal:
            return await self._rollout_page(db_session, rollout_id, message=refusal.message, status_code=409)
        await db_session.commit()
        return Redirect(f"/rollouts/{rollout.id}", status_code=HTTP_303_SEE_OTHER)

    @get("/fleet")
    async def fleet(
        self, request: Request[Any, Any, Any], db_session: DbSession, drift_job: FromQuery[int | None] = None
    ) -> Template:
        """The fleet; `drift_job`: the drift check just asked for (the page says so)."""
        fleet = await read_fleet(db_session, load_catalogue(settings_of(request).layers_dir))
        return Template("landlord/fleet.html", context={"fleet": fleet, "drift_job": drift_job})

    @post("/fleet/drift")
    async def check_drift(self, request: Request[Any, Any, Any], db_session: DbSession) -> Redirect:
        """Check every tenant for drift, as a job; the fleet page lists what it finds."""
        job = await recorded.check_drift_later(db_session, caller_of(request))
        await db_session.commit()
        return Redirect(f"/fleet?drift_job={job.id}", status_code=HTTP_303_SEE_OTHER)

    @get("/rollouts")
    async def list_rollouts(self, db_session: DbSession) -> Template:
        rollouts = list(await db_session.scalars(select(Rollout).order_by(Rollout.id.desc())))
        counts = await status_counts(db_session)
        context = {"rollouts": rollouts, "counts": counts, "target_of": describe_target, "badges": BADGES}
        return Template("landlord/rollouts.html", context=context)

    @get("/rollouts/new")
    async def new_rollout(
        self, request: Request[Any, Any, Any], db_session: DbSession, layer: FromQuery[str] = ""
    ) -> Template:
        """The form, with `layer` chosen (the fleet page links each layer behind here)."""
        return await self._form_page(request, db_session, RolloutForm.of(RolloutSpec(layer=layer or None)))

    @post("/rollouts/plan")
    async def dry_run(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[RolloutForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """What the rollout would do; nothing is changed. HTMX swaps in the plan alone (its mistakes
        answered 422, the status the portal's HTMX swaps in); a browser without it gets the form."""
        settings = settings_of(request)
        try:
            plan = await plan_rollout(
                db_session, settings, spec_of(data, load_catalogue(settings.layers_dir))
            )
        except InvalidFields as wrong:
            if request.htmx:
                context = {"errors": wrong.errors, "labels": LABELS}
                return Template("landlord/_rollout_plan.html", context=context, status_code=422)
            return await self._form_page(request, db_session, data, errors=wrong.errors, status_code=400)
        if request.htmx:
            return Template("landlord/_rollout_plan.html", context={"plan": plan})
        return await self._form_page(request, db_session, data, plan=plan)

    @post("/rollouts")
    async def start_rollout(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        data: Annotated[RolloutForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        settings = settings_of(request)
        try:
            spec = spec_of(data, load_catalogue(settings.layers_dir))
            async with db_session.begin_nested():
                rollout = await recorded.start(db_session, settings, caller_of(request), spec)
        except InvalidFields as wrong:
            return await self._form_page(request, db_session, data, errors=wrong.errors, status_code=400)
        except Conflict as refusal:
            return await self._form_page(request, db_session, data, message=refusal.message, status_code=409)
        await db_session.commit()
        return Redirect(f"/rollouts/{rollout.id}", status_code=HTTP_303_SEE_OTHER)

    @get("/rollouts/{rollout_id:int}")
    async def rollout_page(self, db_session: DbSession, rollout_id: FromPath[int]) -> Template:
        return await self._rollout_page(db_session, rollout_id)

    @get("/rollouts/{rollout_id:int}/progress")
    async def progress(self, db_session: DbSession, rollout_id: FromPath[int]) -> Response[Any]:
        """The tenants' table, polled while the rollout moves; once it stops, the page reloads once
        to show it as it now is (its buttons too)."""
        view = await _rollout_view(db_session, rollout_id)
        if not view.busy:
            return ClientRefresh()
        return Template("landlord/_rollout_progress.html", context={"view": view, "badges": BADGES})

    @post("/rollouts/{rollout_id:int}/pause")
    async def pause(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, rollout_id, recorded.pause)

    @post("/rollouts/{rollout_id:int}/resume")
    async def resume(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, rollout_id, recorded.resume)

    @post("/rollouts/{rollout_id:int}/cancel")
    async def cancel(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, rollout_id, recorded.cancel)

    @post("/rollouts/{rollout_id:int}/rollback")
    async def roll_back(
        self, request: Request[Any, Any, Any], db_session: DbSession, rollout_id: FromPath[int]
    ) -> Response[Any]:
        """Start the rollout that takes this one's tenants back, and go to it."""
        settings = settings_of(request)

        async def take_back(session: AsyncSession, caller: Caller, rollout_id: int) -> Rollout:
            return await recorded.roll_back(session, settings, caller, rollout_id)

        return await self._change(request, db_session, rollout_id, take_back)
