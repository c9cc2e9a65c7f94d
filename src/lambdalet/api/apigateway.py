"""HTTP APIs' management API: the apigatewayv2 (rest-json) subset for HTTP APIs.

Operations: Create/Get/Update/Delete Api and GetApis; Create/Get/Delete Route and GetRoutes;
Create/Get/Delete Integration and GetIntegrations; Create/Get/Update/Delete Stage and
GetStages; Create/Get/Delete Authorizer and GetAuthorizers. Field names on the wire are
camelCase as botocore's model says; errors are ``{"message": ...}`` with the
``x-amzn-ErrorType`` botocore reads (NotFoundException 404, BadRequestException 400,
ConflictException 409).

Each object is a resource of the generic store: kind ``api`` keyed ``<apiId>``, and kinds
``api_route``, ``api_integration``, ``api_stage``, ``api_authorizer`` keyed
``<apiId>/<routeId|integrationId|stageName|authorizerId>``; deleting an API deletes them all.
Ids are 10 lower-case letters and digits, as AWS's.

What lambdalet takes, and where it differs from AWS:

- ProtocolType HTTP only (WEBSOCKET is refused). CreateApi's quick create (``target``, and
  ``routeKey`` defaulting to ``$default``) makes the integration, the route and an
  auto-deployed ``$default`` stage, as AWS does.
- Integrations: ``AWS_PROXY`` to a Lambda function, payload format ``2.0`` (the default);
  ``integrationUri`` a function or alias ARN (or the
  ``arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<arn>/invocations`` form).
- Stages serve the API's current routes at once: there are no deployments to make, whatever
  ``autoDeploy`` says. ``routeSettings``/``defaultRouteSettings`` throttle routes.
- Authorizers: ``JWT`` (``jwtConfiguration`` issuer and audience, identity source a
  ``$request.header.<name>``) and ``REQUEST`` (Lambda, payload format 2.0); routes use them
  with authorizationType ``JWT`` or ``CUSTOM``. ``AWS_IAM`` authorization is refused.
- ``corsConfiguration`` and ``tags`` are kept and returned, not applied.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lambdalet.api.requests import json_object, node_of, parse_function_name
from lambdalet.config import Settings
from lambdalet.errors import (
    ApiConflictException,
    AwsError,
    BadRequestException,
    NotFoundException,
)
from lambdalet.frontdoor.routes import RouteKeyError, parse_route_key
from lambdalet.node import Node

API = "api"
ROUTE = "api_route"
INTEGRATION = "api_integration"
STAGE = "api_stage"
AUTHORIZER = "api_authorizer"
CHILD_KINDS = (ROUTE, INTEGRATION, STAGE, AUTHORIZER)
LABEL = "execute-api"
DEFAULT_STAGE = "$default"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_MAX_BODY_BYTES = 256 * 1024
_STAGE_NAME = re.compile(r"^(\$default|[A-Za-z0-9_\-]{1,128})$")
_APIGATEWAY_LAMBDA_URI = re.compile(
    r"^arn:aws[a-zA-Z-]*:apigateway:[a-z0-9-]+:lambda:path/2015-03-31/functions/(.+)/invocations$"
)
_IDENTITY_SOURCE = re.compile(
    r"^\$(request\.header\.[^\s]+|request\.querystring\.[^\s]+|context\.[A-Za-z0-9_.]+"
    r"|stageVariables\.[A-Za-z0-9_]+)$"
)


def new_id() -> str:
    """A fresh API or child id: 10 lower-case letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def now_iso() -> str:
    """The time now as botocore's ``__timestampIso8601`` reads it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_host(settings: Settings, api_id: str) -> str:
    """The host name an HTTP API is served at (without port)."""
    suffix = urlsplit(settings.public_url).hostname if settings.public_url else None
    return f"{api_id}.{LABEL}.{settings.region}.{suffix or 'localhost'}"


def api_endpoint(settings: Settings, api_id: str) -> str:
    """``http://<api-id>.execute-api.<region>.localhost:<port>``, or under the public URL."""
    if settings.public_url:
        public = urlsplit(settings.public_url)
        port = f":{public.port}" if public.port else ""
        return f"{public.scheme or 'https'}://{api_host(settings, api_id)}{port}"
    return f"http://{api_host(settings, api_id)}:{settings.port}"


def function_of_uri(uri: str) -> tuple[str, str | None]:
    """(function name, qualifier) an integration or authorizer URI names."""
    wrapped = _APIGATEWAY_LAMBDA_URI.match(uri)
    try:
        return parse_function_name(wrapped.group(1) if wrapped else uri)
    except AwsError:
        raise BadRequestException(
            f"Invalid function ARN '{uri}': use arn:aws:lambda:<region>:<account>:function:"
            "<name>[:<alias>] or the arn:aws:apigateway:<region>:lambda:path/2015-03-31/"
            "functions/<function arn>/invocations form"
        ) from None


async def _body(request: Request, operation: str) -> dict[str, Any]:
    try:
        return await json_object(request, _MAX_BODY_BYTES, operation)
    except AwsError as error:
        raise BadRequestException(error.message) from None


def _string(
    body: dict[str, Any], field: str, *, required: bool = False, max_length: int = 1024
) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise BadRequestException(f"Invalid input: {field} is required")
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > max_length:
        raise BadRequestException(
            f"Invalid input: {field} must be a string of 1 to {max_length} characters"
        )
    return value


def _bool(body: dict[str, Any], field: str, default: bool) -> bool:
    value = body.get(field, default)
    if not isinstance(value, bool):
        raise BadRequestException(f"Invalid input: {field} must be true or false")
    return value


def _string_list(body: dict[str, Any], field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequestException(f"Invalid input: {field} must be a list of strings")
    return list(value)


def _page(request: Request, items: list[dict[str, Any]], key: str) -> Response:
    """A GetXxx list response: ``items`` after the nextToken, at most maxResults of them."""
    raw_max = request.query_params.get("maxResults", "100")
    if not raw_max.isdigit() or not 1 <= int(raw_max) <= 500:
        raise BadRequestException(f"Invalid maxResults '{raw_max}': use 1 to 500")
    limit = int(raw_max)
    token = request.query_params.get("nextToken")
    if token:
        keys = [str(item[key]) for item in items]
        if token not in keys:
            raise BadRequestException(f"Invalid nextToken '{token}'")
        items = items[keys.index(token) + 1 :]
    body: dict[str, Any] = {"items": items[:limit]}
    if len(items) > limit:
        body["nextToken"] = str(items[limit - 1][key])
    return JSONResponse(body)


async def existing_api(request: Request) -> tuple[Node, dict[str, Any]]:
    """The node and the API the path's apiId names; NotFoundException if there is none."""
    node = node_of(request)
    api_id = request.path_params["api_id"]
    api = await node.store.get_resource(API, api_id)
    if api is None:
        raise NotFoundException(f"Invalid API identifier specified {api_id}")
    return node, api


def _api_shape(settings: Settings, api: dict[str, Any]) -> dict[str, Any]:
    return {**api, "apiEndpoint": api_endpoint(settings, api["apiId"])}


async def _children(node: Node, kind: str, api_id: str) -> list[dict[str, Any]]:
    return [value for _, value in await node.store.list_resources(kind, f"{api_id}/")]


async def _child(node: Node, kind: str, api_id: str, child_id: str, what: str) -> dict[str, Any]:
    value = await node.store.get_resource(kind, f"{api_id}/{child_id}")
    if value is None:
        raise NotFoundException(f"Invalid {what} identifier specified {api_id}/{child_id}")
    return value


# (route, child id) → why the route keeps the child from being deleted, or None.
Conflict = Callable[[dict[str, Any], str], str | None]


async def _delete_child(
    request: Request, kind: str, what: str, conflict: Conflict | None
) -> Response:
    """Delete the API's child the path names; ConflictException while a route of the API
    needs it."""
    node, api = await existing_api(request)
    child_id = request.path_params["child_id"]
    await _child(node, kind, api["apiId"], child_id, what)
    if conflict is not None:
        for route in await _children(node, ROUTE, api["apiId"]):
            reason = conflict(route, child_id)
            if reason is not None:
                raise ApiConflictException(reason)
    await node.store.delete_resource(kind, f"{api['apiId']}/{child_id}")
    return Response(status_code=204)


def _lister(kind: str, id_field: str) -> Callable[[Request], Awaitable[Response]]:
    """The Get<Children> operation of one kind of child: a page of them."""

    async def list_children(request: Request) -> Response:
        node, api = await existing_api(request)
        return _page(request, await _children(node, kind, api["apiId"]), id_field)

    return list_children


def _getter(kind: str, what: str) -> Callable[[Request], Awaitable[Response]]:
    """The Get<Child> operation of one kind of child."""

    async def get_child(request: Request) -> Response:
        node, api = await existing_api(request)
        child_id = request.path_params["child_id"]
        return JSONResponse(await _child(node, kind, api["apiId"], child_id, what))

    return get_child


# --- APIs ------------------------------------------------------------------------------------


async def create_api(request: Request) -> Response:
    """CreateApi (ProtocolType HTTP), with AWS's quick create when ``target`` is given."""
    node = node_of(request)
    body = await _body(request, "CreateApi")
    name = _string(body, "name", required=True, max_length=128)
    protocol = body.get("protocolType")
    if protocol != "HTTP":
        raise BadRequestException(
            f"Invalid protocolType '{protocol}': lambdalet serves HTTP APIs only (HTTP)"
        )
    target = _string(body, "target", max_length=2048)
    route_key = _string(body, "routeKey", max_length=512)
    if route_key is not None and target is None:
        raise BadRequestException("routeKey can only be given with target (quick create)")
    if target is not None:
        function_of_uri(target)
        _check_route_key(route_key or "$default")
    api_id = new_id()
    api: dict[str, Any] = {
        "apiId": api_id,
        "name": name,
        "protocolType": "HTTP",
        "routeSelectionExpression": "${request.method} ${request.path}",
        "apiKeySelectionExpression": "$request.header.x-api-key",
        "createdDate": now_iso(),
        "disableExecuteApiEndpoint": _bool(body, "disableExecuteApiEndpoint", False),
    }
    for field in ("description", "version"):
        value = _string(body, field)
        if value is not None:
            api[field] = value
    for field in ("corsConfiguration", "tags"):
        if isinstance(body.get(field), dict):
            api[field] = body[field]
    await node.store.insert_resource(API, api_id, api)
    if target is not None:
        integration = _integration({"integrationType": "AWS_PROXY", "integrationUri": target})
        await node.store.insert_resource(
            INTEGRATION, f"{api_id}/{integration['integrationId']}", integration
        )
        route = {
            "routeId": new_id(),
            "routeKey": route_key or "$default",
            "target": f"integrations/{integration['integrationId']}",
            "authorizationType": "NONE",
            "apiKeyRequired": False,
        }
        await node.store.insert_resource(ROUTE, f"{api_id}/{route['routeId']}", route)
        stage = _stage({"stageName": DEFAULT_STAGE, "autoDeploy": True})
        await node.store.insert_resource(STAGE, f"{api_id}/{DEFAULT_STAGE}", stage)
    return JSONResponse(_api_shape(node.settings, api), status_code=201)


async def get_apis(request: Request) -> Response:
    """GetApis."""
    node = node_of(request)
    apis = [_api_shape(node.settings, api) for _, api in await node.store.list_resources(API)]
    return _page(request, apis, "apiId")


async def get_api(request: Request) -> Response:
    """GetApi."""
    node, api = await existing_api(request)
    return JSONResponse(_api_shape(node.settings, api))


async def update_api(request: Request) -> Response:
    """UpdateApi: name, description, version, disableExecuteApiEndpoint, corsConfiguration."""
    node, api = await existing_api(request)
    body = await _body(request, "UpdateApi")
    for field, max_length in (("name", 128), ("description", 1024), ("version", 64)):
        value = _string(body, field, max_length=max_length)
        if value is not None:
            api[field] = value
    if "disableExecuteApiEndpoint" in body:
        api["disableExecuteApiEndpoint"] = _bool(body, "disableExecuteApiEndpoint", False)
    if isinstance(body.get("corsConfiguration"), dict):
        api["corsConfiguration"] = body["corsConfiguration"]
    await node.store.replace_resource(API, api["apiId"], api)
    return JSONResponse(_api_shape(node.settings, api))


async def delete_api(request: Request) -> Response:
    """DeleteApi, with its routes, integrations, stages and authorizers."""
    node, api = await existing_api(request)
    for kind in CHILD_KINDS:
        await node.store.delete_resources(kind, f"{api['apiId']}/")
    await node.store.delete_resource(API, api["apiId"])
    return Response(status_code=204)


# --- routes ----------------------------------------------------------------------------------


def _check_route_key(route_key: str) -> None:
    try:
        parse_route_key(route_key)
    except RouteKeyError as error:
        raise BadRequestException(str(error)) from None


async def _check_target(node: Node, api_id: str, target: str) -> None:
    integration_id = target.removeprefix("integrations/")
    if not target.startswith("integrations/") or (
        await node.store.get_resource(INTEGRATION, f"{api_id}/{integration_id}") is None
    ):
        raise BadRequestException(
            f"Invalid target '{target}': use integrations/<integrationId> of an integration"
            f" of API {api_id}"
        )


async def _apply_route(
    node: Node, api_id: str, route: dict[str, Any], body: dict[str, Any]
) -> None:
    """Check a CreateRoute/UpdateRoute body and apply it to ``route``."""
    route_key = _string(body, "routeKey", max_length=512)
    if route_key is not None:
        _check_route_key(route_key)
        others = await _children(node, ROUTE, api_id)
        if any(r["routeKey"] == route_key and r["routeId"] != route["routeId"] for r in others):
            raise ApiConflictException(f"Route with key {route_key} already exists for this API")
        route["routeKey"] = route_key
    target = _string(body, "target", max_length=128)
    if target is not None:
        await _check_target(node, api_id, target)
        route["target"] = target
    if "apiKeyRequired" in body:
        route["apiKeyRequired"] = _bool(body, "apiKeyRequired", False)
    fields = ("authorizationType", "authorizerId", "authorizationScopes")
    if "authorizationType" not in route or any(field in body for field in fields):
        kind = body.get("authorizationType", route.get("authorizationType", "NONE"))
        wanted: dict[str, Any] = {"authorizationType": kind}
        for field in fields[1:]:
            # A route switched to NONE drops its authorizer; otherwise unchanged fields stay.
            value = body.get(field, route.get(field) if kind != "NONE" else None)
            if value is not None:
                wanted[field] = value
        for field in fields:
            route.pop(field, None)
        route.update(await _route_authorization(node, api_id, wanted))
    operation = _string(body, "operationName", max_length=64)
    if operation is not None:
        route["operationName"] = operation


async def create_route(request: Request) -> Response:
    """CreateRoute: a route key, its target integration and its authorization."""
    node, api = await existing_api(request)
    api_id = api["apiId"]
    body = await _body(request, "CreateRoute")
    _string(body, "routeKey", required=True, max_length=512)
    route: dict[str, Any] = {"routeId": new_id(), "apiKeyRequired": False}
    await _apply_route(node, api_id, route, body)
    await node.store.insert_resource(ROUTE, f"{api_id}/{route['routeId']}", route)
    return JSONResponse(route, status_code=201)


async def update_route(request: Request) -> Response:
    """UpdateRoute: route key, target, authorization."""
    node, api = await existing_api(request)
    api_id = api["apiId"]
    route_id = request.path_params["child_id"]
    route = await _child(node, ROUTE, api_id, route_id, "Route")
    await _apply_route(node, api_id, route, await _body(request, "UpdateRoute"))
    await node.store.replace_resource(ROUTE, f"{api_id}/{route_id}", route)
    return JSONResponse(route)


async def _route_authorization(node: Node, api_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """authorizationType, authorizerId and authorizationScopes of a route, checked."""
    kind = body.get("authorizationType", "NONE")
    authorizer_id = _string(body, "authorizerId", max_length=64)
    scopes = _string_list(body, "authorizationScopes")
    if kind == "NONE":
        if authorizer_id is not None:
            raise BadRequestException("authorizerId needs authorizationType JWT or CUSTOM")
        return {"authorizationType": "NONE"}
    if kind not in ("JWT", "CUSTOM"):
        raise BadRequestException(
            f"Invalid authorizationType '{kind}': lambdalet takes NONE, JWT or CUSTOM"
        )
    if authorizer_id is None:
        raise BadRequestException(f"authorizationType {kind} needs an authorizerId")
    authorizer = await node.store.get_resource(AUTHORIZER, f"{api_id}/{authorizer_id}")
    if authorizer is None:
        raise BadRequestException(f"Invalid authorizer identifier specified {authorizer_id}")
    wanted = "JWT" if kind == "JWT" else "REQUEST"
    if authorizer["authorizerType"] != wanted:
        raise BadRequestException(
            f"authorizationType {kind} needs an authorizer of type {wanted}; {authorizer_id}"
            f" is {authorizer['authorizerType']}"
        )
    shape: dict[str, Any] = {"authorizationType": kind, "authorizerId": authorizer_id}
    if scopes:
        if kind != "JWT":
            raise BadRequestException("authorizationScopes apply to JWT authorization only")
        shape["authorizationScopes"] = scopes
    return shape


async def delete_route(request: Request) -> Response:
    """DeleteRoute."""
    return await _delete_child(request, ROUTE, "Route", None)


# --- integrations ----------------------------------------------------------------------------


def _integration(body: dict[str, Any]) -> dict[str, Any]:
    """A checked AWS_PROXY integration from a CreateIntegration body."""
    kind = body.get("integrationType")
    if kind != "AWS_PROXY":
        raise BadRequestException(
            f"Invalid integrationType '{kind}': lambdalet integrates Lambda functions (AWS_PROXY)"
        )
    uri = _string(body, "integrationUri", required=True, max_length=2048)
    assert uri is not None
    function_of_uri(uri)
    version = body.get("payloadFormatVersion", "2.0")
    if version != "2.0":
        raise BadRequestException(
            f"Invalid payloadFormatVersion '{version}': lambdalet sends format 2.0 only"
        )
    timeout_ms = body.get("timeoutInMillis", 30000)
    if (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not (50 <= timeout_ms <= 30000)
    ):
        raise BadRequestException("timeoutInMillis must be an integer from 50 to 30000")
    integration: dict[str, Any] = {
        "integrationId": new_id(),
        "integrationType": "AWS_PROXY",
        "integrationUri": uri,
        "integrationMethod": "POST",
        "payloadFormatVersion": "2.0",
        "connectionType": "INTERNET",
        "timeoutInMillis": timeout_ms,
        "apiGatewayManaged": False,
    }
    description = _string(body, "description")
    if description is not None:
        integration["description"] = description
    return integration


async def create_integration(request: Request) -> Response:
    """CreateIntegration (AWS_PROXY to a function, payload format 2.0)."""
    node, api = await existing_api(request)
    integration = _integration(await _body(request, "CreateIntegration"))
    key = f"{api['apiId']}/{integration['integrationId']}"
    await node.store.insert_resource(INTEGRATION, key, integration)
    return JSONResponse(integration, status_code=201)


async def delete_integration(request: Request) -> Response:
    """DeleteIntegration; ConflictException while a route targets it."""
    return await _delete_child(
        request,
        INTEGRATION,
        "Integration",
        lambda route, child_id: (
            f"Cannot delete integration {child_id}: route {route['routeKey']} targets it;"
            " delete the route or change its target first"
            if route.get("target") == f"integrations/{child_id}"
            else None
        ),
    )


# --- stages ----------------------------------------------------------------------------------


def _route_settings(value: Any, field: str) -> dict[str, Any]:
    """A checked RouteSettings object (the throttling and logging fields)."""
    if not isinstance(value, dict):
        raise BadRequestException(f"Invalid input: {field} must be an object")
    settings: dict[str, Any] = {}
    burst = value.get("throttlingBurstLimit")
    if burst is not None:
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
            raise BadRequestException(f"{field}.throttlingBurstLimit must be an integer >= 0")
        settings["throttlingBurstLimit"] = burst
    rate = value.get("throttlingRateLimit")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
            raise BadRequestException(f"{field}.throttlingRateLimit must be a number >= 0")
        settings["throttlingRateLimit"] = float(rate)
    for flag in ("dataTraceEnabled", "detailedMetricsEnabled"):
        if flag in value:
            settings[flag] = _bool(value, flag, False)
    if "loggingLevel" in value:
        settings["loggingLevel"] = value["loggingLevel"]
    return settings


def _apply_stage_settings(stage: dict[str, Any], body: dict[str, Any]) -> None:
    if "defaultRouteSettings" in body:
        stage["defaultRouteSettings"] = _route_settings(
            body["defaultRouteSettings"], "defaultRouteSettings"
        )
    if "routeSettings" in body:
        raw = body["routeSettings"]
        if not isinstance(raw, dict):
            raise BadRequestException("Invalid input: routeSettings must be an object")
        for route_key in raw:
            _check_route_key(route_key)
        stage["routeSettings"] = {
            key: _route_settings(value, f"routeSettings.{key}") for key, value in raw.items()
        }
    if "stageVariables" in body:
        variables = body["stageVariables"]
        if not isinstance(variables, dict) or not all(
            isinstance(v, str) for v in variables.values()
        ):
            raise BadRequestException("Invalid input: stageVariables must map names to strings")
        stage["stageVariables"] = variables
    if "autoDeploy" in body:
        stage["autoDeploy"] = _bool(body, "autoDeploy", False)
    description = _string(body, "description")
    if description is not None:
        stage["description"] = description


def _stage(body: dict[str, Any]) -> dict[str, Any]:
    name = _string(body, "stageName", required=True, max_length=128)
    assert name is not None
    if not _STAGE_NAME.match(name):
        raise BadRequestException(
            f"Invalid stageName '{name}': use $default or letters, digits, '-' and '_'"
        )
    now = now_iso()
    stage: dict[str, Any] = {
        "stageName": name,
        "autoDeploy": False,
        "createdDate": now,
        "lastUpdatedDate": now,
        "defaultRouteSettings": {"detailedMetricsEnabled": False},
        "routeSettings": {},
        "stageVariables": {},
        "apiGatewayManaged": False,
    }
    _apply_stage_settings(stage, body)
    return stage


async def create_stage(request: Request) -> Response:
    """CreateStage; ConflictException when the name is taken."""
    node, api = await existing_api(request)
    stage = _stage(await _body(request, "CreateStage"))
    key = f"{api['apiId']}/{stage['stageName']}"
    if not await node.store.insert_resource(STAGE, key, stage):
        raise ApiConflictException(f"Stage {stage['stageName']} already exists")
    return JSONResponse(stage, status_code=201)


async def update_stage(request: Request) -> Response:
    """UpdateStage: route settings, stage variables, autoDeploy, description."""
    node, api = await existing_api(request)
    name = request.path_params["child_id"]
    stage = await _child(node, STAGE, api["apiId"], name, "Stage")
    _apply_stage_settings(stage, await _body(request, "UpdateStage"))
    stage["lastUpdatedDate"] = now_iso()
    await node.store.replace_resource(STAGE, f"{api['apiId']}/{name}", stage)
    return JSONResponse(stage)


async def delete_stage(request: Request) -> Response:
    """DeleteStage."""
    return await _delete_child(request, STAGE, "Stage", None)


# --- authorizers -----------------------------------------------------------------------------


def _authorizer(body: dict[str, Any]) -> dict[str, Any]:
    """A checked JWT or REQUEST authorizer from a CreateAuthorizer body."""
    name = _string(body, "name", required=True, max_length=128)
    kind = body.get("authorizerType")
    sources = _string_list(body, "identitySource") or []
    for source in sources:
        if not _IDENTITY_SOURCE.match(source):
            raise BadRequestException(
                f"Invalid identitySource '{source}': use $request.header.<name>,"
                " $request.querystring.<name>, $context.<variable> or $stageVariables.<name>"
            )
    authorizer: dict[str, Any] = {"authorizerId": new_id(), "name": name, "identitySource": sources}
    if kind == "JWT":
        config = body.get("jwtConfiguration")
        if not isinstance(config, dict):
            raise BadRequestException("A JWT authorizer needs jwtConfiguration")
        issuer = _string(config, "issuer", required=True, max_length=2048)
        audience = _string_list(config, "audience")
        if not issuer or not issuer.startswith(("https://", "http://")):
            raise BadRequestException("jwtConfiguration.issuer must be an http(s) URL")
        if not audience:
            raise BadRequestException("jwtConfiguration.audience needs at least one audience")
        if len(sources) != 1 or not sources[0].startswith("$request.header."):
            raise BadRequestException(
                "A JWT authorizer takes one identitySource, a header such as"
                " $request.header.Authorization"
            )
        authorizer.update(
            authorizerType="JWT", jwtConfiguration={"issuer": issuer, "audience": audience}
        )
        return authorizer
    if kind != "REQUEST":
        raise BadRequestException(
            f"Invalid authorizerType '{kind}': lambdalet takes JWT or REQUEST"
        )
    uri = _string(body, "authorizerUri", required=True, max_length=2048)
    assert uri is not None
    function_of_uri(uri)
    version = body.get("authorizerPayloadFormatVersion")
    if version != "2.0":
        raise BadRequestException(
            f"Invalid authorizerPayloadFormatVersion '{version}': lambdalet sends format 2.0"
        )
    ttl_s = body.get("authorizerResultTtlInSeconds", 300 if sources else 0)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or not 0 <= ttl_s <= 3600:
        raise BadRequestException("authorizerResultTtlInSeconds must be from 0 to 3600")
    if ttl_s > 0 and not sources:
        raise BadRequestException(
            "Caching (authorizerResultTtlInSeconds > 0) needs an identitySource to key on"
        )
    authorizer.update(
        authorizerType="REQUEST",
        authorizerUri=uri,
        authorizerPayloadFormatVersion="2.0",
        enableSimpleResponses=_bool(body, "enableSimpleResponses", False),
        authorizerResultTtlInSeconds=ttl_s,
    )
    return authorizer


async def create_authorizer(request: Request) -> Response:
    """CreateAuthorizer (JWT or REQUEST)."""
    node, api = await existing_api(request)
    authorizer = _authorizer(await _body(request, "CreateAuthorizer"))
    key = f"{api['apiId']}/{authorizer['authorizerId']}"
    await node.store.insert_resource(AUTHORIZER, key, authorizer)
    return JSONResponse(authorizer, status_code=201)


async def delete_authorizer(request: Request) -> Response:
    """DeleteAuthorizer; ConflictException while a route uses it."""
    return await _delete_child(
        request,
        AUTHORIZER,
        "Authorizer",
        lambda route, child_id: (
            f"Cannot delete authorizer {child_id}: route {route['routeKey']} uses it"
            if route.get("authorizerId") == child_id
            else None
        ),
    )


def routes() -> list[Route]:
    """The management API's Starlette routes."""
    apis, api = "/v2/apis", "/v2/apis/{api_id:str}"
    table: list[Route] = [
        Route(apis, create_api, methods=["POST"]),
        Route(apis, get_apis, methods=["GET"]),
        Route(api, get_api, methods=["GET"]),
        Route(api, update_api, methods=["PATCH"]),
        Route(api, delete_api, methods=["DELETE"]),
        Route(api + "/stages/{child_id:str}", update_stage, methods=["PATCH"]),
        Route(api + "/routes/{child_id:str}", update_route, methods=["PATCH"]),
    ]
    children = (
        ("routes", create_route, delete_route, ROUTE, "routeId", "Route"),
        (
            "integrations",
            create_integration,
            delete_integration,
            INTEGRATION,
            "integrationId",
            "Integration",
        ),
        ("stages", create_stage, delete_stage, STAGE, "stageName", "Stage"),
        (
            "authorizers",
            create_authorizer,
            delete_authorizer,
            AUTHORIZER,
            "authorizerId",
            "Authorizer",
        ),
    )
    for segment, create, delete, kind, id_field, what in children:
        table += [
            Route(f"{api}/{segment}", create, methods=["POST"]),
            Route(f"{api}/{segment}", _lister(kind, id_field), methods=["GET"]),
            Route(f"{api}/{segment}/{{child_id:str}}", _getter(kind, what), methods=["GET"]),
            Route(f"{api}/{segment}/{{child_id:str}}", delete, methods=["DELETE"]),
        ]
    return table
