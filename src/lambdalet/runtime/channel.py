"""A private, cheaper channel between the host and lambdalet's own Python runtime.

Frames on a Unix socketpair instead of HTTP on loopback TCP: each frame is a 4-byte length, a
4-byte header length, a JSON header and the payload. The host sends one frame per invocation
(its header holds the ``Lambda-Runtime-*`` headers); the runtime sends ``ready`` once its init
is done, ``init_error``, and one ``response`` or ``error`` per invocation, which also means it
is ready for the next. Every Runtime API behaviour the host relies on is kept: the same replies,
the 6 MB response limit (``Function.ResponseSizeTooLarge``), init errors. Custom runtimes and
the official clients keep using the HTTP Runtime API (``runtime.server``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from typing import Any, cast

from lambdalet.models import Invocation
from lambdalet.runtime.server import (
    MAX_RESPONSE_BYTES,
    RESPONSE_TOO_LARGE,
    RuntimeReply,
    runtime_headers,
)

log = logging.getLogger(__name__)

FD_ENV = "_LAMBDALET_RUNTIME_FD"
_PREFIX = struct.Struct(">II")
MAX_FRAME_BYTES = 64 * 1024 * 1024


# One encoder for every frame: json.dumps with any option but the defaults builds a new one
# per call, which costs more than encoding a frame's header.
_encode_header = json.JSONEncoder(separators=(",", ":")).encode


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One frame: lengths, JSON header, payload."""
    head = _encode_header(header).encode()
    return _PREFIX.pack(len(head) + len(payload), len(head)) + head + payload


class FramedChannel(asyncio.Protocol):
    """The host end of the channel to one runtime; the same surface as RuntimeApiServer.

    A protocol rather than streams: frames are cut out of ``data_received`` directly, with no
    task or coroutine step per frame.
    """

    def __init__(self) -> None:
        self._host_end, self.runtime_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._current: Invocation | None = None
        self._reply: asyncio.Future[RuntimeReply] | None = None
        # Kept: asking asyncio for the running loop costs a getpid() system call on Python 3.11.
        self._loop = loop = asyncio.get_running_loop()
        self.first_poll: asyncio.Future[None] = loop.create_future()
        self.init_error: asyncio.Future[RuntimeReply] = loop.create_future()

    async def start(self) -> int:
        """Begin reading; return the file descriptor the runtime must inherit."""
        loop = asyncio.get_running_loop()
        await loop.create_unix_connection(lambda: self, sock=self._host_end)
        return self.runtime_end.fileno()

    def runtime_started(self) -> None:
        """Close the host's copy of the runtime's end, now that the runtime has it."""
        self.runtime_end.close()

    async def close(self) -> None:
        """Drop the channel."""
        self.runtime_end.close()
        if self._transport is not None:
            self._transport.close()  # the loop closes the socket and detaches _host_end
        else:
            self._host_end.close()  # never started (or the loop closed and detached it)
        self.fail_pending(ConnectionResetError("runtime channel closed"))

    def submit(self, invocation: Invocation) -> asyncio.Future[RuntimeReply]:
        """Hand an invocation to the runtime; the future resolves with its reply."""
        self._reply = self._loop.create_future()
        self._current = invocation
        if self._transport is None:
            self.fail_pending(ConnectionResetError("runtime channel closed"))
        else:
            self._transport.write(encode_frame(runtime_headers(invocation), invocation.payload))
        return self._reply

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        """Send the runtime a frame of lambdalet's own (a pooled runtime's ``bind``)."""
        assert self._transport is not None, "the channel is not started"
        self._transport.write(encode_frame(header, payload))

    def forget(self) -> None:
        """Drop the current invocation (it timed out or the runtime died)."""
        self._current = None

    def fail_pending(self, error: BaseException) -> None:
        """End the invocation running now, if any, with ``error``."""
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)
            self._reply.exception()  # mark retrieved: the caller may have gone

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _PREFIX.size:
            total, head_length = _PREFIX.unpack_from(buffer)
            if total > MAX_FRAME_BYTES or head_length > total:
                log.warning("runtime sent a frame of %d bytes; closing its channel", total)
                assert self._transport is not None
                self._transport.close()
                return
            end = _PREFIX.size + total
            if len(buffer) < end:
                return
            head_end = _PREFIX.size + head_length
            try:
                header = json.loads(buffer[_PREFIX.size : head_end].decode())
            except ValueError:
                log.warning("runtime sent a frame header that is not JSON; closing its channel")
                assert self._transport is not None
                self._transport.close()
                return
            payload = bytes(buffer[head_end:end])
            del buffer[:end]
            self._dispatch(header, payload)

    def connection_lost(self, exc: Exception | None) -> None:
        # The runtime exited (the sandbox sees its exit) or the channel was closed.
        self._transport = None

    def _resolve(self, request_id: str, reply: RuntimeReply) -> None:
        current = self._current
        if current is None or current.request_id != request_id or self._reply is None:
            log.warning("runtime replied for unknown request id %s", request_id)
            return
        self._current = None
        if not self._reply.done():
            self._reply.set_result(reply)

    def _dispatch(self, header: dict[str, Any], payload: bytes) -> None:
        op = header.get("op")
        if op == "ready":
            if not self.first_poll.done():
                self.first_poll.set_result(None)
        elif op == "init_error":
            if not self.init_error.done():
                self.init_error.set_result(RuntimeReply(payload, header.get("type")))
        elif op == "response":
            too_large = len(payload) > MAX_RESPONSE_BYTES
            reply = RuntimeReply(
                RESPONSE_TOO_LARGE.payload if too_large else payload,
                RESPONSE_TOO_LARGE.error_type if too_large else None,
                _rss_kb(header),
            )
            self._resolve(str(header.get("id")), reply)
        elif op == "error":
            error_type = header.get("type") or "Unhandled"
            reply = RuntimeReply(payload or b"{}", error_type, _rss_kb(header))
            self._resolve(str(header.get("id")), reply)
        else:
            log.warning("runtime sent an unknown frame %r", op)


def _rss_kb(header: dict[str, Any]) -> int | None:
    value = header.get("rss_kb")
    return value if isinstance(value, int) and value >= 0 else None
