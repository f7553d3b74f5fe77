"""The landlord dashboard, and where a signed-in person lands."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from services.dashboard import summarise_platform
from services.provisioning.warm_pool import warm_pools
from services.tenancy.security import cross_tenant_counts
from web.auth import current_user, signed_in
from web.deps import DbSession, settings_of
from web.health import check_health


class DashboardController(Controller):
    include_in_schema = False
    guards = [signed_in]

    @get("/")
    async def dashboard(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template:
        user = current_user(request)
        if user is None or not user.is_landlord_staff:
            return Template(
                "landlord/memberships.html", context={"memberships": user.memberships if user else []}
            )
        summary = await summarise_platform(db_session)
        health = await check_health(request)
        blocked = await cross_tenant_counts(db_session)
        settings = settings_of(request)
        pools = await warm_pools(db_session, settings)
        return Template(
            "landlord/dashboard.html",
            context={
                "summary": summary,
                "health": health,
                "blocked": blocked,
                "pools": pools,
                "pool_size": settings.warm_pool_size,
            },
        )
