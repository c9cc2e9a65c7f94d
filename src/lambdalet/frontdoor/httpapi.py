"""Serving HTTP APIs: a request to ``<api-id>.execute-api.<region>...`` runs a route's function.

A request reaches an API by its host (``http://<api-id>.execute-api.<region>.localhost:<port>
/<stage>/<path>``; the ``$default`` stage has no prefix) or by the path form
``/_lambdalet/apis/<api-id>/<stage or $default>/<path>``. For each request, as API Gateway:

0. an API whose ``disableExecuteApiEndpoint`` is set answers 403 ``{"message":"Forbidden"}``;
1. the stage: a first path segment naming a stage selects it, else the ``$default`` stage;
   no stage → 404 ``{"message":"Not Found"}``;
2. the route (``lambdalet.frontdoor.routes``): none → 404 ``{"message":"Not Found"}``, as is a
   route without an integration;
3. throttling (``lambdalet.frontdoor.throttle``) → 429 ``{"message":"Too Many Requests"}``;
4. authorization: JWT (``frontdoor.jwt``) or Lambda (``frontdoor.authorizers``), with their
   401/403/500 answers;
5. the integration's function (an alias picks its version by weight) gets the format-2.0
   event; its result becomes the response (``frontdoor.payload``).

``rawPath`` and ``requestContext.http.path`` keep a named stage's segment (``/prod/items``)
and have none for ``$default``, as AWS sends them; routes match the path after the stage.

A function error, a result that cannot be mapped, a function that is gone or throttled:
500 ``{"message":"Internal Server Error"}``, as HTTP APIs answer (function URLs say 502).
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from lambdalet.api.apigateway import (
    API,
    AUTHORIZER,
    DEFAULT_STAGE,
    INTEGRATION,
    LABEL,
    ROUTE,
    STAGE,
    api_host,
    function_of_uri,
)
from lambdalet.errors import RequestTooLargeException, ResourceNotFoundException
from lambdalet.frontdoor import jwt
from lambdalet.frontdoor.authorizers import AuthorizerRejected, LambdaAuthorizers
from lambdalet.frontdoor.hosts import HOST_ID
from lambdalet.frontdoor.payload import (
    MAX_REQUEST_BYTES,
    bad_gateway,
    http_response,
    read_request_body,
    request_event,
)
from lambdalet.frontdoor.routes import RouteKeyError, RoutePattern, parse_route_key, select_route
from lambdalet.frontdoor.throttle import Throttle
from lambdalet.models import LATEST
from lambdalet.node import Node, new_request_id

log = logging.getLogger(__name__)

PATH_SEGMENT = "apis"  # /_lambdalet/apis/<api-id>/...


def message(status: int, text: str, request_id: str, **headers: str) -> Response:
    """An API Gateway answer: ``{"message": ...}`` with the ``apigw-requestid`` header."""
    return JSONResponse(
        {"message": text},
        status_code=status,
        headers={"apigw-requestid": request_id, **headers},
    )


def not_found(request_id: str) -> Response:
    """No stage, route or integration for the request."""
    return message(404, "Not Found", request_id)


def internal_error(request_id: str) -> Response:
    """What HTTP APIs answer when the integration fails."""
    return message(500, "Internal Server Error", request_id)


class HttpApis:
    """The ASGI app behind every HTTP API of a node (host label ``execute-api``)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.throttle = Throttle()
        self.jwks = jwt.JwksCache(min_refetch_s=node.settings.jwks_min_refetch_ms / 1000)
        self.lambda_authorizers = LambdaAuthorizers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        request_id = new_request_id()
        try:
            response = await self.serve(request, request_id)
        except Exception:
            log.exception("HTTP API request %s failed", request_id)
            response = internal_error(request_id)
        await response(scope, receive, send)

    def _stage_and_path(
        self, request: Request, api_id: str, stage_names: set[str]
    ) -> tuple[str, str, str] | None:
        """(stage, raw path as the event shows it, raw path routes match), or None."""
        raw_path = (request.scope.get("raw_path") or b"").decode("latin-1") or request.url.path
        raw_path = raw_path.split("?", 1)[0]
        host = request.headers.get("host", "").lower()
        by_host = host.startswith(f"{api_id}.{LABEL}.")
        first, _, rest = raw_path[1:].partition("/")
        first_decoded = unquote(first)
        if not by_host and first_decoded == DEFAULT_STAGE:
            # The path form names the $default stage, which is not part of the API's path.
            if DEFAULT_STAGE not in stage_names:
                return None
            return DEFAULT_STAGE, "/" + rest, "/" + rest
        if first_decoded in stage_names and first_decoded != DEFAULT_STAGE:
            return first_decoded, raw_path, "/" + rest
        if DEFAULT_STAGE in stage_names:
            return DEFAULT_STAGE, raw_path, raw_path
        return None

    async def serve(self, request: Request, request_id: str) -> Response:
        """The response to one request to an HTTP API."""
        store = self.node.store
        api_id: str = request.scope[HOST_ID]
        api = await store.get_resource(API, api_id)
        if api is None:
            return not_found(request_id)
        if api.get("disableExecuteApiEndpoint"):
            return message(403, "Forbidden", request_id)
        stages = {v["stageName"]: v for _, v in await store.list_resources(STAGE, f"{api_id}/")}
        located = self._stage_and_path(request, api_id, set(stages))
        if located is None:
            return not_found(request_id)
        stage_name, raw_path, path = located
        stage = stages[stage_name]
        routes: dict[str, dict[str, Any]] = {}
        patterns: list[RoutePattern] = []
        for _, route in await store.list_resources(ROUTE, f"{api_id}/"):
            try:
                patterns.append(parse_route_key(route["routeKey"]))
            except RouteKeyError:
                continue
            routes[route["routeKey"]] = route
        selected = select_route(patterns, request.method, path)
        if selected is None:
            return not_found(request_id)
        pattern, path_parameters = selected
        route = routes[pattern.route_key]
        target = route.get("target", "")
        integration = await store.get_resource(
            INTEGRATION, f"{api_id}/{target.removeprefix('integrations/')}"
        )
        if not target or integration is None:
            return not_found(request_id)
        if not self.throttle.allow(api_id, stage, pattern.route_key):
            return message(429, "Too Many Requests", request_id)
        try:
            body = await read_request_body(request, MAX_REQUEST_BYTES)
        except RequestTooLargeException:
            return message(413, "Request Entity Too Large", request_id)
        event = await request_event(
            request,
            route_key=pattern.route_key,
            raw_path=raw_path,
            stage=stage_name,
            domain_name=self._domain_name(request, api_id),
            domain_prefix=api_id,
            api_id=api_id,
            account_id=self.node.settings.account_id,
            path_parameters=path_parameters or None,
            request_id=request_id,
            body=body,
            stage_variables=stage.get("stageVariables") or None,
        )
        denied = await self._authorize(request, api_id, stage_name, route, event, path)
        if denied is not None:
            return denied
        return await self._integrate(integration, event, request_id)

    async def _authorize(
        self,
        request: Request,
        api_id: str,
        stage_name: str,
        route: dict[str, Any],
        event: dict[str, Any],
        path: str,
    ) -> Response | None:
        """Run the route's authorizer; its refusal, or None with the event's authorizer set."""
        kind = route.get("authorizationType", "NONE")
        if kind == "NONE":
            return None
        request_id = event["requestContext"]["requestId"]
        authorizer = await self.node.store.get_resource(
            AUTHORIZER, f"{api_id}/{route.get('authorizerId')}"
        )
        if authorizer is None:
            log.error("route %s of API %s has no authorizer", route["routeKey"], api_id)
            return internal_error(request_id)
        if kind == "JWT":
            header = authorizer["identitySource"][0].removeprefix("$request.header.")
            config = authorizer["jwtConfiguration"]
            try:
                context = await jwt.authorize(
                    self.jwks,
                    jwt.bearer_token(request.headers.get(header)),
                    issuer=config["issuer"],
                    audiences=config["audience"],
                    required_scopes=route.get("authorizationScopes") or [],
                )
            except jwt.JwtRejected as rejected:
                log.info("HTTP API request %s refused: %s", request_id, rejected.description)
                text = "Forbidden" if rejected.status == 403 else "Unauthorized"
                return message(
                    rejected.status,
                    text,
                    request_id,
                    **{"www-authenticate": rejected.www_authenticate},
                )
            except jwt.JwksUnavailable as error:
                log.error("HTTP API request %s: %s", request_id, error)
                return internal_error(request_id)
        else:
            settings = self.node.settings
            route_arn = (
                f"arn:aws:execute-api:{settings.region}:{settings.account_id}:{api_id}/"
                f"{stage_name}/{request.method}{path}"
            )
            try:
                context = await self.lambda_authorizers.authorize(
                    authorizer,
                    event,
                    api_id=api_id,
                    route_arn=route_arn,
                    invoke=self._invoke_authorizer,
                )
            except AuthorizerRejected as rejected:
                log.info("HTTP API request %s refused: %s", request_id, rejected)
                return message(rejected.status, rejected.message, request_id)
        event["requestContext"]["authorizer"] = context
        return None

    async def _invoke_authorizer(self, uri: str, payload: bytes) -> tuple[bytes, str | None]:
        """Run a Lambda authorizer; a missing or throttled function counts as its failure."""
        name, qualifier = function_of_uri(uri)
        try:
            function = await self.node.function(name, qualifier, route=True)
            outcome = await self.node.invoke(
                function,
                payload,
                request_id=new_request_id(),
                invoked_qualifier=None if qualifier in (None, LATEST) else qualifier,
            )
        except Exception as error:  # the authorizer could not run: the request fails with 500
            return b"", f"{type(error).__name__}: {error}"
        return outcome.result.payload, outcome.result.function_error

    async def _integrate(
        self, integration: dict[str, Any], event: dict[str, Any], request_id: str
    ) -> Response:
        """Invoke the integration's function with ``event`` and map its result."""
        name, qualifier = function_of_uri(integration["integrationUri"])
        try:
            function = await self.node.function(name, qualifier, route=True)
            outcome = await self.node.invoke(
                function,
                json.dumps(event).encode(),
                request_id=request_id,
                invoked_qualifier=None if qualifier in (None, LATEST) else qualifier,
            )
        except ResourceNotFoundException:
            log.warning("HTTP API request %s: function %s is gone", request_id, name)
            return internal_error(request_id)
        except Exception:
            log.exception("HTTP API request %s: invoking %s failed", request_id, name)
            return internal_error(request_id)
        result = outcome.result
        if result.function_error:
            return internal_error(request_id)
        response = http_response(result.payload, None)
        if response.status_code == 502 and response.body == bad_gateway().body:
            return internal_error(request_id)  # a result that cannot be mapped
        response.headers["apigw-requestid"] = request_id
        return response

    def _domain_name(self, request: Request, api_id: str) -> str:
        """The API's host name as the client used it (the canonical one for the path form)."""
        host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
        if host.startswith(f"{api_id}.{LABEL}."):
            return host
        return api_host(self.node.settings, api_id)
