"""The client's address behind a reverse proxy, taken only from proxies named in
TENANTRY_TRUSTED_PROXIES: anyone else could write any address into a forwarded header, and the
sign-in throttle counts and the audit trail records the address this leaves in the scope."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from litestar.types import ASGIApp, Receive, Scope, Send

FORWARDED_FOR = "x-forwarded-for"


def _address(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


class TrustedProxyMiddleware:
    """Wraps the app: on a connection from a trusted proxy, the client address the proxy reports
    replaces the proxy's own in the ASGI scope (`request.client`); from anyone else, forwarded
    headers are ignored. A report that is not an IP address leaves the proxy's address."""

    def __init__(self, app: ASGIApp, proxies: Sequence[IPv4Network | IPv6Network], header: str) -> None:
        self.app = app
        self.proxies = tuple(proxies)
        self.header = header.strip().lower().encode("latin-1")

    def _trusts(self, address: IPv4Address | IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in self.proxies)

    def _reported_client(self, headers: Iterable[tuple[bytes, bytes]]) -> IPv4Address | IPv6Address | None:
        values = [value.decode("latin-1") for name, value in headers if name == self.header]
        if not values:
            return None
        if self.header != FORWARDED_FOR.encode():
            # A header the proxy sets itself holds one address; when sent twice, the proxy's is last.
            return _address(values[-1])
        # Each proxy appends the address it was reached from, so the right-most entry that is not
        # one of ours is the client; entries further left are whatever the client chose to send.
        hops = [_address(hop) for hop in ",".join(values).split(",")]
        for hop in reversed(hops):
            if not self._trusts(hop):
                return hop
        return hops[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and self._trusts(_address(peer[0])):
                client = self._reported_client(scope["headers"])
                if client is not None:
                    scope["client"] = (str(client), 0)
        await self.app(scope, receive, send)
