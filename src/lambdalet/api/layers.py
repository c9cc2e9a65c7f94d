"""Layers: PublishLayerVersion, GetLayerVersion(ByArn), ListLayers, ListLayerVersions,
DeleteLayerVersion and the layer-version permission operations.

A layer version is an immutable zip; a function lists up to five, and their trees are merged
in order (later over earlier) into the directory the function sees as ``/opt``. Deleting a
layer version does not affect functions that already use it, as on AWS. Permissions are kept
and returned as AWS shapes them; lambdalet has one account, so they grant nothing more.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.code import collect_code, keep_zip
from lambdalet.api.requests import (
    json_object,
    node_of,
    page_after,
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
from lambdalet.models import LayerVersion, now_ms

LAYER_NAME = re.compile(r"[a-zA-Z0-9-_]{1,140}")
LAYER_ARN = re.compile(
    r"arn:(aws[a-zA-Z-]*)?:lambda:[a-z0-9-]+:\d{12}:layer:(?P<name>[a-zA-Z0-9-_]+)"
    r"(:(?P<version>[0-9]+))?"
)
MAX_PUBLISH_BODY_BYTES = 70 * 1024 * 1024


def layer_arn(settings: Settings, name: str, version: int | None = None) -> str:
    """A layer's ARN, or a layer version's when ``version`` is given."""
    arn = f"arn:aws:lambda:{settings.region}:{settings.account_id}:layer:{name}"
    return f"{arn}:{version}" if version is not None else arn


def parse_layer_name(raw: str) -> str:
    """A layer name from a name or a layer ARN."""
    match = LAYER_ARN.fullmatch(raw)
    if match and match["version"] is None:
        return match["name"]
    if LAYER_NAME.fullmatch(raw):
        return raw
    raise ValidationException(
        f"1 validation error detected: Value '{raw}' at 'layerName' failed to satisfy"
        " constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+"
        " (or a layer ARN)"
    )


def parse_layer_version_arn(arn: str) -> tuple[str, int]:
    """(name, version) of a layer version ARN."""
    match = LAYER_ARN.fullmatch(arn)
    if not match or match["version"] is None:
        raise ValidationException(
            f"1 validation error detected: Value '{arn}' at 'layerVersionArn' failed to"
            " satisfy constraint: Member must be a layer version ARN like"
            " arn:aws:lambda:us-east-1:000000000000:layer:NAME:VERSION"
        )
    return match["name"], int(match["version"])


def _version_of(request: Request) -> int:
    raw = request.path_params["version"]
    if not raw.isdigit():
        raise ValidationException(f"VersionNumber must be a positive integer, not '{raw}'")
    return int(raw)


def version_item(layer: LayerVersion, settings: Settings) -> dict[str, Any]:
    """LayerVersionsListItem."""
    item: dict[str, Any] = {
        "LayerVersionArn": layer_arn(settings, layer.name, layer.version),
        "Version": layer.version,
        "Description": layer.description,
        "CreatedDate": aws_timestamp(layer.created_ms),
        "CompatibleRuntimes": list(layer.compatible_runtimes),
        "CompatibleArchitectures": list(layer.compatible_architectures),
    }
    if layer.license_info is not None:
        item["LicenseInfo"] = layer.license_info
    return item


def version_shape(layer: LayerVersion, settings: Settings) -> dict[str, Any]:
    """GetLayerVersionResponse / PublishLayerVersionResponse."""
    shape = version_item(layer, settings)
    shape["LayerArn"] = layer_arn(settings, layer.name)
    shape["Content"] = {
        "Location": f"{settings.base_url}/_lambdalet/code/{layer.code_sha256_hex}.zip",
        "CodeSha256": layer.code_sha256_b64,
        "CodeSize": layer.code_size_bytes,
    }
    return shape


def _string_list(body: dict[str, Any], key: str, limit: int) -> tuple[str, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterValueException(f"{key} must be a list of strings")
    if len(value) > limit:
        raise ValidationException(
            f"1 validation error detected: Value at '{key}' failed to satisfy constraint:"
            f" Member must have length less than or equal to {limit}"
        )
    return tuple(value)


async def publish_layer_version(request: Request) -> Response:
    """PublishLayerVersion: POST /2018-10-31/layers/{LayerName}/versions."""
    node = node_of(request)
    name = parse_layer_name(request.path_params["layer_name"])
    body = await json_object(request, MAX_PUBLISH_BODY_BYTES, "PublishLayerVersion")
    description = require_string(body.get("Description", ""), "description", 256)
    runtimes = _string_list(body, "CompatibleRuntimes", 15)
    architectures = _string_list(body, "CompatibleArchitectures", 2)
    license_info = body.get("LicenseInfo")
    if license_info is not None:
        license_info = require_string(license_info, "licenseInfo", 512)
    sha256_hex, size_bytes = await keep_zip(node, body.get("Content"), None, "Content")
    layer = LayerVersion(
        name=name,
        version=0,
        code_sha256_hex=sha256_hex,
        code_size_bytes=size_bytes,
        unzipped_size_bytes=node.blobs.tree_size_bytes(sha256_hex),
        created_ms=now_ms(),
        description=description,
        compatible_runtimes=runtimes,
        compatible_architectures=architectures,
        license_info=license_info,
    )
    published = await node.store.publish_layer_version(layer)
    return JSONResponse(version_shape(published, node.settings), status_code=201)


async def _layer_version(request: Request) -> LayerVersion:
    node = node_of(request)
    name = parse_layer_name(request.path_params["layer_name"])
    version = _version_of(request)
    layer = await node.store.get_layer_version(name, version)
    if layer is None:
        raise ResourceNotFoundException(
            "The resource you requested does not exist."
            f" (layer version {layer_arn(node.settings, name, version)})"
        )
    return layer


async def get_layer_version(request: Request) -> Response:
    """GetLayerVersion: GET /2018-10-31/layers/{LayerName}/versions/{VersionNumber}."""
    layer = await _layer_version(request)
    return JSONResponse(version_shape(layer, node_of(request).settings))


async def list_layers_or_find(request: Request) -> Response:
    """ListLayers: GET /2018-10-31/layers, or GetLayerVersionByArn with ?find=LayerVersion."""
    node = node_of(request)
    if request.query_params.get("find") == "LayerVersion":
        name, version = parse_layer_version_arn(request.query_params.get("Arn", ""))
        layer = await node.store.get_layer_version(name, version)
        if layer is None:
            raise ResourceNotFoundException(
                f"The resource you requested does not exist. (layer version"
                f" {request.query_params.get('Arn')})"
            )
        return JSONResponse(version_shape(layer, node.settings))
    newest = await node.store.list_layers()
    runtime = request.query_params.get("CompatibleRuntime")
    if runtime:
        newest = [layer for layer in newest if runtime in layer.compatible_runtimes]
    page, next_marker = page_after(request, newest, lambda layer: layer.name, 50)
    result: dict[str, Any] = {
        "Layers": [
            {
                "LayerName": layer.name,
                "LayerArn": layer_arn(node.settings, layer.name),
                "LatestMatchingVersion": version_item(layer, node.settings),
            }
            for layer in page
        ]
    }
    if next_marker:
        result["NextMarker"] = next_marker
    return JSONResponse(result)


async def list_layer_versions(request: Request) -> Response:
    """ListLayerVersions: GET /2018-10-31/layers/{LayerName}/versions."""
    node = node_of(request)
    name = parse_layer_name(request.path_params["layer_name"])
    versions = await node.store.list_layer_versions(name)
    runtime = request.query_params.get("CompatibleRuntime")
    if runtime:
        versions = [layer for layer in versions if runtime in layer.compatible_runtimes]
    page, next_marker = page_after(request, versions, lambda layer: layer.version, 50)
    result: dict[str, Any] = {"LayerVersions": [version_item(v, node.settings) for v in page]}
    if next_marker:
        result["NextMarker"] = next_marker
    return JSONResponse(result)


async def delete_layer_version(request: Request) -> Response:
    """DeleteLayerVersion: 204 whether or not it existed, as AWS answers."""
    node = node_of(request)
    name = parse_layer_name(request.path_params["layer_name"])
    removed = await node.store.delete_layer_version(name, _version_of(request))
    if removed is not None:
        await collect_code(node, removed.code_sha256_hex)
    return Response(status_code=204)


def _policy(layer: LayerVersion) -> dict[str, Any]:
    statements = [json.loads(statement) for statement in layer.policy_statements]
    return {"Version": "2012-10-17", "Id": "default", "Statement": statements}


async def add_layer_version_permission(request: Request) -> Response:
    """AddLayerVersionPermission: POST .../versions/{VersionNumber}/policy."""
    node = node_of(request)
    layer = await _layer_version(request)
    body = await json_object(request, 64 * 1024, "AddLayerVersionPermission")
    sid = require_string(body.get("StatementId"), "statementId", 100, pattern=r"[a-zA-Z0-9-_]+")
    action = body.get("Action")
    if action != "lambda:GetLayerVersion":
        raise ValidationException(
            f"1 validation error detected: Value '{action}' at 'action' failed to satisfy"
            " constraint: Member must satisfy regular expression pattern: lambda:GetLayerVersion"
        )
    principal = require_string(body.get("Principal"), "principal", 64, pattern=r"\d{12}|\*|arn:.+")
    if any(json.loads(s)["Sid"] == sid for s in layer.policy_statements):
        raise ResourceConflictException(
            f"The statement id ({sid}) provided already exists. Please provide a new statement"
            " id, or remove the existing statement."
        )
    expected = request.query_params.get("RevisionId", layer.policy_revision_id)
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal if principal == "*" else {"AWS": principal},
        "Action": action,
        "Resource": layer_arn(node.settings, layer.name, layer.version),
    }
    if "OrganizationId" in body:
        organization = require_string(body["OrganizationId"], "organizationId", 34)
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization}}
    text = json.dumps(statement, separators=(",", ":"))
    updated_layer = replace(
        layer,
        policy_statements=(*layer.policy_statements, text),
        policy_revision_id=str(uuid.uuid4()),
    )
    await node.store.update_layer_version(updated_layer, expected)
    return JSONResponse(
        {"Statement": text, "RevisionId": updated_layer.policy_revision_id}, status_code=201
    )


async def get_layer_version_policy(request: Request) -> Response:
    """GetLayerVersionPolicy: GET .../versions/{VersionNumber}/policy."""
    layer = await _layer_version(request)
    if not layer.policy_statements:
        raise ResourceNotFoundException("No policy is associated with the given resource.")
    return JSONResponse(
        {"Policy": json.dumps(_policy(layer)), "RevisionId": layer.policy_revision_id}
    )


async def remove_layer_version_permission(request: Request) -> Response:
    """RemoveLayerVersionPermission: DELETE .../versions/{VersionNumber}/policy/{StatementId}."""
    node = node_of(request)
    layer = await _layer_version(request)
    sid = request.path_params["statement_id"]
    kept = tuple(s for s in layer.policy_statements if json.loads(s)["Sid"] != sid)
    if len(kept) == len(layer.policy_statements):
        raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
    expected = request.query_params.get("RevisionId", layer.policy_revision_id)
    updated_layer = replace(layer, policy_statements=kept, policy_revision_id=str(uuid.uuid4()))
    await node.store.update_layer_version(updated_layer, expected)
    return Response(status_code=204)
