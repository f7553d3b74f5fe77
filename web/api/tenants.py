"""/api/v1/tenants: the tenant registry for automation."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter
from sqlalchemy import select

from services.models import ApiToken, Tenant
from services.tenancy.security import record_cross_tenant_attempt
from services.tenancy.tenants import get_tenant
from services.tenant_list import search_tenants
from web.api.responses import error
from web.api.schemas import Page, TenantOut
from web.auth import current_user, landlord_token, may_read_tenant, signed_in
from web.deps import DbSession

NOT_YOURS = "This token may not read that tenant."


async def record_token_reaching_for(request: Request[Any, Any, Any], slug: str, what: str) -> None:
    """A tenant token refused another tenant's identifiers: the attempt is recorded against that
    tenant, if it exists, in a landlord session of its own (the request's is rolled back with the
    refusal). The caller's answer is the same either way."""
    token: ApiToken | None = request.auth
    user = current_user(request)
    if token is None or token.tenant is None or token.tenant.slug == slug or user is None:
        return
    async with request.app.state.database.session() as landlord:
        tenant = await landlord.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is not None:
            await record_cross_tenant_attempt(
                landlord,
                actor=user,
                target=tenant,
                what=what,
                ip=request.client.host if request.client else None,
                detail={"method": request.method, "path": request.url.path, "token": token.prefix},
            )


class TenantsApiController(Controller):
    path = "/tenants"
    tags = ["tenants"]
    guards = [signed_in]

    @get("/", guards=[landlord_token], summary="List tenants (landlord tokens)")
    async def list_tenants(
        self,
        db_session: DbSession,
        q: Annotated[str, QueryParameter(description="matches slug or name")] = "",
        page: Annotated[int, QueryParameter(ge=1)] = 1,
        per_page: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    ) -> Page[TenantOut]:
        result = await search_tenants(db_session, q, page, per_page)
        return Page(
            items=[TenantOut.of(t) for t in result.tenants], total=result.total, page=page, per_page=per_page
        )

    @get(
        "/{slug:str}",
        summary="One tenant (a landlord token, or a token of that tenant)",
        responses={403: error("A tenant token asking for another tenant")},
    )
    async def get_tenant(
        self, request: Request[Any, Any, Any], db_session: DbSession, slug: FromPath[str]
    ) -> TenantOut:
        # Checked before the lookup, so a refusal never tells whether the tenant exists.
        if not may_read_tenant(request, slug):
            await record_token_reaching_for(request, slug, "read another tenant through the API")
            raise PermissionDeniedException(NOT_YOURS)
        return TenantOut.of(await get_tenant(db_session, slug))
