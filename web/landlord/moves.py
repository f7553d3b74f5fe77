"""Moving a tenant's store to another kind of store in the landlord portal: the Moves panel of the
tenant page (each move, its figures, what became of the store it left), the page that asks where to
and for the slug typed to confirm, and the confirmation of a move back. The moves themselves are
services.moves' (the requests, the job, the trail); a refusal is said on the page that asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Response, Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, InvalidFields, InvalidInput
from services.models import IsolationMode, Tenant, TenantMove
from services.models.types import utcnow
from services.moves import recorded
from services.moves.merge import target_named
from services.moves.requests import (
    MoveTarget,
    RequestedMove,
    describe_kind,
    find_move,
    from_kind,
    kinds_to_move_to,
    latest_done,
    may_move_back,
    moves_of,
    to_kind,
    why_not_movable,
)
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, SQLITE, StoreKind, kind_of
from services.tenancy.tenants import get_tenant
from services.usage_history import usage_history
from web.audit import caller_of
from web.auth import landlord_staff
from web.backup_pages import refusal_status
from web.deps import DbSession, settings_of
from web.landlord.splits import (
    MergeForm,
    SplitForm,
    confirm_message,
    merge_page,
    page_status,
    said_on,
    split_page,
)
from web.redirects import see_other

#: What a kind of store means for the tenant moving into it, by isolation (a database: by backend).
_WHAT_IT_MEANS: dict[str, str] = {
    IsolationMode.SHARED: "its rows go in beside other tenants' rows, each marked as its own; ids another "
    "tenant holds there are renumbered.",
    IsolationMode.SCHEMA: "a schema of its own in the tenant server's PostgreSQL database.",
}
_A_DATABASE_OF_ITS_OWN = {
    SQLITE: "a SQLite file of its own.",
    POSTGRESQL: "a PostgreSQL database of its own.",
}


def what_it_means(kind: StoreKind) -> str:
    if kind.isolation == IsolationMode.DATABASE:
        return _A_DATABASE_OF_ITS_OWN.get(kind.backend, "a database of its own.")
    return _WHAT_IT_MEANS.get(kind.isolation, "")


# The Moves panel of the tenant page ---------------------------------------------------------------


@dataclass(frozen=True)
class MoveLine:
    move: TenantMove
    going_from: str
    going_to: str
    #: Whether this is the move the tenant can be moved back from ("Move back…").
    may_move_back: bool


@dataclass(frozen=True)
class MovesPanel:
    #: The tenant's moves, newest first.
    lines: list[MoveLine]
    #: Whether "Move…" is offered: the tenant is active, not moving, and there is another kind of
    #: store here.
    may_move: bool
    #: What the move under way does to the tenant, in words, while one is under way.
    under_way: str | None = None


async def moves_panel(session: AsyncSession, settings: Settings, tenant: Tenant) -> MovesPanel:
    """The panel; "Move…" and "Move back…" only while nothing stops them (no move under way)."""
    moves = await moves_of(session, tenant)
    going = {move.id: describe_kind(settings, to_kind(move)) for move in moves}
    under_way = next(
        (
            RequestedMove(move, move.job, tenant, going[move.id]).message
            for move in moves
            if move.job is not None and not move.job.finished
        ),
        None,
    )
    free = why_not_movable(tenant) is None and under_way is None
    latest = latest_done(moves)
    lines = [
        MoveLine(
            move,
            describe_kind(settings, from_kind(move)),
            going[move.id],
            free and may_move_back(move, tenant, latest),
        )
        for move in moves
    ]
    return MovesPanel(lines, free and bool(kinds_to_move_to(settings, tenant)), under_way)


# The move page ------------------------------------------------------------------------------------


def form_value(kind: StoreKind) -> str:
    """A kind of store as the form sends it: "<backend>:<isolation>", then ":<server>" for PostgreSQL."""
    return ":".join(part for part in kind if part)


@dataclass
class MoveForm:
    #: The kind of store chosen (`form_value`).
    to: str = ""
    #: The tenant's slug, typed again.
    confirm: str = ""

    @property
    def target(self) -> MoveTarget:
        backend, isolation, server = [*self.to.split(":", 2), "", ""][:3]
        return MoveTarget(isolation, backend or None, server or None)


def check_form(tenant: Tenant, form: MoveForm) -> None:
    """A kind of store chosen, and the slug typed: a move closes the tenant for its final catch-up."""
    errors = {}
    if not form.to:
        errors["to"] = f"Choose the kind of store {tenant.slug} moves to."
    if form.confirm.strip() != tenant.slug:
        errors["confirm"] = f"Type {tenant.slug} to confirm that it is to be moved."
    if errors:
        raise InvalidFields(errors)


def _on_the_form(error: InvalidInput) -> dict[str, str]:
    """Each mistake next to its field: the slug typed, or the kind of store (whatever part of it the
    services name: its isolation, backend or server)."""
    return {
        field if field == "confirm" else "to": message
        for field, message in error.errors_by_field("to").items()
    }


@dataclass(frozen=True)
class KindChoice:
    #: What the form sends for it (`form_value`).
    value: str
    kind: str
    means: str


@dataclass
class MovePage:
    tenant: Tenant
    #: The kind of store the tenant is in now.
    here: str
    choices: list[KindChoice]
    #: Its rows at its latest usage measure; None when it was never measured.
    rows: int | None
    #: Why it cannot be moved now, when it cannot: the form is then not offered.
    unavailable: str | None
    form: MoveForm = field(default_factory=MoveForm)
    errors: dict[str, str] = field(default_factory=dict)
    #: A refusal that is no field's (a move under way).
    refusal: str | None = None


async def move_page(session: AsyncSession, settings: Settings, tenant: Tenant, **extra: Any) -> MovePage:
    choices = [
        KindChoice(form_value(kind), describe_kind(settings, kind), what_it_means(kind))
        for kind in kinds_to_move_to(settings, tenant)
    ]
    history = await usage_history(session, tenant.id, utcnow().date())
    rows = history.rows.days[-1].counts["rows"] if history is not None and history.rows.days else None
    unavailable = why_not_movable(tenant)
    if unavailable is None and not choices:
        unavailable = f"There is no other kind of store here for {tenant.slug} to move to."
    here = describe_kind(settings, kind_of(settings, tenant))
    return MovePage(tenant, here, choices, rows, unavailable, **extra)


# The move back page -------------------------------------------------------------------------------


@dataclass
class MoveBackPage:
    tenant: Tenant
    move: TenantMove
    #: The kind of store the move took the tenant out of, where it goes back.
    back_to: str
    #: The kind of store the move took it to.
    moved_to: str
    #: Why it cannot be moved back now, when it cannot: the form is then not offered.
    refusal: str | None = None


async def move_back_page(
    session: AsyncSession, settings: Settings, tenant: Tenant, taken: TenantMove
) -> MoveBackPage:
    refusal = why_not_movable(tenant)
    if not may_move_back(taken, tenant, latest_done(await moves_of(session, tenant))):
        refusal = (
            f"Move #{taken.id} cannot be moved back: only the latest move done, while {tenant.slug} is "
            "still in the store it took it to, is moved back."
        )
    back_to, moved_to = describe_kind(settings, from_kind(taken)), describe_kind(settings, to_kind(taken))
    return MoveBackPage(tenant, taken, back_to, moved_to, refusal)


class MovesController(Controller):
    """A tenant's moves, its splits (rows moved into a new tenant) and merges (its rows into another
    tenant): the last two's pages are web.landlord.splits'."""

    path = "/tenants/{slug:str}"
    include_in_schema = False
    guards = [landlord_staff]

    @get("/move")
    async def choose_where(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]
    ) -> Template:
        tenant = await get_tenant(db_session, slug)
        page = await move_page(db_session, settings_of(request), tenant)
        return Template("landlord/move.html", context={"page": page, "tenant": tenant})

    @post("/move")
    async def move(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[MoveForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """The move asked for, then the tenant page, where its job is followed; a refusal on the
        form, next to its field, or above it for one that is no field's."""
        tenant = await get_tenant(db_session, slug)
        settings = settings_of(request)
        try:
            check_form(tenant, data)
            async with db_session.begin_nested():
                await recorded.move(db_session, settings, caller_of(request), tenant, data.target)
        except DomainError as error:
            said: dict[str, Any] = (
                {"errors": _on_the_form(error)}
                if isinstance(error, InvalidInput)
                else {"refusal": error.message}
            )
            page = await move_page(db_session, settings, tenant, form=data, **said)
            context = {"page": page, "tenant": tenant}
            if request.htmx:  # HTMX swaps a refusal in place only as a 422 (base.html's responseHandling)
                return Template(
                    "landlord/_move_form.html", context=context, status_code=HTTP_422_UNPROCESSABLE_ENTITY
                )
            return Template("landlord/move.html", context=context, status_code=refusal_status(error))
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @get("/moves/{move_id:int}/back")
    async def confirm_move_back(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str], move_id: FromPath[int]
    ) -> Template:
        tenant = await get_tenant(db_session, slug)
        taken = await find_move(db_session, tenant, move_id)
        page = await move_back_page(db_session, settings_of(request), tenant, taken)
        status = HTTP_409_CONFLICT if page.refusal else HTTP_200_OK
        return Template(
            "landlord/move_back.html", context={"page": page, "tenant": tenant}, status_code=status
        )

    @post("/moves/{move_id:int}/back")
    async def move_back(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str], move_id: FromPath[int]
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        taken = await find_move(db_session, tenant, move_id)
        settings = settings_of(request)
        try:
            async with db_session.begin_nested():
                await recorded.move_back(db_session, settings, caller_of(request), tenant, taken)
        except DomainError as error:
            page = await move_back_page(db_session, settings, tenant, taken)
            page.refusal = error.message
            return Template(
                "landlord/move_back.html",
                context={"page": page, "tenant": tenant},
                status_code=refusal_status(error),
            )
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @get("/split")
    async def split_dry_run(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        unit: FromQuery[str] = "",
        into: FromQuery[str] = "",
        name: FromQuery[str] = "",
    ) -> Template:
        """The split form; once a unit and a slug are given, the dry run and the confirmation (the
        dry run alone on an HTMX request)."""
        tenant = await get_tenant(db_session, slug)
        page = await split_page(db_session, settings_of(request), tenant, SplitForm(unit, into, name))
        context = {"page": page, "tenant": tenant}
        template = "landlord/_split_preview.html" if request.htmx else "landlord/split.html"
        return Template(template, context=context, status_code=page_status(page))

    @post("/split")
    async def split(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[SplitForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """The split started, then the tenant page, where its job is followed step by step; a
        mistake or a refusal on the page that asked, with its dry run."""
        tenant = await get_tenant(db_session, slug)
        settings = settings_of(request)
        try:
            if data.confirm.strip() != tenant.slug:
                raise InvalidFields({"confirm": confirm_message(tenant)})
            async with db_session.begin_nested():
                await recorded.split(db_session, settings, caller_of(request), tenant, data.unit, data.target)
        except DomainError as error:
            page = await split_page(db_session, settings, tenant, data, confirming=True)
            said_on(page, error, "unit")
            context = {"page": page, "tenant": tenant}
            if request.htmx:
                return Template(
                    "landlord/_split_preview.html", context=context, status_code=HTTP_422_UNPROCESSABLE_ENTITY
                )
            return Template("landlord/split.html", context=context, status_code=refusal_status(error))
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}")

    @get("/merge")
    async def merge_dry_run(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str], into: FromQuery[str] = ""
    ) -> Template:
        """The merge form; once a tenant to merge into is chosen, the dry run and the confirmation."""
        tenant = await get_tenant(db_session, slug)
        page = await merge_page(db_session, settings_of(request), tenant, MergeForm(into))
        return Template(
            "landlord/merge.html", context={"page": page, "tenant": tenant}, status_code=page_status(page)
        )

    @post("/merge")
    async def merge(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[MergeForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        """The merge started, then the page of the tenant merged into, where its job is followed."""
        tenant = await get_tenant(db_session, slug)
        settings = settings_of(request)
        try:
            if data.confirm.strip() != tenant.slug:
                raise InvalidFields({"confirm": confirm_message(tenant, "merged")})
            target = await target_named(db_session, data.into)
            async with db_session.begin_nested():
                await recorded.merge(db_session, settings, caller_of(request), tenant, target)
        except DomainError as error:
            page = await merge_page(db_session, settings, tenant, data, confirming=True)
            said_on(page, error, "into")
            return Template(
                "landlord/merge.html",
                context={"page": page, "tenant": tenant},
                status_code=refusal_status(error),
            )
        await db_session.commit()
        return see_other(request, f"/tenants/{target.slug}")
