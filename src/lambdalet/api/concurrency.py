"""Reserved and provisioned concurrency: Put/Get/DeleteFunctionConcurrency and
Put/Get/Delete/ListProvisionedConcurrencyConfig(s).

Provisioned concurrency applies to a published version or an alias (an alias's sandboxes are
those of its primary version). PutProvisionedConcurrencyConfig answers 202 at once; the status
goes IN_PROGRESS → READY as the sandboxes finish their init, or FAILED if init fails.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import (
    existing_function,
    json_object,
    require_range,
)
from lambdalet.api.shapes import aws_timestamp
from lambdalet.errors import (
    InvalidParameterValueException,
    ProvisionedConcurrencyConfigNotFoundException,
    ValidationException,
)
from lambdalet.models import LATEST


async def put_function_concurrency(request: Request) -> Response:
    """PutFunctionConcurrency: PUT /2017-10-31/functions/{FunctionName}/concurrency."""
    node, name = await existing_function(request)
    body = await json_object(request, 64 * 1024, "PutFunctionConcurrency")
    if "ReservedConcurrentExecutions" not in body:
        raise ValidationException("ReservedConcurrentExecutions is required")
    value = require_range(
        body["ReservedConcurrentExecutions"],
        "reservedConcurrentExecutions",
        0,
        node.settings.concurrency_limit,
    )
    await node.set_reserved_concurrency(name, value)
    return JSONResponse({"ReservedConcurrentExecutions": value})


async def get_function_concurrency(request: Request) -> Response:
    """GetFunctionConcurrency: GET /2019-09-30/functions/{FunctionName}/concurrency."""
    node, name = await existing_function(request)
    value = await node.reserved_concurrency(name)
    return JSONResponse({} if value is None else {"ReservedConcurrentExecutions": value})


async def delete_function_concurrency(request: Request) -> Response:
    """DeleteFunctionConcurrency: DELETE /2017-10-31/functions/{FunctionName}/concurrency."""
    node, name = await existing_function(request)
    await node.set_reserved_concurrency(name, None)
    return Response(status_code=204)


def _qualifier(request: Request) -> str:
    qualifier = request.query_params.get("Qualifier")
    if not qualifier:
        raise ValidationException("Qualifier is required: a published version or an alias")
    if qualifier == LATEST:
        raise InvalidParameterValueException(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
        )
    return qualifier


def _config_shape(entry: dict[str, Any]) -> dict[str, Any]:
    shape = {
        "RequestedProvisionedConcurrentExecutions": entry["requested"],
        "AvailableProvisionedConcurrentExecutions": entry["allocated"],
        "AllocatedProvisionedConcurrentExecutions": entry["allocated"],
        "Status": entry["status"],
        "LastModified": aws_timestamp(entry["last_modified_ms"]),
    }
    if entry["reason"]:
        shape["StatusReason"] = entry["reason"]
    return shape


async def put_provisioned_concurrency(request: Request) -> Response:
    """PutProvisionedConcurrencyConfig: PUT .../provisioned-concurrency?Qualifier=..."""
    node, name = await existing_function(request)
    qualifier = _qualifier(request)
    body = await json_object(request, 64 * 1024, "PutProvisionedConcurrencyConfig")
    count = require_range(
        body.get("ProvisionedConcurrentExecutions"),
        "provisionedConcurrentExecutions",
        1,
        node.settings.concurrency_limit,
    )
    reserved = await node.reserved_concurrency(name)
    if reserved is not None and count > reserved:
        raise InvalidParameterValueException(
            f"Requested Provisioned Concurrency ({count}) should not be greater than the"
            f" reservedConcurrentExecution for function ({reserved})"
        )
    await node.put_provisioned_concurrency(name, qualifier, count)
    entry = (await node.provisioned_concurrency(name))[qualifier]
    return JSONResponse(_config_shape(entry), status_code=202)


async def get_provisioned_concurrency(request: Request) -> Response:
    """GetProvisionedConcurrencyConfig, or ListProvisionedConcurrencyConfigs with List=ALL."""
    node, name = await existing_function(request)
    configs = await node.provisioned_concurrency(name)
    if request.query_params.get("List") == "ALL":
        return JSONResponse(
            {
                "ProvisionedConcurrencyConfigs": [
                    {"FunctionArn": node.settings.function_arn(name, q), **_config_shape(entry)}
                    for q, entry in sorted(configs.items())
                ]
            }
        )
    qualifier = _qualifier(request)
    if qualifier not in configs:
        raise ProvisionedConcurrencyConfigNotFoundException(
            f"No Provisioned Concurrency Config found for this function ({name}:{qualifier})"
        )
    return JSONResponse(_config_shape(configs[qualifier]))


async def delete_provisioned_concurrency(request: Request) -> Response:
    """DeleteProvisionedConcurrencyConfig: DELETE .../provisioned-concurrency?Qualifier=..."""
    node, name = await existing_function(request)
    qualifier = _qualifier(request)
    if qualifier not in await node.provisioned_concurrency(name):
        raise ProvisionedConcurrencyConfigNotFoundException(
            f"No Provisioned Concurrency Config found for this function ({name}:{qualifier})"
        )
    await node.delete_provisioned_concurrency(name, qualifier)
    return Response(status_code=204)
