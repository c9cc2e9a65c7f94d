"""Running the ASGI app with uvicorn, and knowing when it accepts connections."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

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


def make_server(node: Node, *, log_level: str = "info") -> Server:
    """A server for ``node`` on its settings' host and port, with uvloop and httptools."""
    config = uvicorn.Config(
        create_app(node),
        host=node.settings.host,
        port=node.settings.port,
        loop="none",
        http="httptools",
        log_level=log_level,
        access_log=False,
        lifespan="on",
    )
    return Server(config)
