"""SNS's AWS query protocol, as botocore speaks it: ``POST /`` with a form-encoded body
``Action=<Operation>&Version=2010-03-31&...``, answered in XML.

Request members follow botocore's query serializer: lists as ``Name.member.N``, maps as
``Name.entry.N.key`` / ``Name.entry.N.value`` (message attributes as ``.Name`` and
``.Value.DataType`` / ``.Value.StringValue`` / ``.Value.BinaryValue``). Responses are
``<{Action}Response><{Action}Result>...</{Action}Result><ResponseMetadata>`` documents and
errors ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`` with the HTTP
status of the error in SNS's service model.
"""

from __future__ import annotations

import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response

from lambdalet.api.requests import node_of, read_body
from lambdalet.errors import AwsError, TopicInvalidAction, TopicInvalidParameter
from lambdalet.topics.service import TopicService

log = logging.getLogger(__name__)

XML_NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
CONTENT_TYPE = "text/xml"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Ten 256 KiB messages, form-encoded (which can triple their size), and their attributes.
MAX_REQUEST_BYTES = 8 * 1024 * 1024

Tree = dict[str, Any]
Operation = Callable[[TopicService, Tree], Awaitable[dict[str, Any] | None]]


class Entries(dict[str, str]):
    """A string map serialized as ``<entry><key/><value/></entry>`` elements."""


def parse_form(body: bytes) -> Tree:
    """A form-encoded query request as a tree: ``A.entry.1.key=x`` is ``{"A": {"entry":
    {"1": {"key": "x"}}}}``."""
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeError, ValueError):
        raise TopicInvalidParameter("The request body is not a UTF-8 form") from None
    root: Tree = {}
    for key, value in pairs:
        node = root
        *path, last = key.split(".")
        for part in path:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(last), dict):
            node[last] = value
    return root


def _indexed(node: Any, wrapper: str) -> list[Any]:
    """The items of a ``wrapper.N`` list (``member`` or ``entry``), in index order."""
    items = node.get(wrapper) if isinstance(node, dict) else None
    if not isinstance(items, dict):
        return []
    ordered = sorted((int(index), item) for index, item in items.items() if index.isdigit())
    return [item for _, item in ordered]


def _string(params: Tree, name: str, *, required: bool = True) -> Any:
    value = params.get(name)
    if required and (not isinstance(value, str) or not value):
        raise TopicInvalidParameter(
            f"Invalid parameter: {name} Reason: no value for required parameter"
        )
    return value if isinstance(value, str) else None


def _string_map(node: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in _indexed(node, "entry"):
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            found[entry["key"]] = value if isinstance(value, str) else ""
    return found


def _message_attributes(node: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for entry in _indexed(node, "entry"):
        if isinstance(entry, dict) and isinstance(entry.get("Name"), str):
            value = entry.get("Value")
            found[entry["Name"]] = value if isinstance(value, dict) else {}
    return found


def _tags(node: Any) -> dict[str, str]:
    return {
        member["Key"]: member.get("Value", "")
        for member in _indexed(node, "member")
        if isinstance(member, dict) and isinstance(member.get("Key"), str)
    }


def _with_token(key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {key: items}
    if token:
        result["NextToken"] = token
    return result


async def create_topic(topics: TopicService, params: Tree) -> dict[str, Any]:
    """CreateTopic."""
    arn = await topics.create_topic(
        _string(params, "Name"),
        _string_map(params.get("Attributes")),
        _tags(params.get("Tags")),
    )
    return {"TopicArn": arn}


async def list_topics(topics: TopicService, params: Tree) -> dict[str, Any]:
    """ListTopics."""
    arns, token = await topics.list_topics(_string(params, "NextToken", required=False))
    return _with_token("Topics", [{"TopicArn": arn} for arn in arns], token)


async def get_topic_attributes(topics: TopicService, params: Tree) -> dict[str, Any]:
    """GetTopicAttributes."""
    attributes = await topics.get_topic_attributes(_string(params, "TopicArn"))
    return {"Attributes": Entries(attributes)}


async def set_topic_attributes(topics: TopicService, params: Tree) -> None:
    """SetTopicAttributes."""
    await topics.set_topic_attribute(
        _string(params, "TopicArn"),
        _string(params, "AttributeName"),
        _string(params, "AttributeValue", required=False),
    )


async def delete_topic(topics: TopicService, params: Tree) -> None:
    """DeleteTopic."""
    await topics.delete_topic(_string(params, "TopicArn"))


async def subscribe(topics: TopicService, params: Tree) -> dict[str, Any]:
    """Subscribe (every subscription is confirmed at once, so its ARN is always returned)."""
    arn = await topics.subscribe(
        _string(params, "TopicArn"),
        _string(params, "Protocol"),
        _string(params, "Endpoint"),
        _string_map(params.get("Attributes")),
    )
    return {"SubscriptionArn": arn}


async def unsubscribe(topics: TopicService, params: Tree) -> None:
    """Unsubscribe."""
    await topics.unsubscribe(_string(params, "SubscriptionArn"))


async def list_subscriptions(topics: TopicService, params: Tree) -> dict[str, Any]:
    """ListSubscriptions."""
    found, token = await topics.list_subscriptions(
        None, _string(params, "NextToken", required=False)
    )
    return _with_token("Subscriptions", found, token)


async def list_subscriptions_by_topic(topics: TopicService, params: Tree) -> dict[str, Any]:
    """ListSubscriptionsByTopic."""
    found, token = await topics.list_subscriptions(
        _string(params, "TopicArn"), _string(params, "NextToken", required=False)
    )
    return _with_token("Subscriptions", found, token)


async def get_subscription_attributes(topics: TopicService, params: Tree) -> dict[str, Any]:
    """GetSubscriptionAttributes."""
    attributes = await topics.get_subscription_attributes(_string(params, "SubscriptionArn"))
    return {"Attributes": Entries(attributes)}


async def set_subscription_attributes(topics: TopicService, params: Tree) -> None:
    """SetSubscriptionAttributes."""
    await topics.set_subscription_attribute(
        _string(params, "SubscriptionArn"),
        _string(params, "AttributeName"),
        _string(params, "AttributeValue", required=False),
    )


def _topic_of(params: Tree) -> str:
    topic_arn = _string(params, "TopicArn", required=False)
    target_arn = _string(params, "TargetArn", required=False)
    if params.get("PhoneNumber"):
        raise TopicInvalidParameter(
            "Invalid parameter: PhoneNumber Reason: lambdalet publishes to topics only"
        )
    if topic_arn and target_arn and topic_arn != target_arn:
        raise TopicInvalidParameter(
            "Invalid parameter: TargetArn Reason: Only one of TargetArn or TopicArn may be given"
        )
    arn: str | None = topic_arn or target_arn
    if not arn:
        raise TopicInvalidParameter(
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter"
        )
    return arn


async def publish(topics: TopicService, params: Tree) -> dict[str, Any]:
    """Publish."""
    message_id = await topics.publish(
        _topic_of(params),
        params.get("Message"),
        subject=params.get("Subject"),
        message_attributes=_message_attributes(params.get("MessageAttributes")),
        message_structure=params.get("MessageStructure"),
    )
    return {"MessageId": message_id}


async def publish_batch(topics: TopicService, params: Tree) -> dict[str, Any]:
    """PublishBatch."""
    entries = []
    for member in _indexed(params.get("PublishBatchRequestEntries"), "member"):
        if not isinstance(member, dict):
            member = {}
        entries.append(
            {
                **{key: value for key, value in member.items() if isinstance(value, str)},
                "MessageAttributes": _message_attributes(member.get("MessageAttributes")),
            }
        )
    successful, failed = await topics.publish_batch(_string(params, "TopicArn"), entries)
    return {
        "Successful": successful,
        "Failed": [{**entry, "SenderFault": "true"} for entry in failed],
    }


OPERATIONS: dict[str, Operation] = {
    "CreateTopic": create_topic,
    "ListTopics": list_topics,
    "GetTopicAttributes": get_topic_attributes,
    "SetTopicAttributes": set_topic_attributes,
    "DeleteTopic": delete_topic,
    "Subscribe": subscribe,
    "Unsubscribe": unsubscribe,
    "ListSubscriptions": list_subscriptions,
    "ListSubscriptionsByTopic": list_subscriptions_by_topic,
    "GetSubscriptionAttributes": get_subscription_attributes,
    "SetSubscriptionAttributes": set_subscription_attributes,
    "Publish": publish,
    "PublishBatch": publish_batch,
}


def to_xml(value: Any) -> str:
    """The XML content of a result value: strings, structures, member lists, entry maps."""
    if isinstance(value, Entries):
        return "".join(
            f"<entry><key>{escape(key)}</key><value>{escape(item)}</value></entry>"
            for key, item in value.items()
        )
    if isinstance(value, dict):
        return "".join(f"<{key}>{to_xml(item)}</{key}>" for key, item in value.items())
    if isinstance(value, list):
        return "".join(f"<member>{to_xml(item)}</member>" for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def success_response(action: str, result: dict[str, Any] | None, request_id: str) -> Response:
    """An action's XML response."""
    inner = f"<{action}Result>{to_xml(result)}</{action}Result>" if result is not None else ""
    text = (
        f'<{action}Response xmlns="{XML_NAMESPACE}">{inner}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )
    return Response(text, media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id})


def error_response(code: str, message: str, status: int, request_id: str) -> Response:
    """An error in SNS's XML shape."""
    fault = "Receiver" if status >= 500 else "Sender"
    text = (
        f'<ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(
        text, status_code=status, media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
    )


def is_query_request(request: Request) -> bool:
    """Whether a ``POST /`` is a form-encoded query-protocol request (not AWS JSON)."""
    content_type = request.headers.get("content-type", "")
    return (
        "x-amz-target" not in request.headers
        and content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE
    )


async def handle(request: Request) -> Response:
    """Answer one SNS request."""
    request_id = str(uuid.uuid4())
    action = "?"
    try:
        body = await read_body(request, MAX_REQUEST_BYTES, "SNS")
        params = parse_form(body)
        action = str(params.get("Action") or "")
        if not action:
            raise TopicInvalidParameter("Invalid parameter: Action Reason: missing")
        operation = OPERATIONS.get(action)
        if operation is None:
            raise TopicInvalidAction(
                f"lambdalet does not implement the action {action} of the query protocol"
                " (SNS: topics, subscriptions and publishing; SQS is served over AWS JSON)"
            )
        result = await operation(node_of(request).topics, params)
    except AwsError as error:
        return error_response(error.code, error.message, error.status, request_id)
    except Exception:
        log.exception("SNS request %s (%s) failed", request_id, action)
        return error_response(
            "InternalError",
            f"lambdalet failed to handle the request (request id {request_id})",
            500,
            request_id,
        )
    return success_response(action, result, request_id)
