"""Control-plane operations on functions: create, read, list, update, delete, account settings.

Code arrives as ``Code.ZipFile`` (base64 in JSON, as botocore sends it). S3 locations and
container images are refused with a message saying so. ``Publish`` is accepted and ignored
until versions exist; every function has just ``$LATEST``.
"""

from __future__ import annotations

import asyncio
import platform
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api import shapes
from lambdalet.api.code import collect_code, keep_zip
from lambdalet.api.codezip import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES
from lambdalet.api.event_invoke import check_target_arn
from lambdalet.api.function_urls import forget_function_urls
from lambdalet.api.layers import parse_layer_version_arn
from lambdalet.api.requests import (
    FUNCTION_NAME,
    json_object,
    max_items,
    node_of,
    page_after,
    parse_function_name,
    require_range,
    require_string,
)
from lambdalet.api.tags import check_tags
from lambdalet.errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalet.models import LATEST, FunctionConfig, LayerRef, now_ms
from lambdalet.node import Node
from lambdalet.runtime import launch
from lambdalet.store.codec import code_shas

# base64 of a 50 MB zip plus the rest of the JSON document.
MAX_CREATE_BODY_BYTES = 70 * 1024 * 1024
MAX_ENVIRONMENT_BYTES = 4096
MAX_LAYERS = 5
ENV_KEY = re.compile(r"[a-zA-Z]([a-zA-Z0-9_])+")
HOST_ARCHITECTURE = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
}.get(platform.machine().lower(), platform.machine().lower())


def _check_runtime(runtime: Any, runtimes: dict[str, str]) -> str:
    if not isinstance(runtime, str) or runtime not in runtimes:
        available = ", ".join(sorted(runtimes))
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is not supported on this lambdalet host."
            f" Available runtimes: {available}"
        )
    return runtime


def _check_environment(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    variables = value.get("Variables", {}) if isinstance(value, dict) else None
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise InvalidParameterValueException("Environment.Variables must map strings to strings")
    for key in variables:
        if not ENV_KEY.fullmatch(key):
            raise ValidationException(
                f"1 validation error detected: Value at 'environment.variables' failed to satisfy"
                f" constraint: Map keys must satisfy constraint: [Member must satisfy regular"
                f" expression pattern: [a-zA-Z]([a-zA-Z0-9_])+] (key '{key}')"
            )
    reserved = sorted(set(variables) & launch.RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment"
            " variables you have provided contains reserved keys that are currently not"
            " supported for modification. Reserved keys used in this request: "
            + ", ".join(reserved)
        )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())
    if size > MAX_ENVIRONMENT_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment"
            f" variables you have provided exceeded the 4KB limit ({size} bytes)."
        )
    return dict(variables)


def _check_architectures(value: Any) -> tuple[str, ...]:
    if value is None:
        return (HOST_ARCHITECTURE,)
    if value != [HOST_ARCHITECTURE]:
        raise InvalidParameterValueException(
            f"Architectures {value} cannot run on this host; use ['{HOST_ARCHITECTURE}']"
        )
    return (HOST_ARCHITECTURE,)


def _check_handler(handler: Any, runtime: str) -> str:
    if handler is None:
        if launch.is_custom(runtime):
            return "bootstrap"
        raise InvalidParameterValueException(f"Handler is required for runtime {runtime}")
    return require_string(handler, "handler", 128, pattern=r"[^\s]+")


def _check_dead_letter(value: Any, node: Node) -> str | None:
    """DeadLetterConfig.TargetArn: a queue or topic ARN, or empty to remove the target."""
    target = value.get("TargetArn") if isinstance(value, dict) else None
    if not target:
        return None
    if check_target_arn(node, target, "DeadLetterConfig.TargetArn") == "lambda":
        raise InvalidParameterValueException(
            f"The DeadLetterConfig.TargetArn {target} is not supported: a dead-letter target"
            " is a queue (arn:aws:sqs:...) or a topic (arn:aws:sns:...)"
        )
    return str(target)


def _check_snap_start(value: Any, runtime: str) -> str:
    """SnapStart.ApplyOn: PublishedVersions (Python runtimes only, here) or None."""
    apply_on = value.get("ApplyOn", "None") if isinstance(value, dict) else value
    if apply_on not in ("PublishedVersions", "None"):
        raise InvalidParameterValueException(
            f"1 validation error detected: Value '{apply_on}' at 'snapStart.applyOn' failed to"
            " satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]"
        )
    if apply_on == "PublishedVersions" and launch.family(runtime) != "python":
        raise InvalidParameterValueException(
            f"{runtime} does not support SnapStart here: lambdalet snapshots Python runtimes only"
        )
    return str(apply_on)


def _apply_settings(config: FunctionConfig, body: dict[str, Any], node: Node) -> FunctionConfig:
    """Validate the configuration fields present in ``body`` and apply them."""
    changes: dict[str, Any] = {}
    if "Runtime" in body:
        changes["runtime"] = _check_runtime(body["Runtime"], node.settings.runtimes)
    runtime = changes.get("runtime", config.runtime)
    if "Handler" in body or "Runtime" in body:
        changes["handler"] = _check_handler(body.get("Handler", config.handler or None), runtime)
    if "Role" in body:
        changes["role"] = require_string(
            body["Role"],
            "role",
            2048,
            pattern=r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
        )
    if "Description" in body:
        changes["description"] = require_string(body["Description"], "description", 256)
    if "Timeout" in body:
        changes["timeout_s"] = require_range(body["Timeout"], "timeout", 1, 900)
    if "MemorySize" in body:
        changes["memory_mb"] = require_range(body["MemorySize"], "memorySize", 128, 10240)
    if "EphemeralStorage" in body:
        storage = body["EphemeralStorage"]
        size = storage.get("Size") if isinstance(storage, dict) else storage
        changes["ephemeral_storage_mb"] = require_range(size, "ephemeralStorage.size", 512, 10240)
    if "Environment" in body:
        changes["environment"] = _check_environment(body["Environment"])
    if "DeadLetterConfig" in body:
        changes["dead_letter_target_arn"] = _check_dead_letter(body["DeadLetterConfig"], node)
    if "SnapStart" in body:
        changes["snap_start_apply_on"] = _check_snap_start(body["SnapStart"], runtime)
    if body.get("PackageType", "Zip") != "Zip":
        raise InvalidParameterValueException(
            "Container images are not supported by lambdalet; use PackageType Zip"
        )
    return config.evolve(**changes)


async def _store_code(
    node: Node, code: Any, config: FunctionConfig, required: tuple[str, ...] | None
) -> FunctionConfig:
    """Check and keep the zip in ``code``; return ``config`` pointing at it.

    ``required`` names files one of which must be in the zip (the handler's, at CreateFunction).
    """
    sha256_hex, size_bytes = await keep_zip(node, code, required, "Code")
    return config.evolve(code_sha256_hex=sha256_hex, code_size_bytes=size_bytes)


async def _resolve_layers(node: Node, value: Any) -> tuple[LayerRef, ...]:
    """The layer versions named by a Layers parameter (at most 5 ARNs, one version a layer)."""
    if not isinstance(value, list) or not all(isinstance(arn, str) for arn in value):
        raise InvalidParameterValueException("Layers must be a list of layer version ARNs")
    if len(value) > MAX_LAYERS:
        raise InvalidParameterValueException(
            f"Cannot reference more than {MAX_LAYERS} layers (got {len(value)})"
        )
    refs: list[LayerRef] = []
    names: set[str] = set()
    for arn in value:
        name, version = parse_layer_version_arn(arn)
        if name in names:
            raise InvalidParameterValueException(
                "Two different versions of the same layer are not allowed to be referenced"
                f" in the same function. {arn} references layer {name} more than once."
            )
        names.add(name)
        layer = await node.store.get_layer_version(name, version)
        if layer is None:
            raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
        refs.append(LayerRef(arn, layer.code_sha256_hex, layer.code_size_bytes))
    return tuple(refs)


async def _check_total_size(node: Node, config: FunctionConfig) -> None:
    """Function code and layers together must stay under the unzipped limit, as on AWS."""
    shas = [config.code_sha256_hex, *(ref.code_sha256_hex for ref in config.layers)]
    sizes = [await asyncio.to_thread(node.blobs.tree_size_bytes, sha) for sha in shas]
    if sum(sizes) > MAX_UNZIPPED_BYTES:
        raise InvalidParameterValueException(
            "Function code combined with layers exceeds the maximum allowed size of"
            f" {MAX_UNZIPPED_BYTES} bytes. The actual size is {sum(sizes)} bytes."
        )


async def create_function(request: Request) -> Response:
    """CreateFunction: POST /2015-03-31/functions."""
    node = node_of(request)
    body = await json_object(request, MAX_CREATE_BODY_BYTES, "CreateFunction")
    name = body.get("FunctionName")
    if not isinstance(name, str) or not FUNCTION_NAME.match(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy"
            " constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
            " and have length between 1 and 64"
        )
    if "Role" not in body:
        raise ValidationException(
            "1 validation error detected: Value null at 'role' failed to"
            " satisfy constraint: Member must not be null"
        )
    # An image request has no Runtime: let _apply_settings say images are not supported.
    if "Runtime" not in body and body.get("PackageType", "Zip") == "Zip":
        raise InvalidParameterValueException("Runtime is required for .zip file deployments")
    blank = FunctionConfig(
        name=name,
        runtime="",
        handler="",
        role="",
        code_sha256_hex="",
        code_size_bytes=0,
        revision_id=str(uuid.uuid4()),
        last_modified_ms=now_ms(),
    )
    config = _apply_settings(blank, body, node)
    config = config.evolve(architectures=_check_architectures(body.get("Architectures")))
    config = config.evolve(tags=check_tags(body.get("Tags") or {}))
    if await node.store.get_function(name) is not None:
        raise ResourceConflictException(f"Function already exist: {name}")
    if "Layers" in body:
        config = config.evolve(layers=await _resolve_layers(node, body["Layers"]))
    config = await _store_code(node, body.get("Code"), config, launch.entry_files(config))
    try:
        await _check_total_size(node, config)
        await node.store.create_function(config)
    except BaseException:
        await collect_code(node, config.code_sha256_hex)
        raise
    return JSONResponse(shapes.function_configuration(config, node.settings), status_code=201)


async def _target(request: Request, *, latest_only: bool = False) -> tuple[Node, FunctionConfig]:
    node = node_of(request)
    name, qualifier = parse_function_name(request.path_params["function_name"])
    qualifier = request.query_params.get("Qualifier", qualifier)
    if latest_only and qualifier not in (None, LATEST):
        raise InvalidParameterValueException(
            f"Only $LATEST can be changed; versions are immutable (got qualifier {qualifier})"
        )
    return node, await node.function(name, qualifier)


async def get_function(request: Request) -> Response:
    """GetFunction: GET /2015-03-31/functions/{FunctionName}."""
    node, config = await _target(request)
    shape = shapes.get_function(config, node.settings)
    reserved = await node.reserved_concurrency(config.name)
    if reserved is not None:
        shape["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return JSONResponse(shape)


async def get_function_configuration(request: Request) -> Response:
    """GetFunctionConfiguration: GET /2015-03-31/functions/{FunctionName}/configuration."""
    node, config = await _target(request)
    return JSONResponse(shapes.function_configuration(config, node.settings))


async def list_functions(request: Request) -> Response:
    """ListFunctions: GET /2015-03-31/functions, paginated by Marker and MaxItems."""
    node = node_of(request)
    limit = max_items(request, 10000)
    marker = request.query_params.get("Marker") or None
    found = await node.store.list_functions(marker, limit + 1)
    page = found[:limit]
    configs = list(page)
    if request.query_params.get("FunctionVersion") == "ALL":
        configs = []
        for latest in page:
            configs += [latest, *await node.store.list_versions(latest.name)]
    result: dict[str, Any] = {
        "Functions": [shapes.function_configuration(c, node.settings) for c in configs]
    }
    if len(found) > limit:
        result["NextMarker"] = page[-1].name
    return JSONResponse(result)


def _check_revision(body: dict[str, Any], config: FunctionConfig) -> str:
    expected = body.get("RevisionId")
    if expected is not None and expected != config.revision_id:
        raise PreconditionFailedException.stale_revision("GetFunction/GetAlias")
    return config.revision_id


async def update_function_code(request: Request) -> Response:
    """UpdateFunctionCode: PUT /2015-03-31/functions/{FunctionName}/code."""
    node, config = await _target(request, latest_only=True)
    body = await json_object(request, MAX_CREATE_BODY_BYTES, "UpdateFunctionCode")
    expected = _check_revision(body, config)
    if "Architectures" in body:
        config = config.evolve(architectures=_check_architectures(body["Architectures"]))
    old_sha = config.code_sha256_hex
    # As on AWS, a handler that does not match the new code fails at invoke, not here.
    updated = await _store_code(node, body, config, None)
    updated = updated.evolve(revision_id=str(uuid.uuid4()), last_modified_ms=now_ms())
    try:
        await _check_total_size(node, updated)
        await node.store.update_function(updated, expected)
    except BaseException:
        await collect_code(node, updated.code_sha256_hex)
        raise
    await node.retire(config.name, LATEST)
    if old_sha != updated.code_sha256_hex:
        await collect_code(node, old_sha)
    return JSONResponse(shapes.function_configuration(updated, node.settings))


async def update_function_configuration(request: Request) -> Response:
    """UpdateFunctionConfiguration: PUT /2015-03-31/functions/{FunctionName}/configuration."""
    node, config = await _target(request, latest_only=True)
    body = await json_object(request, 1024 * 1024, "UpdateFunctionConfiguration")
    expected = _check_revision(body, config)
    updated = _apply_settings(config, body, node)
    if "Layers" in body:
        updated = updated.evolve(layers=await _resolve_layers(node, body["Layers"]))
        await _check_total_size(node, updated)
    updated = updated.evolve(revision_id=str(uuid.uuid4()), last_modified_ms=now_ms())
    await node.store.update_function(updated, expected)
    await node.retire(config.name, LATEST)
    return JSONResponse(shapes.function_configuration(updated, node.settings))


async def delete_function(request: Request) -> Response:
    """DeleteFunction: DELETE /2015-03-31/functions/{FunctionName}, or one version of it."""
    node, config = await _target(request)
    qualifier = (
        request.query_params.get("Qualifier")
        or parse_function_name(request.path_params["function_name"])[1]
    )
    if qualifier not in (None, LATEST):
        if not str(qualifier).isdigit():
            raise InvalidParameterValueException(
                "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias"
            )
        removed = await node.store.delete_version(config.name, int(config.version))
        gone = [removed] if removed else []
        await node.retire(config.name, config.version)
    else:
        gone = await node.store.list_versions(config.name)
        latest = await node.store.delete_function(config.name)
        if latest is None:
            raise ResourceNotFoundException(
                f"Function not found: {node.settings.function_arn(config.name)}"
            )
        gone.append(latest)
        await node.forget(config.name)
        await forget_function_urls(node, config.name)
    await collect_code(
        node,
        *{sha for removed in gone for sha in code_shas(removed).split()},
    )
    return Response(status_code=204)


async def publish_version(request: Request) -> Response:
    """PublishVersion: POST /2015-03-31/functions/{FunctionName}/versions."""
    node, latest = await _target(request, latest_only=True)
    body = await json_object(request, 64 * 1024, "PublishVersion")
    expected_sha = body.get("CodeSha256")
    if expected_sha is not None and expected_sha != latest.code_sha256_b64:
        raise InvalidParameterValueException(
            f"CodeSHA256 ({expected_sha}) is different from current CodeSHA256 in $LATEST"
            f" ({latest.code_sha256_b64}). Please try again with the CodeSHA256 in $LATEST."
        )
    _check_revision(body, latest)
    description = body.get("Description")
    if description is not None:
        description = require_string(description, "description", 256)
    published = await node.store.publish_version(latest.name, description)
    return JSONResponse(shapes.function_configuration(published, node.settings), status_code=201)


async def list_versions_by_function(request: Request) -> Response:
    """ListVersionsByFunction: $LATEST then every published version, paginated."""
    node, latest = await _target(request, latest_only=True)
    versions = [latest, *await node.store.list_versions(latest.name)]
    page, next_marker = page_after(request, versions, lambda v: v.version, 10000)
    result: dict[str, Any] = {
        "Versions": [shapes.function_configuration(v, node.settings) for v in page]
    }
    if next_marker:
        result["NextMarker"] = next_marker
    return JSONResponse(result)


async def get_account_settings(request: Request) -> Response:
    """GetAccountSettings: GET /2016-08-19/account-settings."""
    node = node_of(request)
    total, count = await node.store.total_code_size_bytes()
    limit = node.settings.concurrency_limit
    return JSONResponse(
        {
            "AccountLimit": {
                "TotalCodeSize": 80 * 1024**3,
                "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
                "CodeSizeZipped": MAX_ZIPPED_BYTES,
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": node.router.limiter.unreserved_limit,
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": count},
        }
    )
