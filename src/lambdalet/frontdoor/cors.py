"""CORS for function URLs, from a URL config's ``Cors`` object.

Only a URL with a ``Cors`` config has CORS handled by lambdalet; without one, OPTIONS requests
go to the function like any other and responses pass through untouched.

With one:

- A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered by
  lambdalet, without invoking the function: 200 with ``Access-Control-Allow-Origin``,
  ``-Allow-Methods``, ``-Allow-Headers``, ``-Max-Age`` and ``-Allow-Credentials`` when the origin,
  the method and every requested header are allowed; 200 without any CORS header otherwise
  (the browser then refuses the call).
- Any other request with an allowed ``Origin`` gets ``Access-Control-Allow-Origin``,
  ``-Allow-Credentials`` and ``-Expose-Headers`` on the function's response; CORS headers the
  function sets itself are replaced by the config's, so the config is the one place CORS is said.
- ``*`` in AllowOrigins allows every origin; the response then names the caller's origin when
  AllowCredentials is on (browsers refuse ``*`` with credentials) and ``*`` otherwise.
  ``*`` in AllowMethods or AllowHeaders allows any. Origins compare case-insensitively, as do
  methods and header names. ``Vary: Origin`` is sent whenever the answer depends on the origin.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response


def allowed_origin(cors: dict[str, Any], origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if it is not allowed."""
    origins = [o.lower().rstrip("/") for o in cors.get("AllowOrigins", [])]
    if "*" in origins:
        return origin if cors.get("AllowCredentials") else "*"
    if origin.lower().rstrip("/") in origins:
        return origin
    return None


def is_preflight(method: str, headers: Headers) -> bool:
    """Whether a request is a CORS preflight."""
    return (
        method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
    )


def preflight_response(cors: dict[str, Any], headers: Headers) -> Response:
    """The answer to a preflight, given without invoking the function."""
    response = Response(status_code=200)
    origin = headers["origin"]
    allow_origin = allowed_origin(cors, origin)
    methods = [m.upper() for m in cors.get("AllowMethods", [])]
    requested_method = headers["access-control-request-method"].strip().upper()
    allow_headers = [h.lower() for h in cors.get("AllowHeaders", [])]
    requested_headers = [
        h.strip().lower()
        for h in headers.get("access-control-request-headers", "").split(",")
        if h.strip()
    ]
    if "*" not in allow_headers:
        headers_ok = all(h in allow_headers for h in requested_headers)
    else:
        headers_ok = True
    method_ok = "*" in methods or requested_method in methods
    if allow_origin is not None and allow_origin != "*":
        response.headers["Vary"] = "Origin"
    if allow_origin is None or not method_ok or not headers_ok:
        return response
    response.headers["Access-Control-Allow-Origin"] = allow_origin
    response.headers["Access-Control-Allow-Methods"] = (
        requested_method if "*" in methods else ", ".join(methods)
    )
    if requested_headers or allow_headers:
        response.headers["Access-Control-Allow-Headers"] = (
            ", ".join(requested_headers) if "*" in allow_headers else ", ".join(allow_headers)
        )
    if cors.get("AllowCredentials"):
        response.headers["Access-Control-Allow-Credentials"] = "true"
    if cors.get("MaxAge"):
        response.headers["Access-Control-Max-Age"] = str(cors["MaxAge"])
    return response


def apply_to_response(cors: dict[str, Any], headers: Headers, response: Response) -> None:
    """Put the config's CORS headers on a function's response to a request with ``Origin``."""
    out = MutableHeaders(raw=response.raw_headers)
    for name in list(out.keys()):
        if name.lower().startswith("access-control-"):
            del out[name]
    origin = headers.get("origin")
    if origin is None:
        return
    allow_origin = allowed_origin(cors, origin)
    if allow_origin is None:
        return
    if allow_origin != "*":
        out.append("Vary", "Origin")
    out["Access-Control-Allow-Origin"] = allow_origin
    if cors.get("AllowCredentials"):
        out["Access-Control-Allow-Credentials"] = "true"
    if cors.get("ExposeHeaders"):
        out["Access-Control-Expose-Headers"] = ", ".join(cors["ExposeHeaders"])
