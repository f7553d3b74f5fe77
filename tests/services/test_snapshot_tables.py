"""The tables of a tenant's schema snapshot, kept in memory by the snapshot's hash: a hash names one
description for ever, so a tenant whose schema changes is seen through its new snapshot at once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from services.models import SchemaSnapshot
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
