"""The tables of a tenant's schema snapshot, kept in memory by the snapshot's hash: a hash names one
description for ever, so a tenant whose schema changes is seen through its new snapshot at once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.layers.landlord import downgrade_landlord, migrate_landlord
from services.models import SchemaSnapshot, Tenant
from services.settings import Settings
from services.tenant_data.changes import SnapshotTables
from tests.support import run_db
from tests.web.portal import add_tenant


def _snapshot(session: AsyncSession, tenant_id: int, sha256: str, *tables: str) -> SchemaSnapshot:
    snapshot = SchemaSnapshot(
        tenant_id=tenant_id, sha256=sha256, description={"tables": {name: {} for name in tables}}
    )
    session.add(snapshot)
    return snapshot


def test_a_hashs_tables_are_read_once_and_a_new_snapshot_shows_its_own(settings: Settings) -> None:
    tenant = add_tenant(settings, "harbour-club")
    known = SnapshotTables(limit=1)

    async def work(session: AsyncSession) -> list[Any]:
        first = _snapshot(session, tenant.id, "a" * 64, "groups", "units")
        second = _snapshot(session, tenant.id, "b" * 64, "groups", "units", "events")
        await session.flush()
        reads: list[str] = []
        event.listen(session.get_bind().engine, "before_cursor_execute", lambda *a: reads.append(a[2]))
        seen = [
            await known.tables_of(session, first.id, first.sha256),
            await known.tables_of(session, first.id, first.sha256),
            len(reads),
            await known.tables_of(session, second.id, second.sha256),
            await known.tables_of(session, first.id, first.sha256),  # pushed out by the limit: read again
            len(reads),
        ]
        return seen

    first, again, reads_after_two, second, first_once_more, reads_after_four = run_db(settings, work)

    assert first == again == first_once_more == {"groups", "units"}
    assert reads_after_two == 1, "the second look at the same hash is answered from memory"
    assert second == {"groups", "units", "events"}
    assert reads_after_four == 3


def test_an_upgraded_landlord_names_each_tenants_latest_snapshot_on_the_tenant(settings: Settings) -> None:
    """Revision 0012 moves the latest snapshot onto the tenant row, where requests read it; tenants
    snapshotted before it are named their latest one, and those with none are named none."""
    snapshotted, bare = add_tenant(settings, "harbour-club"), add_tenant(settings, "quay-club")

    async def before_0012(session: AsyncSession) -> int:
        _snapshot(session, snapshotted.id, "a" * 64, "groups")
        latest = _snapshot(session, snapshotted.id, "b" * 64, "groups", "events")
        await session.flush()
        return latest.id

    latest_id = run_db(settings, before_0012)

    async def down_and_up() -> None:
        database = Database(settings.database_url)
        try:
            await downgrade_landlord(settings, database, "0011")
            await migrate_landlord(settings, database)
        finally:
            await database.dispose()

    asyncio.run(down_and_up())

    async def named(session: AsyncSession) -> list[tuple[int | None, str | None]]:
        return [
            (tenant.schema_snapshot_id, tenant.schema_sha256)
            for tenant in [await session.get_one(Tenant, t.id) for t in (snapshotted, bare)]
        ]

    assert run_db(settings, named) == [(latest_id, "b" * 64), (None, None)]
