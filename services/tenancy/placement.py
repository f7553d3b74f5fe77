"""Where a new tenant's PostgreSQL store goes when the installation has several tenant servers
(TENANTRY_TENANT_SERVERS): on the server its plan is pinned to (TENANTRY_PLAN_SERVERS), else by
TENANTRY_PLACEMENT, on the server with the fewest tenants or the one with the least storage (its
tenants' latest usage samples), the first listed on a tie. With one server there is nothing to
choose: the tenant's `store_server` stays None, the default."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import Tenant, TenantStatus, UsageSample
from services.settings import Settings
from services.tenancy.stores import POSTGRESQL, address_of

FEWEST_TENANTS, LEAST_STORAGE = "fewest-tenants", "least-storage"


@dataclass(frozen=True)
class ServerLoad:
    """One tenant server, as placement and the dashboard see it."""

    name: str
    #: host:port, as fleet work names servers.
    address: str
    #: Its tenants, not deleted (those still being made included).
    tenants: int
    #: What its tenants' latest usage samples measured, in bytes.
    storage_bytes: int


async def place_new_tenant(session: AsyncSession, settings: Settings, tenant: Tenant) -> None:
    """Put a tenant just registered (counted already) on the server `choose_server` names. With one
    server or none there is nothing to choose, and nothing is written."""
    server = await choose_server(session, settings, tenant.plan_key)
    if server is not None:
        tenant.store_server = server


async def choose_server(session: AsyncSession, settings: Settings, plan_key: str | None = None) -> str | None:
    """The tenant server a new tenant's store goes on, by name: the one its plan is pinned to
    (TENANTRY_PLAN_SERVERS), else by TENANTRY_PLACEMENT. None with one server or none."""
    if len(settings.servers) < 2:
        return None
    pinned = dict(settings.plan_servers).get(plan_key or "")
    if pinned is not None:
        return pinned
    servers = await server_loads(session, settings)
    if settings.placement == LEAST_STORAGE:
        return min(servers, key=lambda server: server.storage_bytes).name
    return min(servers, key=lambda server: server.tenants).name


async def server_loads(session: AsyncSession, settings: Settings) -> list[ServerLoad]:
    """Each tenant server's tenants and storage, in the order the settings list them."""
    servers = settings.servers
    if not servers:
        return []
    default = next(iter(servers))
    server = func.coalesce(Tenant.store_server, default)
    latest = (
        select(UsageSample.tenant_id, func.max(UsageSample.day).label("day"))
        .group_by(UsageSample.tenant_id)
        .subquery()
    )
    rows = await session.execute(
        select(server, func.count(Tenant.id), func.coalesce(func.sum(UsageSample.storage_bytes), 0))
        .outerjoin(latest, latest.c.tenant_id == Tenant.id)
        .outerjoin(UsageSample, (UsageSample.tenant_id == Tenant.id) & (UsageSample.day == latest.c.day))
        .where(
            Tenant.status != TenantStatus.DELETED,
            or_(Tenant.store_server.is_not(None), Tenant.store_backend == POSTGRESQL),
        )
        .group_by(server)
    )
    counted = {name: (int(tenants or 0), int(storage or 0)) for name, tenants, storage in rows}
    return [ServerLoad(name, address_of(url), *counted.get(name, (0, 0))) for name, url in servers.items()]
