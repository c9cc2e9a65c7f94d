"""Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.

An alias names a published version (or $LATEST) and may send a share of its invocations to
one other version (``RoutingConfig.AdditionalVersionWeights``), drawn per invocation. Deleting
an alias deletes its function URL and its resource policy.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api import shapes
from lambdalet.api.function_urls import forget_function_url
from lambdalet.api.permissions import POLICY
from lambdalet.api.requests import (
    existing_function,
    json_object,
    require_string,
)
from lambdalet.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
    ValidationException,
)
from lambdalet.models import LATEST, Alias
from lambdalet.node import Node

ALIAS_NAME = re.compile(r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)")


async def _check_version(node: Node, function_name: str, version: Any, field: str) -> str:
    if not isinstance(version, str) or not (version == LATEST or version.isdigit()):
        raise ValidationException(
            f"1 validation error detected: Value '{version}' at '{field}' failed to satisfy"
            " constraint: Member must be $LATEST or a version number"
        )
    if version != LATEST and await node.store.get_version(function_name, int(version)) is None:
        raise ResourceNotFoundException(
            f"Function not found: {node.settings.function_arn(function_name, version)}"
        )
    return version


async def _routing(node: Node, function_name: str, body: dict[str, Any], primary: str) -> Any:
    routing = body.get("RoutingConfig")
    if routing is None:
        return None
    weights = routing.get("AdditionalVersionWeights", {}) if isinstance(routing, dict) else None
    if not isinstance(weights, dict):
        raise InvalidParameterValueException("RoutingConfig.AdditionalVersionWeights must be a map")
    if len(weights) > 1:
        raise InvalidParameterValueException(
            "RoutingConfig may name at most one additional version"
        )
    checked: dict[str, float] = {}
    for version, weight in weights.items():
        await _check_version(node, function_name, version, "additionalVersionWeights")
        if version in (primary, LATEST) or primary == LATEST:
            raise InvalidParameterValueException(
                "The additional version must be a published version other than the alias's"
                f" FunctionVersion ({primary}); routing between $LATEST and versions is not allowed"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
            raise ValidationException(
                f"1 validation error detected: Value '{weight}' at 'additionalVersionWeights'"
                " failed to satisfy constraint: Member must be between 0.0 and 1.0"
            )
        checked[version] = float(weight)
    return checked


async def create_alias(request: Request) -> Response:
    """CreateAlias: POST /2015-03-31/functions/{FunctionName}/aliases."""
    node, function_name = await existing_function(request)
    body = await json_object(request, 64 * 1024, "CreateAlias")
    name = require_string(body.get("Name"), "name", 128)
    if not ALIAS_NAME.fullmatch(name):
        raise ValidationException(
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy"
            " constraint: Member must satisfy regular expression pattern:"
            " (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )
    version = await _check_version(
        node, function_name, body.get("FunctionVersion"), "functionVersion"
    )
    alias = Alias(
        function_name=function_name,
        name=name,
        function_version=version,
        revision_id=str(uuid.uuid4()),
        description=require_string(body.get("Description", ""), "description", 256),
        additional_version_weights=await _routing(node, function_name, body, version) or {},
    )
    await node.store.put_alias(alias, None)
    return JSONResponse(shapes.alias_configuration(alias, node.settings), status_code=201)


async def _alias(request: Request) -> tuple[Node, Alias]:
    node, function_name = await existing_function(request)
    name = request.path_params["alias_name"]
    alias = await node.store.get_alias(function_name, name)
    if alias is None:
        raise ResourceNotFoundException(
            f"Alias not found: {node.settings.function_arn(function_name, name)}"
        )
    return node, alias


async def get_alias(request: Request) -> Response:
    """GetAlias: GET /2015-03-31/functions/{FunctionName}/aliases/{Name}."""
    node, alias = await _alias(request)
    return JSONResponse(shapes.alias_configuration(alias, node.settings))


async def update_alias(request: Request) -> Response:
    """UpdateAlias: PUT /2015-03-31/functions/{FunctionName}/aliases/{Name}."""
    node, alias = await _alias(request)
    body = await json_object(request, 64 * 1024, "UpdateAlias")
    version = alias.function_version
    if "FunctionVersion" in body:
        version = await _check_version(
            node, alias.function_name, body["FunctionVersion"], "functionVersion"
        )
    weights = await _routing(node, alias.function_name, body, version)
    if weights is None:
        weights = {v: w for v, w in alias.additional_version_weights.items() if v != version}
    updated = Alias(
        function_name=alias.function_name,
        name=alias.name,
        function_version=version,
        revision_id=str(uuid.uuid4()),
        description=require_string(body.get("Description", alias.description), "description", 256),
        additional_version_weights=weights,
    )
    await node.store.put_alias(updated, body.get("RevisionId") or alias.revision_id)
    return JSONResponse(shapes.alias_configuration(updated, node.settings))


async def delete_alias(request: Request) -> Response:
    """DeleteAlias: 204, whether or not the alias existed, as AWS answers. As on AWS, the
    alias's function URL and resource-policy statements go with it (a new alias of the same
    name starts without them)."""
    node, function_name = await existing_function(request)
    name = request.path_params["alias_name"]
    await node.store.delete_alias(function_name, name)
    if ALIAS_NAME.fullmatch(name):  # never $LATEST's or a version's
        await forget_function_url(node, function_name, name)
        await node.put_setting(function_name, POLICY + name, None)
    return Response(status_code=204)


async def list_aliases(request: Request) -> Response:
    """ListAliases: GET /2015-03-31/functions/{FunctionName}/aliases."""
    node, function_name = await existing_function(request)
    aliases = await node.store.list_aliases(function_name)
    version = request.query_params.get("FunctionVersion")
    if version:
        aliases = [
            a for a in aliases if version in (a.function_version, *a.additional_version_weights)
        ]
    return JSONResponse(
        {"Aliases": [shapes.alias_configuration(a, node.settings) for a in aliases]}
    )
