"""Payload format 2.0: the event an HTTP request becomes, and the HTTP response a result becomes.

Function URLs and API Gateway HTTP APIs share this format. ``request_event`` builds the event
AWS documents for format 2.0; ``http_response`` applies AWS's response mapping to what the
function returned.

Choices where AWS is silent or varies:

- The ``Cookie`` header is moved into ``cookies`` (split on ``;``) and left out of ``headers``,
  as AWS does; other repeated headers are joined with ``,``.
- A body is sent as text when its content type is ``text/*``, JSON (``application/json``,
  ``*+json``), XML (``application/xml``, ``*+xml``), JavaScript or a URL-encoded form, and it
  is valid UTF-8; every other body (including one without a content type) is base64-encoded.
  An empty body leaves ``body`` out of the event.
- The 6 MB request limit applies to the body as received.
- A response whose ``body`` is not a string, whose ``headers`` is not an object of scalars,
  whose ``cookies`` is not a list of strings, or whose base64 body does not decode is
  malformed: 502, as AWS answers a malformed integration response.
- A response with ``statusCode`` but no ``content-type`` header gets ``application/json``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import read_body
from lambdalet.errors import RequestTooLargeException

MAX_REQUEST_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
TEXT_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/x-www-form-urlencoded",
    }
)
# Headers the HTTP server frames the response with; a function's values for them are dropped.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class MalformedResponse(ValueError):
    """Raised when a function's result cannot be mapped to an HTTP response."""


def is_text(content_type: str) -> bool:
    """Whether a body of this content type goes into the event as text rather than base64."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )


def request_time(at_unix_ms: int) -> str:
    """``requestContext.time`` in AWS's form: ``12/Mar/2020:19:03:58 +0000``."""
    t = time.gmtime(at_unix_ms / 1000)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


async def read_request_body(request: Request, limit_bytes: int = MAX_REQUEST_BYTES) -> bytes:
    """The whole body, refused with RequestTooLargeException as soon as it passes the limit."""
    return await read_body(request, limit_bytes, "HTTP request")


async def request_event(
    request: Request,
    *,
    route_key: str,
    raw_path: str,
    stage: str,
    domain_name: str,
    domain_prefix: str,
    api_id: str,
    account_id: str,
    path_parameters: dict[str, str] | None = None,
    authorizer: dict[str, Any] | None = None,
    request_id: str | None = None,
    body: bytes | None = None,
    stage_variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The payload-format-2.0 event for ``request``.

    ``body`` may be given when the caller has already read it (to verify a signature);
    otherwise it is read here. RequestTooLargeException when it is over MAX_REQUEST_BYTES.
    """
    if body is None:
        body = await read_request_body(request)
    elif len(body) > MAX_REQUEST_BYTES:
        raise RequestTooLargeException(
            f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the payload"
        )
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in request.scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now_unix_ms = int(time.time() * 1000)
    client = request.client
    http_version = request.scope.get("http_version", "1.1")
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": domain_name,
        "domainPrefix": domain_prefix,
        "http": {
            "method": request.method,
            "path": raw_path,
            "protocol": f"HTTP/{http_version}",
            "sourceIp": client.host if client else "127.0.0.1",
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id or str(uuid.uuid4()),
        "routeKey": route_key,
        "stage": stage,
        "time": request_time(now_unix_ms),
        "timeEpoch": now_unix_ms,
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = path_parameters
    if stage_variables:
        event["stageVariables"] = stage_variables
    if body:
        text: str | None = None
        if is_text(headers.get("content-type", "")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
            event["isBase64Encoded"] = False
    else:
        event["isBase64Encoded"] = False
    return event


def bad_gateway() -> Response:
    """AWS's answer when the function failed or its result cannot be used."""
    return JSONResponse({"Message": "Internal Server Error"}, status_code=502)


def http_response(payload: bytes, function_error: str | None) -> Response:
    """AWS's format-2.0 response mapping of a function's result (see the module docstring)."""
    if function_error or len(payload) > MAX_RESPONSE_BYTES:
        return bad_gateway()
    try:
        result = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        return bad_gateway()
    if not isinstance(result, dict) or "statusCode" not in result:
        if isinstance(result, str):
            body = result.encode()
        elif result is None and not payload.strip():
            body = b""
        else:
            body = payload.strip()
        return Response(body, status_code=200, media_type="application/json")
    try:
        return _structured(result)
    except MalformedResponse:
        return bad_gateway()


def _structured(result: dict[str, Any]) -> Response:
    """The response a result with ``statusCode`` describes; MalformedResponse if it cannot."""
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {status!r} is not an HTTP status")
    raw_body = result.get("body")
    if raw_body is None:
        raw_body = ""
    if not isinstance(raw_body, str):
        raise MalformedResponse("body is not a string")
    if result.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(raw_body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResponse("body is not valid base64") from None
    else:
        body = raw_body.encode()
    pairs: list[tuple[str, str]] = []
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponse("headers is not an object")
    for name, value in single.items():
        pairs.append((name, _header_value(value)))
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedResponse("multiValueHeaders values must be lists")
        pairs.extend((name, _header_value(value)) for value in values)
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise MalformedResponse("cookies is not a list of strings")
    pairs.extend(("set-cookie", cookie) for cookie in cookies)
    response = Response(body, status_code=status)
    if not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("content-type", "application/json"))
    for name, value in pairs:
        if name.lower() not in _HOP_BY_HOP:
            response.headers.append(name, value)
    return response


def _header_value(value: Any) -> str:
    """A header value as text: strings as they are, numbers and booleans as JSON writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise MalformedResponse(f"header value {value!r} is not a string")
