"""TagResource, UntagResource and ListTags: ``/2017-03-31/tags/{ARN}``, on functions.

A function's tags are kept with its $LATEST configuration and returned by GetFunction; a
published version keeps the tags it was published with. Changing them does not change the
function's RevisionId (as on AWS), but retires its warm sandboxes: a tag such as
``lambdalet:network=none`` is read when a sandbox starts. The limits are AWS's: at most 50
tags, keys of 1 to 128 characters that do not start with ``aws:``, values of up to 256.
lambdalet tags functions only (AWS also tags event source mappings and code signing configs).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import json_object, node_of
from lambdalet.errors import InvalidParameterValueException, ValidationException
from lambdalet.models import LATEST, FunctionConfig
from lambdalet.node import Node

PATH = "/2017-03-31/tags/{arn:path}"
MAX_TAGS = 50


def check_tags(tags: Any) -> dict[str, str]:
    """Tags as AWS accepts them; InvalidParameterValueException or ValidationException if not."""
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise InvalidParameterValueException("Tags must map strings to strings")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256:
            raise ValidationException(
                f"Tag {key!r}: a key must be 1 to 128 characters and a value at most 256"
            )
        if key.lower().startswith("aws:"):
            raise InvalidParameterValueException(
                f"Tag {key!r}: keys starting with 'aws:' are reserved for AWS"
            )
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValueException(
            f"A function can have at most {MAX_TAGS} tags; this would give it {len(tags)}"
        )
    return dict(tags)


async def _tagged(request: Request) -> tuple[Node, FunctionConfig]:
    """The node and the $LATEST of the function the path's ARN names."""
    node = node_of(request)
    arn: str = request.path_params["arn"]
    parts = arn.split(":")
    if not arn.startswith("arn:") or len(parts) not in (7, 8) or parts[5] != "function":
        raise ValidationException(
            f"1 validation error detected: Value '{arn}' at 'resource' failed to satisfy"
            " constraint: Member must be a function ARN"
            " (arn:aws:lambda:<region>:<account id>:function:<name>)"
        )
    if len(parts) == 8:
        raise InvalidParameterValueException(
            "Tags on function aliases and versions are not supported."
            " Please specify a function ARN."
        )
    return node, await node.function(parts[6])


async def _retag(node: Node, latest: FunctionConfig, tags: dict[str, str]) -> None:
    await node.store.update_function(latest.evolve(tags=tags), latest.revision_id)
    await node.retire(latest.name, LATEST)


async def tag_resource(request: Request) -> Response:
    """TagResource: POST /2017-03-31/tags/{ARN}."""
    node, latest = await _tagged(request)
    body = await json_object(request, 64 * 1024, "TagResource")
    if "Tags" not in body:
        raise ValidationException(
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint:"
            " Member must not be null"
        )
    added = check_tags(body["Tags"])
    await _retag(node, latest, check_tags({**latest.tags, **added}))
    return Response(status_code=204)


async def untag_resource(request: Request) -> Response:
    """UntagResource: DELETE /2017-03-31/tags/{ARN}?tagKeys=...&tagKeys=..."""
    node, latest = await _tagged(request)
    keys = set(request.query_params.getlist("tagKeys"))
    if not keys:
        raise ValidationException(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint:"
            " Member must not be null"
        )
    await _retag(node, latest, {k: v for k, v in latest.tags.items() if k not in keys})
    return Response(status_code=204)


async def list_tags(request: Request) -> Response:
    """ListTags: GET /2017-03-31/tags/{ARN}."""
    _, latest = await _tagged(request)
    return JSONResponse({"Tags": dict(latest.tags)})
