"""The host side of the Lambda Runtime API, served to one sandbox on its own loopback port.

The runtime inside the sandbox (ours, ``awslambdaric``, ``aws-lambda-ric`` or any ``bootstrap``)
long-polls ``GET /2018-06-01/runtime/invocation/next`` and answers with ``.../response`` or
``.../error``; ``/init/error`` reports a failed init. The server is a small HTTP/1.1 loop on
asyncio streams with keep-alive, ``Expect: 100-continue`` and chunked bodies, because one full
ASGI server per sandbox would cost far more memory than the sandbox itself.

Behaviour follows AWS: 202 ``{"status":"OK"}`` on accepted posts, 400 ``InvalidRequestID`` for
an unknown or finished request id, 413 ``RequestEntityTooLarge`` for a response over 6 MB (the
invocation then fails with ``Function.ResponseSizeTooLarge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

from lambdalet.models import Invocation

log = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime"
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
MAX_ERROR_BYTES = 1024 * 1024
MAX_DISCARDED_BYTES = 64 * 1024 * 1024
REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


@dataclass(frozen=True)
class RuntimeReply:
    """What the runtime posted for an invocation (or for its init, with ``request_id`` empty)."""

    payload: bytes
    error_type: str | None
    # The runtime's own peak resident memory, when it says (lambdalet's Python runtime does,
    # on its channel): a /proc read the node's event loop is spared on every invocation.
    max_rss_kb: int | None = None


RESPONSE_TOO_LARGE = RuntimeReply(
    json.dumps(
        {
            "errorMessage": "Response payload size exceeded maximum allowed payload size"
            f" ({MAX_RESPONSE_BYTES} bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
    ).encode(),
    "Function.ResponseSizeTooLarge",
)


def runtime_headers(invocation: Invocation) -> dict[str, str]:
    """The ``Lambda-Runtime-*`` headers that come with an invocation."""
    headers = {
        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_unix_ms),
        "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
        "Lambda-Runtime-Trace-Id": invocation.trace_id,
    }
    if invocation.client_context:
        headers["Lambda-Runtime-Client-Context"] = invocation.client_context
    if invocation.cognito_identity:
        headers["Lambda-Runtime-Cognito-Identity"] = invocation.cognito_identity
    return headers


class _HttpError(Exception):
    def __init__(
        self, status: int, error_type: str, message: str, *, keep_alive: bool = True
    ) -> None:
        super().__init__(message)
        self.keep_alive = keep_alive
        self.status = status
        self.error_type = error_type
        self.message = message


class RuntimeApiServer:
    """Serves the Runtime API to one sandbox: one invocation at a time."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False
        self._invocations: asyncio.Queue[Invocation] = asyncio.Queue()
        self._current: Invocation | None = None
        self._reply: asyncio.Future[RuntimeReply] | None = None
        self.first_poll: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.init_error: asyncio.Future[RuntimeReply] = asyncio.get_running_loop().create_future()

    async def start(self, host: str = "127.0.0.1") -> str:
        """Listen on a free port; return the ``host:port`` for ``AWS_LAMBDA_RUNTIME_API``."""
        self._server = await asyncio.start_server(self._serve_connection, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"{host}:{port}"

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.fail_pending(ConnectionResetError("runtime API closed"))

    def submit(self, invocation: Invocation) -> asyncio.Future[RuntimeReply]:
        """Hand an invocation to the runtime; the future resolves with its reply."""
        assert self._reply is None or self._reply.done(), "one invocation at a time"
        self._reply = asyncio.get_running_loop().create_future()
        self._invocations.put_nowait(invocation)
        return self._reply

    def forget(self) -> None:
        """Drop the current invocation (it timed out or its sandbox died)."""
        self._current = None
        while not self._invocations.empty():
            self._invocations.get_nowait()

    def fail_pending(self, error: BaseException) -> None:
        """End the invocation running now, if any, with ``error``."""
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(error)
            self._reply.exception()  # mark retrieved: the caller may have gone

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._closed:  # accepted just before the server closed: never served
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
            log.debug("runtime API connection ended: %s", error)
        except asyncio.CancelledError:
            # The server is closing; ending quietly keeps asyncio's stream callback from
            # reporting the cancellation as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        request_line = await reader.readline()
        if not request_line.strip():
            return False
        method, target, _version = request_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        keep_alive = headers.get("connection", "").lower() != "close"
        path = target.split("?", 1)[0]
        try:
            limit = MAX_ERROR_BYTES if not path.endswith("/response") else MAX_RESPONSE_BYTES
            body = await self._read_body(reader, writer, headers, limit)
            status, extra, payload = await self._dispatch(method, path, headers, body)
        except _HttpError as error:
            status, extra = error.status, {}
            payload = json.dumps(
                {"errorMessage": error.message, "errorType": error.error_type}
            ).encode()
            # An unread body leaves the stream unusable: close it.
            keep_alive = keep_alive and error.keep_alive
        head = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}"]
        extra.setdefault("Content-Type", "application/json")
        head += [f"{k}: {v}" for k, v in extra.items()]
        head.append(f"Content-Length: {len(payload)}")
        if not keep_alive:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
        return keep_alive

    async def _read_body(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, str],
        limit: int,
    ) -> bytes:
        length = int(headers.get("content-length", "0") or 0)
        expects_continue = headers.get("expect", "").lower() == "100-continue"
        if length > limit:
            if not expects_continue and length <= MAX_DISCARDED_BYTES:
                # Read and drop the body so the connection stays usable, as AWS's does.
                while length:
                    length -= len(await reader.read(min(length, 1024 * 1024)))
                    if reader.at_eof():
                        break
                self._on_oversized_body(limit + 1, limit, keep_alive=True)
            self._on_oversized_body(length, limit)
        if expects_continue:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            size = 0
            while True:
                chunk_size = int((await reader.readline()).split(b";")[0], 16)
                if chunk_size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += chunk_size
                if size > limit:
                    self._on_oversized_body(size, limit)
                chunks.append(await reader.readexactly(chunk_size))
                await reader.readexactly(2)
            return b"".join(chunks)
        return await reader.readexactly(length) if length else b""

    def _on_oversized_body(self, size: int, limit: int, *, keep_alive: bool = False) -> None:
        if limit == MAX_RESPONSE_BYTES and self._reply is not None and not self._reply.done():
            self._reply.set_result(RESPONSE_TOO_LARGE)
            self._current = None
        raise _HttpError(
            413,
            "RequestEntityTooLarge",
            f"Payload exceeds {limit} bytes",
            keep_alive=keep_alive,
        )

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if not path.startswith(PREFIX):
            raise _HttpError(404, "NotFound", f"No Runtime API route for {path}")
        route = path[len(PREFIX) :]
        if route == "/invocation/next":
            if method != "GET":
                raise _HttpError(405, "MethodNotAllowed", "use GET for /invocation/next")
            return await self._next()
        if method != "POST":
            raise _HttpError(405, "MethodNotAllowed", f"use POST for {route}")
        if route == "/init/error":
            reply = RuntimeReply(body, headers.get("lambda-runtime-function-error-type"))
            if not self.init_error.done():
                self.init_error.set_result(reply)
            return 202, {}, b'{"status":"OK"}'
        parts = route.split("/")
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            current = self._current
            if current is None or current.request_id != parts[2] or self._reply is None:
                raise _HttpError(400, "InvalidRequestID", f"Invalid request ID: {parts[2]}")
            if parts[3] == "response":
                reply = RuntimeReply(body, None)
            else:
                reply = RuntimeReply(
                    body or b"{}", headers.get("lambda-runtime-function-error-type") or "Unhandled"
                )
            self._current = None
            if not self._reply.done():
                self._reply.set_result(reply)
            return 202, {}, b'{"status":"OK"}'
        raise _HttpError(404, "NotFound", f"No Runtime API route for {path}")

    async def _next(self) -> tuple[int, dict[str, str], bytes]:
        if not self.first_poll.done():
            self.first_poll.set_result(None)
        invocation = await self._invocations.get()
        self._current = invocation
        return 200, runtime_headers(invocation), invocation.payload
