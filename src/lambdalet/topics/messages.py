"""Published messages: what SNS accepts, and the shapes it delivers them in.

A function gets AWS's SNS event (``{"Records": [{"EventSource": "aws:sns", ..., "Sns":
{...}}]}``, where the URLs are spelled ``SigningCertUrl`` / ``UnsubscribeUrl``); a queue gets
SNS's JSON envelope (``SigningCertURL`` / ``UnsubscribeURL``, no Subject key when there is
none), or with raw delivery the bare message with its attributes copied onto the SQS message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdalet.errors import TopicInvalidParameter, TopicInvalidParameterValue

MAX_MESSAGE_BYTES = 262_144
MAX_MESSAGE_ATTRIBUTES = 10
MAX_SUBJECT_CHARS = 100
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Message:
    """A message accepted for publishing."""

    text: str
    # MessageStructure json: the message for each protocol, and "default" for the others.
    per_protocol: dict[str, str] | None
    subject: str | None
    attributes: dict[str, dict[str, Any]]

    def text_for(self, protocol: str) -> str:
        """What a subscription of ``protocol`` receives as the message."""
        if self.per_protocol is None:
            return self.text
        return self.per_protocol.get(protocol, self.per_protocol["default"])


def timestamp() -> str:
    """Now, as SNS writes a notification's Timestamp."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_message_attributes(attributes: Any) -> dict[str, dict[str, Any]]:
    """Message attributes of a publish, if SNS would accept them."""
    if not attributes:
        return {}
    if not isinstance(attributes, dict):
        raise TopicInvalidParameterValue("MessageAttributes must be a map")
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise TopicInvalidParameterValue(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum"
            f" [{MAX_MESSAGE_ATTRIBUTES}]."
        )
    checked: dict[str, dict[str, Any]] = {}
    for name, attribute in attributes.items():
        if not isinstance(name, str) or not name or name.lower().startswith(("aws.", "amazon.")):
            raise TopicInvalidParameterValue(
                f"The message attribute name '{name}' is invalid: it must be 1 to 256 letters,"
                " digits, '_', '-' and '.', not starting with 'AWS.' or 'Amazon.'."
            )
        data_type = attribute.get("DataType") if isinstance(attribute, dict) else None
        if not isinstance(data_type, str) or data_type.split(".", 1)[0] not in (
            "String",
            "Number",
            "Binary",
        ):
            raise TopicInvalidParameterValue(
                f"The message attribute '{name}' has an invalid message attribute type, the set"
                " of supported type prefixes is Binary, Number, and String."
            )
        assert isinstance(attribute, dict)
        if data_type.startswith("Binary"):
            value = attribute.get("BinaryValue")
            try:
                decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
            except (binascii.Error, ValueError):
                decoded = b""
            if not decoded:
                raise TopicInvalidParameterValue(
                    f"The message attribute '{name}' with type 'Binary' must contain a"
                    " non-empty base64-encoded value."
                )
            checked[name] = {"DataType": data_type, "BinaryValue": value}
            continue
        text = attribute.get("StringValue")
        if not isinstance(text, str) or not text:
            raise TopicInvalidParameterValue(
                f"The message attribute '{name}' must contain non-empty message attribute"
                f" value for message attribute type '{data_type.split('.', 1)[0]}'."
            )
        if data_type.startswith("Number") and not _NUMBER.match(text.strip()):
            raise TopicInvalidParameterValue(
                f"Could not cast message attribute '{name}' value to number."
            )
        if data_type == "String.Array":
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if not isinstance(items, list):
                raise TopicInvalidParameterValue(
                    f"The message attribute '{name}' with type 'String.Array' must hold a JSON"
                    ' array, such as ["a", 1, true].'
                )
        checked[name] = {"DataType": data_type, "StringValue": text}
    return checked


def _attributes_size_bytes(attributes: dict[str, dict[str, Any]]) -> int:
    size = 0
    for name, attribute in attributes.items():
        value = attribute.get("StringValue") or attribute.get("BinaryValue") or ""
        size += len(name.encode()) + len(attribute["DataType"].encode()) + len(value.encode())
    return size


def _notification_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Message attributes as SNS's notifications show them: ``{name: {Type, Value}}``."""
    return {
        name: {
            "Type": attribute["DataType"],
            "Value": attribute.get("StringValue", attribute.get("BinaryValue")),
        }
        for name, attribute in attributes.items()
    }


def _queue_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Message attributes as a raw delivery puts them on an SQS message (SQS has no arrays)."""
    forwarded: dict[str, dict[str, Any]] = {}
    for name, attribute in attributes.items():
        data_type = "String" if attribute["DataType"] == "String.Array" else attribute["DataType"]
        forwarded[name] = {**attribute, "DataType": data_type}
    return forwarded


def check_message(message: Any, subject: Any, attributes: Any, structure: Any) -> Message:
    """A message to publish, if SNS would accept it (MessageStructure ``json`` included)."""
    if not isinstance(message, str) or not message:
        raise TopicInvalidParameter("Invalid parameter: Empty message")
    if subject is not None and (
        not isinstance(subject, str)
        or not subject
        or len(subject) > MAX_SUBJECT_CHARS
        or not all(" " <= c <= "~" for c in subject)
    ):
        raise TopicInvalidParameter(
            "Invalid parameter: Subject Reason: must be 1 to 100 printable ASCII"
            " characters, without line breaks"
        )
    checked = check_message_attributes(attributes)
    if len(message.encode()) + _attributes_size_bytes(checked) > MAX_MESSAGE_BYTES:
        raise TopicInvalidParameter(
            f"Invalid parameter: Message too long: at most {MAX_MESSAGE_BYTES} bytes, message"
            " and attributes together"
        )
    per_protocol = None
    if structure is not None:
        if structure != "json":
            raise TopicInvalidParameter(
                "Invalid parameter: MessageStructure Reason: the only value allowed is json"
            )
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise TopicInvalidParameter(
                "Invalid parameter: Message Structure - JSON message body failed to parse"
            )
        if not isinstance(parsed.get("default"), str):
            raise TopicInvalidParameter(
                "Invalid parameter: Message Structure - No default entry in JSON message body"
            )
        per_protocol = {str(k): v for k, v in parsed.items() if isinstance(v, str)}
    return Message(message, per_protocol, subject, checked)


def notification(
    *,
    message_id: str,
    topic_arn: str,
    subscription_arn: str,
    message: str,
    subject: str | None,
    attributes: dict[str, dict[str, Any]],
    at: str,
    base_url: str,
) -> dict[str, Any]:
    """The fields of SNS's notification, as its JSON envelope names them. Messages are not
    signed: ``Signature`` holds ``UNSIGNED``."""
    found: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic_arn,
        "Subject": subject,
        "Message": message,
        "Timestamp": at,
        "SignatureVersion": "1",
        "Signature": "UNSIGNED",
        "SigningCertURL": f"{base_url}/SimpleNotificationService-lambdalet.pem",
        "UnsubscribeURL": f"{base_url}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
    }
    if attributes:
        found["MessageAttributes"] = _notification_attributes(attributes)
    return found


def lambda_event(notification: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The event a subscribed function is invoked with."""
    sns = dict(notification)
    sns["SigningCertUrl"] = sns.pop("SigningCertURL")
    sns["UnsubscribeUrl"] = sns.pop("UnsubscribeURL")
    sns.setdefault("MessageAttributes", {})
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": sns,
            }
        ]
    }


def queue_message(
    notification: dict[str, Any], *, raw: bool, attributes: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, dict[str, Any]] | None]:
    """(body, message attributes) of the SQS message a subscribed queue gets."""
    if raw:
        return notification["Message"], _queue_attributes(attributes) or None
    envelope = dict(notification)
    if envelope["Subject"] is None:
        del envelope["Subject"]
    return json.dumps(envelope), None
