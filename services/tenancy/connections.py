"""Connections to tenant stores, bounded for the whole process.

Hundreds of tenant stores (database isolation) would mean hundreds of pools. Here one engine per
store is kept, least recently used first out, and the number of connections open across all of
them never exceeds `limit`: a request that needs a new connection when the limit is reached
closes an idle store's connections, or waits for one to be returned. A wait that lasts too long
becomes "busy, try again" (503), never the database's "too many connections".
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.db import create_engine
from services.errors import DomainError
from services.tenancy.stores import StoreLocation


class StoresBusy(DomainError):
    """Every connection is in use for longer than a request should wait."""


class TenantConnections:
    def __init__(self, limit: int, *, wait_seconds: float = 30.0) -> None:
        if limit < 1:
            raise ValueError("at least one connection is needed")
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._engines: OrderedDict[str, AsyncEngine] = OrderedDict()
        self._opening = 0
        #: Idle connections of evicted stores, closing in the background: still open until closed.
        self._closing = 0
        self._changed = asyncio.Condition()
        self._disposals: set[asyncio.Task[None]] = set()

    @property
    def open_connections(self) -> int:
        """Connections open now: idle in a pool, in use, or being opened. While one is being
        opened it may be counted twice; the count errs high, so the limit holds."""
        pools = (engine.pool for engine in self._engines.values())
        in_pools = sum(pool.checkedin() + pool.checkedout() for pool in pools)  # type: ignore[attr-defined]
        return in_pools + self._opening + self._closing

    @property
    def engines(self) -> int:
        return len(self._engines)

    @asynccontextmanager
    async def connection(self, location: StoreLocation) -> AsyncIterator[AsyncConnection]:
        """One connection to the store, counted against the limit until the block ends."""
        connection = await self._connect(location)
        try:
            yield connection
        finally:
            await connection.close()
            async with self._changed:
                self._changed.notify_all()

    async def _connect(self, location: StoreLocation) -> AsyncConnection:
        try:
            async with asyncio.timeout(self.wait_seconds):
                engine, opening = await self._reserve(location)
        except TimeoutError:
            raise StoresBusy("Every connection to tenant data is busy. Try again in a moment.") from None
        try:
            # An idle connection is taken from the pool before this first yields to the loop.
            return await engine.connect()
        finally:
            if opening:
                async with self._changed:
                    self._opening -= 1
                    self._changed.notify_all()

    async def _reserve(self, location: StoreLocation) -> tuple[AsyncEngine, bool]:
        """The store's engine, and whether connecting will open a new connection (reserved)."""
        async with self._changed:
            while True:
                engine = self._engines.get(location.key)
                if engine is not None:
                    self._engines.move_to_end(location.key)
                    if engine.pool.checkedin() > 0:  # type: ignore[attr-defined]
                        return engine, False
                if self.open_connections < self.limit:
                    if engine is None:
                        engine = self._engines[location.key] = self._create_engine(location)
                    self._opening += 1
                    return engine, True
                if not await self._close_idle_store(keep=location.key):
                    await self._changed.wait()

    async def _close_idle_store(self, keep: str) -> bool:
        """Evict the least recently used store with no connection in use. Its connections close
        in the background (slow on SQLite), still counted until they are closed."""
        for key, engine in self._engines.items():  # least recently used first
            if key != keep and engine.pool.checkedout() == 0:  # type: ignore[attr-defined]
                del self._engines[key]
                idle = engine.pool.checkedin()  # type: ignore[attr-defined]
                self._closing += idle
                disposal = asyncio.create_task(self._dispose(engine, idle))
                self._disposals.add(disposal)
                disposal.add_done_callback(self._disposals.discard)
                return True
        return False

    async def _dispose(self, engine: AsyncEngine, idle: int) -> None:
        try:
            await engine.dispose()
        finally:
            async with self._changed:
                self._closing -= idle
                self._changed.notify_all()

    def _create_engine(self, location: StoreLocation) -> AsyncEngine:
        url = location.app_url or location.url
        return create_engine(
            url, schema=location.schema, explicit_transactions=True, pool_size=self.limit, max_overflow=0
        )

    async def dispose(self) -> None:
        async with self._changed:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            await engine.dispose()
        await asyncio.gather(*self._disposals)
