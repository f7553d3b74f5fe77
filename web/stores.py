"""A Litestar store kept in the landlord database, so every web process sees the same sessions
and sign-in counters: web processes stay stateless whichever backend the landlord uses."""

from __future__ import annotations

from datetime import timedelta

from litestar.stores.base import Store
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.db import Database
from services.models import StoreEntry
from services.models.types import utcnow


def _expiry(expires_in: int | timedelta | None):  # type: ignore[no-untyped-def]
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return utcnow() + timedelta(seconds=seconds)


class LandlordStore(Store):
    def __init__(self, database: Database, namespace: str) -> None:
        self.database = database
        self.namespace = namespace

    def _key(self, key: str):  # type: ignore[no-untyped-def]
        return (StoreEntry.namespace == self.namespace) & (StoreEntry.key == key)

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        data = value.encode() if isinstance(value, str) else value
        insert = sqlite_insert if self.database.engine.dialect.name == "sqlite" else postgresql_insert
        values = {"namespace": self.namespace, "key": key, "value": data, "expires_at": _expiry(expires_in)}
        statement = insert(StoreEntry).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["namespace", "key"], set_={"value": data, "expires_at": values["expires_at"]}
        )
        async with self.database.session() as session:
            await session.execute(statement)
            await session.execute(
                delete(StoreEntry).where(
                    StoreEntry.namespace == self.namespace, StoreEntry.expires_at < utcnow()
                )
            )

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        async with self.database.session() as session:
            entry = await session.scalar(select(StoreEntry).where(self._key(key)))
            if entry is None:
                return None
            if entry.expires_at is not None and entry.expires_at <= utcnow():
                await session.delete(entry)
                return None
            if renew_for is not None and entry.expires_at is not None:
                entry.expires_at = _expiry(renew_for)
            return entry.value

    async def delete(self, key: str) -> None:
        async with self.database.session() as session:
            await session.execute(delete(StoreEntry).where(self._key(key)))

    async def delete_all(self) -> None:
        async with self.database.session() as session:
            await session.execute(delete(StoreEntry).where(StoreEntry.namespace == self.namespace))

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self.database.session() as session:
            expires_at = await session.scalar(select(StoreEntry.expires_at).where(self._key(key)))
        if expires_at is None:
            return None
        return max(0, int((expires_at - utcnow()).total_seconds()))
