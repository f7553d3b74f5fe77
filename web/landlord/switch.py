"""Switching into a tenant from its landlord page, with a reason, and exiting from the banner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Response, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import InvalidInput
from services.tenancy.tenants import get_tenant
from web.auth import signed_in
from web.deps import DbSession
from web.redirects import see_other
from web.switching import enter_switch, leave_switch, may_switch_tenants


@dataclass
class SwitchForm:
    reason: str = ""


def tenant_portal_path(slug: str) -> str:
    return f"/t/{slug}/"


class SwitchController(Controller):
    include_in_schema = False

    @post("/tenants/{slug:str}/switch", guards=[may_switch_tenants])
    async def switch_into(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[SwitchForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        try:
            switch = await enter_switch(request, db_session, slug, data.reason)
        except InvalidInput as error:
            if error.field != "reason":
                raise
            return await self._form_with_error(request, db_session, slug, data, error.message)
        return see_other(request, tenant_portal_path(switch.tenant_slug))

    @post("/switch/exit", guards=[signed_in])
    async def exit_switch(self, request: HTMXRequest, db_session: DbSession) -> Response[Any]:
        switch = await leave_switch(request, db_session)
        return see_other(request, f"/tenants/{switch.tenant_slug}" if switch else "/")

    @staticmethod
    async def _form_with_error(
        request: HTMXRequest, db_session: AsyncSession, slug: str, form: SwitchForm, error: str
    ) -> Template:
        """The form again, the reason as typed and what is wrong with it: swapped into the tenant
        page over HTMX, else on a page of its own."""
        context = {
            "tenant": await get_tenant(db_session, slug),
            "switch_form": form,
            "switch_errors": {"reason": error},
        }
        template = "landlord/_switch_form.html" if request.htmx else "landlord/switch.html"
        return Template(template, context=context, status_code=422)
