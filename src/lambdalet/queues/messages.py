"""Messages as SQS sees them: the checks on what is sent, the MD5 digests AWS computes, and a
received message in the shape ReceiveMessage answers with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Callable, Iterable
from typing import Any

from lambdalet.errors import (
    InvalidMessageContents,
    QueueInvalidParameterValue,
    QueueMissingParameter,
)
from lambdalet.queues.models import QueueMessage

MAX_MESSAGE_ATTRIBUTES = 10
# The characters SQS allows in a body: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD |
# #x10000 to #x10FFFF.
_INVALID_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "DeadLetterQueueSourceArn",
)


def md5_of_body(body: str) -> str:
    """MD5OfMessageBody: the hex MD5 of the body's UTF-8 bytes."""
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """MD5OfMessageAttributes as AWS computes it: over each attribute, by name, its
    length-prefixed name, data type, a transport byte (1 string, 2 binary) and value."""
    digest = hashlib.md5(usedforsecurity=False)

    def prefixed(data: bytes) -> None:
        digest.update(struct.pack(">I", len(data)))
        digest.update(data)

    for name in sorted(attributes):
        attribute = attributes[name]
        prefixed(name.encode("utf-8"))
        prefixed(str(attribute["DataType"]).encode("utf-8"))
        if "StringValue" in attribute:
            digest.update(b"\x01")
            prefixed(str(attribute["StringValue"]).encode("utf-8"))
        else:
            digest.update(b"\x02")
            prefixed(base64.b64decode(attribute.get("BinaryValue", "")))
    return digest.hexdigest()


def check_body(body: Any) -> str:
    """The body, if SQS would accept it."""
    if not isinstance(body, str) or not body:
        raise QueueMissingParameter("The request must contain the parameter MessageBody.")
    bad = _INVALID_CHARACTER.search(body)
    if bad is not None:
        raise InvalidMessageContents(
            f"Invalid binary character '#x{ord(bad.group()):X}' was found in the message body,"
            " the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to"
            " #xFFFD | #x10000 to #x10FFFF"
        )
    return body


def check_attributes(attributes: Any) -> dict[str, dict[str, Any]]:
    """Message attributes in their stored form, if SQS would accept them."""
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise QueueInvalidParameterValue("MessageAttributes must be a map")
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise QueueInvalidParameterValue(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum"
            f" [{MAX_MESSAGE_ATTRIBUTES}]."
        )
    checked: dict[str, dict[str, Any]] = {}
    for name, attribute in attributes.items():
        checked[name] = _check_attribute(name, attribute)
    return checked


def _check_attribute(name: str, attribute: Any) -> dict[str, Any]:
    lowered = name.lower()
    if (
        not _ATTRIBUTE_NAME.match(name)
        or lowered.startswith(("aws.", "amazon."))
        or name.startswith(".")
        or name.endswith(".")
        or ".." in name
    ):
        raise QueueInvalidParameterValue(
            f"Message (user) attribute name '{name}' is invalid: use up to 256 letters, digits,"
            " '_', '-' and '.', without a leading, trailing or doubled '.', and not starting"
            " with 'AWS.' or 'Amazon.'."
        )
    if not isinstance(attribute, dict):
        raise QueueInvalidParameterValue(f"Message (user) attribute '{name}' must be a map")
    data_type = attribute.get("DataType")
    base = data_type.split(".", 1)[0] if isinstance(data_type, str) else None
    if base not in ("String", "Number", "Binary") or len(str(data_type)) > 256:
        raise QueueInvalidParameterValue(
            f"The type of message (user) attribute '{name}' is invalid. You must use only the"
            " following supported type prefixes: Binary, Number, String."
        )
    if base == "Binary":
        value = attribute.get("BinaryValue")
        try:
            decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise QueueInvalidParameterValue(
                f"Message (user) attribute '{name}' must contain a non-empty value of type"
                " 'Binary'."
            )
        return {"DataType": data_type, "BinaryValue": value}
    value = attribute.get("StringValue")
    if not isinstance(value, str) or not value:
        raise QueueInvalidParameterValue(
            f"Message (user) attribute '{name}' must contain a non-empty value of type '{base}'."
        )
    if base == "Number" and not _NUMBER.match(value.strip()):
        raise QueueInvalidParameterValue(
            f"Can't cast the value of message (user) attribute '{name}' to a number."
        )
    if base == "String":
        check_body(value)
    return {"DataType": data_type, "StringValue": value}


def size_bytes(body: str, attributes: dict[str, dict[str, Any]]) -> int:
    """A message's size as SQS counts it: body, and each attribute's name, type and value."""
    total = len(body.encode("utf-8"))
    for name, attribute in attributes.items():
        total += len(name.encode("utf-8")) + len(str(attribute["DataType"]).encode("utf-8"))
        if "StringValue" in attribute:
            total += len(str(attribute["StringValue"]).encode("utf-8"))
        else:
            total += len(base64.b64decode(attribute["BinaryValue"]))
    return total


def wanted_system_attributes(names: Iterable[str]) -> set[str]:
    """The system attributes a receive asks for (``All`` is every one lambdalet keeps)."""
    wanted = set(names)
    return set(SYSTEM_ATTRIBUTES) if "All" in wanted else wanted & set(SYSTEM_ATTRIBUTES)


def select_attributes(
    attributes: dict[str, dict[str, Any]], names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The message attributes a receive asks for: ``All``, ``.*``, ``prefix.*`` or names."""
    patterns = list(names)
    if "All" in patterns or ".*" in patterns:
        return dict(attributes)
    chosen: dict[str, dict[str, Any]] = {}
    for name, attribute in attributes.items():
        for pattern in patterns:
            if name == pattern or (
                pattern.endswith(".*") and name.startswith(pattern.removesuffix("*"))
            ):
                chosen[name] = attribute
                break
    return chosen


def received_shape(
    message: QueueMessage,
    *,
    sender_id: str,
    queue_arn: Callable[[str], str],
    system_attribute_names: Iterable[str] = (),
    message_attribute_names: Iterable[str] = (),
) -> dict[str, Any]:
    """One entry of ReceiveMessage's ``Messages``, as AWS sends it (``queue_arn`` makes a
    queue's ARN from its name)."""
    shape: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": md5_of_body(message.body),
        "Body": message.body,
    }
    values = {
        "SenderId": sender_id,
        "SentTimestamp": str(message.sent_unix_ms),
        "ApproximateReceiveCount": str(message.receive_count),
        "ApproximateFirstReceiveTimestamp": str(message.first_receive_unix_ms or 0),
        "DeadLetterQueueSourceArn": (
            queue_arn(message.dead_letter_source_queue)
            if message.dead_letter_source_queue
            else None
        ),
    }
    wanted = wanted_system_attributes(system_attribute_names)
    system = {name: value for name, value in values.items() if name in wanted and value}
    if system:
        shape["Attributes"] = system
    chosen = select_attributes(message.message_attributes, message_attribute_names)
    if chosen:
        shape["MessageAttributes"] = chosen
        shape["MD5OfMessageAttributes"] = md5_of_attributes(chosen)
    return shape
