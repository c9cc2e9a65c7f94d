"""Asynchronous invocation settings: Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s).

Per qualifier ($LATEST, a version or an alias): MaximumRetryAttempts (0–2, default 2),
MaximumEventAgeInSeconds (60–21,600, default 21,600) and OnSuccess / OnFailure destinations.
Destinations are lambdalet's own functions (which must exist), queues and topics (which may be
created later: a record for one that is missing when it is delivered is logged and dropped).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import (
    existing_function,
    json_object,
    node_of,
    parse_function_name,
    require_range,
)
from lambdalet.errors import InvalidParameterValueException, ResourceNotFoundException
from lambdalet.models import LATEST
from lambdalet.node import EVENT_INVOKE_CONFIG, Node, destination_function, destination_service


async def _target(request: Request) -> tuple[Node, str, str]:
    node = node_of(request)
    name, qualifier = parse_function_name(request.path_params["function_name"])
    qualifier = request.query_params.get("Qualifier", qualifier) or LATEST
    await node.function(name, qualifier)
    return node, name, qualifier


def _shape(node: Node, name: str, qualifier: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"FunctionArn": node.settings.function_arn(name, qualifier), **config}


async def _check_destinations(node: Node, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameterValueException("DestinationConfig must be an object")
    checked: dict[str, Any] = {}
    for which in ("OnSuccess", "OnFailure"):
        destination = (value.get(which) or {}).get("Destination")
        if not destination:
            continue
        service = check_target_arn(node, destination, "destination")
        if service != "lambda":
            checked[which] = {"Destination": destination}
            continue
        target, qualifier = destination_function(destination)
        try:
            await node.function(target, qualifier)
        except ResourceNotFoundException:
            raise InvalidParameterValueException(
                f"The destination function {destination} does not exist"
            ) from None
        checked[which] = {"Destination": destination}
    return checked


def check_target_arn(node: Node, arn: Any, what: str) -> str:
    """The service (lambda, sqs, sns) of a destination or dead-letter target ARN, if it names
    a function, queue or topic of this node's region and account."""
    try:
        service = destination_service(arn) if isinstance(arn, str) else ""
    except ValueError:
        service = ""
    parts = arn.split(":") if isinstance(arn, str) else []
    if not service or parts[3] != node.settings.region or parts[4] != node.settings.account_id:
        raise InvalidParameterValueException(
            f"The {what} ARN {arn} is not supported: lambdalet delivers to its own functions"
            f" (arn:aws:lambda:{node.settings.region}:{node.settings.account_id}:function:NAME),"
            " queues (arn:aws:sqs:...:NAME) and topics (arn:aws:sns:...:NAME)"
        )
    return service


async def _save(request: Request, *, merge: bool) -> Response:
    node, name, qualifier = await _target(request)
    body = await json_object(request, 64 * 1024, "PutFunctionEventInvokeConfig")
    current = await node.event_invoke_config(name, qualifier) if merge else None
    if merge and current is None:
        raise ResourceNotFoundException(
            f"The function {node.settings.function_arn(name, qualifier)} doesn't have an"
            " EventInvokeConfig"
        )
    config: dict[str, Any] = dict(current or {})
    if "MaximumRetryAttempts" in body:
        config["MaximumRetryAttempts"] = require_range(
            body["MaximumRetryAttempts"], "maximumRetryAttempts", 0, 2
        )
    if "MaximumEventAgeInSeconds" in body:
        config["MaximumEventAgeInSeconds"] = require_range(
            body["MaximumEventAgeInSeconds"], "maximumEventAgeInSeconds", 60, 21_600
        )
    if "DestinationConfig" in body:
        config["DestinationConfig"] = await _check_destinations(node, body["DestinationConfig"])
    config.setdefault("DestinationConfig", {})
    config["LastModified"] = time.time()
    await node.put_setting(name, EVENT_INVOKE_CONFIG + qualifier, config)
    return JSONResponse(_shape(node, name, qualifier, config))


async def put_event_invoke_config(request: Request) -> Response:
    """PutFunctionEventInvokeConfig: replace the settings."""
    return await _save(request, merge=False)


async def update_event_invoke_config(request: Request) -> Response:
    """UpdateFunctionEventInvokeConfig: change some of the settings."""
    return await _save(request, merge=True)


async def get_event_invoke_config(request: Request) -> Response:
    """GetFunctionEventInvokeConfig."""
    node, name, qualifier = await _target(request)
    config = await node.event_invoke_config(name, qualifier)
    if config is None:
        raise ResourceNotFoundException(
            f"The function {node.settings.function_arn(name, qualifier)} doesn't have an"
            " EventInvokeConfig"
        )
    return JSONResponse(_shape(node, name, qualifier, config))


async def delete_event_invoke_config(request: Request) -> Response:
    """DeleteFunctionEventInvokeConfig."""
    node, name, qualifier = await _target(request)
    if await node.event_invoke_config(name, qualifier) is None:
        raise ResourceNotFoundException(
            f"The function {node.settings.function_arn(name, qualifier)} doesn't have an"
            " EventInvokeConfig"
        )
    await node.put_setting(name, EVENT_INVOKE_CONFIG + qualifier, None)
    return Response(status_code=204)


async def list_event_invoke_configs(request: Request) -> Response:
    """ListFunctionEventInvokeConfigs."""
    node, name = await existing_function(request)
    found = [
        _shape(node, name, key.removeprefix(EVENT_INVOKE_CONFIG), value)
        for (_, key), value in sorted((await node.function_settings(name)).items())
        if key.startswith(EVENT_INVOKE_CONFIG)
    ]
    return JSONResponse({"FunctionEventInvokeConfigs": found})
