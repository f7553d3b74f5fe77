"""/api/v1/tenants/{slug}/backups: back a tenant up (202 with the job to follow) and list its backups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_202_ACCEPTED

from services.backups import backups_of
from services.backups.recorded import back_up
from services.models import BackupFormat
from services.tenancy.tenants import get_tenant
from web.api.responses import error
from web.api.schemas import BackupOut, BackupRequestedOut, JobOut
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession


@dataclass
class BackupIn:
    #: native (SQLite's backup API or pg_dump; same kind of store) or portable (any mode and backend).
    format: str = BackupFormat.PORTABLE


class BackupsApiController(Controller):
    path = "/tenants/{slug:str}/backups"
    tags = ["backups"]
    guards = [signed_in, landlord_token]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Back a tenant up; the backup runs as a job (202 with the job to follow)",
        responses={409: error("The tenant is not active, or two jobs on its store are under way already")},
    )
    async def back_up(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[BackupIn, Body()],
    ) -> Response[BackupRequestedOut]:
        tenant = await get_tenant(db_session, slug)
        requested = await back_up(
            db_session, request.app.state.settings, caller_of(request), tenant, data.format
        )
        await db_session.commit()
        await db_session.refresh(requested.job, ["steps"])
        body = BackupRequestedOut(
            backup=BackupOut.of(requested.backup),
            job=JobOut.of(requested.job),
            waits_for=requested.waits_for.id if requested.waits_for else None,
            message=requested.message,
        )
        return Response(
            body, status_code=HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{requested.job.id}"}
        )

    @get("/", summary="A tenant's backups, newest first: format, size, SHA-256, verification, manifest")
    async def list_backups(self, db_session: DbSession, slug: FromPath[str]) -> list[BackupOut]:
        tenant = await get_tenant(db_session, slug)
        return [BackupOut.of(backup) for backup in await backups_of(db_session, tenant)]
