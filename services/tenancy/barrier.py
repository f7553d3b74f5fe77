"""The tenant's write barrier: no write is lost to a job that closes a tenant to writes (a move, a
restore) and then copies its store.

A request checks that its tenant is open when it comes in; a job may close the tenant a moment
later and copy its store, and a write let in before that must either be in the copy or refused.
So each transaction of a write request takes the barrier as it begins (on SQLite the store's
write lock, which its IMMEDIATE transaction holds anyway; on PostgreSQL a shared advisory lock
named after the tenant) and then asks the landlord again whether the tenant is still open in the
same store (`still_open_for_writes`). The job, once the tenant's maintenance status has
committed, takes the barrier exclusively and lets it go (`wait_for_writes_in_flight`): every write
that could have seen the tenant open has ended by then, and is in what the job copies next; every
later one finds the tenant closed, and is refused with a 503 that asks it to try again."""

from __future__ import annotations

from sqlalchemy import select, text

from services.db import Database
from services.models import Tenant
from services.settings import Settings
from services.tenancy.access import (
    TenantSuspended,
    TenantUnderMaintenance,
    refuse_during_maintenance,
)
from services.tenancy.sessions import write_barrier_key
from services.tenancy.stores import POSTGRESQL, StoreLocation, location_of


async def still_open_for_writes(
    landlord: Database, settings: Settings, tenant_id: int, location: StoreLocation
) -> None:
    """Raise unless the tenant is still out of maintenance in the store at `location` (asked while
    the write holds the tenant's barrier). Who may write at all was settled at the door (staff
    switched into a suspended tenant still may)."""
    async with landlord.session() as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.id == tenant_id))
    if tenant is None or tenant.store_name is None:
        raise TenantSuspended("This tenant is gone: its portal and API are closed.")
    refuse_during_maintenance(tenant)
    if location_of(settings, tenant).key != location.key:
        raise TenantUnderMaintenance(f"{tenant.name} has just moved to another store: try again.")


async def wait_for_writes_in_flight(location: StoreLocation, tenant_id: int) -> None:
    """Once the tenant is closed to writes (committed in the landlord), wait for every write
    transaction on its store that began before to end: the barrier taken exclusively, then let go."""
    store = location.open()  # an owner's transaction on SQLite begins IMMEDIATE: the write lock
    try:
        async with store.engine.begin() as connection:
            if location.backend == POSTGRESQL:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                    {"key": write_barrier_key(tenant_id)},
                )
    finally:
        await store.dispose()
