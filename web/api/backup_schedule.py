"""/api/v1/tenants/{slug}/backups/schedule: a tenant's backup schedule, read, set (PUT) and cleared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, put
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_204_NO_CONTENT

from services.backups.recorded import schedule_backups, stop_scheduled_backups
from services.backups.schedules import schedule_of
from services.errors import NotFound
from services.models import BackupFormat, BackupSchedule
from services.tenancy.tenants import get_tenant
from web.api.responses import error
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession


@dataclass
class ScheduleIn:
    #: The time of day it runs, HH:MM, 24-hour, UTC.
    daily_at: str
    #: native or portable (a tenant of a shared store: portable only).
    format: str = BackupFormat.PORTABLE
    #: How many scheduled backups to keep (1 to 100); older ones are pruned after each verifies.
    keep: int = 7


@dataclass
class ScheduleOut:
    tenant: str
    daily_at: str
    format: str
    keep: int
    #: The next slot (UTC); a worker requests the backup once it has come.
    next_run_at: datetime
    last_run_at: datetime | None
    #: Why the last slot gave no backup (a suspended tenant), when it did not.
    last_error: str | None

    @classmethod
    def of(cls, slug: str, schedule: BackupSchedule) -> ScheduleOut:
        return cls(
            tenant=slug,
            daily_at=f"{schedule.daily_at:%H:%M}",
            format=schedule.format,
            keep=schedule.keep,
            next_run_at=schedule.next_run_at,
            last_run_at=schedule.last_run_at,
            last_error=schedule.last_error,
        )


class BackupScheduleApiController(Controller):
    path = "/tenants/{slug:str}/backups/schedule"
    tags = ["backups"]
    guards = [signed_in, landlord_token]

    @get("/", summary="A tenant's backup schedule: daily at, format, keep, next run (404 when it has none)")
    async def read_schedule(self, db_session: DbSession, slug: FromPath[str]) -> ScheduleOut:
        tenant = await get_tenant(db_session, slug)
        schedule = await schedule_of(db_session, tenant)
        if schedule is None:
            raise NotFound(f"{tenant.slug} has no backup schedule: it is backed up only when asked.")
        return ScheduleOut.of(tenant.slug, schedule)

    @put(
        "/",
        summary="Back a tenant up daily at a time (UTC), keeping its newest N scheduled backups",
        responses={409: error("The tenant is not active")},
    )
    async def put_schedule(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[ScheduleIn, Body()],
    ) -> ScheduleOut:
        tenant = await get_tenant(db_session, slug)
        schedule = await schedule_backups(
            db_session, caller_of(request), tenant, daily_at=data.daily_at, format=data.format, keep=data.keep
        )
        return ScheduleOut.of(tenant.slug, schedule)

    @delete("/", status_code=HTTP_204_NO_CONTENT, summary="Stop backing a tenant up on a schedule")
    async def delete_schedule(
        self, request: Request[Any, Any, Any], db_session: DbSession, slug: FromPath[str]
    ) -> None:
        tenant = await get_tenant(db_session, slug)
        await stop_scheduled_backups(db_session, caller_of(request), tenant)
