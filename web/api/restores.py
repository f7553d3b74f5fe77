"""/api/v1/tenants/{slug}/backups/{id}/restore: restore a tenant from one of its backups, or copy
the backup into a new tenant (202 with the job to follow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_202_ACCEPTED

from services.backups import CopyTarget, get_backup
from services.backups.recorded import copy_into_new_tenant, restore
from services.tenancy.tenants import get_tenant
from web.api.responses import error
from web.api.schemas import BackupOut, JobOut, RestoreRequestedOut, TenantOut
from web.audit import caller_of
from web.auth import landlord_token, signed_in
from web.deps import DbSession


@dataclass
class CopyIn:
    slug: str
    name: str
    #: database, schema (PostgreSQL) or left out: the backup's own mode where it is available here.
    isolation: str | None = None


@dataclass
class RestoreIn:
    #: A new tenant to copy the backup into; left out, the tenant itself is restored.
    into: CopyIn | None = None


class RestoresApiController(Controller):
    path = "/tenants/{slug:str}/backups/{backup_id:int}/restore"
    tags = ["backups"]
    guards = [signed_in, landlord_token]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Restore a tenant from a verified backup, or copy the backup into a new tenant",
        description="Without a body (or without `into`) the tenant's data is replaced: a safety backup of "
        "its current store is taken first, and the tenant answers 503 until the restored store is in "
        'place. With `{"into": {"slug", "name", "isolation"}}` a new tenant is created from the backup '
        "and the tenant itself is left alone. A damaged archive is refused (409) and nothing changes.",
        responses={
            409: error("The backup cannot be restored (not verified, damaged) or the tenant is not active")
        },
    )
    async def restore(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        backup_id: FromPath[int],
        data: Annotated[RestoreIn | None, Body()] = None,
    ) -> Response[RestoreRequestedOut]:
        tenant = await get_tenant(db_session, slug)
        backup = await get_backup(db_session, tenant, backup_id)
        into = data.into if data is not None else None
        if into is None:
            requested = await restore(
                db_session, request.app.state.settings, caller_of(request), tenant, backup
            )
        else:
            target = CopyTarget(into.slug, into.name, into.isolation)
            requested = await copy_into_new_tenant(
                db_session, request.app.state.settings, caller_of(request), backup, target
            )
        await db_session.commit()
        await db_session.refresh(requested.job, ["steps"])
        body = RestoreRequestedOut(
            tenant=TenantOut.of(requested.tenant),
            backup=BackupOut.of(requested.backup),
            job=JobOut.of(requested.job),
            waits_for=requested.waits_for.id if requested.waits_for else None,
            message=requested.message,
        )
        return Response(
            body, status_code=HTTP_202_ACCEPTED, headers={"Location": f"/api/v1/jobs/{requested.job.id}"}
        )
