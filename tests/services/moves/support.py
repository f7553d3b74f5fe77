"""What a tenant holds, measured the way a move proves itself: each table's row count and
checksum (services.backups.restore.measure_store), its own rows only in a shared store."""

from __future__ import annotations

import io
import json

from sqlalchemy.engine import Connection

from services.backups.content import summarise_table, tenant_tables
from services.backups.restore import measure_store
from services.models import Tenant
from services.tenancy.stores import StoreLocation

#: Each table holding rows of the tenant: its row count and checksum.
Content = dict[str, tuple[int, str]]


async def content_of(location: StoreLocation, tenant: Tenant) -> Content:
    """What the tenant holds in `location`, the store the landlord names or one it left."""
    measured = await measure_store(location, tenant_id=tenant.id if location.is_shared else None)
    return {name: (summary.rows, summary.sha256) for name, summary in measured.tables.items() if summary.rows}


async def values_without_ids(location: StoreLocation, tenant: Tenant) -> dict[str, list[str]]:
    """Every table's rows in the backups' portable form, leaving out ids and what is made of them
    (references, a unit's path: a shared store gives a row a new id where another tenant holds its
    own), sorted."""
    tenant_id = tenant.id if location.is_shared else None

    def read(connection: Connection) -> dict[str, list[str]]:
        found = {}
        for table in tenant_tables(connection):
            lines = io.StringIO()
            summarise_table(connection, table, tenant_id=tenant_id, sink=lines)
            rows = [json.loads(line) for line in lines.getvalue().splitlines()]
            if rows:
                found[table.name] = sorted(
                    json.dumps(
                        {k: v for k, v in row.items() if k not in ("id", "path") and not k.endswith("_id")},
                        sort_keys=True,
                    )
                    for row in rows
                )
        return found

    store = location.open()
    try:
        async with store.engine.connect() as connection:
            return await connection.run_sync(read)
    finally:
        await store.dispose()
