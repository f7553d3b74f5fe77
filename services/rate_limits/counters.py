"""Requests counted against their limits with the `limits` library's sliding window counter (a
window of a minute, weighted by how much of the previous minute it still covers), kept in this
process's memory (the embedded default, one web process) or in Redis, where every web process
counts in the same counters, atomically (the library's scripts run in Redis).

A counter store that cannot be reached lets requests through, saying so in the log once: a rate
limit protects the installation, and must not be the thing that takes it down."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import cache

import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

log = logging.getLogger(__name__)

MEMORY = "memory"
#: Refusals are counted per hour and kept for a day and an hour: "the last 24 hours" is the sum of
#: the current hour's and the 23 before it.
_HOUR = 3600
_DAY_IN_HOURS = 24


@dataclass(frozen=True)
class Budget:
    """One limit one caller is held to, such as tenant 7's reads, 6,000 a minute."""

    #: What the RateLimit headers call it: "tenant-read", "each-write", "address-sign_in", …
    policy: str
    #: Whose counter it is: "tenant:7", "tenant:7:user:3", "address:203.0.113.9", …
    counter: str
    per_minute: int
    #: The tenant whose refusals a refusal of this budget is counted among, if any.
    tenant_id: int | None = None


@dataclass(frozen=True)
class Verdict:
    """What is left of a budget for a request: the one that refused it, or the one with the fewest
    requests left of those that let it through."""

    budget: Budget
    remaining: int
    #: Seconds until the budget has room again (refused) or is whole again (let through).
    reset_seconds: int


class _SweptMemory(MemoryStorage):
    """The library's memory storage, with expired counters dropped as they are read and in one
    sweep a minute. The library's own sweeps after every hit, at a cost that grows with every
    counter kept (0.4 ms a request with 5,000 callers counted)."""

    _SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.time() + self._SWEEP_SECONDS

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        await self.get(key)  # drops the counter if it expired
        self._sweep_now_and_then()
        self.storage[key] += amount
        if self.storage[key] == amount:
            self.expirations[key] = time.time() + expiry
        return self.storage[key]

    async def decr(self, key: str, amount: int = 1) -> int:
        await self.get(key)
        self.storage[key] = max(self.storage[key] - amount, 0)
        return self.storage[key]

    def _sweep_now_and_then(self) -> None:
        now = time.time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._SWEEP_SECONDS
        for key in [key for key, expires in self.expirations.items() if expires <= now]:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)


def counters_at(url: str, namespace: str) -> Counters:
    """Counters in this process's memory (`memory`), or in the Redis at a redis:// URL, where
    every web process counts in the same counters (kept apart from other installations'
    by `namespace`)."""
    if url == MEMORY:
        return Counters(_SweptMemory())
    pool = redis.asyncio.ConnectionPool.from_url(url)
    storage = RedisStorage(
        f"async+{url}",
        implementation="redispy",
        key_prefix=f"{namespace}:rate-limits",
        connection_pool=pool,  # type: ignore[arg-type]  # the library passes it to redis-py's client
    )
    return Counters(storage, pool)


@cache
def _per_minute(amount: int) -> RateLimitItem:
    return RateLimitItemPerMinute(amount)


class Counters:
    def __init__(self, storage: Storage, pool: redis.asyncio.ConnectionPool | None = None) -> None:
        self.storage = storage
        self._pool = pool
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._unreachable_since: float | None = None

    async def admit(self, budgets: Sequence[Budget]) -> Verdict | None:
        """Count one request against each budget, narrowest first; the first that has no room
        refuses it (and the wider ones do not count it): its verdict. None: let through (or no
        counters to ask)."""
        return await self._asking(self._admit(budgets))

    async def tightest(self, budgets: Sequence[Budget]) -> Verdict | None:
        """The verdict of the budget with the fewest requests left, for the RateLimit headers of a
        request let through (None: no budget, or no counters to ask)."""
        return await self._asking(self._tightest(budgets))

    async def _asking(self, question: Awaitable[Verdict | None]) -> Verdict | None:
        try:
            answer = await question
        except Exception:
            if self._unreachable_since is None:
                log.warning(
                    "rate limits: the counters cannot be reached; letting requests through", exc_info=True
                )
                self._unreachable_since = time.time()
            return None
        if self._unreachable_since is not None:
            log.warning("rate limits: the counters answer again")
            self._unreachable_since = None
        return answer

    async def _admit(self, budgets: Sequence[Budget]) -> Verdict | None:
        for budget in budgets:
            if not await self._limiter.hit(_per_minute(budget.per_minute), budget.counter):
                await self._count_refusal(budget)
                return await self._verdict(budget)
        return None

    async def _tightest(self, budgets: Sequence[Budget]) -> Verdict | None:
        verdicts = [await self._verdict(budget) for budget in budgets]
        return min(verdicts, key=lambda verdict: verdict.remaining, default=None)

    async def _verdict(self, budget: Budget) -> Verdict:
        stats = await self._limiter.get_window_stats(_per_minute(budget.per_minute), budget.counter)
        return Verdict(budget, stats.remaining, max(1, math.ceil(stats.reset_time - time.time())))

    async def count_refusal(self, budget: Budget) -> None:
        """A request refused without asking the budget again (web.rate_limits: at the door)."""
        await self._asking(self._count_refusal(budget))

    async def _count_refusal(self, budget: Budget) -> None:
        if budget.tenant_id is not None:
            await self.storage.incr(_refusals_key(budget.tenant_id, _hour()), _HOUR * (_DAY_IN_HOURS + 1))

    async def refusals(self, tenant_id: int) -> int:
        """Requests into the tenant refused in the last 24 hours (0 when the counters cannot be asked)."""
        hour = _hour()
        try:
            return sum(
                [
                    await self.storage.get(_refusals_key(tenant_id, hour - back))
                    for back in range(_DAY_IN_HOURS)
                ]
            )
        except Exception:
            log.warning("rate limits: could not read the refusals of tenant %s", tenant_id, exc_info=True)
            return 0

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()


def _hour() -> int:
    return int(time.time() // _HOUR)


def _refusals_key(tenant_id: int, hour: int) -> str:
    return f"refused:{tenant_id}:{hour}"
