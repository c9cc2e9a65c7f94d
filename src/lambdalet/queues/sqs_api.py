"""SQS's AWS JSON protocol, as current botocore speaks it: ``POST /`` with
``X-Amz-Target: AmazonSQS.<Operation>`` and an ``application/x-amz-json-1.0`` body.

Errors are answered as SQS answers them: a JSON body ``{"__type": "com.amazonaws.sqs#<Shape>",
"message": ...}`` (boto3 picks its exception class by the shape) and the
``x-amzn-query-error: <legacy code>;Sender`` header (boto3 reports that code as
``Error.Code``, as it does against AWS). The legacy query protocol (form-encoded ``Action=``
requests of old SDKs) is not served.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from lambdalet.api.requests import node_of, parse_json, read_body
from lambdalet.errors import (
    AwsError,
    InvalidRequestContentException,
    QueueError,
    QueueInvalidParameterValue,
    QueueMissingParameter,
    UnsupportedOperation,
)
from lambdalet.queues.messages import md5_of_attributes, md5_of_body, received_shape
from lambdalet.queues.service import QueueService
from lambdalet.sigv4 import SQS_TARGET_PREFIX

log = logging.getLogger(__name__)

TARGET_PREFIX = SQS_TARGET_PREFIX
CONTENT_TYPE = "application/x-amz-json-1.0"
# A batch of ten 256 KiB messages is refused by size later, with SQS's own error.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

Operation = Callable[[QueueService, dict[str, Any]], Awaitable[dict[str, Any]]]


def _string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise QueueMissingParameter(f"The request must contain the parameter {name}.")
    return value


def _integer(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise QueueInvalidParameterValue(
        f"Value {value} for parameter {name} is invalid. Reason: must be an integer."
    )


def _strings(params: dict[str, Any], name: str) -> list[str]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise QueueInvalidParameterValue(f"{name} must be a list of strings.")
    return value


def _string_map(params: dict[str, Any], name: str) -> dict[str, str]:
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise QueueInvalidParameterValue(f"{name} must be a map of strings.")
    return value


def _entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    value = params.get("Entries")
    return value if isinstance(value, list) else []


async def create_queue(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """CreateQueue."""
    url = await queues.create_queue(_string(params, "QueueName"), _string_map(params, "Attributes"))
    return {"QueueUrl": url}


async def get_queue_url(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """GetQueueUrl."""
    return {"QueueUrl": await queues.get_queue_url(_string(params, "QueueName"))}


async def list_queues(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """ListQueues."""
    prefix = params.get("QueueNamePrefix") or ""
    if not isinstance(prefix, str):
        raise QueueInvalidParameterValue("QueueNamePrefix must be a string.")
    urls, token = await queues.list_queues(
        prefix, _integer(params, "MaxResults"), params.get("NextToken")
    )
    result: dict[str, Any] = {}
    if urls:
        result["QueueUrls"] = urls
    if token:
        result["NextToken"] = token
    return result


async def delete_queue(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteQueue."""
    await queues.delete_queue(_string(params, "QueueUrl"))
    return {}


async def purge_queue(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """PurgeQueue."""
    await queues.purge_queue(_string(params, "QueueUrl"))
    return {}


async def get_queue_attributes(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """GetQueueAttributes."""
    attributes = await queues.get_queue_attributes(
        _string(params, "QueueUrl"), _strings(params, "AttributeNames")
    )
    return {"Attributes": attributes} if attributes else {}


async def set_queue_attributes(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """SetQueueAttributes."""
    await queues.set_queue_attributes(
        _string(params, "QueueUrl"), _string_map(params, "Attributes")
    )
    return {}


async def send_message(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """SendMessage."""
    message = await queues.send_message(
        _string(params, "QueueUrl"),
        params.get("MessageBody", ""),
        delay_s=_integer(params, "DelaySeconds"),
        message_attributes=params.get("MessageAttributes"),
    )
    result = {
        "MessageId": message.message_id,
        "MD5OfMessageBody": md5_of_body(message.body),
    }
    if message.message_attributes:
        result["MD5OfMessageAttributes"] = md5_of_attributes(message.message_attributes)
    return result


async def send_message_batch(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """SendMessageBatch."""
    successful, failed = await queues.send_message_batch(
        _string(params, "QueueUrl"), _entries(params)
    )
    return {"Successful": successful, "Failed": failed}


async def receive_message(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage."""
    max_count = _integer(params, "MaxNumberOfMessages")
    messages = await queues.receive_messages(
        _string(params, "QueueUrl"),
        max_count=1 if max_count is None else max_count,
        visibility_timeout_s=_integer(params, "VisibilityTimeout"),
        wait_time_s=_integer(params, "WaitTimeSeconds"),
    )
    if not messages:
        return {}
    system_names = _strings(params, "MessageSystemAttributeNames")
    system_names += _strings(params, "AttributeNames")
    attribute_names = _strings(params, "MessageAttributeNames")
    return {
        "Messages": [
            received_shape(
                message,
                sender_id=queues.settings.account_id,
                queue_arn=queues.queue_arn,
                system_attribute_names=system_names,
                message_attribute_names=attribute_names,
            )
            for message in messages
        ]
    }


async def delete_message(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteMessage."""
    await queues.delete_message(_string(params, "QueueUrl"), _string(params, "ReceiptHandle"))
    return {}


async def delete_message_batch(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteMessageBatch."""
    successful, failed = await queues.delete_message_batch(
        _string(params, "QueueUrl"), _entries(params)
    )
    return {"Successful": successful, "Failed": failed}


async def change_message_visibility(queues: QueueService, params: dict[str, Any]) -> dict[str, Any]:
    """ChangeMessageVisibility."""
    timeout_s = _integer(params, "VisibilityTimeout")
    if timeout_s is None:
        raise QueueMissingParameter("The request must contain the parameter VisibilityTimeout.")
    await queues.change_message_visibility(
        _string(params, "QueueUrl"), _string(params, "ReceiptHandle"), timeout_s
    )
    return {}


async def change_message_visibility_batch(
    queues: QueueService, params: dict[str, Any]
) -> dict[str, Any]:
    """ChangeMessageVisibilityBatch."""
    successful, failed = await queues.change_message_visibility_batch(
        _string(params, "QueueUrl"), _entries(params)
    )
    return {"Successful": successful, "Failed": failed}


OPERATIONS: dict[str, Operation] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "DeleteQueue": delete_queue,
    "PurgeQueue": purge_queue,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
}


def error_response(error: AwsError, request_id: str) -> Response:
    """An error in SQS's JSON shape, with the header that carries its legacy code."""
    if isinstance(error, QueueError):
        body, query_error = error.body(), error.query_error
    else:
        fault = "Receiver" if error.status >= 500 else "Sender"
        body, query_error = (
            {"__type": error.code, "message": error.message},
            f"{error.query_protocol_code()};{fault}",
        )
    return Response(
        json.dumps(body),
        status_code=error.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-query-error": query_error},
    )


async def handle(request: Request) -> Response:
    """Answer one SQS request."""
    request_id = str(uuid.uuid4())
    name = request.headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX)
    try:
        operation = OPERATIONS.get(name)
        if operation is None:
            raise UnsupportedOperation(f"lambdalet does not implement the SQS operation {name}")
        body = await read_body(request, MAX_REQUEST_BYTES, name)
        params = await parse_json(body) if body.strip() else {}
        if not isinstance(params, dict):
            raise InvalidRequestContentException("The request body must be a JSON object")
        result = await operation(node_of(request).queues, params)
    except AwsError as error:
        return error_response(error, request_id)
    except Exception:
        log.exception("SQS request %s (%s) failed", request_id, name)
        return Response(
            json.dumps(
                {
                    "__type": "com.amazon.coral.service#InternalFailure",
                    "message": f"lambdalet failed to handle the request (request id {request_id})",
                }
            ),
            status_code=500,
            media_type=CONTENT_TYPE,
            headers={
                "x-amzn-RequestId": request_id,
                "x-amzn-query-error": "InternalFailure;Receiver",
            },
        )
    return Response(
        json.dumps(result), media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
    )
