"""A tenant's own host names: remembered for a while, never more of them than the cache's limit,
and a Host header that cannot be a host name is refused before anything is looked up."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete

from services.db import Database
from services.models import Domain
from services.settings import Settings
from tests.support import Credentials
from tests.web.portal import add_tenant
from web.tenancy.scope import HostCache, HostDirectory, TenantHosts


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_host_cache_holds_at_most_its_limit_of_the_names_used_last() -> None:
    looked_up: list[str] = []

    async def look_up(host: str) -> str | None:
        looked_up.append(host)
        return "garden-club" if host == "gardens.example.org" else None

    async def go() -> None:
        cache = HostCache(limit=10_000)
        assert await cache.tenant_of("gardens.example.org", look_up) == "garden-club"
        for number in range(20_000):
            await cache.tenant_of(f"probe-{number}.example.net", look_up)
            if number % 1000 == 0:  # still in use: kept however many names pass by
                assert await cache.tenant_of("gardens.example.org", look_up) == "garden-club"
        assert len(cache) == 10_000
        looked_up.clear()
        assert await cache.tenant_of("probe-19999.example.net", look_up) is None
        assert looked_up == [], "a recent name is answered from the cache"
        assert await cache.tenant_of("probe-0.example.net", look_up) is None
        assert looked_up == ["probe-0.example.net"], "the oldest names made room"
        assert await cache.tenant_of("gardens.example.org", look_up) == "garden-club"
        assert looked_up == ["probe-0.example.net"]

    asyncio.run(go())


def test_a_domain_added_is_found_soon_one_removed_is_let_go_and_an_absurd_host_is_refused(
    settings: Settings, superadmin: Credentials
) -> None:
    tenant = add_tenant(settings, "garden-club")
    clock = Clock()
    routed: list[str] = []

    async def app(scope: Any, _receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def go() -> None:
        database = Database(settings.database_url)
        known = HostCache(found_for=30.0, missing_for=5.0, clock=clock)
        directory = HostDirectory(database, known)
        hosts = TenantHosts(app, "tenantry.test", lambda: directory)

        async def visit(host: str) -> tuple[int, str | None]:
            sent: list[Any] = []

            async def send(message: Any) -> None:
                sent.append(message)

            async def receive() -> Any:
                return {"type": "http.request", "body": b"", "more_body": False}

            routed.clear()
            scope: Any = {
                "type": "http",
                "method": "GET",
                "path": "/units",
                "raw_path": b"/units",
                "query_string": b"",
                "headers": [(b"host", host.encode())],
            }
            await hosts(scope, receive, send)
            return sent[0]["status"], routed[0] if routed else None

        async def with_domain(present: bool) -> None:
            async with database.session() as session:
                if present:
                    session.add(Domain(tenant_id=tenant.id, host="gardens.example.org"))
                else:
                    await session.execute(delete(Domain).where(Domain.host == "gardens.example.org"))

        try:
            assert await visit("gardens.example.org") == (200, "/units")
            await with_domain(True)
            assert await visit("gardens.example.org") == (200, "/units"), "remembered for a moment"
            clock.now += 5.1
            assert await visit("gardens.example.org:8000") == (200, "/t/garden-club/units")

            await with_domain(False)
            clock.now += 29
            assert await visit("gardens.example.org") == (200, "/t/garden-club/units")
            clock.now += 1.1
            assert await visit("gardens.example.org") == (200, "/units")

            remembered = len(known)
            assert await visit("garden-club.tenantry.test") == (200, "/t/garden-club/units")
            assert await visit(f"{'a' * 250}.org") == (400, None)
            assert await visit(f"{'a' * 8000}.example.org:443") == (400, None)
            assert len(known) == remembered, "neither a subdomain nor an absurd host is remembered"
        finally:
            await database.dispose()

    asyncio.run(go())
