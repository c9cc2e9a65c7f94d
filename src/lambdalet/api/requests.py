"""Reading and checking what clients send: bodies with size limits, names, constraints."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import Receive

from lambdalet.errors import (
    AwsError,
    InvalidRequestContentException,
    RequestTooLargeException,
    UnsupportedMediaTypeException,
    ValidationException,
)
from lambdalet.node import Node

T = TypeVar("T")

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ACCEPTED_MEDIA_TYPES = frozenset(
    {
        "",
        "application/json",
        "application/x-amz-json-1.0",
        "application/x-amz-json-1.1",
        "application/octet-stream",
        "binary/octet-stream",
        "text/plain",
    }
)
_LARGE_JSON_BYTES = 64 * 1024


def node_of(request: Request) -> Node:
    """The node serving this request."""
    node: Node = request.app.state.node
    return node


async def existing_function(request: Request) -> tuple[Node, str]:
    """The node and the name of the function the path names; ResourceNotFoundException if it
    does not exist."""
    node = node_of(request)
    name, _ = parse_function_name(request.path_params["function_name"])
    await node.function(name)
    return node, name


def check_media_type(request: Request) -> None:
    """Refuse a body that says it is neither JSON nor raw bytes."""
    check_content_type(request.headers.get("content-type", ""))


def check_content_type(content_type: str) -> None:
    """Refuse a Content-Type that is neither JSON nor raw bytes."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_MEDIA_TYPES and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeException(
            f"The content type '{media_type}' of the request body is not supported;"
            " send JSON (application/json)"
        )


async def read_body(request: Request, limit_bytes: int, operation: str) -> bytes:
    """The whole body, refusing it with 413 as soon as it passes ``limit_bytes``."""
    declared = request.headers.get("content-length")
    return await collect_body(request.stream(), declared, limit_bytes, operation)


async def collect_body(
    chunks: AsyncIterator[bytes], declared: str | None, limit_bytes: int, operation: str
) -> bytes:
    """A body from its chunks and declared Content-Length, refused with 413 as soon as it
    passes ``limit_bytes``."""
    message = f"Request must be smaller than {limit_bytes} bytes for the {operation} operation"
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise RequestTooLargeException(message)
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit_bytes:
            raise RequestTooLargeException(message)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def receive_chunks(receive: Receive) -> AsyncIterator[bytes]:
    """A request body's chunks, as ASGI ``http.request`` messages bring them; ClientDisconnect
    if the client goes."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def error_response(error: AwsError, request_id: str | None = None) -> JSONResponse:
    """An AWS-shaped error response (REST-JSON APIs: ``x-amzn-ErrorType`` and a JSON body)."""
    headers = error.headers(request_id or str(uuid.uuid4()))
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def parse_json(body: bytes) -> Any:
    """Parse JSON, in a thread when it is big; InvalidRequestContentException if it is not."""
    try:
        if len(body) > _LARGE_JSON_BYTES:
            return await asyncio.to_thread(json.loads, body)
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: {error}"
        ) from None


async def json_object(request: Request, limit_bytes: int, operation: str) -> dict[str, Any]:
    """A request body that must be a JSON object (control-plane operations)."""
    check_media_type(request)
    body = await read_body(request, limit_bytes, operation)
    value = await parse_json(body) if body.strip() else {}
    if not isinstance(value, dict):
        raise InvalidRequestContentException("The request body must be a JSON object")
    return value


def parse_function_name(raw: str) -> tuple[str, str | None]:
    """(name, qualifier) from a name, ``name:qualifier``, a partial ARN or a full ARN."""
    parts = raw.split(":")
    name: str | None = None
    qualifier: str | None = None
    if raw.startswith("arn:") and len(parts) in (7, 8) and parts[5] == "function":
        name, qualifier = parts[6], (parts[7] if len(parts) == 8 else None)
    elif len(parts) in (3, 4) and parts[1] == "function":
        name, qualifier = parts[2], (parts[3] if len(parts) == 4 else None)
    elif len(parts) in (1, 2):
        name, qualifier = parts[0], (parts[1] if len(parts) == 2 else None)
    if name is None or not FUNCTION_NAME.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy"
            " constraint: Member must satisfy regular expression pattern:"
            " (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?"
            "(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        )
    return name, qualifier


def max_items(request: Request, high: int) -> int:
    """The MaxItems query parameter (default 50), an integer from 1 to ``high``."""
    raw = request.query_params.get("MaxItems", "50")
    if not raw.isdigit():
        raise ValidationException(f"MaxItems must be an integer between 1 and {high}, not '{raw}'")
    return require_range(int(raw), "maxItems", 1, high)


def page_after(
    request: Request, items: list[T], key: Callable[[T], object], high: int
) -> tuple[list[T], str | None]:
    """The page of ``items`` after the request's Marker (a key), and the next page's Marker."""
    limit = max_items(request, high)
    marker = request.query_params.get("Marker")
    if marker:
        keys = [str(key(item)) for item in items]
        items = items[keys.index(marker) + 1 :] if marker in keys else []
    page = items[:limit]
    return page, (str(key(page[-1])) if len(items) > limit else None)


def require_range(value: Any, field: str, low: int, high: int) -> int:
    """An integer within [low, high], or AWS's ValidationException naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            " constraint: Member must be an integer"
        )
    if value < low:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            f" constraint: Member must have value greater than or equal to {low}"
        )
    if value > high:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            f" constraint: Member must have value less than or equal to {high}"
        )
    return value


def require_string(value: Any, field: str, max_length: int, *, pattern: str | None = None) -> str:
    """A string of at most ``max_length`` characters matching ``pattern``."""
    if not isinstance(value, str):
        raise ValidationException(
            f"1 validation error detected: Value at '{field}' failed to satisfy constraint:"
            " Member must be a string"
        )
    if len(value) > max_length:
        raise ValidationException(
            f"1 validation error detected: Value at '{field}' failed to satisfy constraint:"
            f" Member must have length less than or equal to {max_length}"
        )
    if pattern is not None and not re.fullmatch(pattern, value):
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            f" constraint: Member must satisfy regular expression pattern: {pattern}"
        )
    return value
