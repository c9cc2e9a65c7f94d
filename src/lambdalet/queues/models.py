"""Plain data of queues: a queue's settings and its messages, as the store keeps them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# The settable attributes with AWS's defaults; every stored queue has all of them.
DEFAULT_ATTRIBUTES = {
    "DelaySeconds": "0",
    "MaximumMessageSize": "262144",
    "MessageRetentionPeriod": "345600",
    "ReceiveMessageWaitTimeSeconds": "0",
    "VisibilityTimeout": "30",
}

_RECEIPT = re.compile(r"^([A-Za-z0-9_-]{1,80})/([0-9]{1,19})/([0-9a-f]{32})$")


@dataclass(frozen=True)
class RedrivePolicy:
    """Where messages go once they were received ``max_receive_count`` times."""

    dead_letter_target_arn: str
    max_receive_count: int

    @property
    def dead_letter_queue_name(self) -> str:
        """The dead-letter queue's name: the last part of its ARN."""
        return self.dead_letter_target_arn.rsplit(":", 1)[-1]

    def to_json(self) -> str:
        """The attribute value as GetQueueAttributes shows it."""
        return json.dumps(
            {
                "deadLetterTargetArn": self.dead_letter_target_arn,
                "maxReceiveCount": self.max_receive_count,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class Queue:
    """A standard queue: its name and settable attributes, as AWS spells them (strings)."""

    name: str
    attributes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ATTRIBUTES))
    created_unix_ms: int = 0
    last_modified_unix_ms: int = 0

    def _int(self, key: str) -> int:
        return int(self.attributes.get(key, DEFAULT_ATTRIBUTES[key]))

    @property
    def visibility_timeout_s(self) -> int:
        """How long a received message stays invisible unless the receiver says otherwise."""
        return self._int("VisibilityTimeout")

    @property
    def delay_s(self) -> int:
        """How long a sent message stays invisible unless the sender says otherwise."""
        return self._int("DelaySeconds")

    @property
    def retention_s(self) -> int:
        """How long a message is kept after it was sent."""
        return self._int("MessageRetentionPeriod")

    @property
    def receive_wait_s(self) -> int:
        """How long a ReceiveMessage without WaitTimeSeconds waits for a message."""
        return self._int("ReceiveMessageWaitTimeSeconds")

    @property
    def maximum_message_size_bytes(self) -> int:
        """The largest message (body and attributes) the queue accepts."""
        return self._int("MaximumMessageSize")

    @property
    def redrive(self) -> RedrivePolicy | None:
        """The dead-letter policy, if the queue has one."""
        text = self.attributes.get("RedrivePolicy")
        if not text:
            return None
        value = json.loads(text)
        return RedrivePolicy(str(value["deadLetterTargetArn"]), int(value["maxReceiveCount"]))


@dataclass(frozen=True)
class QueueMessage:
    """One message of a queue, with what SQS tracks about its deliveries.

    ``message_attributes`` are the user's, as the API sends them (``DataType`` with
    ``StringValue``, or ``BinaryValue`` in base64). ``seq`` is the store's id for the message
    and ``receipt_token`` the secret of its latest receive; together with the queue's name
    they make the receipt handle.
    """

    queue_name: str
    message_id: str
    body: str
    sent_unix_ms: int
    visible_at_unix_ms: int
    message_attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    receive_count: int = 0
    first_receive_unix_ms: int | None = None
    receipt_token: str | None = None
    dead_letter_source_queue: str | None = None
    seq: int = 0

    @property
    def receipt_handle(self) -> str:
        """The handle that deletes or changes this delivery of the message."""
        if self.receipt_token is None:
            raise ValueError("the message has not been received")
        raw = f"{self.queue_name}/{self.seq}/{self.receipt_token}"
        return base64.urlsafe_b64encode(raw.encode()).decode()


class Receipt(NamedTuple):
    """A receipt handle taken apart."""

    queue_name: str
    seq: int
    token: str


def parse_receipt_handle(handle: str) -> Receipt | None:
    """The parts of a receipt handle, or None if it is not one lambdalet made."""
    try:
        raw = base64.urlsafe_b64decode(handle.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        return None
    match = _RECEIPT.match(raw)
    if match is None:
        return None
    return Receipt(match.group(1), int(match.group(2)), match.group(3))


class Received(NamedTuple):
    """What one receive took from a queue: messages delivered, and how many it moved to the
    dead-letter queue on the way because they had been received too often."""

    messages: list[QueueMessage]
    moved_to_dead_letter: int


class QueueCounts(NamedTuple):
    """Approximate numbers of a queue's messages by state."""

    visible: int
    in_flight: int
    delayed: int


# The outcome of changing one message's visibility.
VISIBILITY_CHANGED = "changed"
VISIBILITY_NOT_IN_FLIGHT = "not-in-flight"
VISIBILITY_GONE = "gone"
