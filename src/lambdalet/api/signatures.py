"""SigV4 on the AWS APIs, when ``LAMBDALET_VERIFY_SIGNATURES`` is on.

Every request to the Lambda API (Invoke included), the EventBridge Scheduler and API Gateway v2
subsets, SQS and SNS must then carry a valid AWS Signature Version 4 (``lambdalet.sigv4``) made
with a key of ``LAMBDALET_CREDENTIALS`` for this node's region, and the credential scope of the
service it calls (``lambda``, ``scheduler``, ``apigateway``, ``sqs``, ``sns``), as AWS checks
them. Refused requests get AWS's 403 errors in the protocol of the service they called:
``MissingAuthenticationTokenException`` (not signed), ``UnrecognizedClientException`` (an
access key this node does not have) or ``InvalidSignatureException`` (anything else: a wrong
secret, a clock more than 5 minutes off, a body that does not match), with the reason in the
message; the query protocol (SNS) names them ``MissingAuthenticationToken``,
``InvalidClientTokenId`` and ``SignatureDoesNotMatch``.

Not checked, as they are not AWS APIs: health, the code download links GetFunction hands out
(they stand for AWS's presigned S3 URLs), ``/metrics`` and the dashboard's page (``GET /`` leads
there; the data it reads is checked, so it shows data only of nodes that do not check); nor
function URLs and HTTP API routes, which have their own auth (AuthType, authorizers) and reach
the node ahead of this check. lambdalet's log feed and usage report are checked like the Lambda
API.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambdalet.api import requests
from lambdalet.api.requests import collect_body, receive_chunks
from lambdalet.errors import (
    AuthenticationError,
    AwsError,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    RequestTooLargeException,
    UnrecognizedClientException,
)
from lambdalet.queues import sqs_api
from lambdalet.sigv4 import (
    MISSING,
    UNKNOWN_KEY,
    SignatureError,
    SignedRequest,
    service_of,
    verify,
)
from lambdalet.topics import sns_api

# CreateFunction with a 50 MB zip, base64 in JSON, is the largest request an API takes.
MAX_SIGNED_BODY_BYTES = 72 * 1024 * 1024
UNCHECKED_PREFIXES = (
    "/_lambdalet/health",
    "/_lambdalet/code/",
    "/_lambdalet/dashboard",
    "/metrics",
)


def checked_service(scope: Scope) -> str | None:
    """The credential-scope service a request calls, or None if it is not checked."""
    path: str = scope["path"]
    if path.startswith(UNCHECKED_PREFIXES) or (path == "/" and scope["method"] == "GET"):
        return None  # lambdalet's own, or the way to the dashboard
    target = ""
    if path == "/":  # only there does the target tell two services apart
        target = dict(scope["headers"]).get(b"x-amz-target", b"").decode("latin-1")
    return service_of(scope["method"], path, target)


def refusal(error: SignatureError) -> AuthenticationError:
    """The AWS error for a request whose signature does not check out."""
    message = str(error)
    if error.reason == MISSING:
        return MissingAuthenticationTokenException(f"Missing Authentication Token: {message}")
    if error.reason == UNKNOWN_KEY:
        return UnrecognizedClientException(message)
    return InvalidSignatureException(message)


def error_response(service: str, error: AwsError) -> Response:
    """``error`` in the protocol of ``service``."""
    request_id = str(uuid.uuid4())
    if service == "sqs":
        return sqs_api.error_response(error, request_id)
    if service == "sns":
        code = error.query_protocol_code()
        return sns_api.error_response(code, error.message, error.status, request_id)
    return requests.error_response(error, request_id)


class SignaturesRequired:
    """Pure ASGI: checks a request's signature (reading its whole body, then handing the body
    on to ``app`` as it came) before ``app`` sees it."""

    def __init__(self, app: ASGIApp, keys: Mapping[str, tuple[str, str]], *, region: str) -> None:
        self.app = app
        self.keys = keys
        self.region = region

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = checked_service(scope) if scope["type"] == "http" else None
        if service is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"").decode("latin-1") or None
        try:
            body = await collect_body(
                receive_chunks(receive), declared, MAX_SIGNED_BODY_BYTES, "signed"
            )
        except ClientDisconnect:
            return
        except RequestTooLargeException as error:
            await error_response(service, error)(scope, receive, send)
            return
        signed = SignedRequest(
            method=scope["method"],
            raw_path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            raw_query=scope["query_string"].decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
        )
        try:
            verify(signed, self.keys, region=self.region, service=service)
        except SignatureError as error:
            await error_response(service, refusal(error))(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
