"""Queue attributes: which can be set, their ranges, and their normal form.

Settable and in effect: VisibilityTimeout, MessageRetentionPeriod, DelaySeconds,
ReceiveMessageWaitTimeSeconds, MaximumMessageSize and RedrivePolicy. Policy,
RedriveAllowPolicy, KmsMasterKeyId, KmsDataKeyReusePeriodSeconds and SqsManagedSseEnabled are
kept and shown but have no effect. FIFO queues are not implemented: FifoQueue=true and the
other FIFO attributes are refused with UnsupportedOperation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from lambdalet.errors import (
    InvalidAttributeName,
    InvalidAttributeValue,
    QueueInvalidParameterValue,
    UnsupportedOperation,
)
from lambdalet.queues.models import RedrivePolicy

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

# name -> (lowest, highest) for the integer attributes.
RANGES = {
    "DelaySeconds": (0, 900),
    "MaximumMessageSize": (1024, 262_144),
    "MessageRetentionPeriod": (60, 1_209_600),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "VisibilityTimeout": (0, 43_200),
}
KEPT_AS_GIVEN = frozenset(
    {
        "Policy",
        "RedriveAllowPolicy",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
    }
)
FIFO_ONLY = frozenset(
    {"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
)
COMPUTED = frozenset(
    {
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
    }
)
SETTABLE = frozenset({*RANGES, "RedrivePolicy", *KEPT_AS_GIVEN})
READABLE = frozenset({*SETTABLE, *COMPUTED})


def check_queue_name(name: str) -> None:
    """Refuse a name SQS would refuse (and FIFO names, which lambdalet does not serve)."""
    if name.endswith(".fifo"):
        raise UnsupportedOperation(
            f"Queue {name} is a FIFO queue; lambdalet implements standard queues only"
        )
    if not QUEUE_NAME.match(name):
        raise QueueInvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )


async def normalize(
    attributes: dict[str, str], queue_exists: Callable[[str], Awaitable[bool]]
) -> dict[str, str | None]:
    """Checked attribute values in the form they are stored in; None means "remove".

    ``queue_exists`` tells whether a dead-letter queue named in a RedrivePolicy exists.
    """
    normal: dict[str, str | None] = {}
    for name, value in attributes.items():
        if not isinstance(value, str):
            raise InvalidAttributeValue(f"Value for attribute {name} must be a string")
        if name in FIFO_ONLY:
            if name == "FifoQueue" and value.lower() == "false":
                continue
            raise UnsupportedOperation(
                f"Attribute {name} belongs to FIFO queues; lambdalet implements standard"
                " queues only"
            )
        if name in RANGES:
            normal[name] = str(_integer(name, value))
        elif name == "RedrivePolicy":
            normal[name] = await _redrive_policy(value, queue_exists)
        elif name in KEPT_AS_GIVEN:
            normal[name] = value or None
        else:
            raise InvalidAttributeName(f"Unknown Attribute {name}.")
    return normal


def _integer(name: str, value: str) -> int:
    low, high = RANGES[name]
    text = value.strip()
    if not re.fullmatch(r"-?[0-9]{1,12}", text) or not low <= int(text) <= high:
        raise InvalidAttributeValue(
            f"Invalid value for the parameter {name}. Reason: must be an integer from {low}"
            f" to {high}."
        )
    return int(text)


async def _redrive_policy(value: str, queue_exists: Callable[[str], Awaitable[bool]]) -> str | None:
    if not value:
        return None
    invalid = f"Value {value} for parameter RedrivePolicy is invalid. Reason: "
    try:
        policy = json.loads(value)
    except ValueError:
        raise InvalidAttributeValue(invalid + "Redrive policy is not a valid JSON map.") from None
    if not isinstance(policy, dict):
        raise InvalidAttributeValue(invalid + "Redrive policy is not a valid JSON map.")
    target = policy.get("deadLetterTargetArn")
    count = policy.get("maxReceiveCount")
    if not isinstance(target, str) or not target:
        raise InvalidAttributeValue(
            invalid + "Redrive policy does not contain mandatory attribute: deadLetterTargetArn."
        )
    if count is None:
        raise InvalidAttributeValue(
            invalid + "Redrive policy does not contain mandatory attribute: maxReceiveCount."
        )
    try:
        receives = int(count)
    except (TypeError, ValueError):
        receives = 0
    if isinstance(count, bool) or not 1 <= receives <= 1000:
        raise InvalidAttributeValue(
            invalid + f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to"
            " 1000 both inclusive."
        )
    parts = target.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or not await queue_exists(parts[5]):
        raise InvalidAttributeValue(invalid + "Dead letter target does not exist.")
    return RedrivePolicy(target, receives).to_json()
