"""A tenant's usage measured from outside it, for the landlord's tenant page: the tenant entered
read-only through the process's store connections, as a request into it would be."""

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
        return await measure_usage(
            landlord,
            data,
            tenant,
            location=location,
            catalogue=load_catalogue(settings.layers_dir),
            schema=await tenant_record_schema(landlord, settings, tenant, data),
        )
