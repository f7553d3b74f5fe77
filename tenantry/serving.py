"""Serving an ASGI app from one or several uvicorn processes, the way `tenantry serve` does (the
benchmarks serve their baseline app through it too, so both are measured alike)."""

from __future__ import annotations

import socket

import uvicorn
from uvicorn.supervisors import Multiprocess


class TcpListenerConfig(uvicorn.Config):
    """uvicorn's configuration, with a listener for several processes that says it is TCP.

    For `workers > 1` uvicorn binds the socket itself and leaves its protocol number at 0; accepted
    connections inherit it, and asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets
    whose protocol is TCP. Every answer after the first on a kept-alive connection would then wait
    for the client's delayed acknowledgement, about 40 ms on Linux (Kludex/uvicorn#3149)."""

    def bind_socket(self) -> socket.socket:
        listener = super().bind_socket()
        if listener.family in (socket.AF_INET, socket.AF_INET6) and listener.proto != socket.IPPROTO_TCP:
            listener = socket.socket(
                listener.family, listener.type, socket.IPPROTO_TCP, fileno=listener.detach()
            )
            listener.set_inheritable(True)
        return listener


def serve_web(app: str, *, host: str, port: int, processes: int) -> None:
    """Serve the app named by its import string until stopped (SIGTERM or Ctrl-C), from `processes`
    processes sharing one listening socket. Client addresses from proxies are the app's business
    (web/proxies.py): uvicorn's own handling would believe any X-Forwarded-For from 127.0.0.1."""
    if processes == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
        return
    config = TcpListenerConfig(
        app, host=host, port=port, workers=processes, log_level="warning", proxy_headers=False
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
