"""The landlord dashboard, and where a signed-in person lands: staff on the dashboard, a member of
one tenant in it, a member of several (or of one not in service) on the list of their tenants."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from services.backups.archive import describe_size
from services.charts import jobs_per_day, tenants_over_time
from services.dashboard import summarise_platform
from services.models import TenantStatus
from services.models.types import utcnow
from services.provisioning.warm_pool import warm_pools
from services.tenancy.placement import server_loads
from services.tenancy.security import cross_tenant_counts
from web.auth import current_user, signed_in
from web.deps import DbSession, settings_of
from web.health import check_health


class DashboardController(Controller):
    include_in_schema = False
    guards = [signed_in]

    @get("/")
    async def dashboard(self, request: Request[Any, Any, Any], db_session: DbSession) -> Template | Redirect:
        user = current_user(request)
        if user is None or not user.is_landlord_staff:
            memberships = user.memberships if user else []
            if len(memberships) == 1 and memberships[0].tenant.status == TenantStatus.ACTIVE:
                return Redirect(f"/t/{memberships[0].tenant.slug}/", status_code=HTTP_303_SEE_OTHER)
            return Template("landlord/memberships.html", context={"memberships": memberships})
        summary = await summarise_platform(db_session)
        health = await check_health(request)
        blocked = await cross_tenant_counts(db_session)
        settings = settings_of(request)
        pools = await warm_pools(db_session, settings)
        today = utcnow().date()
        return Template(
            "landlord/dashboard.html",
            context={
                "summary": summary,
                "health": health,
                "blocked": blocked,
                "pools": pools,
                "pool_size": settings.warm_pool_size,
                "servers": await server_loads(db_session, settings),
                "placement": settings.placement,
                "describe_size": describe_size,
                "tenant_counts": await tenants_over_time(db_session, today),
                "job_counts": await jobs_per_day(db_session, today),
            },
        )
