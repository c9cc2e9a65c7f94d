"""The queue half of the memory store: dictionaries, changed without awaiting, so each call
is as atomic as a transaction. A mixin of :class:`~lambdalet.store.memory.MemoryStore`."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import replace

from lambdalet.errors import QueueDoesNotExist
from lambdalet.queues.models import (
    VISIBILITY_CHANGED,
    VISIBILITY_GONE,
    VISIBILITY_NOT_IN_FLIGHT,
    Queue,
    QueueCounts,
    QueueMessage,
    Receipt,
    Received,
)


class MemoryQueues:
    """Store methods for queues, on this process's memory."""

    def __init__(self) -> None:
        super().__init__()
        self._sqs_queues: dict[str, Queue] = {}
        self._sqs_messages: dict[str, dict[int, QueueMessage]] = {}  # by queue, then seq
        self._sqs_seqs = itertools.count(1)

    def _sqs_queue_messages(self, name: str) -> dict[int, QueueMessage]:
        if name not in self._sqs_queues:
            raise QueueDoesNotExist.missing()
        return self._sqs_messages.setdefault(name, {})

    async def create_queue(self, queue: Queue) -> Queue:
        return self._sqs_queues.setdefault(queue.name, queue)

    async def get_queue(self, name: str) -> Queue | None:
        return self._sqs_queues.get(name)

    async def list_queues(self, prefix: str, after_name: str | None, limit: int) -> list[Queue]:
        names = sorted(
            name
            for name in self._sqs_queues
            if name.startswith(prefix) and name > (after_name or "")
        )
        return [self._sqs_queues[name] for name in names[:limit]]

    async def set_queue_attributes(
        self, name: str, changes: dict[str, str | None], at_unix_ms: int
    ) -> Queue:
        self._sqs_queue_messages(name)
        attributes = dict(self._sqs_queues[name].attributes)
        for key, value in changes.items():
            if value is None:
                attributes.pop(key, None)
            else:
                attributes[key] = value
        queue = replace(
            self._sqs_queues[name], attributes=attributes, last_modified_unix_ms=at_unix_ms
        )
        self._sqs_queues[name] = queue
        return queue

    async def delete_queue(self, name: str) -> bool:
        self._sqs_messages.pop(name, None)
        return self._sqs_queues.pop(name, None) is not None

    async def send_queue_messages(self, messages: list[QueueMessage]) -> list[QueueMessage]:
        for message in messages:
            self._sqs_queue_messages(message.queue_name)
        sent = [replace(message, seq=next(self._sqs_seqs)) for message in messages]
        for message in sent:
            self._sqs_messages[message.queue_name][message.seq] = message
        return sent

    async def receive_queue_messages(
        self, queue: Queue, max_count: int, visibility_timeout_ms: int, at_unix_ms: int
    ) -> Received:
        messages = self._sqs_queue_messages(queue.name)
        cutoff_ms = at_unix_ms - queue.retention_s * 1000
        for seq in [seq for seq, m in messages.items() if m.sent_unix_ms <= cutoff_ms]:
            del messages[seq]
        redrive = queue.redrive
        dead_letter = None
        # As on AWS: without an existing dead-letter queue, messages stay where they are.
        if (
            redrive is not None
            and redrive.dead_letter_queue_name != queue.name
            and redrive.dead_letter_queue_name in self._sqs_queues
        ):
            dead_letter = self._sqs_queue_messages(redrive.dead_letter_queue_name)
        taken: list[QueueMessage] = []
        moved = 0
        for seq in sorted(messages):
            message = messages[seq]
            if len(taken) == max_count:
                break
            if message.visible_at_unix_ms > at_unix_ms:
                continue
            if (
                dead_letter is not None
                and redrive is not None
                and message.receive_count >= redrive.max_receive_count
            ):
                del messages[seq]
                dead_letter[seq] = replace(
                    message,
                    queue_name=redrive.dead_letter_queue_name,
                    visible_at_unix_ms=at_unix_ms,
                    receive_count=0,
                    first_receive_unix_ms=None,
                    receipt_token=None,
                    dead_letter_source_queue=queue.name,
                )
                moved += 1
                continue
            received = replace(
                message,
                receive_count=message.receive_count + 1,
                first_receive_unix_ms=message.first_receive_unix_ms or at_unix_ms,
                receipt_token=secrets.token_hex(16),
                visible_at_unix_ms=at_unix_ms + visibility_timeout_ms,
            )
            messages[seq] = received
            taken.append(received)
        return Received(taken, moved)

    async def delete_queue_messages(self, queue_name: str, receipts: list[Receipt]) -> list[bool]:
        messages = self._sqs_messages.get(queue_name, {})
        deleted = []
        for receipt in receipts:
            message = messages.get(receipt.seq)
            matches = message is not None and message.receipt_token == receipt.token
            if matches:
                del messages[receipt.seq]
            deleted.append(matches)
        return deleted

    async def change_queue_message_visibility(
        self, queue_name: str, changes: list[tuple[Receipt, int]], at_unix_ms: int
    ) -> list[str]:
        messages = self._sqs_messages.get(queue_name, {})
        outcomes = []
        for receipt, visible_at_unix_ms in changes:
            message = messages.get(receipt.seq)
            if message is None or message.receipt_token != receipt.token:
                outcomes.append(VISIBILITY_GONE)
            elif message.visible_at_unix_ms <= at_unix_ms:
                outcomes.append(VISIBILITY_NOT_IN_FLIGHT)
            else:
                messages[receipt.seq] = replace(message, visible_at_unix_ms=visible_at_unix_ms)
                outcomes.append(VISIBILITY_CHANGED)
        return outcomes

    async def purge_queue(self, name: str) -> int:
        messages = self._sqs_messages.get(name, {})
        count = len(messages)
        messages.clear()
        return count

    async def count_queue_messages(self, queue: Queue, at_unix_ms: int) -> QueueCounts:
        cutoff_ms = at_unix_ms - queue.retention_s * 1000
        visible = in_flight = delayed = 0
        for message in self._sqs_messages.get(queue.name, {}).values():
            if message.sent_unix_ms <= cutoff_ms:
                continue
            if message.visible_at_unix_ms <= at_unix_ms:
                visible += 1
            elif message.receipt_token is not None:
                in_flight += 1
            else:
                delayed += 1
        return QueueCounts(visible, in_flight, delayed)

    async def next_queue_message_visible_at(self, name: str, at_unix_ms: int) -> int | None:
        hidden = [
            message.visible_at_unix_ms
            for message in self._sqs_messages.get(name, {}).values()
            if message.visible_at_unix_ms > at_unix_ms
        ]
        return min(hidden, default=None)
