"""What a tenant holds, measured the way a move proves itself: each table's row count and
checksum (services.backups.restore.measure_store), its own rows only in a shared store."""

from __future__ import annotations

from services.backups.restore import measure_store
from services.models import Tenant
from services.tenancy.stores import StoreLocation

#: Each table holding rows of the tenant: its row count and checksum.
Content = dict[str, tuple[int, str]]


async def content_of(location: StoreLocation, tenant: Tenant) -> Content:
    """What the tenant holds in `location`, the store the landlord names or one it left."""
    measured = await measure_store(location, tenant_id=tenant.id if location.is_shared else None)
    return {name: (summary.rows, summary.sha256) for name, summary in measured.tables.items() if summary.rows}
