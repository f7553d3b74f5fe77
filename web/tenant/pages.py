"""What every tenant page shares: rendering in the tenant's layout, the admin check, and the
"not found" that records an attempt on another tenant's row, backup, job or person."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import PermissionDeniedException
from litestar.params import Body
from litestar.response import Template

from services.errors import NotFound
from services.models import Tenant
from services.tenancy.security import owner_elsewhere, record_cross_tenant_attempt
from services.tenancy.stores import location_of
from web.tenant.scope import tenant_access, tenant_link, tenant_scope

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


def tenant_page(
    request: Request[Any, Any, Any], template: str, status_code: int = 200, **context: Any
) -> Template:
    """`tenant/<template>` in the tenant's layout, with its tenant, access, scope and links."""
    access = tenant_access(request)
    return Template(
        f"tenant/{template}",
        context={
            "tenant": access.tenant,
            "access": access,
            "scope": tenant_scope(request),
            "link": lambda path="/": tenant_link(request, path),
            **context,
        },
        status_code=status_code,
    )


def admin_only(request: Request[Any, Any, Any]) -> None:
    if not tenant_access(request).is_admin:
        raise PermissionDeniedException("Only the tenant's admins may do this.")


async def record_foreign_attempt(
    request: Request[Any, Any, Any], owner_id: int, what: str, detail: dict[str, Any]
) -> None:
    """An attempt on `what` of the tenant `owner_id`, on the trail against that tenant, where the
    caller cannot read it. In a landlord session of its own: the request's is rolled back with the
    refusal, this one is kept."""
    async with request.app.state.database.session() as landlord:
        await record_cross_tenant_attempt(
            landlord,
            actor=request.scope["user"],
            target=await landlord.get_one(Tenant, owner_id),
            what=f"asked for another tenant's {what}",
            ip=request.client.host if request.client else None,
            detail={**detail, "path": request.url.path, "from_tenant": tenant_access(request).tenant.slug},
        )


async def refuse_if_foreign(request: Request[Any, Any, Any], table: str, record_id: int) -> None:
    """A record id the scope cannot see: if it is another tenant's (a shared store can tell),
    the attempt is recorded against that tenant. Either way the answer is the same "not found"."""
    access = tenant_access(request)
    location = location_of(request.app.state.settings, access.tenant)
    owner = await owner_elsewhere(location, table, record_id, access.tenant.id)
    if owner is not None:
        await record_foreign_attempt(request, owner, f"{table} row", {"table": table, "id": record_id})


@asynccontextmanager
async def reporting_foreign(
    request: Request[Any, Any, Any], table: str, record_id: int
) -> AsyncIterator[None]:
    """Lets "not found" through, after recording it if the id is another tenant's."""
    try:
        yield
    except NotFound:
        await refuse_if_foreign(request, table, record_id)
        raise
