"""Running the ASGI app with uvicorn, and knowing when it accepts connections; Invoke is
answered by the HTTP protocol itself, without ASGI, when nothing in front of the app would
change it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import uvicorn
from starlette.types import Receive
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from lambdalet.api.app import create_app
from lambdalet.api.invoke import DirectInvoke, answer
from lambdalet.api.requests import receive_chunks
from lambdalet.frontdoor.hosts import HostDispatch
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


class InvokeCycle(RequestResponseCycle):
    """uvicorn's cycle of one request, for an Invoke answered without ASGI: the reply is
    built whole (``api/invoke.py``'s ``answer``) and written at once, with none of the app's
    call chain and none of ``send``'s message dictionaries and per-header checks. The body is
    read as the app would (``receive``: 100-continue, flow control, disconnects)."""

    async def run_invoke(
        self,
        direct: DirectInvoke,
        target: tuple[str, bytes],
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer the Invoke, as ``run_asgi`` runs an app (a failure is logged and a 500)."""
        try:
            reply = await answer(direct.node, *target, headers, self._body())
            if reply is not None:
                await self._write(*reply)
        except BaseException as exc:
            self.logger.error("Exception answering Invoke\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self.transport.close()
        finally:
            self.on_response = _nothing

    async def _body(self) -> AsyncIterator[bytes]:
        """The request's body: at once when all of it is here (the usual case), else as
        ``receive`` brings it."""
        if self.more_body or self.waiting_for_100_continue or self.disconnected:
            async for chunk in receive_chunks(cast(Receive, self.receive)):
                yield chunk
            return
        self.flow.resume_reading()  # paused if the body passed uvicorn's high-water mark
        body, self.body = bytes(self.body), bytearray()
        yield body

    async def _write(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        content = [STATUS_LINE[status]]
        for name, value in self.default_headers:
            content += (name, b": ", value, b"\r\n")
        for key, text in headers.items():
            content += (key.lower().encode(), b": ", text.encode("latin-1"), b"\r\n")
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        self.response_started = self.response_complete = True
        self.waiting_for_100_continue = False
        self.transport.write(b"".join(content))
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


def _nothing() -> None:
    pass


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through :class:`CoalescedWrites`; Invoke
    requests that ``direct`` accepts are answered by an :class:`InvokeCycle`, the rest by the
    ASGI app."""

    direct: DirectInvoke | None = None  # set on a subclass per server (protocol_class)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalesced: Any = CoalescedWrites(transport, self.loop)
        super().connection_made(coalesced)

    def on_headers_complete(self) -> None:
        direct = self.direct
        target = None
        if (
            direct is not None
            and self.parser.get_method() == b"POST"
            and not self.parser.should_upgrade()
            and not self.root_path
            and (self.cycle is None or self.cycle.response_complete)  # none pipelined
        ):
            target = direct.target(self.url, self.headers)
        if direct is None or target is None:
            super().on_headers_complete()
            return
        self.scope["method"] = "POST"
        http_version = self.parser.get_http_version()
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        self.cycle = cycle = InvokeCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        task = self.loop.create_task(cycle.run_invoke(direct, target, self.headers))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


def protocol_class(direct: DirectInvoke | None) -> type[HttpProtocol]:
    """:class:`HttpProtocol` answering Invoke through ``direct`` (None: all through ASGI)."""

    class Protocol(HttpProtocol):
        pass

    Protocol.direct = direct
    return Protocol


def make_server(node: Node, *, log_level: str = "info") -> Server:
    """A server for ``node`` on its settings' host and port, with uvloop and httptools.

    Invoke skips ASGI unless signatures are checked (``SignaturesRequired`` is an ASGI app).
    """
    app = create_app(node)
    direct = None
    if isinstance(app, HostDispatch) and not node.settings.verify_signatures:
        direct = DirectInvoke(node, app)
    config = uvicorn.Config(
        app,
        host=node.settings.host,
        port=node.settings.port,
        loop="none",
        http=protocol_class(direct),
        log_level=log_level,
        access_log=False,
        server_header=False,  # AWS sends none; each header costs uvicorn a check per response
        lifespan="on",
    )
    return Server(config)
