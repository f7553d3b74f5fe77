"""Fleet moves in the landlord portal: a move plan asked for on a form, its dry run (each tenant that
would move, its rows, its batch, where it goes; each refused with why; how long it should take),
started from that dry run, then followed tenant by tenant as its moves run, and paused, resumed or
cancelled. The plans and their moves are services.moves'; a refusal is said on the page that asked
(409), a mistake next to its field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import ClientRefresh, HTMXRequest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit import Caller
from services.errors import Conflict, InvalidFields
from services.layers.catalogue import load_catalogue
from services.models import (
    MovePlan,
    MovePlanStatus,
    MovePlanTenant,
    MovePlanTenantStatus,
    Tenant,
    TenantStatus,
)
from services.moves import recorded
from services.moves.plans import (
    MovePlanPreview,
    MovePlanReport,
    MovePlanSpec,
    describe_target,
    list_plans,
    plan_moves,
    plan_report,
)
from services.moves.requests import BACKEND_NAMES, MoveTarget
from services.selection import Selection
from services.settings import Settings
from services.tenancy.stores import StoreKind, store_kinds
from services.tenancy.tenants import plans
from web.audit import caller_of
from web.auth import landlord_staff
from web.deps import DbSession, settings_of
from web.forms import SelectionForm, whole_number

#: The form's whole numbers, in the order it shows them: (field, label, what it means). An empty
#: optional one turns its rule off.
NUMBER_FIELDS = (
    ("batch_size", "Batch size", "tenants per batch; a batch starts when the one before it has ended"),
    ("concurrency", "Concurrency", "tenants moving at once within a batch"),
    ("halt_after_failures", "Halt after N failures", "empty: never halt"),
)
OPTIONAL_NUMBERS = {"halt_after_failures"}
#: The services name the target's fields as MoveTarget does; the form's are prefixed, the selection
#: having an `isolation` of its own.
_TARGET_FIELDS = {"isolation": "to_isolation", "backend": "to_backend", "server": "to_server"}
#: Badge colours the stylesheet has, for the statuses it has none of.
BADGES = {
    MovePlanStatus.FINISHED: "ok",
    MovePlanStatus.HALTED: "failed",
    MovePlanStatus.PAUSED: "pending",
    MovePlanStatus.CANCELLED: "pending",
    MovePlanTenantStatus.MOVING: "running",
    MovePlanTenantStatus.MOVED: "ok",
    MovePlanTenantStatus.REFUSED: "suspended",
    MovePlanTenantStatus.SKIPPED: "pending",
}
#: Unknown slugs the form names back; the others are counted.
NAMED_SLUGS = 5
#: Tables named in a tenant's short breakdown of rows; the rest are counted together.
BREAKDOWN_TABLES = 3


@dataclass(frozen=True)
class TargetChoices:
    """The kinds of store this installation has, as the form offers them."""

    kinds: list[StoreKind]
    #: The tenant servers by name; the form offers a choice when there are several.
    servers: list[str]

    @classmethod
    def of(cls, settings: Settings) -> TargetChoices:
        return cls(store_kinds(settings), list(settings.servers))

    @property
    def isolations(self) -> list[str]:
        return list(dict.fromkeys(kind.isolation for kind in self.kinds))

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(kind.backend for kind in self.kinds))

    def isolations_on(self, backend: str) -> list[str]:
        return list(dict.fromkeys(kind.isolation for kind in self.kinds if kind.backend == backend))

    @staticmethod
    def backend_name(backend: str) -> str:
        return BACKEND_NAMES.get(backend, backend)


@dataclass
class MovePlanForm(SelectionForm):
    """The new-move-plan form as posted: its text, read into a MovePlanSpec by `spec_of`."""

    to_isolation: str = ""
    #: Empty: each tenant's own backend.
    to_backend: str = ""
    #: Empty: the server each tenant is on, else the default.
    to_server: str = ""
    batch_size: str = str(MovePlanSpec.batch_size)
    concurrency: str = str(MovePlanSpec.concurrency)
    halt_after_failures: str = str(MovePlanSpec.halt_after_failures)

    def as_fields(self) -> list[tuple[str, str]]:
        """Every (name, value) the form posts: the dry run's "Start" button posts them again."""
        posted: list[tuple[str, str]] = []
        for each in fields(self):
            value: list[str] | str = getattr(self, each.name)
            posted += [(each.name, one) for one in ([value] if isinstance(value, str) else value)]
        return posted


def _target_errors(form: MovePlanForm, choices: TargetChoices) -> dict[str, str]:
    """What is wrong with the target: only the kinds of store this installation has are offered."""
    errors: dict[str, str] = {}
    isolation, backend = form.to_isolation.strip(), form.to_backend.strip()
    if not isolation:
        errors["to_isolation"] = "Choose the isolation mode the tenants move to."
    elif isolation not in choices.isolations:
        errors["to_isolation"] = f"Move to one of the isolation modes here: {', '.join(choices.isolations)}."
    if backend and backend not in choices.backends:
        named = ", ".join(choices.backend_name(each) for each in choices.backends)
        errors["to_backend"] = f"There is no such backend here; the backends are: {named}."
    elif backend and "to_isolation" not in errors and isolation not in choices.isolations_on(backend):
        errors["to_isolation"] = (
            f"There is no {choices.backend_name(backend)} {isolation} here; "
            f"{choices.backend_name(backend)} stores here are: {', '.join(choices.isolations_on(backend))}."
        )
    return errors


async def _unknown_slugs(session: AsyncSession, slugs: tuple[str, ...]) -> list[str]:
    """The slugs no tenant here has. Every slug is read, not only those named: a form may name more
    than a statement takes parameters."""
    if not slugs:
        return []
    known = set(await session.scalars(select(Tenant.slug).where(Tenant.status != TenantStatus.DELETED)))
    return [slug for slug in slugs if slug not in known]


async def spec_of(session: AsyncSession, settings: Settings, form: MovePlanForm) -> MovePlanSpec:
    """The plan the form asks for. Raises InvalidFields naming every wrong field at once."""
    errors = _target_errors(form, TargetChoices.of(settings))
    numbers: dict[str, Any] = {
        name: whole_number(
            getattr(form, name),
            MovePlan.__table__.c[name],
            name=name,
            optional=name in OPTIONAL_NUMBERS,
            errors=errors,
        )
        for name, _, _ in NUMBER_FIELDS
    }
    if unknown := await _unknown_slugs(session, form.slugs):
        more = f" (and {len(unknown) - NAMED_SLUGS} more)" if len(unknown) > NAMED_SLUGS else ""
        errors["tenants"] = f"There is no tenant {', '.join(unknown[:NAMED_SLUGS])}{more} here."
    selection = form.selection()
    target = MoveTarget(
        form.to_isolation.strip(), form.to_backend.strip() or None, form.to_server.strip() or None
    )
    # A number that is not one is left at its default, so that the rules of the others are checked.
    spec = MovePlanSpec(
        selection, target, **{name: value for name, value in numbers.items() if name not in errors}
    )
    try:
        spec.check(settings)
    except InvalidFields as wrong:
        errors = {
            **{_TARGET_FIELDS.get(name, name): message for name, message in wrong.errors.items()},
            **errors,
        }
    if errors:
        raise InvalidFields(errors)
    return spec


def breakdown(rows: dict[str, int]) -> str:
    """A tenant's rows in short: its largest tables, then how many rows the others hold."""
    filled = sorted(
        ((count, table) for table, count in rows.items() if count), key=lambda each: (-each[0], each[1])
    )
    said = [f"{table} {count:,}" for count, table in filled[:BREAKDOWN_TABLES]]
    if rest := filled[BREAKDOWN_TABLES:]:
        others = sum(count for count, _ in rest)
        said.append(f"{len(rest)} other table{'' if len(rest) == 1 else 's'} {others:,}")
    return ", ".join(said) or "no rows"


def duration(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 2 h 5 min'."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60} min"


def milliseconds(value: int | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


@dataclass(frozen=True)
class MovePlanView:
    """A plan's report as its page shows it."""

    report: MovePlanReport
    #: Where its tenants go, in words.
    target: str

    @property
    def plan(self) -> MovePlan:
        return self.report.plan

    @property
    def tenants(self) -> list[MovePlanTenant]:
        return self.report.tenants

    @property
    def selection(self) -> str:
        return str(Selection.of(self.plan.selection))

    @property
    def counts(self) -> Counter[str]:
        return self.report.counts

    @property
    def busy(self) -> bool:
        """Still moving: running, or with tenants moving after a pause or cancel."""
        return self.plan.status == MovePlanStatus.RUNNING or bool(self.counts[MovePlanTenantStatus.MOVING])


async def _plan_view(session: AsyncSession, settings: Settings, plan_id: int) -> MovePlanView:
    report = await plan_report(session, plan_id)
    plan = report.plan
    target = MoveTarget(plan.to_isolation, plan.to_backend, plan.to_server)
    return MovePlanView(report, describe_target(settings, target))


#: A change to a plan, as the services make it.
Change = Callable[[AsyncSession, Settings, Caller, int], Awaitable[MovePlan]]


class MovePlansController(Controller):
    path = "/move-plans"
    include_in_schema = False
    guards = [landlord_staff]

    async def _form_page(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        form: MovePlanForm,
        *,
        errors: dict[str, str] | None = None,
        message: str | None = None,
        preview: MovePlanPreview | None = None,
        status_code: int = 200,
    ) -> Template:
        """The form (and the dry run, when there is one): the whole page, or for HTMX the part it
        swaps in place (answered 422 for mistakes, the status the portal's HTMX swaps in)."""
        settings = settings_of(request)
        context = {
            "form": form,
            "errors": errors or {},
            "message": message,
            "preview": preview,
            "target": describe_target(settings, preview.spec.target) if preview else None,
            "catalogue": load_catalogue(settings.layers_dir),
            "plans": await plans(db_session),
            "choices": TargetChoices.of(settings),
            "numbers": NUMBER_FIELDS,
            "optional": OPTIONAL_NUMBERS,
            "breakdown": breakdown,
            "duration": duration,
        }
        if request.htmx:
            swapped = 422 if status_code in (400, 422) else status_code
            return Template("landlord/_move_plan_form.html", context=context, status_code=swapped)
        return Template("landlord/new_move_plan.html", context=context, status_code=status_code)

    async def _plan_page(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        plan_id: int,
        *,
        message: str | None = None,
        status_code: int = 200,
    ) -> Template:
        view = await _plan_view(db_session, settings_of(request), plan_id)
        context = {
            "view": view,
            "plan": view.plan,
            "badges": BADGES,
            "message": message,
            "milliseconds": milliseconds,
        }
        return Template("landlord/move_plan.html", context=context, status_code=status_code)

    async def _change(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: int, change: Change
    ) -> Response[Any]:
        """Make `change` and show the plan again; a refusal is said on its page."""
        try:
            async with db_session.begin_nested():
                plan = await change(db_session, settings_of(request), caller_of(request), plan_id)
        except Conflict as refusal:
            return await self._plan_page(
                request, db_session, plan_id, message=refusal.message, status_code=409
            )
        await db_session.commit()
        return Redirect(f"/move-plans/{plan.id}", status_code=HTTP_303_SEE_OTHER)

    @get()
    async def list_move_plans(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        settings = settings_of(request)
        listed = [
            (
                plan,
                describe_target(settings, MoveTarget(plan.to_isolation, plan.to_backend, plan.to_server)),
                counts,
            )
            for plan, counts in await list_plans(db_session)
        ]
        return Template("landlord/move_plans.html", context={"listed": listed, "badges": BADGES})

    @get("/new")
    async def new_move_plan(self, request: HTMXRequest, db_session: DbSession) -> Template:
        return await self._form_page(request, db_session, MovePlanForm())

    @post("/dry-run")
    async def dry_run(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[MovePlanForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """What the plan would do; nothing is recorded. Its stores are read to count their rows."""
        settings = settings_of(request)
        try:
            preview = await plan_moves(db_session, settings, await spec_of(db_session, settings, data))
        except InvalidFields as wrong:
            return await self._form_page(request, db_session, data, errors=wrong.errors, status_code=400)
        return await self._form_page(request, db_session, data, preview=preview)

    @post()
    async def start_move_plan(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[MovePlanForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """Start the plan (its first moves are sent when this commits) and go to its page."""
        settings = settings_of(request)
        try:
            spec = await spec_of(db_session, settings, data)
            async with db_session.begin_nested():
                plan = await recorded.start_plan(db_session, settings, caller_of(request), spec)
        except InvalidFields as wrong:
            return await self._form_page(request, db_session, data, errors=wrong.errors, status_code=400)
        except Conflict as refusal:
            preview = await plan_moves(db_session, settings, spec)
            return await self._form_page(
                request, db_session, data, message=refusal.message, preview=preview, status_code=409
            )
        await db_session.commit()
        return Redirect(f"/move-plans/{plan.id}", status_code=HTTP_303_SEE_OTHER)

    @get("/{plan_id:int}")
    async def move_plan(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> Template:
        return await self._plan_page(request, db_session, plan_id)

    @get("/{plan_id:int}/progress")
    async def progress(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> Response[Any]:
        """The plan's status and tenants, polled while it moves; once it stops, the page reloads
        once to show it as it now is (its buttons too)."""
        view = await _plan_view(db_session, settings_of(request), plan_id)
        if not view.busy:
            return ClientRefresh()
        context = {"view": view, "plan": view.plan, "badges": BADGES, "milliseconds": milliseconds}
        return Template("landlord/_move_plan_progress.html", context=context)

    @post("/{plan_id:int}/pause")
    async def pause(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, plan_id, recorded.pause_plan)

    @post("/{plan_id:int}/resume")
    async def resume(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, plan_id, recorded.resume_plan)

    @post("/{plan_id:int}/cancel")
    async def cancel(
        self, request: Request[Any, Any, Any], db_session: DbSession, plan_id: FromPath[int]
    ) -> Response[Any]:
        return await self._change(request, db_session, plan_id, recorded.cancel_plan)
