"""Lambda (REQUEST) authorizers of HTTP APIs, payload format 2.0, with their result cache.

Before the route's integration runs, the authorizer function gets AWS's authorizer event:
the request's format-2.0 event without its body, plus ``type: "REQUEST"``, the ``routeArn``
(``arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>``) and the values of
the authorizer's ``identitySource`` expressions (``$request.header.<name>``,
``$request.querystring.<name>``, ``$context.<path>``, ``$stageVariables.<name>``).

Answers, as AWS gives them: an identity source missing from the request → 401
``{"message":"Unauthorized"}`` without invoking the authorizer; the authorizer says no → 403
``{"message":"Forbidden"}``; the authorizer fails or returns something unusable → 500
``{"message":"Internal Server Error"}``. With ``enableSimpleResponses`` the authorizer returns
``{"isAuthorized": bool, "context": {...}}``; without, an IAM policy
(``{"principalId", "policyDocument": {"Statement": [...]}, "context"}``) that allows the
request when a statement allows ``execute-api:Invoke`` on a resource matching the route ARN
(``*`` and ``?`` wildcards) and none denies it. The ``context`` goes to
``requestContext.authorizer.lambda``.

Results are cached per authorizer and identity-source values for
``authorizerResultTtlInSeconds`` (0: never cached), refusals as well as grants, as AWS does.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# (authorizer function ARN, event bytes) -> (result payload, function error or None)
InvokeAuthorizer = Callable[[str, bytes], Awaitable[tuple[bytes, str | None]]]
_MAX_CACHED_RESULTS = 10_000


class AuthorizerRejected(Exception):
    """Raised when a Lambda authorizer refuses a request or fails; carries the HTTP answer."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.message = message


def unauthorized(reason: str) -> AuthorizerRejected:
    """401: the request lacks what the authorizer needs."""
    return AuthorizerRejected(401, "Unauthorized", reason)


def forbidden(reason: str) -> AuthorizerRejected:
    """403: the authorizer said no."""
    return AuthorizerRejected(403, "Forbidden", reason)


def failed(reason: str) -> AuthorizerRejected:
    """500: the authorizer failed or answered something unusable."""
    return AuthorizerRejected(500, "Internal Server Error", reason)


def identity_value(expression: str, event: dict[str, Any]) -> str | None:
    """The value an identity-source expression picks out of a format-2.0 event, or None."""
    value: Any = None
    if expression.startswith("$request.header."):
        value = (event.get("headers") or {}).get(expression[16:].lower())
    elif expression.startswith("$request.querystring."):
        value = (event.get("queryStringParameters") or {}).get(expression[21:])
    elif expression.startswith("$stageVariables."):
        value = (event.get("stageVariables") or {}).get(expression[16:])
    elif expression.startswith("$context."):
        value = event.get("requestContext") or {}
        for part in expression[9:].split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)


def authorizer_event(
    event: dict[str, Any], *, route_arn: str, identity: list[str]
) -> dict[str, Any]:
    """AWS's format-2.0 REQUEST authorizer event for a request's format-2.0 event."""
    authorizer_event: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
    }
    for name in ("routeKey", "rawPath", "rawQueryString", "cookies", "headers"):
        if name in event:
            authorizer_event[name] = event[name]
    for name in ("queryStringParameters", "requestContext", "pathParameters", "stageVariables"):
        if name in event:
            authorizer_event[name] = event[name]
    return authorizer_event


def _matches(patterns: Any, value: str) -> bool:
    items = patterns if isinstance(patterns, list) else [patterns]
    return any(isinstance(p, str) and fnmatch.fnmatchcase(value, p) for p in items)


def policy_allows(document: Any, route_arn: str) -> bool:
    """Whether an IAM policy document allows ``execute-api:Invoke`` on ``route_arn``."""
    if not isinstance(document, dict):
        raise failed("policyDocument is not an object")
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict):
            continue
        if not _matches(statement.get("Action", []), "execute-api:Invoke"):
            continue
        if not _matches(statement.get("Resource", []), route_arn):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def decide(payload: bytes, *, simple: bool, route_arn: str) -> dict[str, Any]:
    """The ``authorizer`` context of an allowing answer; AuthorizerRejected otherwise."""
    try:
        answer = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise failed("the authorizer's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise failed("the authorizer's answer is not an object")
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        raise failed("the authorizer's context is not an object")
    if simple and "isAuthorized" in answer:
        if not isinstance(answer["isAuthorized"], bool):
            raise failed("isAuthorized is not true or false")
        allowed = answer["isAuthorized"]
    elif "policyDocument" in answer:
        allowed = policy_allows(answer["policyDocument"], route_arn)
    else:
        raise failed("the authorizer's answer has neither isAuthorized nor policyDocument")
    if not allowed:
        raise forbidden("the authorizer refused the request")
    return {"lambda": context}


@dataclass
class _Cached:
    expires_at_s: float
    context: dict[str, Any] | None  # None: a cached refusal
    status: int = 403


class LambdaAuthorizers:
    """Runs Lambda authorizers and caches their answers for their TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cache: dict[tuple[str, str, tuple[str, ...]], _Cached] = {}

    async def authorize(
        self,
        authorizer: dict[str, Any],
        event: dict[str, Any],
        *,
        api_id: str,
        route_arn: str,
        invoke: InvokeAuthorizer,
    ) -> dict[str, Any]:
        """``requestContext.authorizer`` for an allowed request; AuthorizerRejected if not."""
        sources: list[str] = authorizer.get("identitySource") or []
        identity: list[str] = []
        for expression in sources:
            value = identity_value(expression, event)
            if value is None:
                raise unauthorized(f"identity source {expression} is missing")
            identity.append(value)
        ttl_s = int(authorizer.get("authorizerResultTtlInSeconds") or 0)
        key = (api_id, str(authorizer["authorizerId"]), tuple(identity))
        now_s = self.clock()
        cached = self._cache.get(key) if ttl_s > 0 and identity else None
        if cached is not None and cached.expires_at_s > now_s:
            if cached.context is None:
                raise forbidden("a cached answer of the authorizer refused the request")
            return cached.context
        body = authorizer_event(event, route_arn=route_arn, identity=identity)
        payload, function_error = await invoke(
            authorizer["authorizerUri"], json.dumps(body).encode()
        )
        if function_error:
            raise failed(f"the authorizer failed: {function_error}")
        try:
            context = decide(
                payload, simple=bool(authorizer.get("enableSimpleResponses")), route_arn=route_arn
            )
        except AuthorizerRejected as rejected:
            if rejected.status == 403 and ttl_s > 0 and identity:
                self._remember(key, _Cached(now_s + ttl_s, None))
            raise
        if ttl_s > 0 and identity:
            self._remember(key, _Cached(now_s + ttl_s, context))
        return context

    def _remember(self, key: tuple[str, str, tuple[str, ...]], entry: _Cached) -> None:
        if len(self._cache) >= _MAX_CACHED_RESULTS:
            now_s = self.clock()
            for stale in [k for k, v in self._cache.items() if v.expires_at_s <= now_s]:
                del self._cache[stale]
            if len(self._cache) >= _MAX_CACHED_RESULTS:
                self._cache.clear()
        self._cache[key] = entry
