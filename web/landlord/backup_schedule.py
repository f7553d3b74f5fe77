"""A tenant's backup schedule, on the Backups panel: backed up daily at a time (UTC) in a format,
the newest N scheduled backups kept. Set or cleared there; wrong input comes back beside its field,
in the panel (HTMX) or on a page of its own (a browser without JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from litestar_htmx import HTMXRequest
from sqlalchemy.ext.asyncio import AsyncSession

from services.backups.recorded import schedule_backups, stop_scheduled_backups
from services.backups.schedules import MAX_KEEP, backup_formats, schedule_of
from services.errors import DomainError
from services.models import BackupSchedule, Tenant, TenantStatus
from services.models.types import utcnow
from services.tenancy.tenants import get_tenant
from web.audit import caller_of
from web.auth import landlord_staff
from web.deps import DbSession

DEFAULT_DAILY_AT = "02:00"
DEFAULT_KEEP = "7"


@dataclass
class ScheduleForm:
    daily_at: str = ""
    format: str = ""
    keep: str = ""


@dataclass
class SchedulePanel:
    tenant: Tenant
    schedule: BackupSchedule | None
    form: ScheduleForm
    formats: list[str]
    errors: dict[str, str] = field(default_factory=dict)
    #: What was just done, said once.
    message: str | None = None
    next_run_in: str | None = None
    max_keep: int = MAX_KEEP

    @property
    def available(self) -> bool:
        return self.tenant.status == TenantStatus.ACTIVE and bool(self.tenant.store_name)


def describe_until(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if seconds < 60:
        return "due now"
    hours, minutes = divmod(seconds // 60, 60)
    if hours == 0:
        return f"in {minutes} min"
    return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"


def describe_schedule(schedule: BackupSchedule) -> str:
    return (
        f"daily at {schedule.daily_at:%H:%M} UTC, {schedule.format}, "
        f"keeping the newest {schedule.keep} scheduled backup{'s' if schedule.keep != 1 else ''}"
    )


async def schedule_panel(
    session: AsyncSession,
    tenant: Tenant,
    *,
    form: ScheduleForm | None = None,
    errors: dict[str, str] | None = None,
    message: str | None = None,
) -> SchedulePanel:
    schedule = await schedule_of(session, tenant)
    formats = backup_formats(tenant)
    if form is None and schedule is not None:
        form = ScheduleForm(f"{schedule.daily_at:%H:%M}", schedule.format, str(schedule.keep))
    form = form or ScheduleForm(DEFAULT_DAILY_AT, formats[0], DEFAULT_KEEP)
    next_run_in = describe_until(schedule.next_run_at, utcnow()) if schedule is not None else None
    return SchedulePanel(tenant, schedule, form, formats, errors or {}, message, next_run_in)


class BackupScheduleController(Controller):
    path = "/tenants/{slug:str}/backups/schedule"
    include_in_schema = False
    guards = [landlord_staff]

    def _show(self, request: HTMXRequest, panel: SchedulePanel, status_code: int = 200) -> Template:
        template = "landlord/_backup_schedule.html" if request.htmx else "landlord/backup_schedule.html"
        return Template(
            template, context={"schedule_panel": panel, "tenant": panel.tenant}, status_code=status_code
        )

    def _back_to_panel(self, request: HTMXRequest, panel: SchedulePanel) -> Response[Any]:
        if request.htmx:
            return self._show(request, panel)
        return Redirect(f"/tenants/{panel.tenant.slug}#backup-schedule", status_code=HTTP_303_SEE_OTHER)

    @get("/")
    async def schedule_page(
        self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]
    ) -> Template:
        tenant = await get_tenant(db_session, slug)
        return self._show(request, await schedule_panel(db_session, tenant))

    @post("/")
    async def save_schedule(
        self,
        request: HTMXRequest,
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[ScheduleForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        try:
            async with db_session.begin_nested():
                schedule = await schedule_backups(
                    db_session,
                    caller_of(request),
                    tenant,
                    daily_at=data.daily_at,
                    format=data.format,
                    keep=data.keep,
                )
        except DomainError as error:
            errors = error.errors_by_field("form")
            panel = await schedule_panel(db_session, tenant, form=data, errors=errors)
            return self._show(request, panel, status_code=422)
        await db_session.commit()
        message = f"Saved: {tenant.slug} is backed up {describe_schedule(schedule)}."
        return self._back_to_panel(request, await schedule_panel(db_session, tenant, message=message))

    @post("/clear")
    async def clear(self, request: HTMXRequest, db_session: DbSession, slug: FromPath[str]) -> Response[Any]:
        tenant = await get_tenant(db_session, slug)
        await stop_scheduled_backups(db_session, caller_of(request), tenant)
        await db_session.commit()
        message = f"Cleared: {tenant.slug} is backed up only when asked. Its backups are kept."
        return self._back_to_panel(request, await schedule_panel(db_session, tenant, message=message))
