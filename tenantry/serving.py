"""Serving an ASGI app from one or several uvicorn processes, the way `tenantry serve` does (the
benchmarks serve their baseline app through it too, so both are measured alike).

The listening socket is bound first (`listen`), before `tenantry serve` says it is serving: a
browser opened on the printed address finds it listening, and a port another program holds is
said in a sentence instead of uvicorn's `[Errno 98]` after the banner."""

from __future__ import annotations

import errno
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from services.errors import DomainError


class PortTaken(DomainError):
    """Another program already listens on the address `tenantry serve` was asked to serve on."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port, inheritable by the web processes. It says it is TCP:
    asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted connections whose listener
    does, and otherwise every answer after the first on a kept-alive connection waits for the
    client's delayed acknowledgement, about 40 ms on Linux (Kludex/uvicorn#3149)."""
    family, kind, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise PortTaken(
                f"Port {port} on {host} is already in use, by another program or another Tenantry. "
                f"Stop it, or serve on another port: `tenantry serve --port {port + 1}`."
            ) from None
        raise
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def serve_web(
    app: str, *, host: str, port: int, processes: int, listener: socket.socket | None = None
) -> None:
    """Serve the app named by its import string until stopped (SIGTERM or Ctrl-C), from `processes`
    processes sharing one listening socket (`listener`, else one bound here). Client addresses from
    proxies are the app's business (web/proxies.py): uvicorn's own handling would believe any
    X-Forwarded-For from 127.0.0.1."""
    listener = listener or listen(host, port)
    config = uvicorn.Config(
        app, host=host, port=port, workers=processes, log_level="warning", proxy_headers=False
    )
    if processes == 1:
        uvicorn.Server(config).run(sockets=[listener])
        return
    Multiprocess(config, sockets=[listener]).run()
