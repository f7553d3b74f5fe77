"""Landlord staff: a superadmin creates landlord admins here, and lets them switch into tenants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import HTMXRequest

from services.accounts.recorded import add_landlord_admin, allow_switching
from services.accounts.users import list_landlord_staff
from services.errors import DomainError, InvalidInput
from web.audit import caller_of
from web.auth import superadmin
from web.deps import DbSession


@dataclass
class NewStaffForm:
    email: str = ""


@dataclass
class SwitchGrantForm:
    #: "yes" grants, "no" revokes.
    allowed: str = ""


class UsersController(Controller):
    path = "/users"
    include_in_schema = False
    guards = [superadmin]

    @get("/")
    async def list_users(self, db_session: DbSession) -> Template:
        return Template(
            "landlord/users.html",
            context={"users": await list_landlord_staff(db_session), "form": NewStaffForm()},
        )

    @post("/")
    async def create_landlord_admin(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        data: Annotated[NewStaffForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        context: dict[str, object] = {"form": data}
        status = 201
        try:
            async with db_session.begin_nested():
                context["created"] = await add_landlord_admin(db_session, caller_of(request), data.email)
            context["form"] = NewStaffForm()
        except DomainError as error:
            context["error"], status = error.message, 422
        context["users"] = await list_landlord_staff(db_session)
        template = "landlord/_users_panel.html" if request.htmx else "landlord/users.html"
        return Template(template, context=context, status_code=status)

    @post("/{user_id:int}/switching")
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
        context = {"users": await list_landlord_staff(db_session), "form": NewStaffForm()}
        return Template("landlord/_users_panel.html", context=context)
