"""/api/v1/tenants/{slug}: suspending, resuming and deleting a tenant (landlord tokens), through
the same use cases as the landlord portal's tenant page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, post
from litestar.params import Body, FromPath, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from services.lifecycle.deletion import request_deletion, undo_deletion
from services.lifecycle.suspension import resume, suspend
from services.tenancy.tenants import get_tenant
from web.api.responses import error
from web.api.schemas import JobOut, ProvisioningOut, TenantOut
from web.audit import caller_of
from web.auth import landlord_token
from web.deps import DbSession


@dataclass
class SuspensionIn:
    #: What the tenant's people read on its closed portal and in the API's 403.
    reason: str


class TenantLifecycleApiController(Controller):
    path = "/tenants/{slug:str}"
    tags = ["tenants"]
    guards = [landlord_token]

    @post(
        "/suspend",
        summary="Suspend a tenant: closed to its people, who are told the reason",
        responses={409: error("The tenant is not active"), 422: error("No reason given, or one too long")},
    )
    async def suspend(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        data: Annotated[SuspensionIn, Body()],
    ) -> TenantOut:
        tenant = await suspend(
            db_session, caller_of(request), await get_tenant(db_session, slug), data.reason
        )
        await db_session.commit()
        return TenantOut.of(tenant)

    @post(
        "/resume", summary="Resume a suspended tenant", responses={409: error("The tenant is not suspended")}
    )
    async def resume(
        self, request: Request[Any, Any, Any], db_session: DbSession, slug: FromPath[str]
    ) -> TenantOut:
        tenant = await resume(db_session, caller_of(request), await get_tenant(db_session, slug))
        await db_session.commit()
        return TenantOut.of(tenant)

    @delete(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Delete a tenant: closed at once, backed up and verified, its store dropped after the grace period",
        description="`confirm` must be the tenant's slug. The answer names the job taking the backup; until "
        "the store is dropped (`delete_after`), `POST …/undelete` undoes the deletion.",
        responses={
            409: error("The tenant is neither active nor suspended"),
            422: error("`confirm` is not the tenant's slug"),
        },
    )
    async def delete(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        slug: FromPath[str],
        confirm: Annotated[str, QueryParameter(description="the tenant's slug, typed again")] = "",
    ) -> Response[ProvisioningOut]:
        tenant = await get_tenant(db_session, slug)
        job = await request_deletion(db_session, caller_of(request), tenant, confirm)
        await db_session.commit()
        await db_session.refresh(job, ["steps"])
        return Response(
            ProvisioningOut(tenant=TenantOut.of(tenant), job=JobOut.of(job)),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/jobs/{job.id}"},
        )

    @post(
        "/undelete",
        summary="Undo a tenant's deletion while its store is still there",
        responses={
            409: error(
                "The tenant is not being deleted, its backup is being taken, or its store is being dropped"
            )
        },
    )
    async def undelete(
        self, request: Request[Any, Any, Any], db_session: DbSession, slug: FromPath[str]
    ) -> TenantOut:
        tenant = await undo_deletion(db_session, caller_of(request), await get_tenant(db_session, slug))
        await db_session.commit()
        return TenantOut.of(tenant)
