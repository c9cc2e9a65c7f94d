"""The node's HTTP transport: a response leaves in one write, nothing held is lost on close,
and Invoke answered without ASGI is answered as the ASGI app answers it.

Every other test talks to the server through it as well."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import uvloop

from lambdalet.api.serving import CoalescedWrites
from lambdalet.testing import Deploy, ServerThread, invoke


async def _transport_pair() -> tuple[asyncio.Transport, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    return transport, peer


def test_writes_in_one_loop_iteration_leave_together() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"

    async def scenario() -> tuple[bool, bytes]:
        transport, peer = await _transport_pair()
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        coalesced.write(head)
        try:
            peer.recv(4096)  # a transport's own write() would have sent it by now
            held = False
        except BlockingIOError:
            held = True
        coalesced.write(b"{}")
        await asyncio.sleep(0.01)
        data = peer.recv(4096)
        coalesced.close()
        peer.close()
        return held, data

    held, data = uvloop.run(scenario())
    assert held
    assert data == head + b"{}"


def test_close_sends_what_is_held_first() -> None:
    async def scenario() -> bytes:
        transport, peer = await _transport_pair()
        coalesced = CoalescedWrites(transport, asyncio.get_running_loop())
        coalesced.write(b"last words")
        coalesced.close()
        await asyncio.sleep(0.01)
        data = peer.recv(4096)
        peer.close()
        return data

    assert uvloop.run(scenario()) == b"last words"


# Invoke is answered by the HTTP protocol itself (InvokeCycle) when the connection has no other
# request in flight, and by the ASGI app otherwise: both must give the same answers.

ECHO = "def handler(event, context):\n    return event\n"
SLOW = "import time\n\ndef handler(event, context):\n    time.sleep(0.3)\n    return 'late'\n"


def _request(name: str, body: bytes = b"{}", *, version: str = "1.1", extra: str = "") -> bytes:
    head = (
        f"POST /2015-03-31/functions/{name}/invocations HTTP/{version}\r\n"
        f"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def _read_response(stream: socket.socket, pending: bytearray) -> tuple[str, dict[str, str], bytes]:
    """One response (status line, lower-cased headers, body) from ``stream``."""
    while b"\r\n\r\n" not in pending:
        chunk = stream.recv(65536)
        assert chunk, f"connection closed mid-response: {bytes(pending)!r}"
        pending += chunk
    head, _, rest = bytes(pending).partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = stream.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    pending[:] = rest[length:]
    return status, headers, rest[:length]


def _comparable(response: tuple[str, dict[str, str], bytes]) -> tuple[Any, ...]:
    """A response without what differs between any two: the date and the request id."""
    status, headers, body = response
    varying = {"date", "x-amzn-requestid"}
    return status, list(headers), {k: v for k, v in headers.items() if k not in varying}, body


def test_invoke_is_answered_alike_with_and_without_asgi(
    deploy: Deploy, server: ServerThread
) -> None:
    assert server.settings.verify_signatures is False  # so Invoke may skip ASGI
    name = deploy(ECHO)["FunctionName"]
    cases = [
        _request(name, b'{"n": 1}'),
        _request(name, json.dumps({"big": "x" * 300_000}).encode()),  # past flow control's mark
        _request(name, b'{"n": 1', extra="X-Amz-Log-Type: None\r\n"),  # not JSON: 400
        _request("no-such-function"),  # 404
        _request(name, extra="X-Amz-Invocation-Type: DryRun\r\n"),  # 204
        _request(name, extra="X-Amz-Invocation-Type: Sideways\r\n"),  # 400
    ]
    for case in cases:
        with socket.create_connection(("127.0.0.1", server.settings.port)) as stream:
            # Two at once: the first is answered directly, the second (pipelined behind it)
            # by the ASGI app.
            stream.sendall(case + case)
            pending = bytearray()
            direct = _read_response(stream, pending)
            through_app = _read_response(stream, pending)
        assert _comparable(direct) == _comparable(through_app), case
        assert direct[1]["x-amzn-requestid"] != through_app[1]["x-amzn-requestid"]
    assert _comparable(direct)[0] == "HTTP/1.1 400 Bad Request"


def test_invoke_over_http_10_closes_the_connection(deploy: Deploy, server: ServerThread) -> None:
    name = deploy(ECHO)["FunctionName"]
    with socket.create_connection(("127.0.0.1", server.settings.port)) as stream:
        stream.sendall(_request(name, b'{"a": 1}', version="1.0"))
        status, headers, body = _read_response(stream, bytearray())
        assert status.split()[1] == "200" and json.loads(body) == {"a": 1}
        assert headers["connection"] == "close"
        stream.settimeout(5)
        assert stream.recv(1) == b""  # closed by the server


def test_invoke_waits_for_a_body_after_100_continue(deploy: Deploy, server: ServerThread) -> None:
    name = deploy(ECHO)["FunctionName"]
    body = b'{"later": true}'
    with socket.create_connection(("127.0.0.1", server.settings.port)) as stream:
        request = _request(name, body, extra="Expect: 100-continue\r\n")
        stream.sendall(request[: -len(body)])
        pending = bytearray()
        interim, _, _ = _read_response(stream, pending)
        assert interim == "HTTP/1.1 100 Continue"
        stream.sendall(body)
        status, _, reply = _read_response(stream, pending)
    assert status.split()[1] == "200" and json.loads(reply) == {"later": True}


def test_a_client_that_leaves_mid_invoke_harms_nothing(
    deploy: Deploy, server: ServerThread, lambda_client: Any
) -> None:
    slow = deploy(SLOW)["FunctionName"]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.settings.port)) as stream:
            stream.sendall(_request(slow))
    payload, response = invoke(lambda_client, slow)
    assert payload == "late" and "FunctionError" not in response


def test_invoke_path_on_a_function_url_host_goes_to_the_function(
    deploy: Deploy, server: ServerThread, lambda_client: Any
) -> None:
    source = "def handler(event, context):\n    return {'path': event['rawPath']}\n"
    name = deploy(source)["FunctionName"]
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    host = urlsplit(url["FunctionUrl"]).netloc
    path = f"/2015-03-31/functions/{name}/invocations"
    with socket.create_connection(("127.0.0.1", server.settings.port)) as stream:
        stream.sendall(_request(name).replace(b"Host: 127.0.0.1", f"Host: {host}".encode()))
        status, _, body = _read_response(stream, bytearray())
    assert status.split()[1] == "200" and json.loads(body) == {"path": path}
