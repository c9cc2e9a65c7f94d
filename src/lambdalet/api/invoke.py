"""Invoke: POST /2015-03-31/functions/{FunctionName}/invocations.

RequestResponse runs the function and answers with its payload (``X-Amz-Function-Error``
when it failed, ``X-Amz-Log-Result`` with the last 4 KB of its log when ``LogType=Tail``).
Event commits the event to the store and answers 202; DryRun only checks and answers 204.

Invoke is by far the most frequent request, and every microsecond the server spends on it
bounds how many invokes a node serves per second. So the HTTP protocol answers it itself when
:class:`DirectInvoke` says it may (``api/serving.py``), and otherwise :class:`InvokeFirst`, in
front of the Starlette app, answers it as plain ASGI: one match of the path, no routing table,
middleware, request or response objects. Both build the reply with :func:`answer`; errors are
answered exactly as the app answers them.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from urllib.parse import parse_qsl, unquote

import httptools
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from lambdalet.api.requests import (
    check_content_type,
    collect_body,
    parse_function_name,
    parse_json,
    receive_chunks,
)
from lambdalet.errors import (
    AwsError,
    InvalidParameterValueException,
    InvalidRequestContentException,
    ServiceException,
)
from lambdalet.frontdoor.hosts import HostDispatch
from lambdalet.models import LATEST
from lambdalet.node import Node, decode_client_context, new_request_id

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024
LOG_TAIL_BYTES = 4096
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
INVOKE_PATH = re.compile(r"/2015-03-31/functions/([^/]+)/invocations")

Reply = tuple[int, dict[str, str], bytes]


def log_tail(lines: list[str]) -> str:
    """Base64 of the last 4 KB of an invocation's log, as ``X-Amz-Log-Result`` carries it."""
    text = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(text[-LOG_TAIL_BYTES:]).decode()


class InvokeFirst:
    """Pure ASGI: Invoke is answered here; every other request goes on to ``app``."""

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = INVOKE_PATH.fullmatch(scope["path"])
            if match is not None:
                reply = await answer(
                    self.node,
                    match[1],
                    scope["query_string"],
                    scope["headers"],
                    receive_chunks(receive),
                )
                if reply is not None:
                    status, headers, body = reply
                    raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
                    await send({"type": "http.response.start", "status": status, "headers": raw})
                    await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class DirectInvoke:
    """Which requests the HTTP protocol answers as Invoke itself, without ASGI
    (``api/serving.py``): a POST to the Invoke path on the API's own host, when signatures are
    not checked. Nothing in front of InvokeFirst would change such a request or its answer."""

    def __init__(self, node: Node, hosts: HostDispatch) -> None:
        self.node = node
        self._hosts = hosts

    def target(
        self, url: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, bytes] | None:
        """(the function as the path names it, the query) of a POST to ``url``, if it is
        Invoke on the API's host; None for the ASGI app to answer."""
        try:
            parsed = httptools.parse_url(url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        match = INVOKE_PATH.fullmatch(unquote(path) if "%" in path else path)
        if match is None:
            return None
        for name, value in headers:
            if name == b"host":
                if self._hosts.labelled(value.decode("latin-1")) is not None:
                    return None  # a function URL's or an HTTP API's host
                break
        return match[1], parsed.query or b""


async def answer(
    node: Node,
    raw_name: str,
    query: bytes,
    raw_headers: Sequence[tuple[bytes, bytes]],
    body: AsyncIterator[bytes],
) -> Reply | None:
    """The whole reply to an Invoke request, errors included (None: the client went).

    ``body`` yields the request's body. The reply's headers come with ``content-length``,
    ready to be written; both ways of answering Invoke (:class:`InvokeFirst`, and
    ``api/serving.py``'s protocol without ASGI) use it.
    """
    # The first of a repeated header counts, as Starlette's Headers.get has it.
    headers = {
        name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(raw_headers)
    }
    params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {}
    try:
        status, reply_headers, reply = await invoke(node, raw_name, params, headers, body)
    except ClientDisconnect:
        return None
    except AwsError as error:
        status, reply_headers, reply = _error_reply(error)
    except Exception:
        request_id = new_request_id()
        log.exception("request %s POST invocations of %s failed", request_id, raw_name)
        failure = ServiceException(
            f"lambdalet failed to handle the request (request id {request_id})"
        )
        status, reply_headers, reply = _error_reply(failure, request_id)
    if status != 204:
        reply_headers["content-length"] = str(len(reply))
    return status, reply_headers, reply


async def invoke(
    node: Node,
    raw_name: str,
    params: dict[str, str],
    headers: dict[str, str],
    chunks: AsyncIterator[bytes],
) -> Reply:
    """Run a function, queue an event for it, or check that it could run."""
    name, qualifier = parse_function_name(raw_name)
    qualifier = params.get("Qualifier", qualifier)
    invocation_type = headers.get("x-amz-invocation-type", "RequestResponse")
    if invocation_type not in INVOCATION_TYPES:
        raise InvalidParameterValueException(
            f"Unsupported InvocationType '{invocation_type}';"
            f" use one of {', '.join(INVOCATION_TYPES)}"
        )
    log_type = headers.get("x-amz-log-type", "None")
    if log_type not in ("None", "Tail"):
        raise InvalidParameterValueException(f"Unsupported LogType '{log_type}'; use None or Tail")
    client_context = None
    if "x-amz-client-context" in headers:
        try:
            client_context = decode_client_context(headers["x-amz-client-context"])
        except ValueError:
            raise InvalidRequestContentException(
                "Client context must be a valid Base64-encoded JSON object."
            ) from None
    check_content_type(headers.get("content-type", ""))
    limit = MAX_ASYNC_PAYLOAD_BYTES if invocation_type == "Event" else MAX_SYNC_PAYLOAD_BYTES
    payload = await collect_body(chunks, headers.get("content-length"), limit, "Invoke")
    if payload.strip():
        try:
            await parse_json(payload)
        except InvalidRequestContentException as error:
            raise InvalidRequestContentException(
                "Could not parse request body into json: Could not parse payload into json: "
                + error.message.removeprefix("Could not parse request body into json: ")
            ) from None
    function = await node.function(name, qualifier, route=True)
    request_id = new_request_id()
    reply_headers = {"x-amzn-RequestId": request_id}
    if invocation_type == "DryRun":
        return 204, reply_headers, b""
    if invocation_type == "Event":
        await node.enqueue(name, qualifier, payload, request_id)
        return 202, reply_headers, b""
    outcome = await node.invoke(
        function,
        payload,
        request_id=request_id,
        client_context=client_context,
        invoked_qualifier=None if qualifier == LATEST else qualifier,
    )
    reply_headers["content-type"] = "application/json"
    reply_headers["X-Amz-Executed-Version"] = function.version
    if outcome.result.function_error:
        reply_headers["X-Amz-Function-Error"] = outcome.result.function_error
    if log_type == "Tail":
        reply_headers["X-Amz-Log-Result"] = log_tail(outcome.log_lines)
    return 200, reply_headers, outcome.result.payload


def _error_reply(error: AwsError, request_id: str | None = None) -> Reply:
    """What the API app's error handler answers for ``error``, as a reply."""
    headers = error.headers(request_id or new_request_id())
    headers["content-type"] = "application/json"
    body = json.dumps(error.body(), ensure_ascii=False, separators=(",", ":")).encode()
    return error.status, headers, body
