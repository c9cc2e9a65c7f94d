"""Running the ASGI app with uvicorn, and knowing when it accepts connections."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lambdalet.api.app import create_app
from lambdalet.node import Node


class Server(uvicorn.Server):
    """uvicorn's server with an event set once it is listening."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then tell whoever waits on ``listening``."""
        await super().startup(sockets)
        self.listening.set()


class CoalescedWrites:
    """A transport that sends what is written to it within one loop iteration in one write.

    uvicorn writes a response's head when the app sends ``http.response.start`` and its body
    on ``http.response.body``: two system calls, two TCP segments and two wake-ups of the
    client per response. Held until the loop's ready callbacks run, they go out as one.
    Everything but ``write`` and ``close`` (which sends what is held first) is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Hold ``data`` until the end of this loop iteration."""
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def close(self) -> None:
        """Send what is held, then close."""
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(b"".join(held))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`CoalescedWrites`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalesced: Any = CoalescedWrites(transport, self.loop)
        super().connection_made(coalesced)


def make_server(node: Node, *, log_level: str = "info") -> Server:
    """A server for ``node`` on its settings' host and port, with uvloop and httptools."""
    config = uvicorn.Config(
        create_app(node),
        host=node.settings.host,
        port=node.settings.port,
        loop="none",
        http=HttpProtocol,
        log_level=log_level,
        access_log=False,
        server_header=False,  # AWS sends none; each header costs uvicorn a check per response
        lifespan="on",
    )
    return Server(config)
