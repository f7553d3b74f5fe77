"""The landlord store's counter: one atomic step per count, on SQLite and PostgreSQL alike, so the
sign-in throttle (and any later rate limit over this store) holds under concurrent requests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from services.db import Database
from services.landlord_cache import LandlordMarks
from services.models import StoreEntry
from services.models.types import utcnow
from services.settings import Settings
from tests.support import Credentials
from web.stores import LandlordStore


def test_counts_made_at_the_same_moment_each_get_their_own_number(
    settings: Settings, superadmin: Credentials
) -> None:
    async def count_together() -> tuple[list[int], bytes | None]:
        database = Database(settings.database_url)
        marks = LandlordMarks(database.engine)
        try:
            store = LandlordStore(database, "counting", marks)
            counts = await asyncio.gather(*(store.increment("lee|192.0.2.7", 60) for _ in range(20)))
            return sorted(counts), await store.get("lee|192.0.2.7")
        finally:
            await marks.close()
            await database.dispose()

    counts, stored = asyncio.run(count_together())

    assert counts == list(range(1, 21))
    assert stored == b"20"


def test_a_count_runs_in_a_fixed_window_and_starts_again_after_it(
    settings: Settings, superadmin: Credentials
) -> None:
    async def count() -> tuple[list[int], int | None]:
        database = Database(settings.database_url)
        marks = LandlordMarks(database.engine)
        try:
            store = LandlordStore(database, "counting", marks)
            async with database.session() as session:  # a count whose window ended, not yet swept
                ended_at = utcnow() - timedelta(seconds=1)
                session.add(StoreEntry(namespace="counting", key="ended", value=b"7", expires_at=ended_at))
            counts = [
                await store.increment("ended", 60),
                await store.increment("running", 60),
                await store.increment("running", 3600),
            ]
            return counts, await store.expires_in("running")
        finally:
            await marks.close()
            await database.dispose()

    counts, seconds_left = asyncio.run(count())

    assert counts == [1, 1, 2], "a count whose window ended starts again at 1"
    assert seconds_left is not None and seconds_left <= 60, "counting again does not extend the window"
