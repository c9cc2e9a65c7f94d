"""Function URL configs: Create/Get/Update/Delete/ListFunctionUrlConfig(s).

A function URL belongs to a function's ``$LATEST`` (no Qualifier) or to one of its aliases; as
on AWS a version number is refused. Each config is a resource of kind ``function_url`` keyed
``<function>:<qualifier>``; an index resource of kind ``function_url_id`` maps the URL's id
(32 lower-case letters and digits, as AWS's) back to the function and qualifier, for the front
door. Deleting the function deletes its URLs; deleting an alias deletes the alias's URL.

``InvokeMode`` may be ``BUFFERED`` (the default) or ``RESPONSE_STREAM``; lambdalet accepts the
latter and keeps it in the config, but serves every URL buffered (whole response at once,
6 MB at most).
"""

from __future__ import annotations

import secrets
import string
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import (
    json_object,
    node_of,
    page_after,
    parse_function_name,
    require_range,
    require_string,
)
from lambdalet.api.shapes import aws_timestamp
from lambdalet.config import Settings
from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalet.models import LATEST, now_ms
from lambdalet.node import Node

KIND = "function_url"
ID_KIND = "function_url_id"
LABEL = "lambda-url"
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")
CORS_METHODS = ("GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "*")
QUALIFIER_PATTERN = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_MAX_BODY_BYTES = 64 * 1024


def new_url_id() -> str:
    """A fresh URL id: 32 lower-case letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))


def url_host(settings: Settings, url_id: str) -> str:
    """The host name of a function URL (without port)."""
    if settings.public_url:
        public = urlsplit(settings.public_url).hostname or "localhost"
        return f"{url_id}.{LABEL}.{settings.region}.{public}"
    return f"{url_id}.{LABEL}.{settings.region}.localhost"


def function_url(settings: Settings, url_id: str) -> str:
    """A function URL: ``http://<id>.lambda-url.<region>.localhost:<port>/``, or under the
    public base URL when one is set."""
    if settings.public_url:
        public = urlsplit(settings.public_url)
        port = f":{public.port}" if public.port else ""
        return f"{public.scheme or 'https'}://{url_host(settings, url_id)}{port}/"
    return f"http://{url_host(settings, url_id)}:{settings.port}/"


def not_found() -> ResourceNotFoundException:
    """AWS's error for a function or qualifier without a function URL."""
    return ResourceNotFoundException("The resource you requested does not exist.")


async def _target(request: Request) -> tuple[Node, str, str]:
    """The node, function name and qualifier ($LATEST or an alias) the request names."""
    node = node_of(request)
    name, qualifier = parse_function_name(request.path_params["function_name"])
    qualifier = request.query_params.get("Qualifier", qualifier)
    if qualifier is not None and qualifier != LATEST:
        require_string(qualifier, "qualifier", 128, pattern=QUALIFIER_PATTERN)
    qualifier = qualifier or LATEST
    await node.function(name, qualifier)
    return node, name, qualifier


def _shape(settings: Settings, config: dict[str, Any]) -> dict[str, Any]:
    """FunctionUrlConfig as botocore's model describes it."""
    qualifier = config["Qualifier"]
    shape: dict[str, Any] = {
        "FunctionUrl": function_url(settings, config["UrlId"]),
        "FunctionArn": settings.function_arn(
            config["FunctionName"], None if qualifier == LATEST else qualifier
        ),
        "AuthType": config["AuthType"],
        "CreationTime": aws_timestamp(config["CreationTimeMs"]),
        "LastModifiedTime": aws_timestamp(config["LastModifiedTimeMs"]),
        "InvokeMode": config["InvokeMode"],
    }
    if config.get("Cors"):
        shape["Cors"] = config["Cors"]
    return shape


def _enum(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationException(
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy"
            f" constraint: Member must satisfy enum value set: [{', '.join(choices)}]"
        )
    return str(value)


def _string_list(value: Any, field: str, max_items: int, max_length: int) -> list[str]:
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidParameterValueException(
            f"Cors.{field} must be a list of at most {max_items} strings"
        )
    for item in value:
        if not isinstance(item, str) or len(item) > max_length:
            raise InvalidParameterValueException(
                f"Cors.{field} must hold strings of at most {max_length} characters"
            )
    return list(value)


def check_cors(value: Any) -> dict[str, Any]:
    """A Cors object as AWS accepts it; InvalidParameterValueException naming the bad field."""
    if not isinstance(value, dict):
        raise InvalidParameterValueException("Cors must be an object")
    known = {"AllowCredentials", "AllowHeaders", "AllowMethods", "AllowOrigins"}
    known |= {"ExposeHeaders", "MaxAge"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidParameterValueException(
            f"Unknown Cors field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}"
        )
    cors: dict[str, Any] = {}
    if "AllowCredentials" in value:
        if not isinstance(value["AllowCredentials"], bool):
            raise InvalidParameterValueException("Cors.AllowCredentials must be true or false")
        cors["AllowCredentials"] = value["AllowCredentials"]
    for field in ("AllowHeaders", "ExposeHeaders"):
        if field in value:
            cors[field] = _string_list(value[field], field, 100, 1024)
    if "AllowMethods" in value:
        methods = _string_list(value["AllowMethods"], "AllowMethods", 6, 6)
        bad = [m for m in methods if m.upper() not in CORS_METHODS]
        if bad:
            raise InvalidParameterValueException(
                f"Cors.AllowMethods has invalid method(s) {', '.join(bad)};"
                f" use {', '.join(CORS_METHODS)}"
            )
        cors["AllowMethods"] = methods
    if "AllowOrigins" in value:
        origins = _string_list(value["AllowOrigins"], "AllowOrigins", 100, 253)
        if any(not origin for origin in origins):
            raise InvalidParameterValueException("Cors.AllowOrigins must not hold empty strings")
        cors["AllowOrigins"] = origins
    if "MaxAge" in value:
        cors["MaxAge"] = require_range(value["MaxAge"], "maxAge", 0, 86400)
    return cors


async def get_config(node: Node, name: str, qualifier: str) -> dict[str, Any] | None:
    """The stored config of a function's URL, if it has one."""
    return await node.store.get_resource(KIND, f"{name}:{qualifier}")


async def config_by_id(node: Node, url_id: str) -> dict[str, Any] | None:
    """The stored config of the URL with this id, if there is one."""
    index = await node.store.get_resource(ID_KIND, url_id)
    if index is None:
        return None
    return await get_config(node, index["FunctionName"], index["Qualifier"])


async def create_function_url_config(request: Request) -> Response:
    """CreateFunctionUrlConfig: POST /2021-10-31/functions/{FunctionName}/url."""
    node, name, qualifier = await _target(request)
    body = await json_object(request, _MAX_BODY_BYTES, "CreateFunctionUrlConfig")
    if "AuthType" not in body:
        raise ValidationException(
            "1 validation error detected: Value null at 'authType' failed to satisfy"
            " constraint: Member must not be null"
        )
    at_ms = now_ms()
    config: dict[str, Any] = {
        "FunctionName": name,
        "Qualifier": qualifier,
        "UrlId": new_url_id(),
        "AuthType": _enum(body["AuthType"], "authType", AUTH_TYPES),
        "InvokeMode": _enum(body.get("InvokeMode", "BUFFERED"), "invokeMode", INVOKE_MODES),
        "CreationTimeMs": at_ms,
        "LastModifiedTimeMs": at_ms,
    }
    if body.get("Cors") is not None:
        config["Cors"] = check_cors(body["Cors"])
    if not await node.store.insert_resource(KIND, f"{name}:{qualifier}", config):
        raise ResourceConflictException(
            "Failed to create function url config for [functionArn ="
            f" {node.settings.function_arn(name, None if qualifier == LATEST else qualifier)}]."
            " Error message:  FunctionUrlConfig exists for this Lambda function"
        )
    await node.store.insert_resource(
        ID_KIND, config["UrlId"], {"FunctionName": name, "Qualifier": qualifier}
    )
    shape = _shape(node.settings, config)
    del shape["LastModifiedTime"]  # CreateFunctionUrlConfig's response has none
    return JSONResponse(shape, status_code=201)


async def get_function_url_config(request: Request) -> Response:
    """GetFunctionUrlConfig: GET /2021-10-31/functions/{FunctionName}/url."""
    node, name, qualifier = await _target(request)
    config = await get_config(node, name, qualifier)
    if config is None:
        raise not_found()
    return JSONResponse(_shape(node.settings, config))


async def update_function_url_config(request: Request) -> Response:
    """UpdateFunctionUrlConfig: PUT /2021-10-31/functions/{FunctionName}/url; the fields given
    replace the stored ones (Cors as a whole)."""
    node, name, qualifier = await _target(request)
    body = await json_object(request, _MAX_BODY_BYTES, "UpdateFunctionUrlConfig")
    config = await get_config(node, name, qualifier)
    if config is None:
        raise not_found()
    if body.get("AuthType") is not None:
        config["AuthType"] = _enum(body["AuthType"], "authType", AUTH_TYPES)
    if body.get("InvokeMode") is not None:
        config["InvokeMode"] = _enum(body["InvokeMode"], "invokeMode", INVOKE_MODES)
    if body.get("Cors") is not None:
        config["Cors"] = check_cors(body["Cors"])
    config["LastModifiedTimeMs"] = now_ms()
    if not await node.store.replace_resource(KIND, f"{name}:{qualifier}", config):
        raise not_found()
    return JSONResponse(_shape(node.settings, config))


async def delete_function_url_config(request: Request) -> Response:
    """DeleteFunctionUrlConfig: DELETE /2021-10-31/functions/{FunctionName}/url."""
    node, name, qualifier = await _target(request)
    config = await node.store.delete_resource(KIND, f"{name}:{qualifier}")
    if config is None:
        raise not_found()
    await node.store.delete_resource(ID_KIND, config["UrlId"])
    return Response(status_code=204)


async def list_function_url_configs(request: Request) -> Response:
    """ListFunctionUrlConfigs: GET /2021-10-31/functions/{FunctionName}/urls."""
    node = node_of(request)
    name, _ = parse_function_name(request.path_params["function_name"])
    await node.function(name)
    configs = [value for _, value in await node.store.list_resources(KIND, f"{name}:")]
    configs.sort(key=lambda config: str(config["Qualifier"]))
    page, next_marker = page_after(request, configs, lambda config: config["Qualifier"], 50)
    result: dict[str, Any] = {"FunctionUrlConfigs": [_shape(node.settings, c) for c in page]}
    if next_marker:
        result["NextMarker"] = next_marker
    return JSONResponse(result)


async def forget_function_url(node: Node, name: str, qualifier: str) -> None:
    """Delete the URL of one qualifier (a deleted alias), if it has one."""
    config = await node.store.delete_resource(KIND, f"{name}:{qualifier}")
    if config is not None:
        await node.store.delete_resource(ID_KIND, config["UrlId"])


async def forget_function_urls(node: Node, name: str) -> None:
    """Delete every URL of a deleted function."""
    for key, config in await node.store.list_resources(KIND, f"{name}:"):
        await node.store.delete_resource(KIND, key)
        await node.store.delete_resource(ID_KIND, config["UrlId"])
