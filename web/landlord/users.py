"""Accounts, for the platform's staff: the landlord's staff, and anyone else found by their email.
A landlord admin or superadmin resets someone's password here (after a confirmation; the new one
is shown once). A superadmin also creates landlord admins here, and lets them switch into tenants."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from services.accounts.recorded import add_landlord_admin, allow_switching
from services.accounts.resets import ResetRefused, account_of, reset_by_staff, staff_reset_refusal
from services.accounts.users import find_user, list_landlord_staff
from services.errors import DomainError, InvalidInput
from web.audit import caller_of
from web.auth import landlord_staff, superadmin
from web.deps import DbSession


@dataclass
class NewStaffForm:
    email: str = ""


@dataclass
class SwitchGrantForm:
    #: "yes" grants, "no" revokes.
    allowed: str = ""


async def _panel(request: Request[Any, Any, Any], db_session: AsyncSession) -> dict[str, Any]:
    """What the staff panel shows (the part an HTMX request swaps): the staff, each with the reason
    the caller may not reset their password, if any; for a superadmin, the new admin form."""
    return {
        "users": await list_landlord_staff(db_session),
        "form": NewStaffForm(),
        "reset_refusal": partial(staff_reset_refusal, caller_of(request)),
    }


async def _users_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    looked_up: str = "",
    status: int = 200,
    **context: Any,
) -> Template:
    """The users page; `looked_up`: an email typed in "Find an account" (the account it names, if
    any, is shown with a way to reset its password)."""
    found = await find_user(db_session, looked_up) if looked_up.strip() else None
    page = {**await _panel(request, db_session), "looked_up": looked_up, "found": found, **context}
    return Template("landlord/users.html", context=page, status_code=status)


class UsersController(Controller):
    path = "/users"
    include_in_schema = False
    guards = [landlord_staff]

    @get("/")
    async def list_users(
        self, request: HTMXRequest, db_session: DbSession, email: FromQuery[str] = ""
    ) -> Template:
        return await _users_page(request, db_session, looked_up=email)

    @post("/", guards=[superadmin])
    async def create_landlord_admin(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[NewStaffForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        context: dict[str, Any] = {"form": data}
        status = 201
        try:
            async with db_session.begin_nested():
                context["created"] = await add_landlord_admin(db_session, caller_of(request), data.email)
            context["form"] = NewStaffForm()
        except DomainError as error:
            context["error"], status = error.message, 422
        if not request.htmx:
            return await _users_page(request, db_session, status=status, **context)
        panel = {**await _panel(request, db_session), **context}
        return Template("landlord/_users_panel.html", context=panel, status_code=status)

    @post("/{user_id:int}/switching", guards=[superadmin])
    async def set_switching(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        user_id: FromPath[int],
        data: Annotated[SwitchGrantForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        granted = {"yes": True, "no": False}.get(data.allowed)
        if granted is None:
            raise InvalidInput(
                "Choose whether this admin may switch into tenants: yes or no.", field="allowed"
            )
        await allow_switching(db_session, caller_of(request), user_id, allowed=granted)
        if not request.htmx:
            return Redirect("/users", status_code=HTTP_303_SEE_OTHER)
        return Template("landlord/_users_panel.html", context=await _panel(request, db_session))

    @get("/{user_id:int}/password-reset")
    async def confirm_password_reset(
        self, request: HTMXRequest, db_session: DbSession, user_id: FromPath[int]
    ) -> Template:
        """What a reset does, before it is done (or why it may not be)."""
        return await _users_page(request, db_session, confirming=await account_of(db_session, user_id))

    @post("/{user_id:int}/password-reset")
    async def reset_password(
        self, request: HTMXRequest, db_session: DbSession, user_id: FromPath[int]
    ) -> Template:
        """A new password for the account, shown on this answer only."""
        try:
            reset = await reset_by_staff(db_session, caller_of(request), user_id)
        except ResetRefused:
            return await _users_page(
                request, db_session, confirming=await account_of(db_session, user_id), status=409
            )
        return await _users_page(request, db_session, reset=reset)
