"""Web processes answer kept-alive connections without waiting on Nagle's algorithm: the listener
`tenantry serve` binds (and its --workers N share) says it is TCP, so every connection asyncio
accepts on it gets TCP_NODELAY. Without it each answer after the first on a connection waits for the
client's delayed acknowledgement (about 40 ms on Linux), whatever the app's own speed."""

from __future__ import annotations

import asyncio
import socket

from tenantry.serving import listen


def test_connections_accepted_on_the_shared_listener_have_nagles_algorithm_off() -> None:
    listener = listen("127.0.0.1", 0)

    async def nodelay_of_an_accepted_connection() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connection = writer.get_extra_info("socket")
            accepted.set_result(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            try:
                return await asyncio.wait_for(accepted, 10)
            finally:
                writer.close()

    try:
        assert listener.proto == socket.IPPROTO_TCP
        assert listener.get_inheritable(), "the web processes inherit the listener"
        assert asyncio.run(nodelay_of_an_accepted_connection()) != 0
    finally:
        listener.close()
