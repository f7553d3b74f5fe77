"""The "not found" that records an attempt on another tenant's row, backup, job or person, shared
by the tenant portal and the tenant API. The record is written after the answer, so that a
"not found" for another tenant's id costs what one for nobody's id does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import NotFound
from services.models import Tenant
from services.people.units import get_unit
from services.tenancy.security import owner_elsewhere, record_cross_tenant_attempt
from services.tenancy.stores import location_of
from web.tenancy.scope import after_response, tenant_access

#: Which tenant owns an id the caller's tenant does not have, if any; given a landlord session.
OwnerLookup = Callable[[AsyncSession], Awaitable[int | None]]


def record_if_foreign(
    request: Request[Any, Any, Any], what: str, detail: dict[str, Any], owner_of: OwnerLookup
) -> None:
    """After the answer: if `owner_of` names another tenant, the attempt on its `what` goes on the
    trail against that tenant, where the caller cannot read it, in a landlord transaction of its
    own (the request's is rolled back with the refusal). Looking the owner up and recording take
    time a "not found" for nobody's id does not: done before the answer, they would tell the two
    apart."""
    tenant = tenant_access(request).tenant
    actor = request.scope["user"]
    ip = request.client.host if request.client else None
    detail = {**detail, "path": request.url.path, "from_tenant": tenant.slug}
    database = request.app.state.database

    async def record_attempt() -> None:
        async with database.session() as landlord:
            owner_id = await owner_of(landlord)
            if owner_id is None or owner_id == tenant.id:
                return
            await record_cross_tenant_attempt(
                landlord,
                actor=actor,
                target=await landlord.get_one(Tenant, owner_id),
                what=f"asked for another tenant's {what}",
                ip=ip,
                detail=detail,
            )

    after_response(request, record_attempt)


def refuse_if_foreign(request: Request[Any, Any, Any], table: str, record_id: int) -> None:
    """A record id the scope cannot see: if it is another tenant's (a shared store can tell),
    the attempt is recorded against that tenant. Either way the answer is the same "not found"."""
    tenant = tenant_access(request).tenant
    location = location_of(request.app.state.settings, tenant)

    async def owner(_landlord: AsyncSession) -> int | None:
        return await owner_elsewhere(location, table, record_id, tenant.id)

    record_if_foreign(request, f"{table} row", {"table": table, "id": record_id}, owner)


@asynccontextmanager
async def reporting_foreign(
    request: Request[Any, Any, Any], table: str, record_id: int
) -> AsyncIterator[None]:
    """Lets "not found" through, recording it after the answer if the id is another tenant's."""
    try:
        yield
    except NotFound:
        refuse_if_foreign(request, table, record_id)
        raise


async def units_here(request: Request[Any, Any, Any], tenant_data: AsyncSession, unit_ids: list[int]) -> None:
    """Units a form names that the scope cannot see are no mistake in the form (it offers only
    visible ones): "not found", recorded when they are another tenant's."""
    for unit_id in unit_ids:
        async with reporting_foreign(request, "units", unit_id):
            await get_unit(tenant_data, unit_id)
