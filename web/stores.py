"""A Litestar store kept in the landlord database, so every web process sees the same sessions
and sign-in counters: web processes stay stateless whichever backend the landlord uses."""

from __future__ import annotations

from datetime import timedelta

from litestar.stores.base import Store
from sqlalchemy import ColumnElement, Integer, LargeBinary, Text, case, cast, delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.db import Database
from services.landlord_cache import LandlordMarks, UnchangedSince
from services.models import StoreEntry
from services.models.types import utcnow


def _expiry(expires_in: int | timedelta | None):  # type: ignore[no-untyped-def]
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return utcnow() + timedelta(seconds=seconds)


def _expired(entry: StoreEntry) -> bool:
    return entry.expires_at is not None and entry.expires_at <= utcnow()


class LandlordStore(Store):
    """`marks`: a value read is given again while nothing in the landlord database has changed
    (services.landlord_cache); every request reads its session, and few change it."""

    def __init__(self, database: Database, namespace: str, marks: LandlordMarks) -> None:
        self.database = database
        self.namespace = namespace
        self._kept: UnchangedSince[str, StoreEntry] = UnchangedSince(marks)

    def _key(self, key: str):  # type: ignore[no-untyped-def]
        return (StoreEntry.namespace == self.namespace) & (StoreEntry.key == key)

    @property
    def _on_sqlite(self) -> bool:
        return self.database.engine.dialect.name == "sqlite"

    async def _drop_expired(self, session: AsyncSession) -> None:
        await session.execute(
            delete(StoreEntry).where(StoreEntry.namespace == self.namespace, StoreEntry.expires_at < utcnow())
        )

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        insert = sqlite_insert if self._on_sqlite else postgresql_insert
        values = {"namespace": self.namespace, "key": key, "value": data, "expires_at": _expiry(expires_in)}
        statement = insert(StoreEntry).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["namespace", "key"], set_={"value": data, "expires_at": values["expires_at"]}
        )
        async with self.database.session() as session:
            await session.execute(statement)
            await self._drop_expired(session)

    # A count is kept as decimal text, like every store value, so `get` reads it too.
    def _kept_count(self) -> ColumnElement[int]:
        if self._on_sqlite:
            return cast(StoreEntry.value, Integer)
        return cast(func.convert_from(StoreEntry.value, "UTF8"), Integer)

    def _as_value(self, number: ColumnElement[int]) -> ColumnElement[bytes]:
        if self._on_sqlite:
            return cast(number, LargeBinary)
        return func.convert_to(cast(number, Text), "UTF8", type_=LargeBinary)

    async def increment(self, key: str, expires_in: int | timedelta) -> int:
        """Add one to the count kept under `key` and return the new count. One INSERT … ON CONFLICT
        DO UPDATE … RETURNING does it, so callers at the same moment, in any process, each get a
        number of their own. A new count, or one whose time is up, starts at 1 and lasts
        `expires_in` from then: a fixed window, which counting further does not extend."""
        now, window_end = utcnow(), _expiry(expires_in)
        running = StoreEntry.expires_at.is_(None) | (StoreEntry.expires_at > now)
        next_count = case((running, self._kept_count() + 1), else_=1)
        insert = sqlite_insert if self._on_sqlite else postgresql_insert
        statement = (
            insert(StoreEntry)
            .values(namespace=self.namespace, key=key, value=b"1", expires_at=window_end)
            .on_conflict_do_update(
                index_elements=["namespace", "key"],
                set_={
                    "value": self._as_value(next_count),
                    "expires_at": case((running, StoreEntry.expires_at), else_=window_end),
                },
            )
            .returning(StoreEntry.value)
        )
        async with self.database.session() as session:
            count = (await session.execute(statement)).scalar_one()
            await self._drop_expired(session)
        return int(count)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        if renew_for is None:
            entry = await self._kept.get(key, lambda: self._live_entry(key, None))
            return None if entry is None or _expired(entry) else entry.value
        entry = await self._live_entry(key, renew_for)
        return None if entry is None else entry.value

    async def _live_entry(self, key: str, renew_for: int | timedelta | None) -> StoreEntry | None:
        """The entry under `key` unless its time is up (then it is deleted), renewed if asked."""
        async with self.database.session() as session:
            entry = await session.scalar(select(StoreEntry).where(self._key(key)))
            if entry is None:
                return None
            if _expired(entry):
                await session.delete(entry)
                return None
            if renew_for is not None and entry.expires_at is not None:
                entry.expires_at = _expiry(renew_for)
            return entry

    async def delete(self, key: str) -> None:
        async with self.database.session() as session:
            await session.execute(delete(StoreEntry).where(self._key(key)))

    async def delete_all(self) -> None:
        async with self.database.session() as session:
            await session.execute(delete(StoreEntry).where(StoreEntry.namespace == self.namespace))

    async def live_entries(self) -> list[StoreEntry]:
        """Every entry of this namespace whose time is not up, read in one query: a scan of the
        namespace, for a page that looks through all of them (someone's own sessions)."""
        live = StoreEntry.expires_at.is_(None) | (StoreEntry.expires_at > utcnow())
        async with self.database.session() as session:
            return list(
                await session.scalars(select(StoreEntry).where(StoreEntry.namespace == self.namespace, live))
            )

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self.database.session() as session:
            expires_at = await session.scalar(select(StoreEntry.expires_at).where(self._key(key)))
        if expires_at is None:
            return None
        return max(0, int((expires_at - utcnow()).total_seconds()))
