"""The queue service: SQS's standard-queue semantics on the store, for HTTP and Python callers.

``Node.queues`` is one of these. Every message is committed to the store before a send
returns. Long polling waits on an in-process event per queue, set when a message is sent (or
made visible again) through this service, and on a timer for the next hidden message that
becomes visible; the store is read once per wake-up, never in a loop. Sends made by another
node (a shared PostgreSQL store, later) are seen at the next receive, not by waiters.

Not implemented: FIFO queues, tags, queue policies' effect, PurgeQueue's once-a-minute limit,
QueueDeletedRecently, message system attributes on send (AWSTraceHeader), and the 1 MiB
messages AWS allows since 2025 (the largest here is the classic 256 KiB).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import re
import uuid
from typing import Any

from lambdalet.config import Settings
from lambdalet.errors import (
    BatchEntryIdsNotDistinct,
    BatchRequestTooLong,
    EmptyBatchRequest,
    InvalidAttributeName,
    InvalidBatchEntryId,
    MessageNotInflight,
    QueueDoesNotExist,
    QueueError,
    QueueInvalidParameterValue,
    QueueNameExists,
    ReceiptHandleIsInvalid,
    TooManyEntriesInBatchRequest,
)
from lambdalet.models import now_ms
from lambdalet.queues import attributes as queue_attributes
from lambdalet.queues import messages as queue_messages
from lambdalet.queues.models import (
    DEFAULT_ATTRIBUTES,
    VISIBILITY_GONE,
    VISIBILITY_NOT_IN_FLIGHT,
    Queue,
    QueueMessage,
    Receipt,
    parse_receipt_handle,
)
from lambdalet.store.base import Store

MAX_BATCH_ENTRIES = 10
MAX_BATCH_SIZE_BYTES = 262_144
MAX_DELAY_S = 900
MAX_VISIBILITY_TIMEOUT_S = 43_200
MAX_WAIT_TIME_S = 20
MAX_RECEIVE_COUNT = 10
MAX_LIST_RESULTS = 1000
_BATCH_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def _check_range(value: Any, parameter: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueueInvalidParameterValue(
            f"Value {value} for parameter {parameter} is invalid. Reason: Must be between"
            f" {low} and {high}, if provided."
        )
    return value


def _failure(entry_id: str, error: QueueError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": True, "Code": error.code, "Message": error.message}


def check_batch(entries: Any, entry_shape: str) -> list[dict[str, Any]]:
    """The entries of a batch request, if SQS would accept the batch as a whole."""
    if not isinstance(entries, list) or not entries:
        raise EmptyBatchRequest(f"There should be at least one {entry_shape} in the request.")
    if len(entries) > MAX_BATCH_ENTRIES:
        raise TooManyEntriesInBatchRequest(
            f"Maximum number of entries per request are {MAX_BATCH_ENTRIES}."
            f" You have sent {len(entries)}."
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("Id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not _BATCH_ENTRY_ID.match(entry_id):
            raise InvalidBatchEntryId(
                "A batch entry id can only contain alphanumeric characters, hyphens and"
                " underscores. It can be at most 80 letters long."
            )
        if entry_id in seen:
            raise BatchEntryIdsNotDistinct(f"Id {entry_id} repeated.")
        seen.add(entry_id)
    return entries


class QueueService:
    """SQS queues and messages kept in a node's store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        # Set (and dropped) when a message may have become receivable in the queue.
        self._arrivals: dict[str, asyncio.Event] = {}
        self._waiting: collections.Counter[str] = collections.Counter()

    # Names, URLs and ARNs.

    def queue_url(self, name: str) -> str:
        """The URL of a queue: ``{base_url}/{account_id}/{name}``."""
        return f"{self.settings.base_url}/{self.settings.account_id}/{name}"

    def queue_arn(self, name: str) -> str:
        """The ARN of a queue."""
        return f"arn:aws:sqs:{self.settings.region}:{self.settings.account_id}:{name}"

    @staticmethod
    def queue_name(reference: str) -> str:
        """The name of a queue given by URL, ARN or name."""
        parts = reference.split(":")
        if reference.startswith("arn:") and len(parts) == 6:
            return parts[5]
        return reference.rstrip("/").rsplit("/", 1)[-1]

    async def queue(self, reference: str) -> Queue:
        """The queue a URL, ARN or name stands for; QueueDoesNotExist if there is none."""
        queue = await self.store.get_queue(self.queue_name(reference))
        if queue is None:
            raise QueueDoesNotExist.missing()
        return queue

    async def _exists(self, name: str) -> bool:
        return await self.store.get_queue(name) is not None

    # Queues.

    async def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> str:
        """Create a queue, or find the one of that name if the attributes given match its
        own (QueueNameExists otherwise); return its URL."""
        queue_attributes.check_queue_name(name)
        changes = await queue_attributes.normalize(attributes or {}, self._exists)
        at = now_ms()
        settable = dict(DEFAULT_ATTRIBUTES)
        settable.update({key: value for key, value in changes.items() if value is not None})
        queue = await self.store.create_queue(Queue(name, settable, at, at))
        for key, value in changes.items():
            if queue.attributes.get(key) != value:
                raise QueueNameExists(
                    "A queue already exists with the same name and a different value for"
                    f" attribute {key}"
                )
        return self.queue_url(name)

    async def get_queue_url(self, name: str) -> str:
        """The URL of an existing queue."""
        return self.queue_url((await self.queue(name)).name)

    async def list_queues(
        self, prefix: str = "", max_results: int | None = None, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        """URLs of the queues whose names start with ``prefix``, and the token of the next
        page (pages only when ``max_results`` is given, as on AWS)."""
        limit = MAX_LIST_RESULTS
        if max_results is not None:
            limit = _check_range(max_results, "MaxResults", 1, MAX_LIST_RESULTS)
        after = None
        if next_token:
            try:
                after = base64.urlsafe_b64decode(next_token.encode()).decode()
            except (binascii.Error, UnicodeError, ValueError):
                raise QueueInvalidParameterValue("Invalid NextToken value.") from None
        queues = await self.store.list_queues(prefix, after, limit + 1)
        token = None
        if len(queues) > limit:
            queues = queues[:limit]
            if max_results is not None:
                token = base64.urlsafe_b64encode(queues[-1].name.encode()).decode()
        return [self.queue_url(queue.name) for queue in queues], token

    async def delete_queue(self, reference: str) -> None:
        """Delete a queue and its messages."""
        queue = await self.queue(reference)
        await self.store.delete_queue(queue.name)
        self._notify(queue.name)

    async def purge_queue(self, reference: str) -> int:
        """Delete every message of a queue; return how many there were."""
        return await self.store.purge_queue((await self.queue(reference)).name)

    async def get_queue_attributes(self, reference: str, names: list[str]) -> dict[str, str]:
        """The attributes asked for (``All`` for every one), computed ones included."""
        queue = await self.queue(reference)
        for name in names:
            if name != "All" and name not in queue_attributes.READABLE:
                raise InvalidAttributeName(f"Unknown Attribute {name}.")
        wanted = set(queue_attributes.READABLE) if "All" in names else set(names)
        found = {key: value for key, value in queue.attributes.items() if key in wanted}
        computed = {
            "QueueArn": self.queue_arn(queue.name),
            "CreatedTimestamp": str(queue.created_unix_ms // 1000),
            "LastModifiedTimestamp": str(queue.last_modified_unix_ms // 1000),
        }
        found.update({key: value for key, value in computed.items() if key in wanted})
        if wanted & {
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        }:
            counts = await self.store.count_queue_messages(queue, now_ms())
            for key, value in (
                ("ApproximateNumberOfMessages", counts.visible),
                ("ApproximateNumberOfMessagesNotVisible", counts.in_flight),
                ("ApproximateNumberOfMessagesDelayed", counts.delayed),
            ):
                if key in wanted:
                    found[key] = str(value)
        return found

    async def set_queue_attributes(self, reference: str, attributes: dict[str, str]) -> None:
        """Change settable attributes; an empty RedrivePolicy removes the policy."""
        queue = await self.queue(reference)
        changes = await queue_attributes.normalize(attributes, self._exists)
        if changes:
            await self.store.set_queue_attributes(queue.name, changes, now_ms())

    # Sending.

    def _new_message(
        self, queue: Queue, body: Any, delay_s: Any, message_attributes: Any
    ) -> QueueMessage:
        checked_body = queue_messages.check_body(body)
        checked = queue_messages.check_attributes(message_attributes)
        limit = queue.maximum_message_size_bytes
        if queue_messages.size_bytes(checked_body, checked) > limit:
            raise QueueInvalidParameterValue(
                f"One or more parameters are invalid. Reason: Message must be shorter than"
                f" {limit} bytes."
            )
        delay = queue.delay_s if delay_s is None else delay_s
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_S:
            raise QueueInvalidParameterValue(
                f"Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must"
                f" be >= 0 and <= {MAX_DELAY_S}."
            )
        at = now_ms()
        return QueueMessage(
            queue_name=queue.name,
            message_id=str(uuid.uuid4()),
            body=checked_body,
            sent_unix_ms=at,
            visible_at_unix_ms=at + delay * 1000,
            message_attributes=checked,
        )

    async def send_message(
        self,
        reference: str,
        body: str,
        *,
        delay_s: int | None = None,
        message_attributes: dict[str, dict[str, Any]] | None = None,
    ) -> QueueMessage:
        """Send one message; it is committed when this returns."""
        queue = await self.queue(reference)
        message = self._new_message(queue, body, delay_s, message_attributes)
        (sent,) = await self.store.send_queue_messages([message])
        self._notify(queue.name)
        return sent

    async def send_message_batch(
        self, reference: str, entries: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Send up to 10 messages (entries shaped as SendMessageBatch's) in one transaction;
        return the Successful and Failed entries as AWS shapes them."""
        queue = await self.queue(reference)
        check_batch(entries, "SendMessageBatchRequestEntry")
        total = 0
        for entry in entries:
            body = entry.get("MessageBody")
            total += len(body.encode("utf-8", "replace")) if isinstance(body, str) else 0
            with contextlib.suppress(QueueError, KeyError, ValueError, TypeError):
                total += queue_messages.size_bytes(
                    "", queue_messages.check_attributes(entry.get("MessageAttributes"))
                )
        if total > MAX_BATCH_SIZE_BYTES:
            raise BatchRequestTooLong(
                f"Batch requests cannot be longer than {MAX_BATCH_SIZE_BYTES} bytes."
                f" You have sent {total} bytes."
            )
        accepted: list[tuple[str, QueueMessage]] = []
        failed: list[dict[str, Any]] = []
        for entry in entries:
            try:
                message = self._new_message(
                    queue,
                    entry.get("MessageBody"),
                    entry.get("DelaySeconds"),
                    entry.get("MessageAttributes"),
                )
            except QueueError as error:
                failed.append(_failure(entry["Id"], error))
            else:
                accepted.append((entry["Id"], message))
        sent = await self.store.send_queue_messages([message for _, message in accepted])
        if sent:
            self._notify(queue.name)
        successful = []
        for (entry_id, _), message in zip(accepted, sent, strict=True):
            result = {
                "Id": entry_id,
                "MessageId": message.message_id,
                "MD5OfMessageBody": queue_messages.md5_of_body(message.body),
            }
            if message.message_attributes:
                result["MD5OfMessageAttributes"] = queue_messages.md5_of_attributes(
                    message.message_attributes
                )
            successful.append(result)
        return successful, failed

    # Receiving.

    async def receive_messages(
        self,
        reference: str,
        *,
        max_count: int = 1,
        visibility_timeout_s: int | None = None,
        wait_time_s: int | None = None,
    ) -> list[QueueMessage]:
        """Take up to ``max_count`` messages, waiting up to ``wait_time_s`` (the queue's
        ReceiveMessageWaitTimeSeconds if None) for the first to arrive."""
        _check_range(max_count, "MaxNumberOfMessages", 1, MAX_RECEIVE_COUNT)
        if visibility_timeout_s is not None:
            _check_range(visibility_timeout_s, "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT_S)
        if wait_time_s is not None:
            _check_range(wait_time_s, "WaitTimeSeconds", 0, MAX_WAIT_TIME_S)
        queue = await self.queue(reference)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (queue.receive_wait_s if wait_time_s is None else wait_time_s)
        while True:
            # Taken before the store is read: a send committed after the read sets it.
            arrival = self._arrival(queue.name) if deadline > loop.time() else None
            visibility_s = (
                queue.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s
            )
            at = now_ms()
            received = await self.store.receive_queue_messages(
                queue, max_count, visibility_s * 1000, at
            )
            redrive = queue.redrive
            if received.moved_to_dead_letter and redrive is not None:
                self._notify(redrive.dead_letter_queue_name)
            remaining_s = deadline - loop.time()
            if received.messages or arrival is None or remaining_s <= 0:
                return received.messages
            next_visible = await self.store.next_queue_message_visible_at(queue.name, at)
            if next_visible is not None:
                remaining_s = min(remaining_s, max(next_visible - now_ms() + 1, 0) / 1000)
            self._waiting[queue.name] += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrival.wait(), remaining_s)
            finally:
                self._waiting[queue.name] -= 1
                if not self._waiting[queue.name]:
                    del self._waiting[queue.name]
            queue = await self.queue(queue.name)  # it may have changed, or be gone

    def waiting_receives(self, reference: str) -> int:
        """How many receives are long-polling a queue right now."""
        return self._waiting[self.queue_name(reference)]

    def _arrival(self, name: str) -> asyncio.Event:
        event = self._arrivals.get(name)
        if event is None:
            event = self._arrivals[name] = asyncio.Event()
        return event

    def _notify(self, name: str) -> None:
        """Wake the receives waiting on a queue."""
        event = self._arrivals.pop(name, None)
        if event is not None:
            event.set()

    def _receipt(self, queue: Queue, handle: Any) -> Receipt:
        receipt = parse_receipt_handle(handle) if isinstance(handle, str) else None
        if receipt is None or receipt.queue_name != queue.name:
            raise ReceiptHandleIsInvalid(
                f'The input receipt handle "{handle}" is not a valid receipt handle.'
            )
        return receipt

    async def delete_message(self, reference: str, receipt_handle: str) -> None:
        """Delete a received message (a handle from an earlier receive is a no-op, as on
        AWS); ReceiptHandleIsInvalid for a handle this queue did not make."""
        queue = await self.queue(reference)
        await self.store.delete_queue_messages(queue.name, [self._receipt(queue, receipt_handle)])

    async def delete_message_batch(
        self, reference: str, entries: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Delete up to 10 received messages; return the Successful and Failed entries."""
        queue = await self.queue(reference)
        check_batch(entries, "DeleteMessageBatchRequestEntry")
        valid: list[tuple[str, Receipt]] = []
        failed = []
        for entry in entries:
            try:
                valid.append((entry["Id"], self._receipt(queue, entry.get("ReceiptHandle"))))
            except QueueError as error:
                failed.append(_failure(entry["Id"], error))
        await self.store.delete_queue_messages(queue.name, [receipt for _, receipt in valid])
        return [{"Id": entry_id} for entry_id, _ in valid], failed

    async def change_message_visibility(
        self, reference: str, receipt_handle: str, visibility_timeout_s: int
    ) -> None:
        """Hide a received message for ``visibility_timeout_s`` from now (0: show it now)."""
        _, failed = await self.change_message_visibility_batch(
            reference,
            [
                {
                    "Id": "single",
                    "ReceiptHandle": receipt_handle,
                    "VisibilityTimeout": visibility_timeout_s,
                }
            ],
            raise_errors=True,
        )
        assert not failed

    async def change_message_visibility_batch(
        self, reference: str, entries: list[dict[str, Any]], *, raise_errors: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Change the visibility of up to 10 received messages; return the Successful and
        Failed entries (or raise the first error, with ``raise_errors``)."""
        queue = await self.queue(reference)
        check_batch(entries, "ChangeMessageVisibilityBatchRequestEntry")
        at = now_ms()
        valid: list[tuple[str, str, Receipt, int]] = []
        failed = []
        for entry in entries:
            try:
                timeout_s = _check_range(
                    entry.get("VisibilityTimeout"), "VisibilityTimeout", 0, MAX_VISIBILITY_TIMEOUT_S
                )
                receipt = self._receipt(queue, entry.get("ReceiptHandle"))
            except QueueError as error:
                if raise_errors:
                    raise
                failed.append(_failure(entry["Id"], error))
            else:
                valid.append((entry["Id"], entry["ReceiptHandle"], receipt, at + timeout_s * 1000))
        outcomes = await self.store.change_queue_message_visibility(
            queue.name, [(receipt, visible_at) for _, _, receipt, visible_at in valid], at
        )
        successful = []
        for (entry_id, handle, _, visible_at), outcome in zip(valid, outcomes, strict=True):
            refusal: QueueError | None = None
            if outcome == VISIBILITY_GONE:
                refusal = QueueInvalidParameterValue(
                    f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does"
                    " not exist or is not available for visibility timeout change."
                )
            elif outcome == VISIBILITY_NOT_IN_FLIGHT:
                refusal = MessageNotInflight("The message referred to is not in flight.")
            if refusal is None:
                successful.append({"Id": entry_id})
                if visible_at <= at:
                    self._notify(queue.name)
            elif raise_errors:
                raise refusal
            else:
                failed.append(_failure(entry_id, refusal))
        return successful, failed
