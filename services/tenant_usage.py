"""A tenant's usage of its plan, measured through a session of its store: the request's own (its
settings page), or, for the landlord's tenant page, one from entering the tenant read-only through
the process's store connections, as a request into it would."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.layers.catalogue import load_catalogue
from services.models import Tenant, TenantStatus
from services.settings import Settings
from services.tenancy.connections import TenantConnections
from services.tenancy.entry import enter_tenant
from services.tenancy.stores import location_of
from services.tenant_data.changes import tenant_record_schema
from services.usage import Usage, measure_usage


async def measure_tenant_usage(
    landlord: AsyncSession, settings: Settings, tenant: Tenant, data: AsyncSession
) -> Usage:
    """The tenant's usage of its plan; its rows counted through `data`, a session of its store."""
    return await measure_usage(
        landlord,
        data,
        tenant,
        location=location_of(settings, tenant),
        catalogue=load_catalogue(settings.layers_dir),
        schema=await tenant_record_schema(landlord, settings, tenant, data),
    )


async def usage_from_outside(
    landlord: AsyncSession, settings: Settings, tenant: Tenant, connections: TenantConnections
) -> Usage | None:
    """The tenant's usage of its plan; None while it has no store in service to measure."""
    if tenant.status != TenantStatus.ACTIVE or tenant.schema_snapshot_id is None:
        return None
    location = location_of(settings, tenant)
    async with (
        enter_tenant(tenant.id, location, connections=connections, writes=False) as entered,
        entered.session() as data,
    ):
        return await measure_tenant_usage(landlord, settings, tenant, data)
