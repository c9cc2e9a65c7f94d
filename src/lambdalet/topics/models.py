"""Topics and subscriptions as kept in the store's generic resources, and their ARNs.

A topic is the resource ``("sns_topic", name)``; a subscription is ``("sns_subscription",
"<topic name>:<id>")``, so a topic's subscriptions are the keys with its name and a colon as
prefix (topic names cannot hold a colon), and the key is the tail of the subscription's ARN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

TOPIC_KIND = "sns_topic"
SUBSCRIPTION_KIND = "sns_subscription"
TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
PROTOCOLS = ("lambda", "sqs")


@dataclass(frozen=True)
class Topic:
    """A standard SNS topic: its name and the attributes set on it."""

    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    created_unix_ms: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    def to_resource(self) -> dict[str, Any]:
        """The JSON document the store keeps."""
        return {
            "name": self.name,
            "attributes": self.attributes,
            "created_unix_ms": self.created_unix_ms,
            "tags": self.tags,
        }

    @classmethod
    def from_resource(cls, value: dict[str, Any]) -> Topic:
        """Inverse of :meth:`to_resource`."""
        return cls(
            name=value["name"],
            attributes=dict(value.get("attributes", {})),
            created_unix_ms=int(value.get("created_unix_ms", 0)),
            tags=dict(value.get("tags", {})),
        )


@dataclass(frozen=True)
class Subscription:
    """A confirmed subscription of an endpoint (a function or a queue) to a topic."""

    topic_name: str
    subscription_id: str
    protocol: str
    endpoint: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The subscription's key in the store."""
        return f"{self.topic_name}:{self.subscription_id}"

    @property
    def raw_message_delivery(self) -> bool:
        """Whether the endpoint gets the bare message instead of SNS's JSON envelope."""
        return self.attributes.get("RawMessageDelivery", "false").lower() == "true"

    def to_resource(self) -> dict[str, Any]:
        """The JSON document the store keeps."""
        return {
            "topic_name": self.topic_name,
            "subscription_id": self.subscription_id,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "attributes": self.attributes,
        }

    @classmethod
    def from_resource(cls, value: dict[str, Any]) -> Subscription:
        """Inverse of :meth:`to_resource`."""
        return cls(
            topic_name=value["topic_name"],
            subscription_id=value["subscription_id"],
            protocol=value["protocol"],
            endpoint=value["endpoint"],
            attributes=dict(value.get("attributes", {})),
        )


def parse_arn(arn: Any, service: str) -> list[str] | None:
    """The six or more colon-separated parts of an ARN of ``service``, or None."""
    if not isinstance(arn, str):
        return None
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != service or not all(parts[3:6]):
        return None
    return parts
