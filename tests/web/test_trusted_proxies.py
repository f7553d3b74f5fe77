"""The client's address behind a proxy: forwarded headers are believed only from the proxies named
in TENANTRY_TRUSTED_PROXIES (none by default), so nobody else chooses the address the sign-in
throttle counts and the audit trail records."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from services.settings import Settings
from tests.services.running import background, free_port, tenantry_env, wait_for
from tests.support import Credentials, csrf_token
from tests.web.portal import portal
from tests.web.test_audit_pages import trail
from web.proxies import TrustedProxyMiddleware

PROXIES = (ip_network("10.0.0.0/8"), ip_network("fdaa::/16"))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two failed sign-ins allowed: each costs an Argon2 verification."""
    return dataclasses.replace(settings, login_attempts=2)


def client_seen(peer: str, headers: dict[str, str], header: str = "X-Forwarded-For") -> str:
    """The client address the app behind the middleware sees, for a connection from `peer`."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])

    scope: Any = {
        "type": "http",
        "client": (peer, 41000),
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
    }
    asyncio.run(TrustedProxyMiddleware(app, PROXIES, header)(scope, receive=None, send=None))  # type: ignore[arg-type]
    return seen[0]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # not a proxy of ours: ignored
        ("127.0.0.1", "198.51.100.7", "127.0.0.1"),  # not even the loopback is trusted unless named
        ("10.1.2.3", "198.51.100.7", "198.51.100.7"),
        ("10.1.2.3", "192.0.2.66, 198.51.100.7", "198.51.100.7"),  # the left one is the client's say
        ("10.1.2.3", "192.0.2.66, 198.51.100.7, 10.9.9.9", "198.51.100.7"),  # through two proxies
        ("10.1.2.3", "10.7.7.7, 10.9.9.9", "10.7.7.7"),  # only proxies: the first of them
        ("10.1.2.3", "198.51.100.7, not-an-address", "10.1.2.3"),  # garbage: the proxy's own
        ("10.1.2.3", "", "10.1.2.3"),
        ("fdaa:0:1::3", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_x_forwarded_for_is_believed_from_trusted_proxies_only(
    peer: str, forwarded_for: str, client: str
) -> None:
    assert client_seen(peer, {"X-Forwarded-For": forwarded_for}) == client


def test_without_a_forwarded_header_the_proxy_is_the_client() -> None:
    assert client_seen("10.1.2.3", {}) == "10.1.2.3"


@pytest.mark.parametrize(("peer", "client"), [("10.1.2.3", "198.51.100.7"), ("203.0.113.9", "203.0.113.9")])
def test_a_one_address_header_such_as_flys_is_read_whole(peer: str, client: str) -> None:
    headers = {"Fly-Client-IP": "198.51.100.7", "X-Forwarded-For": "192.0.2.66"}

    assert client_seen(peer, headers, header="Fly-Client-IP") == client


def connecting_from(client: TestClient[Any], address: str) -> TestClient[Any]:
    """`client`'s requests arrive over a connection from `address`, as a proxy's or a visitor's would."""
    app = client.app
    inner = app.asgi_handler

    async def peer(scope: Scope, receive: Receive, send: Send) -> None:
        scope["client"] = (address, 41000)
        await inner(scope, receive, send)

    app.asgi_handler = peer
    return client


def fail_sign_in(client: TestClient[Any], email: str, forwarded_for: str) -> int:
    response = client.post(
        "/login",
        data={"email": email, "password": "wrong", "_csrf_token": csrf_token(client)},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return int(response.status_code)


def test_a_made_up_forwarded_address_neither_escapes_the_throttle_nor_enters_the_trail(
    client: TestClient[Any], settings: Settings, superadmin: Credentials
) -> None:
    visitor = connecting_from(client, "127.0.0.1")
    rotating = [f"198.51.100.{n}" for n in range(settings.login_attempts + 1)]

    statuses = [fail_sign_in(visitor, superadmin.email, address) for address in rotating]

    assert statuses == [422] * settings.login_attempts + [429]
    assert {entry.ip for entry in trail(settings)} == {"127.0.0.1"}


def test_behind_a_trusted_proxy_each_client_is_counted_and_recorded_by_its_own_address(
    settings: Settings, superadmin: Credentials
) -> None:
    behind_proxy = dataclasses.replace(settings, trusted_proxies=PROXIES, login_attempts=1)
    with portal(behind_proxy) as client:
        proxy = connecting_from(client, "10.1.2.3")
        assert fail_sign_in(proxy, superadmin.email, "198.51.100.7") == 422
        assert fail_sign_in(proxy, superadmin.email, "192.0.2.1, 198.51.100.7") == 429
        assert fail_sign_in(proxy, superadmin.email, "198.51.100.8") == 422

    assert [entry.ip for entry in trail(settings)] == ["198.51.100.7", "198.51.100.7", "198.51.100.8"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """`tenantry serve` as an operator starts it, trusting the proxy at 127.0.0.2 only."""
    data_dir = tmp_path / "data"
    env = tenantry_env(TENANTRY_DATA_DIR=str(data_dir), TENANTRY_TRUSTED_PROXIES="127.0.0.2")
    port = free_port()
    with background(["serve", "--port", str(port)], env, tmp_path / "logs") as server:
        base_url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            server.check_running()
            try:
                return httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 30, what="tenantry serve to answer /healthz")
        yield base_url, Settings.from_env({"TENANTRY_DATA_DIR": str(data_dir)})
        server.stop()


def test_tenantry_serve_believes_the_named_proxy_and_not_the_loopback(served: tuple[str, Settings]) -> None:
    base_url, settings = served
    for source in ("127.0.0.1", "127.0.0.2"):
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=base_url, transport=transport) as browser:
            token = re.search(r'name="_csrf_token" value="([^"]+)"', browser.get("/login").text)
            assert token is not None
            response = browser.post(
                "/login",
                data={"email": "nobody@example.org", "password": "wrong", "_csrf_token": token.group(1)},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
            assert response.status_code == 422, response.text

    failed = [entry.ip for entry in trail(settings) if entry.action == "sign_in_failed"]
    assert failed == ["127.0.0.1", "198.51.100.7"]
