"""The ASGI application: the Lambda REST API plus lambdalet's own small endpoints.

Every error is answered in AWS's shape: ``x-amzn-ErrorType`` header and a JSON body with
``Type`` and ``Message``/``message``; anything unexpected becomes a logged ServiceException.
SigV4 signatures are checked only with ``LAMBDALET_VERIFY_SIGNATURES`` (``api/signatures.py``):
by default any credentials are accepted, as by local AWS emulators.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp

from lambdalet.api import (
    aliases,
    apigateway,
    concurrency,
    event_invoke,
    event_source_mappings,
    function_urls,
    functions,
    layers,
    permissions,
    scheduler,
    tags,
    usage,
)
from lambdalet.api.invoke import InvokeFirst
from lambdalet.api.requests import error_response, existing_function, node_of
from lambdalet.api.signatures import SignaturesRequired
from lambdalet.errors import (
    AwsError,
    ResourceNotFoundException,
    ServiceException,
    UnknownOperationException,
)
from lambdalet.frontdoor.hosts import HostDispatch
from lambdalet.frontdoor.httpapi import HttpApis
from lambdalet.frontdoor.urls import FunctionUrls
from lambdalet.node import Node
from lambdalet.queues import sqs_api
from lambdalet.topics import sns_api

log = logging.getLogger(__name__)

FUNCTIONS = "/2015-03-31/functions"
FUNCTION = FUNCTIONS + "/{function_name:str}"
ALIAS = FUNCTION + "/aliases/{alias_name:str}"
RESERVED = "/2017-10-31/functions/{function_name:str}/concurrency"
PROVISIONED = "/2019-09-30/functions/{function_name:str}/provisioned-concurrency"
EVENT_INVOKE = "/2019-09-25/functions/{function_name:str}/event-invoke-config"
MAPPINGS = "/2015-03-31/event-source-mappings"
MAPPING = MAPPINGS + "/{uuid:str}"
LAYERS = "/2018-10-31/layers"
LAYER_VERSIONS = LAYERS + "/{layer_name:str}/versions"
LAYER_VERSION = LAYER_VERSIONS + "/{version:str}"
FUNCTION_URL = "/2021-10-31/functions/{function_name:str}/url"
POLICY = FUNCTION + "/policy"
SCHEDULES = "/schedules"  # EventBridge Scheduler (rest-json)
SCHEDULE = SCHEDULES + "/{name:str}"


async def _aws_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AwsError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(
        UnknownOperationException(f"No operation for {request.method} {request.url.path}")
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = str(uuid.uuid4())
    log.exception(
        "request %s %s %s failed", request_id, request.method, request.url.path, exc_info=exc
    )
    return error_response(
        ServiceException(f"lambdalet failed to handle the request (request id {request_id})"),
        request_id,
    )


async def download_code(request: Request) -> Response:
    """The zip a GetFunction response's Code.Location points to."""
    node = node_of(request)
    sha256_hex = request.path_params["sha256_hex"]
    path = node.blobs.zip_path(sha256_hex)
    if (
        len(sha256_hex) != 64
        or not all(c in "0123456789abcdef" for c in sha256_hex)
        or not path.exists()
    ):
        raise ResourceNotFoundException(f"No code blob {sha256_hex}")
    return FileResponse(path, media_type="application/zip")


async def read_logs(request: Request) -> Response:
    """A function's log lines after a given id: what ``lambdalet logs --follow`` polls."""
    node, name = await existing_function(request)
    after_id = int(request.query_params.get("after_id", "0") or 0)
    limit = min(int(request.query_params.get("limit", "1000") or 1000), 10000)
    events = await node.store.read_logs(name, after_id, limit)
    return JSONResponse(
        {
            "events": [
                {
                    "id": event_id,
                    "requestId": e.request_id,
                    "timestamp": e.at_unix_ms,
                    "message": e.message,
                }
                for event_id, e in events
            ]
        }
    )


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this node."""
    router = node_of(request).router
    text = router.metrics.render(dict(router.limiter.in_flight), router.idle_by_function())
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def aws_json_target(request: Request) -> Response:
    """``POST /`` with ``X-Amz-Target: <Service>.<Operation>``: services speaking AWS JSON;
    a form-encoded ``POST /`` without it is SNS's query protocol."""
    if sns_api.is_query_request(request):
        return await sns_api.handle(request)
    target = request.headers.get("x-amz-target", "")
    if target.startswith(sqs_api.TARGET_PREFIX):
        return await sqs_api.handle(request)
    raise UnknownOperationException(f"No operation for POST / with X-Amz-Target '{target}'")


WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DASHBOARD = "/_lambdalet/dashboard"


async def dashboard(request: Request) -> Response:
    """The dashboard: one page, no build step (``web/index.html``)."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


async def home(request: Request) -> Response:
    """``GET /``, which no AWS API uses: to the dashboard."""
    return RedirectResponse(DASHBOARD)


async def health(request: Request) -> Response:
    """Liveness: 200 once the node has started."""
    return JSONResponse({"status": "ok"})


def create_app(node: Node, *, manage_node: bool = True) -> HostDispatch:
    """The ASGI app serving ``node``; it starts and stops the node with its lifespan.

    The Lambda API app sits behind a HostDispatch that sends function URL hosts
    (``<id>.lambda-url.<region>.localhost``) and ``/_lambdalet/urls/<id>/...`` elsewhere,
    behind the signature check if it is on, and behind InvokeFirst, which answers Invoke
    ahead of Starlette's routing.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    routes = [
        Route(FUNCTIONS, functions.create_function, methods=["POST"]),
        Route(FUNCTIONS, functions.list_functions, methods=["GET"]),
        Route(FUNCTIONS + "/", functions.list_functions, methods=["GET"]),
        Route(FUNCTION, functions.get_function, methods=["GET"]),
        Route(FUNCTION, functions.delete_function, methods=["DELETE"]),
        Route(FUNCTION + "/configuration", functions.get_function_configuration, methods=["GET"]),
        Route(
            FUNCTION + "/configuration", functions.update_function_configuration, methods=["PUT"]
        ),
        Route(FUNCTION + "/code", functions.update_function_code, methods=["PUT"]),
        Route(FUNCTION + "/versions", functions.publish_version, methods=["POST"]),
        Route(FUNCTION + "/versions", functions.list_versions_by_function, methods=["GET"]),
        Route(FUNCTION + "/aliases", aliases.create_alias, methods=["POST"]),
        Route(FUNCTION + "/aliases", aliases.list_aliases, methods=["GET"]),
        Route(RESERVED, concurrency.put_function_concurrency, methods=["PUT"]),
        Route(RESERVED, concurrency.delete_function_concurrency, methods=["DELETE"]),
        Route(
            "/2019-09-30/functions/{function_name:str}/concurrency",
            concurrency.get_function_concurrency,
            methods=["GET"],
        ),
        Route(PROVISIONED, concurrency.put_provisioned_concurrency, methods=["PUT"]),
        Route(PROVISIONED, concurrency.get_provisioned_concurrency, methods=["GET"]),
        Route(PROVISIONED, concurrency.delete_provisioned_concurrency, methods=["DELETE"]),
        Route(EVENT_INVOKE, event_invoke.put_event_invoke_config, methods=["PUT"]),
        Route(EVENT_INVOKE, event_invoke.update_event_invoke_config, methods=["POST"]),
        Route(EVENT_INVOKE, event_invoke.get_event_invoke_config, methods=["GET"]),
        Route(EVENT_INVOKE, event_invoke.delete_event_invoke_config, methods=["DELETE"]),
        Route(EVENT_INVOKE + "/list", event_invoke.list_event_invoke_configs, methods=["GET"]),
        Route(ALIAS, aliases.get_alias, methods=["GET"]),
        Route(ALIAS, aliases.update_alias, methods=["PUT"]),
        Route(ALIAS, aliases.delete_alias, methods=["DELETE"]),
        Route("/2016-08-19/account-settings", functions.get_account_settings, methods=["GET"]),
        Route("/2016-08-19/account-settings/", functions.get_account_settings, methods=["GET"]),
        Route(LAYERS, layers.list_layers_or_find, methods=["GET"]),
        Route(LAYERS + "/", layers.list_layers_or_find, methods=["GET"]),
        Route(LAYER_VERSIONS, layers.publish_layer_version, methods=["POST"]),
        Route(LAYER_VERSIONS, layers.list_layer_versions, methods=["GET"]),
        Route(LAYER_VERSION, layers.get_layer_version, methods=["GET"]),
        Route(LAYER_VERSION, layers.delete_layer_version, methods=["DELETE"]),
        Route(LAYER_VERSION + "/policy", layers.add_layer_version_permission, methods=["POST"]),
        Route(LAYER_VERSION + "/policy", layers.get_layer_version_policy, methods=["GET"]),
        Route(
            LAYER_VERSION + "/policy/{statement_id:str}",
            layers.remove_layer_version_permission,
            methods=["DELETE"],
        ),
        Route("/_lambdalet/code/{sha256_hex:str}.zip", download_code, methods=["GET"]),
        Route("/_lambdalet/functions/{function_name:str}/logs", read_logs, methods=["GET"]),
        Route(SCHEDULES, scheduler.list_schedules, methods=["GET"]),
        Route(SCHEDULE, scheduler.create_schedule, methods=["POST"]),
        Route(SCHEDULE, scheduler.get_schedule, methods=["GET"]),
        Route(SCHEDULE, scheduler.update_schedule, methods=["PUT"]),
        Route(SCHEDULE, scheduler.delete_schedule, methods=["DELETE"]),
        Route(MAPPINGS, event_source_mappings.create_event_source_mapping, methods=["POST"]),
        Route(MAPPINGS, event_source_mappings.list_event_source_mappings, methods=["GET"]),
        Route(MAPPINGS + "/", event_source_mappings.list_event_source_mappings, methods=["GET"]),
        Route(MAPPING, event_source_mappings.get_event_source_mapping, methods=["GET"]),
        Route(MAPPING, event_source_mappings.update_event_source_mapping, methods=["PUT"]),
        Route(MAPPING, event_source_mappings.delete_event_source_mapping, methods=["DELETE"]),
        Route("/_lambdalet/health", health, methods=["GET"]),
        Route("/_lambdalet/usage", usage.usage_report, methods=["GET"]),
        Route(FUNCTION_URL, function_urls.create_function_url_config, methods=["POST"]),
        Route(FUNCTION_URL, function_urls.get_function_url_config, methods=["GET"]),
        Route(FUNCTION_URL, function_urls.update_function_url_config, methods=["PUT"]),
        Route(FUNCTION_URL, function_urls.delete_function_url_config, methods=["DELETE"]),
        Route(FUNCTION_URL + "s", function_urls.list_function_url_configs, methods=["GET"]),
        Route(POLICY, permissions.add_permission, methods=["POST"]),
        Route(POLICY, permissions.get_policy, methods=["GET"]),
        Route(POLICY + "/{statement_id:str}", permissions.remove_permission, methods=["DELETE"]),
        Route(tags.PATH, tags.tag_resource, methods=["POST"]),
        Route(tags.PATH, tags.untag_resource, methods=["DELETE"]),
        Route(tags.PATH, tags.list_tags, methods=["GET"]),
        Route("/", aws_json_target, methods=["POST"]),
        Route("/", home, methods=["GET"]),
        Route(DASHBOARD, dashboard, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *apigateway.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            AwsError: _aws_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.node = node
    by_label: dict[str, ASGIApp] = {
        function_urls.LABEL: FunctionUrls(node),
        apigateway.LABEL: HttpApis(node),
    }
    api: ASGIApp = InvokeFirst(app, node)  # Invoke is answered before Starlette's routing
    if node.settings.verify_signatures:
        settings = node.settings
        api = SignaturesRequired(api, settings.signing_keys(), region=settings.region)
    return HostDispatch(
        api,
        by_label,
        region=node.settings.region,
        public_host=urlsplit(node.settings.public_url).hostname,
        by_path_segment={"urls": function_urls.LABEL, "apis": apigateway.LABEL},
    )
