"""Event source mappings: Create/Get/Update/Delete/ListEventSourceMappings (rest-json,
``/2015-03-31/event-source-mappings``), from lambdalet's SQS queues to functions.

Create, Update and Delete answer 202 with the mapping in its transitional state (Creating,
Enabling, Updating, Disabling, Deleting), as AWS does; the node's pollers then settle it
(Enabled, Disabled, or gone). What each field accepts is in :mod:`lambdalet.triggers.mappings`,
how messages are delivered in :mod:`lambdalet.triggers.pollers`. Tags are accepted and ignored.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lambdalet.api.requests import json_object, node_of, page_after
from lambdalet.errors import (
    InvalidParameterValueException,
    QueueDoesNotExist,
    ResourceConflictException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from lambdalet.models import now_ms
from lambdalet.node import Node
from lambdalet.triggers import mappings
from lambdalet.triggers.mappings import CREATING, DELETING, KIND, EventSourceMapping

_BODY_LIMIT_BYTES = 256 * 1024
MAX_LIST_ITEMS = 10_000


def _shape(node: Node, mapping: EventSourceMapping) -> dict[str, Any]:
    return mapping.to_shape(node.settings.region, node.settings.account_id)


async def _stored(node: Node, mapping_uuid: str) -> EventSourceMapping:
    record = await node.store.get_resource(KIND, mapping_uuid)
    if record is None:
        raise ResourceNotFoundException("The resource you requested does not exist.")
    return EventSourceMapping.from_record(record)


async def _function(node: Node, value: Any) -> tuple[str, str | None]:
    """The (name, qualifier) a FunctionName names, which must exist."""
    name, qualifier = mappings.function_reference(value)
    try:
        await node.function(name, qualifier)
    except ResourceNotFoundException:
        raise InvalidParameterValueException(
            f"Function does not exist: {node.settings.function_arn(name, qualifier)}"
        ) from None
    return name, qualifier


async def _queue(node: Node, arn: Any) -> str:
    """The EventSourceArn, which must be the ARN of an existing queue of this node."""
    name = mappings.queue_reference(arn, node.settings.region, node.settings.account_id)
    try:
        await node.queues.queue(name)
    except QueueDoesNotExist:
        raise InvalidParameterValueException(
            "Error occurred while ReceiveMessage. SQS Error Code:"
            " AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue"
            f" {arn} does not exist; create it first (sqs CreateQueue)"
        ) from None
    return str(arn)


async def _check_visibility_timeout(node: Node, mapping: EventSourceMapping) -> None:
    """AWS refuses a queue whose messages would reappear while the function still runs."""
    queue = await node.queues.queue(mapping.queue_name)
    config = await node.function(mapping.function_name, mapping.qualifier)
    if queue.visibility_timeout_s < config.timeout_s:
        raise InvalidParameterValueException(
            f"Queue visibility timeout: {queue.visibility_timeout_s} seconds is less than"
            f" Function timeout: {config.timeout_s} seconds"
        )


async def _check_conflict(node: Node, mapping: EventSourceMapping) -> None:
    for key, record in await node.store.list_resources(KIND):
        other = EventSourceMapping.from_record(record)
        if (
            key != mapping.uuid
            and other.event_source_arn == mapping.event_source_arn
            and mappings.same_function(other, mapping.function_name, mapping.qualifier)
        ):
            raise ResourceConflictException(
                f'An event source mapping with SQS arn (" {mapping.event_source_arn} ") and'
                f' function (" {mapping.function_name} ") already exists. Please update or'
                f" delete the existing mapping with UUID {key}"
            )


async def create_event_source_mapping(request: Request) -> Response:
    """CreateEventSourceMapping: POST /2015-03-31/event-source-mappings."""
    node = node_of(request)
    body = await json_object(request, _BODY_LIMIT_BYTES, "CreateEventSourceMapping")
    name, qualifier = await _function(node, body.get("FunctionName"))
    arn = await _queue(node, body.get("EventSourceArn"))
    at = now_ms()
    blank = EventSourceMapping(
        uuid=str(uuid.uuid4()),
        event_source_arn=arn,
        function_name=name,
        qualifier=qualifier,
        last_modified_ms=at,
        state=CREATING,
    )
    mapping = mappings.apply_changes(blank, body, at_ms=at)
    await _check_visibility_timeout(node, mapping)
    pollers = node.mapping_pollers
    async with pollers.write_lock:
        await _check_conflict(node, mapping)
        await node.store.insert_resource(KIND, mapping.uuid, mapping.to_record())
    pollers.changed(mapping.uuid)
    return JSONResponse(_shape(node, mapping), status_code=202)


async def get_event_source_mapping(request: Request) -> Response:
    """GetEventSourceMapping: GET /2015-03-31/event-source-mappings/{UUID}."""
    node = node_of(request)
    mapping = await _stored(node, request.path_params["uuid"])
    return JSONResponse(_shape(node, mapping))


async def update_event_source_mapping(request: Request) -> Response:
    """UpdateEventSourceMapping: PUT /2015-03-31/event-source-mappings/{UUID}."""
    node = node_of(request)
    mapping_uuid = request.path_params["uuid"]
    body = await json_object(request, _BODY_LIMIT_BYTES, "UpdateEventSourceMapping")
    target = None
    if body.get("FunctionName") is not None:
        target = await _function(node, body["FunctionName"])
    pollers = node.mapping_pollers
    async with pollers.write_lock:
        before = await _stored(node, mapping_uuid)
        if before.state == DELETING:
            raise ResourceInUseException(
                f"The event source mapping {mapping_uuid} is being deleted and cannot be updated"
            )
        after = mappings.apply_changes(before, body, at_ms=now_ms())
        if target is not None:
            after = replace(after, function_name=target[0], qualifier=target[1])
            await _check_visibility_timeout(node, after)
            await _check_conflict(node, after)
        after = replace(after, state=mappings.new_state(before, after))
        await node.store.replace_resource(KIND, mapping_uuid, after.to_record())
    pollers.changed(mapping_uuid)
    return JSONResponse(_shape(node, after), status_code=202)


async def delete_event_source_mapping(request: Request) -> Response:
    """DeleteEventSourceMapping: DELETE /2015-03-31/event-source-mappings/{UUID}."""
    node = node_of(request)
    mapping_uuid = request.path_params["uuid"]
    pollers = node.mapping_pollers
    async with pollers.write_lock:
        before = await _stored(node, mapping_uuid)
        after = replace(before, state=DELETING, last_modified_ms=now_ms())
        await node.store.replace_resource(KIND, mapping_uuid, after.to_record())
    pollers.changed(mapping_uuid)
    return JSONResponse(_shape(node, after), status_code=202)


async def list_event_source_mappings(request: Request) -> Response:
    """ListEventSourceMappings: GET /2015-03-31/event-source-mappings, filtered by
    EventSourceArn and FunctionName (a name alone lists its mappings on every qualifier)."""
    node = node_of(request)
    found = [
        EventSourceMapping.from_record(record)
        for _, record in await node.store.list_resources(KIND)
    ]
    source_arn = request.query_params.get("EventSourceArn")
    if source_arn:
        found = [mapping for mapping in found if mapping.event_source_arn == source_arn]
    function_name = request.query_params.get("FunctionName")
    if function_name:
        name, qualifier = mappings.function_reference(function_name)
        found = [
            mapping
            for mapping in found
            if mapping.function_name == name
            and (qualifier is None or mappings.same_function(mapping, name, qualifier))
        ]
    page, marker = page_after(request, found, lambda mapping: mapping.uuid, MAX_LIST_ITEMS)
    result: dict[str, Any] = {"EventSourceMappings": [_shape(node, m) for m in page]}
    if marker is not None:
        result["NextMarker"] = marker
    return JSONResponse(result)
