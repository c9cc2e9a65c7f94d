"""The topic service: SNS's standard topics on the store, for HTTP and Python callers.

``Node.topics`` is one of these. A publish delivers to every subscription whose filter policy
the message passes before it returns: a ``lambda`` subscription gets an asynchronous
invocation with AWS's SNS event (committed to the async queue, so it survives a restart), an
``sqs`` subscription a message in a lambdalet queue holding SNS's JSON envelope (or the bare
message with RawMessageDelivery). An endpoint that is gone when a message is published is
logged and skipped, as SNS keeps delivering to the others.

Subscriptions are confirmed at once (there is no one to confirm them). Messages are not
signed: ``Signature`` holds ``UNSIGNED`` and the certificate URL points at this node.
Not implemented: FIFO topics, protocols other than ``lambda`` and ``sqs``, delivery retry
policies and subscription dead-letter queues (RedrivePolicy is kept, not used), tags beyond
CreateTopic's, data protection and message archiving.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from lambdalet.config import Settings
from lambdalet.errors import (
    QueueError,
    TopicBatchEntryIdsNotDistinct,
    TopicBatchRequestTooLong,
    TopicEmptyBatchRequest,
    TopicError,
    TopicInvalidBatchEntryId,
    TopicInvalidParameter,
    TopicNotFound,
    TopicTooManyEntriesInBatchRequest,
)
from lambdalet.models import now_ms
from lambdalet.queues.service import QueueService
from lambdalet.store.base import Store
from lambdalet.topics import filter_policy, messages
from lambdalet.topics.messages import MAX_MESSAGE_BYTES, Message
from lambdalet.topics.models import (
    PROTOCOLS,
    SUBSCRIPTION_KIND,
    TOPIC_KIND,
    TOPIC_NAME,
    Subscription,
    Topic,
    parse_arn,
)

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str | None, bytes, str], Awaitable[None]]

PAGE_SIZE = 100
MAX_BATCH_ENTRIES = 10
_BATCH_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
TOPIC_ATTRIBUTES = frozenset(
    {
        "DisplayName",
        "Policy",
        "DeliveryPolicy",
        "TracingConfig",
        "KmsMasterKeyId",
        "SignatureVersion",
        "DataProtectionPolicy",
        *(
            f"{endpoint}{kind}"
            for endpoint in ("HTTP", "Firehose", "Lambda", "Application", "SQS")
            for kind in (
                "SuccessFeedbackRoleArn",
                "SuccessFeedbackSampleRate",
                "FailureFeedbackRoleArn",
            )
        ),
    }
)
SUBSCRIPTION_ATTRIBUTES = frozenset(
    {"DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy"}
)


def _page_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _after(next_token: str | None) -> str | None:
    if not next_token:
        return None
    try:
        return base64.b64decode(next_token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise TopicInvalidParameter("Invalid parameter: NextToken") from None


class TopicService:
    """SNS topics and subscriptions kept in a node's store, and the fan-out of publishes."""

    def __init__(
        self, store: Store, settings: Settings, queues: QueueService, enqueue: Enqueue
    ) -> None:
        self.store = store
        self.settings = settings
        self.queues = queues
        self.enqueue = enqueue

    # Names and ARNs.

    def topic_arn(self, name: str) -> str:
        """The ARN of a topic."""
        return f"arn:aws:sns:{self.settings.region}:{self.settings.account_id}:{name}"

    def subscription_arn(self, subscription: Subscription) -> str:
        """The ARN of a subscription: its topic's ARN and its id."""
        return f"{self.topic_arn(subscription.topic_name)}:{subscription.subscription_id}"

    def _topic_name(self, arn: Any, parameter: str = "TopicArn") -> str:
        parts = parse_arn(arn, "sns")
        if parts is None or len(parts) != 6 or not TOPIC_NAME.match(parts[5]):
            raise TopicInvalidParameter(
                f"Invalid parameter: {parameter} Reason: {arn!r} is not a topic ARN"
                " (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )
        if parts[3] != self.settings.region or parts[4] != self.settings.account_id:
            raise TopicNotFound("Topic does not exist")
        return parts[5]

    async def topic(self, arn: Any, parameter: str = "TopicArn") -> Topic:
        """The topic an ARN stands for; NotFound if there is none."""
        value = await self.store.get_resource(TOPIC_KIND, self._topic_name(arn, parameter))
        if value is None:
            raise TopicNotFound("Topic does not exist")
        return Topic.from_resource(value)

    async def subscription(self, arn: Any) -> Subscription:
        """The subscription an ARN stands for; NotFound if there is none."""
        parts = parse_arn(arn, "sns")
        if parts is None or len(parts) != 7:
            raise TopicInvalidParameter(
                f"Invalid parameter: SubscriptionArn Reason: {arn!r} is not a subscription ARN"
                " (arn:aws:sns:REGION:ACCOUNT:TOPIC:ID)"
            )
        value = await self.store.get_resource(SUBSCRIPTION_KIND, f"{parts[5]}:{parts[6]}")
        if value is None or parts[3] != self.settings.region:
            raise TopicNotFound("Subscription does not exist")
        return Subscription.from_resource(value)

    # Topics.

    def _check_topic_attribute(self, name: str, value: Any) -> str:
        if name == "FifoTopic" and str(value).lower() == "false":
            return "false"
        if name in ("FifoTopic", "ContentBasedDeduplication", "ArchivePolicy"):
            raise TopicInvalidParameter(
                f"Invalid parameter: Attributes Reason: {name}: lambdalet serves standard"
                " topics only, FIFO topics are not supported"
            )
        if name not in TOPIC_ATTRIBUTES:
            raise TopicInvalidParameter(f"Invalid parameter: AttributeName Reason: {name}")
        if not isinstance(value, str):
            raise TopicInvalidParameter(f"Invalid parameter: {name} must be a string")
        if name in ("Policy", "DeliveryPolicy", "DataProtectionPolicy") and value:
            try:
                json.loads(value)
            except ValueError:
                raise TopicInvalidParameter(
                    f"Invalid parameter: {name} Reason: failed to parse JSON"
                ) from None
        if name == "DisplayName" and len(value) > 100:
            raise TopicInvalidParameter(
                "Invalid parameter: DisplayName Reason: must be at most 100 characters"
            )
        return value

    async def create_topic(
        self,
        name: Any,
        attributes: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create a topic, or find the one of that name if its attributes are the same as
        those given; return its ARN."""
        if isinstance(name, str) and name.endswith(".fifo"):
            raise TopicInvalidParameter(
                "Invalid parameter: Topic Name Reason: FIFO topics (names ending in .fifo)"
                " are not supported by lambdalet"
            )
        if not isinstance(name, str) or not TOPIC_NAME.match(name):
            raise TopicInvalidParameter(
                "Invalid parameter: Topic Name Reason: must be 1 to 256 ASCII letters, digits,"
                " hyphens and underscores"
            )
        checked = {
            key: self._check_topic_attribute(key, value)
            for key, value in (attributes or {}).items()
        }
        checked.pop("FifoTopic", None)
        topic = Topic(name, checked, now_ms(), dict(tags or {}))
        if not await self.store.insert_resource(TOPIC_KIND, name, topic.to_resource()):
            existing = await self.topic(self.topic_arn(name))
            for key, value in checked.items():
                if existing.attributes.get(key) != value:
                    raise TopicInvalidParameter(
                        "Invalid parameter: Attributes Reason: Topic already exists with"
                        f" different attributes ({key})"
                    )
        return self.topic_arn(name)

    async def list_topics(self, next_token: str | None = None) -> tuple[list[str], str | None]:
        """ARNs of the topics, 100 a page, and the token of the next page."""
        after = _after(next_token)
        found = [
            key
            for key, _ in await self.store.list_resources(TOPIC_KIND)
            if after is None or key > after
        ]
        page = found[:PAGE_SIZE]
        token = _page_token(page[-1]) if len(found) > PAGE_SIZE else None
        return [self.topic_arn(name) for name in page], token

    async def _subscriptions(self, topic_name: str | None = None) -> list[Subscription]:
        prefix = f"{topic_name}:" if topic_name is not None else ""
        return [
            Subscription.from_resource(value)
            for _, value in await self.store.list_resources(SUBSCRIPTION_KIND, prefix)
        ]

    async def get_topic_attributes(self, arn: Any) -> dict[str, str]:
        """Every attribute of a topic, the computed ones included."""
        topic = await self.topic(arn)
        topic_arn = self.topic_arn(topic.name)
        account = self.settings.account_id
        policy = {
            "Version": "2008-10-17",
            "Id": "__default_policy_ID",
            "Statement": [
                {
                    "Sid": "__default_statement_ID",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": ["SNS:Publish", "SNS:Subscribe", "SNS:GetTopicAttributes"],
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
                }
            ],
        }
        subscriptions = await self._subscriptions(topic.name)
        found = {
            "TopicArn": topic_arn,
            "Owner": account,
            "DisplayName": "",
            "Policy": json.dumps(policy),
            "SubscriptionsConfirmed": str(len(subscriptions)),
            "SubscriptionsPending": "0",
            "SubscriptionsDeleted": "0",
            "EffectiveDeliveryPolicy": json.dumps(
                {
                    "http": {
                        "defaultHealthyRetryPolicy": {
                            "minDelayTarget": 20,
                            "maxDelayTarget": 20,
                            "numRetries": 3,
                            "numMaxDelayRetries": 0,
                            "numNoDelayRetries": 0,
                            "numMinDelayRetries": 0,
                            "backoffFunction": "linear",
                        },
                        "disableSubscriptionOverrides": False,
                    }
                }
            ),
            "FifoTopic": "false",
        }
        found.update(topic.attributes)
        return found

    async def set_topic_attribute(self, arn: Any, name: Any, value: Any) -> None:
        """Set (or with an empty value, clear) one attribute of a topic."""
        topic = await self.topic(arn)
        if not isinstance(name, str) or not name:
            raise TopicInvalidParameter("Invalid parameter: AttributeName Reason: missing")
        checked = self._check_topic_attribute(name, value if value is not None else "")
        attributes = dict(topic.attributes)
        if checked:
            attributes[name] = checked
        else:
            attributes.pop(name, None)
        changed = Topic(topic.name, attributes, topic.created_unix_ms, topic.tags)
        if not await self.store.replace_resource(TOPIC_KIND, topic.name, changed.to_resource()):
            raise TopicNotFound("Topic does not exist")

    async def delete_topic(self, arn: Any) -> None:
        """Delete a topic and its subscriptions (a topic that is not there is no error)."""
        name = self._topic_name(arn)
        await self.store.delete_resource(TOPIC_KIND, name)
        await self.store.delete_resources(SUBSCRIPTION_KIND, f"{name}:")

    # Subscriptions.

    def _check_endpoint(self, protocol: Any, endpoint: Any) -> tuple[str, str]:
        if protocol not in PROTOCOLS:
            raise TopicInvalidParameter(
                f"Invalid parameter: Protocol Reason: {protocol!r}: lambdalet delivers to"
                f" {' and '.join(PROTOCOLS)} endpoints only"
            )
        assert isinstance(protocol, str)
        if protocol == "lambda":
            parts = parse_arn(endpoint, "lambda")
            if parts is None or len(parts) not in (7, 8) or parts[5] != "function":
                raise TopicInvalidParameter(
                    f"Invalid parameter: Lambda endpoint ARN: {endpoint!r} is not a function"
                    " ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
                )
        else:
            parts = parse_arn(endpoint, "sqs")
            if parts is None or len(parts) != 6:
                raise TopicInvalidParameter(
                    f"Invalid parameter: SQS endpoint ARN: {endpoint!r} is not a queue ARN"
                    " (arn:aws:sqs:REGION:ACCOUNT:NAME)"
                )
        assert isinstance(endpoint, str)
        return protocol, endpoint

    def _check_subscription_attributes(
        self, protocol: str, current: dict[str, str], changes: dict[str, Any]
    ) -> dict[str, str]:
        """The attributes a subscription has after ``changes``, if SNS would accept them."""
        attributes = dict(current)
        for name, value in changes.items():
            if name not in SUBSCRIPTION_ATTRIBUTES:
                raise TopicInvalidParameter(f"Invalid parameter: AttributeName Reason: {name}")
            if not isinstance(value, str):
                raise TopicInvalidParameter(f"Invalid parameter: {name} must be a string")
            if name == "RawMessageDelivery":
                if value.lower() not in ("true", "false"):
                    raise TopicInvalidParameter(
                        "Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value"
                        f" [{value}]. Must be true or false."
                    )
                if protocol == "lambda" and value.lower() == "true":
                    raise TopicInvalidParameter(
                        "Invalid parameter: Attributes Reason: Delivery protocol [lambda] does"
                        " not support raw message delivery."
                    )
                value = value.lower()
            if name in ("DeliveryPolicy", "RedrivePolicy") and value:
                try:
                    json.loads(value)
                except ValueError:
                    raise TopicInvalidParameter(
                        f"Invalid parameter: {name} Reason: failed to parse JSON"
                    ) from None
            if value == "" and name in ("FilterPolicy", "DeliveryPolicy", "RedrivePolicy"):
                attributes.pop(name, None)
            else:
                attributes[name] = value
        policy = attributes.get("FilterPolicy")
        scope = attributes.get("FilterPolicyScope", filter_policy.MESSAGE_ATTRIBUTES)
        if scope not in filter_policy.SCOPES:
            raise TopicInvalidParameter(
                "Invalid parameter: Attributes Reason: FilterPolicyScope: Invalid value"
                f" [{scope}]. Please use either MessageBody or MessageAttributes"
            )
        if policy is not None:
            try:
                filter_policy.parse(policy, scope)
            except filter_policy.FilterPolicyError as error:
                raise TopicInvalidParameter(f"Invalid parameter: FilterPolicy: {error}") from None
            attributes["FilterPolicyScope"] = scope
        return attributes

    async def subscribe(
        self,
        topic_arn: Any,
        protocol: Any,
        endpoint: Any,
        attributes: dict[str, Any] | None = None,
    ) -> str:
        """Subscribe an endpoint to a topic, confirmed at once; return the subscription's
        ARN (the existing one if the same endpoint was already subscribed the same way)."""
        topic = await self.topic(topic_arn)
        protocol, endpoint = self._check_endpoint(protocol, endpoint)
        checked = self._check_subscription_attributes(protocol, {}, attributes or {})
        for existing in await self._subscriptions(topic.name):
            if existing.protocol == protocol and existing.endpoint == endpoint:
                if attributes and existing.attributes != checked:
                    raise TopicInvalidParameter(
                        "Invalid parameter: Attributes Reason: Subscription already exists"
                        " with different attributes"
                    )
                return self.subscription_arn(existing)
        subscription = Subscription(topic.name, str(uuid.uuid4()), protocol, endpoint, checked)
        await self.store.insert_resource(
            SUBSCRIPTION_KIND, subscription.key, subscription.to_resource()
        )
        return self.subscription_arn(subscription)

    async def unsubscribe(self, arn: Any) -> None:
        """Remove a subscription."""
        subscription = await self.subscription(arn)
        await self.store.delete_resource(SUBSCRIPTION_KIND, subscription.key)

    def subscription_shape(self, subscription: Subscription) -> dict[str, str]:
        """A subscription as ListSubscriptions(ByTopic) shows it."""
        return {
            "SubscriptionArn": self.subscription_arn(subscription),
            "Owner": self.settings.account_id,
            "Protocol": subscription.protocol,
            "Endpoint": subscription.endpoint,
            "TopicArn": self.topic_arn(subscription.topic_name),
        }

    async def list_subscriptions(
        self, topic_arn: Any = None, next_token: str | None = None
    ) -> tuple[list[dict[str, str]], str | None]:
        """Subscriptions (of one topic, if ``topic_arn`` is given), 100 a page, and the token
        of the next page."""
        after = _after(next_token)
        topic_name = None if topic_arn is None else (await self.topic(topic_arn)).name
        found = [
            subscription
            for subscription in await self._subscriptions(topic_name)
            if after is None or subscription.key > after
        ]
        page = found[:PAGE_SIZE]
        token = _page_token(page[-1].key) if len(found) > PAGE_SIZE else None
        return [self.subscription_shape(subscription) for subscription in page], token

    async def get_subscription_attributes(self, arn: Any) -> dict[str, str]:
        """Every attribute of a subscription, the computed ones included."""
        subscription = await self.subscription(arn)
        found = {
            **self.subscription_shape(subscription),
            "ConfirmationWasAuthenticated": "true",
            "PendingConfirmation": "false",
            "RawMessageDelivery": "false",
            "SubscriptionPrincipal": f"arn:aws:iam::{self.settings.account_id}:root",
        }
        found.update(subscription.attributes)
        return found

    async def set_subscription_attribute(self, arn: Any, name: Any, value: Any) -> None:
        """Set one attribute of a subscription (an empty FilterPolicy removes the policy)."""
        subscription = await self.subscription(arn)
        if not isinstance(name, str) or not name:
            raise TopicInvalidParameter("Invalid parameter: AttributeName Reason: missing")
        attributes = self._check_subscription_attributes(
            subscription.protocol, subscription.attributes, {name: value or ""}
        )
        if name == "FilterPolicy" and "FilterPolicy" not in attributes:
            attributes.pop("FilterPolicyScope", None)
        changed = Subscription(
            subscription.topic_name,
            subscription.subscription_id,
            subscription.protocol,
            subscription.endpoint,
            attributes,
        )
        if not await self.store.replace_resource(
            SUBSCRIPTION_KIND, subscription.key, changed.to_resource()
        ):
            raise TopicNotFound("Subscription does not exist")

    # Publishing.

    async def publish(
        self,
        topic_arn: Any,
        message: Any,
        *,
        subject: Any = None,
        message_attributes: Any = None,
        message_structure: Any = None,
    ) -> str:
        """Publish a message to a topic and deliver it to the matching subscriptions; return
        its message id."""
        topic = await self.topic(topic_arn)
        checked = messages.check_message(message, subject, message_attributes, message_structure)
        return await self._deliver(topic, checked)

    async def publish_batch(
        self, topic_arn: Any, entries: Any
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Publish up to 10 messages; return the Successful and Failed entries."""
        topic = await self.topic(topic_arn)
        if not isinstance(entries, list) or not entries:
            raise TopicEmptyBatchRequest(
                "The batch request doesn't contain any entries (PublishBatchRequestEntries)."
            )
        if len(entries) > MAX_BATCH_ENTRIES:
            raise TopicTooManyEntriesInBatchRequest(
                f"The batch request contains more entries than permissible: at most"
                f" {MAX_BATCH_ENTRIES}, got {len(entries)}."
            )
        seen: set[str] = set()
        total = 0
        for entry in entries:
            entry_id = entry.get("Id") if isinstance(entry, dict) else None
            if not isinstance(entry_id, str) or not _BATCH_ENTRY_ID.match(entry_id):
                raise TopicInvalidBatchEntryId(
                    "A batch entry id can only contain alphanumeric characters, hyphens and"
                    " underscores. It can be at most 80 letters long."
                )
            if entry_id in seen:
                raise TopicBatchEntryIdsNotDistinct(
                    f"Two or more batch entries in the request have the same Id: {entry_id}."
                )
            seen.add(entry_id)
            text = entry.get("Message")
            total += len(text.encode()) if isinstance(text, str) else 0
        if total > MAX_MESSAGE_BYTES:
            raise TopicBatchRequestTooLong(
                f"The length of all the messages put together is more than the limit of"
                f" {MAX_MESSAGE_BYTES} bytes."
            )
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                checked = messages.check_message(
                    entry.get("Message"),
                    entry.get("Subject"),
                    entry.get("MessageAttributes"),
                    entry.get("MessageStructure"),
                )
            except TopicError as error:
                failed.append(
                    {
                        "Id": entry["Id"],
                        "Code": error.code,
                        "Message": error.message,
                        "SenderFault": True,
                    }
                )
                continue
            message_id = await self._deliver(topic, checked)
            successful.append({"Id": entry["Id"], "MessageId": message_id})
        return successful, failed

    async def _deliver(self, topic: Topic, message: Message) -> str:
        message_id = str(uuid.uuid4())
        at = messages.timestamp()
        for subscription in await self._subscriptions(topic.name):
            text = message.text_for(subscription.protocol)
            policy_text = subscription.attributes.get("FilterPolicy")
            if policy_text is not None:
                scope = subscription.attributes.get(
                    "FilterPolicyScope", filter_policy.MESSAGE_ATTRIBUTES
                )
                policy = filter_policy.parse(policy_text, scope)
                if not filter_policy.matches(policy, scope, text, message.attributes):
                    continue
            subscription_arn = self.subscription_arn(subscription)
            notification = messages.notification(
                message_id=message_id,
                topic_arn=self.topic_arn(topic.name),
                subscription_arn=subscription_arn,
                message=text,
                subject=message.subject,
                attributes=message.attributes,
                at=at,
                base_url=self.settings.base_url,
            )
            if subscription.protocol == "lambda":
                event = messages.lambda_event(notification, subscription_arn)
                parts = subscription.endpoint.split(":")
                qualifier = parts[7] if len(parts) > 7 else None
                await self.enqueue(
                    parts[6], qualifier, json.dumps(event).encode(), str(uuid.uuid4())
                )
                continue
            body, forwarded = messages.queue_message(
                notification,
                raw=subscription.raw_message_delivery,
                attributes=message.attributes,
            )
            try:
                await self.queues.send_message(
                    subscription.endpoint, body, message_attributes=forwarded
                )
            except QueueError as error:
                log.warning(
                    "message %s of topic %s not delivered to %s: %s",
                    message_id,
                    topic.name,
                    subscription.endpoint,
                    error.message,
                )
        return message_id
