"""Serving function URLs: a request to ``<url-id>.lambda-url.<region>...`` runs the function.

For each request: find the URL's config by its id (unknown → 403 ``{"Message": "Forbidden"}``,
as AWS answers), answer a CORS preflight without invoking (``lambdalet.frontdoor.cors``), check
a SigV4 signature and the resource policy when AuthType is AWS_IAM, build the payload-format-2.0
event, invoke the function and map its result to the HTTP response.

Answers that never reach the function, in AWS's shapes: 403 Forbidden (unknown URL, unsigned or
badly signed request, caller not allowed), 413 for a body over 6 MB, 429
``{"Message": "Rate Exceeded."}`` when the function is throttled (reserved concurrency 0 or
over a limit), 502 ``{"Message": "Internal Server Error"}`` for a function error or a result
that cannot be mapped (or is over 6 MB).

Choices where AWS is silent: with AuthType NONE the URL is public without any resource-policy
statement (AWS's console adds one; its API expects one). With AWS_IAM, a caller of the
function's own account is allowed; another account needs a statement allowing
``lambda:InvokeFunctionUrl`` (or ``lambda:*``/``*``) to its account id, its
``arn:aws:iam::<account>:root``, or ``*``, without a ``lambda:FunctionUrlAuthType`` condition or
with the value AWS_IAM. ``requestContext.accountId`` is ``anonymous`` with NONE (what AWS
sends) and the caller's account with AWS_IAM (AWS's documentation is not clear on it).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from lambdalet.api.function_urls import LABEL, config_by_id, url_host
from lambdalet.api.permissions import policy_of
from lambdalet.errors import (
    RequestTooLargeException,
    ResourceNotFoundException,
    TooManyRequestsException,
)
from lambdalet.frontdoor import cors
from lambdalet.frontdoor.hosts import HOST_ID
from lambdalet.frontdoor.payload import (
    MAX_REQUEST_BYTES,
    http_response,
    read_request_body,
    request_event,
)
from lambdalet.models import LATEST
from lambdalet.node import Node, new_request_id
from lambdalet.sigv4 import Caller, SignatureError, SignedRequest, verify

log = logging.getLogger(__name__)

INVOKE_ACTIONS = ("lambda:InvokeFunctionUrl", "lambda:*", "*")


def message(status: int, text: str, request_id: str) -> Response:
    """A front-door answer in AWS's shape: ``{"Message": ...}``."""
    return JSONResponse(
        {"Message": text}, status_code=status, headers={"x-amzn-RequestId": request_id}
    )


def forbidden(request_id: str) -> Response:
    """AWS's answer for an unknown URL or a caller that may not invoke it."""
    return message(403, "Forbidden", request_id)


def _principals(principal: Any) -> list[str]:
    if isinstance(principal, str):
        return [principal]
    if isinstance(principal, dict):
        values = principal.get("AWS", [])
        return [values] if isinstance(values, str) else list(values)
    return []


def statement_allows(statement: dict[str, Any], account_id: str) -> bool:
    """Whether one resource-policy statement lets ``account_id`` invoke an AWS_IAM URL."""
    if statement.get("Effect") != "Allow" or statement.get("Action") not in INVOKE_ACTIONS:
        return False
    principals = _principals(statement.get("Principal"))
    if not any(p in ("*", account_id, f"arn:aws:iam::{account_id}:root") for p in principals):
        return False
    condition = statement.get("Condition", {}).get("StringEquals", {})
    return bool(condition.get("lambda:FunctionUrlAuthType", "AWS_IAM") == "AWS_IAM")


async def caller_allowed(node: Node, name: str, qualifier: str, caller: Caller) -> bool:
    """Whether an authenticated caller may invoke a function's AWS_IAM URL."""
    if caller.account_id == node.settings.account_id:
        return True
    policy = await policy_of(node, name, qualifier)
    statements = policy["Statement"] if policy else []
    return any(statement_allows(s, caller.account_id) for s in statements)


class FunctionUrls:
    """The ASGI app behind every function URL of a node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = new_request_id()
        try:
            response = await self.serve(request, request_id)
        except Exception:
            log.exception("function URL request %s failed", request_id)
            response = message(500, "Internal Server Error", request_id)
        await response(scope, receive, send)

    async def serve(self, request: Request, request_id: str) -> Response:
        """The response to one request to a function URL."""
        node = self.node
        url_id: str = request.scope[HOST_ID]
        config = await config_by_id(node, url_id)
        if config is None:
            return forbidden(request_id)
        name, qualifier = config["FunctionName"], config["Qualifier"]
        cors_config = config.get("Cors")
        if cors_config and cors.is_preflight(request.method, request.headers):
            return cors.preflight_response(cors_config, request.headers)
        try:
            body = await read_request_body(request, MAX_REQUEST_BYTES)
        except RequestTooLargeException:
            return message(413, "Request Entity Too Large", request_id)
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        authorizer: dict[str, Any] | None = None
        account_id = "anonymous"
        if config["AuthType"] == "AWS_IAM":
            signed = SignedRequest(
                method=request.method,
                raw_path=raw_path,
                raw_query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]
                ],
                body=body,
            )
            try:
                caller = verify(signed, node.settings.signing_keys(), region=node.settings.region)
            except SignatureError as error:
                log.info("function URL request %s refused: %s", request_id, error)
                return forbidden(request_id)
            if not await caller_allowed(node, name, qualifier, caller):
                return forbidden(request_id)
            authorizer = caller.authorizer()
            account_id = caller.account_id
        event = await request_event(
            request,
            route_key="$default",
            raw_path=raw_path,
            stage="$default",
            domain_name=_domain_name(request, url_id, node),
            domain_prefix=url_id,
            api_id=url_id,
            account_id=account_id,
            authorizer=authorizer,
            request_id=request_id,
            body=body,
        )
        try:
            function = await node.function(name, qualifier, route=True)
            outcome = await node.invoke(
                function,
                json.dumps(event).encode(),
                request_id=request_id,
                invoked_qualifier=None if qualifier == LATEST else qualifier,
            )
        except ResourceNotFoundException:
            return forbidden(request_id)
        except TooManyRequestsException:
            return message(429, "Rate Exceeded.", request_id)
        response = http_response(outcome.result.payload, outcome.result.function_error)
        if cors_config:
            cors.apply_to_response(cors_config, request.headers, response)
        response.headers["x-amzn-RequestId"] = request_id
        return response


def _domain_name(request: Request, url_id: str, node: Node) -> str:
    """The URL's host name as the client used it (the canonical one for the path form)."""
    host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
    if host.startswith(f"{url_id}.{LABEL}."):
        return host
    return url_host(node.settings, url_id)
