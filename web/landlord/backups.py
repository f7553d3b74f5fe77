"""The Backups panel of the landlord tenant page: the tenant's backups (format, size, age,
verification) and "Back up now". A backup runs as a job; the page follows it like any other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from litestar import Controller, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Response, Template
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups import get_backup
from services.backups.recorded import back_up, verify_again
from services.backups.schedules import backup_formats
from services.errors import DomainError
from services.models import Tenant, TenantStatus
from services.tenancy.tenants import get_tenant
from web.audit import caller_of
from web.auth import landlord_staff
from web.backup_pages import VERIFICATION_BADGES, BackupForm, BackupLine, backup_lines
from web.deps import DbSession, settings_of
from web.landlord.backup_schedule import SchedulePanel, schedule_panel
from web.redirects import see_other


@dataclass
class BackupsPanel:
    tenant: Tenant
    lines: list[BackupLine] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    #: Why "Back up now" is off, when it is.
    unavailable: str | None = None
    error: str | None = None
    badges: dict[str, str] = field(default_factory=lambda: dict(VERIFICATION_BADGES))
    schedule: SchedulePanel | None = None


async def backups_panel(session: AsyncSession, tenant: Tenant, *, error: str | None = None) -> BackupsPanel:
    lines = await backup_lines(session, tenant)
    unavailable = None
    if tenant.status != TenantStatus.ACTIVE or not tenant.store_name:
        unavailable = f"{tenant.slug} is {tenant.status}: only an active tenant's store can be backed up."
    schedule = await schedule_panel(session, tenant)
    return BackupsPanel(tenant, lines, backup_formats(tenant), unavailable, error, schedule=schedule)


class BackupsController(Controller):
    path = "/tenants/{slug:str}/backups"
    include_in_schema = False
    guards = [landlord_staff]

    @post("/")
    async def back_up_now(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[BackupForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        try:
            async with db_session.begin_nested():
                await back_up(db_session, settings_of(request), caller_of(request), tenant, data.format)
        except DomainError as error:
            if not request.htmx:
                raise
            panel = await backups_panel(db_session, tenant, error=error.message)
            return Template(
                "landlord/_backups.html", context={"panel": panel, "tenant": tenant}, status_code=422
            )
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}#backups")

    @post("/{backup_id:int}/verify")
    async def verify_again(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str], backup_id: FromPath[int]
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        backup = await get_backup(db_session, tenant, backup_id)
        await verify_again(db_session, caller_of(request), tenant, backup)
        await db_session.commit()
        return see_other(request, f"/tenants/{slug}#backups")
