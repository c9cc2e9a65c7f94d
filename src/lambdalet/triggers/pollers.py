"""Pollers: what reads each enabled event source mapping's queue and invokes its function.

One :class:`QueuePoller` runs per enabled mapping, as a set of worker tasks. Each worker
long-polls the queue through ``Node.queues`` (no HTTP), gathers up to BatchSize messages or
until the batching window (counted from the first message) ends, and invokes the function
synchronously, through the router, with the event AWS sends for SQS (``{"Records": [...]}``).
A worker has one batch in flight at a time, so the number of workers is the number of
concurrent invocations.

- Success: the batch is deleted from the queue. A function error (or a failure to invoke):
  nothing is deleted; the messages reappear after the queue's visibility timeout, so the
  queue's redrive policy moves them to its dead-letter queue after maxReceiveCount, as on AWS.
- With ``ReportBatchItemFailures``, a response ``{"batchItemFailures": [{"itemIdentifier":
  messageId}]}`` deletes every other message; an empty or missing list is a full success,
  and a response AWS would call invalid (not JSON, an identifier that is empty, missing or
  not one of the batch's messages) fails the whole batch.
- Throttled (TooManyRequestsException): the messages are left and the worker backs off.
- Stopped while gathering a batch (a window still open), a worker makes the messages it
  holds visible again at once; a batch in flight gets a few seconds to finish.
- FilterCriteria: a message no pattern matches is deleted without invoking, as on AWS (the
  body is matched as JSON when it is a JSON object, as a string otherwise).

Scaling: a mapping starts with ``INITIAL_POLLERS`` workers (5, as AWS starts with five
pollers) and adds one at most every ``SCALE_UP_INTERVAL_MS`` while batches come back full,
up to ScalingConfig.MaximumConcurrency or, without it, ``DEFAULT_MAXIMUM_CONCURRENCY`` (20:
AWS goes up to the account's concurrency, which this two-core class of machine cannot use).
A worker beyond the initial ones stops when its long poll comes back empty.

Limits: the batching window should stay below the queue's visibility timeout (messages
gathered early reappear otherwise, as they would on AWS); a batch stops growing near the
6 MB invocation payload limit. FIFO queues do not exist in lambdalet. Mappings are polled by
the node that runs them: several nodes sharing one store would each poll every mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from lambdalet.errors import AwsError, TooManyRequestsException
from lambdalet.models import now_ms
from lambdalet.queues.messages import md5_of_attributes, md5_of_body
from lambdalet.queues.models import QueueMessage
from lambdalet.topics import filter_policy
from lambdalet.triggers.mappings import (
    DELETING,
    DISABLED,
    ENABLED,
    KIND,
    SETTLED,
    EventSourceMapping,
)

if TYPE_CHECKING:
    from lambdalet.node import Node

log = logging.getLogger(__name__)

INITIAL_POLLERS = 5
DEFAULT_MAXIMUM_CONCURRENCY = 20
SCALE_UP_INTERVAL_MS = 200  # AWS adds up to 300 concurrent invocations a minute
LONG_POLL_S = 20
RECEIVE_MAX = 10  # messages one ReceiveMessage returns at most
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# A batch stops growing once its bodies pass this: the next receive may add ten messages of
# up to 256 KiB each and must still fit the invocation payload limit.
GATHER_LIMIT_BYTES = PAYLOAD_LIMIT_BYTES - RECEIVE_MAX * 262_144 - 64 * 1024
SHORT_WAIT_S = 0.05  # polling step for the last fraction of a second of a batching window
BACKOFF_MIN_MS = 100
BACKOFF_MAX_MS = 30_000
STOP_GRACE_S = 5.0  # how long stopping waits for batches in flight before cancelling them


def sqs_record(
    message: QueueMessage, event_source_arn: str, region: str, sender_id: str
) -> dict[str, Any]:
    """One record of the event Lambda sends for SQS."""
    record: dict[str, Any] = {
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(message.sent_unix_ms),
            "SenderId": sender_id,
            "ApproximateFirstReceiveTimestamp": str(message.first_receive_unix_ms or 0),
        },
        "messageAttributes": {
            name: _message_attribute(attribute)
            for name, attribute in message.message_attributes.items()
        },
        "md5OfBody": md5_of_body(message.body),
        "eventSource": "aws:sqs",
        "eventSourceARN": event_source_arn,
        "awsRegion": region,
    }
    if message.message_attributes:
        record["md5OfMessageAttributes"] = md5_of_attributes(message.message_attributes)
    return record


def _message_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda's SQS event spells it (camelCase, with list fields)."""
    shaped: dict[str, Any] = {}
    if "StringValue" in attribute:
        shaped["stringValue"] = attribute["StringValue"]
    if "BinaryValue" in attribute:
        shaped["binaryValue"] = attribute["BinaryValue"]
    shaped["stringListValues"] = []
    shaped["binaryListValues"] = []
    shaped["dataType"] = attribute["DataType"]
    return shaped


def passes_filters(record: dict[str, Any], patterns: list[dict[str, Any]]) -> bool:
    """Whether one of the patterns matches a record (every record does without patterns)."""
    if not patterns:
        return True
    view = dict(record)
    with contextlib.suppress(ValueError):
        body = json.loads(record["body"])
        if isinstance(body, dict):
            view["body"] = body
    text = json.dumps(view)
    return any(
        filter_policy.matches(pattern, filter_policy.MESSAGE_BODY, text, {}) for pattern in patterns
    )


def failed_message_ids(payload: bytes, message_ids: set[str]) -> set[str] | None:
    """The messages a ReportBatchItemFailures response names; None when the response is
    invalid, which fails the whole batch (AWS's rules)."""
    if not payload.strip():
        return set()
    try:
        response = json.loads(payload)
    except ValueError:
        return None
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


class Backoff:
    """Exponential backoff with jitter, reset by a success."""

    def __init__(self, low_ms: int = BACKOFF_MIN_MS, high_ms: int = BACKOFF_MAX_MS) -> None:
        self.low_ms = low_ms
        self.high_ms = high_ms
        self.delay_ms = 0

    def reset(self) -> None:
        """Forget past failures."""
        self.delay_ms = 0

    async def wait(self) -> None:
        """Sleep a little longer than last time."""
        self.delay_ms = min(self.high_ms, max(self.low_ms, self.delay_ms * 2))
        await asyncio.sleep(self.delay_ms * random.uniform(0.5, 1.0) / 1000)


class QueuePoller:
    """The workers of one enabled mapping."""

    def __init__(self, node: Node, mapping: EventSourceMapping) -> None:
        self.node = node
        self.mapping = mapping
        self.maximum_concurrency = mapping.maximum_concurrency or DEFAULT_MAXIMUM_CONCURRENCY
        self.initial_pollers = min(INITIAL_POLLERS, self.maximum_concurrency)
        self._patterns = mapping.filter_patterns()
        self._workers: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()
        self._last_scale_up_ms = 0
        self._stopping = False

    @property
    def worker_count(self) -> int:
        """How many workers poll the queue now."""
        return len(self._workers)

    def start(self) -> None:
        """Start the initial workers."""
        for _ in range(self.initial_pollers):
            self._add_worker()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every worker: idle ones at once, ones with a batch in flight after it ends
        (or after ``grace_s``; its messages then reappear after the visibility timeout)."""
        self._stopping = True
        for task in self._workers - self._busy:
            task.cancel()
        busy = list(self._busy)
        if busy and grace_s > 0:
            await asyncio.wait(busy, timeout=grace_s)
        for task in self._workers:
            task.cancel()
        workers = list(self._workers)
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)

    def _add_worker(self) -> None:
        task = asyncio.create_task(self._work(), name=f"mapping-{self.mapping.uuid}")
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    def _scale_up(self) -> None:
        at = now_ms()
        if (
            not self._stopping
            and len(self._workers) < self.maximum_concurrency
            and at - self._last_scale_up_ms >= SCALE_UP_INTERVAL_MS
        ):
            self._last_scale_up_ms = at
            self._add_worker()

    async def _work(self) -> None:
        """One worker: receive a batch, run it, again; errors are logged and backed off."""
        backoff = Backoff()
        mapping = self.mapping
        while not self._stopping:
            try:
                # Nothing is received for a function that is gone: it may come back.
                await self.node.function(mapping.function_name, mapping.qualifier)
                batch = await self._gather()
                if not batch:
                    if len(self._workers) > self.initial_pollers:
                        return  # scale down: the queue is drained
                    continue
                if len(batch) >= min(mapping.batch_size, RECEIVE_MAX):
                    self._scale_up()
                task = asyncio.current_task()
                assert task is not None
                self._busy.add(task)
                try:
                    delivered = await self._run_batch(batch)
                finally:
                    self._busy.discard(task)
            except AwsError as error:  # the function or the queue is gone
                log.warning("event source mapping %s: %s", mapping.uuid, error.message)
                await backoff.wait()
            except Exception:
                log.exception("event source mapping %s: polling failed", mapping.uuid)
                await backoff.wait()
            else:
                if delivered:
                    backoff.reset()
                else:
                    await backoff.wait()

    async def _gather(self) -> list[QueueMessage]:
        """Up to BatchSize messages: whatever one long poll brings, then, with a batching
        window, more until the batch is full or the window (from the first message) ends."""
        mapping = self.mapping
        queues = self.node.queues
        batch = await queues.receive_messages(
            mapping.queue_name,
            max_count=min(RECEIVE_MAX, mapping.batch_size),
            wait_time_s=LONG_POLL_S,
        )
        if not batch or mapping.maximum_batching_window_s == 0:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + mapping.maximum_batching_window_s
        size_bytes = sum(len(message.body) for message in batch)
        try:
            while (
                len(batch) < mapping.batch_size
                and size_bytes < GATHER_LIMIT_BYTES
                and not self._stopping
            ):
                remaining_s = deadline - loop.time()
                if remaining_s <= 0:
                    break
                wait_s = min(LONG_POLL_S, int(remaining_s))  # whole seconds, within the window
                more = await queues.receive_messages(
                    mapping.queue_name,
                    max_count=min(RECEIVE_MAX, mapping.batch_size - len(batch)),
                    wait_time_s=wait_s,
                )
                if not more and wait_s == 0:
                    await asyncio.sleep(min(remaining_s, SHORT_WAIT_S))
                batch.extend(more)
                size_bytes += sum(len(message.body) for message in more)
        except asyncio.CancelledError:
            await self._release(batch)  # stopped while gathering: show the messages again
            raise
        return batch

    async def _release(self, batch: list[QueueMessage]) -> None:
        """Make received messages visible again at once (their receive counts stay)."""
        for start in range(0, len(batch), RECEIVE_MAX):
            entries = [
                {"Id": str(index), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
                for index, message in enumerate(batch[start : start + RECEIVE_MAX])
            ]
            try:
                await self.node.queues.change_message_visibility_batch(
                    self.mapping.queue_name, entries
                )
            except AwsError as error:
                log.warning(
                    "event source mapping %s: could not release messages: %s",
                    self.mapping.uuid,
                    error.message,
                )

    async def _run_batch(self, batch: list[QueueMessage]) -> bool:
        """Invoke the function with a batch and delete what it processed; False when it
        could not be invoked (throttled, gone), so the worker backs off."""
        node, mapping = self.node, self.mapping
        settings = node.settings
        records = [
            sqs_record(message, mapping.event_source_arn, settings.region, settings.account_id)
            for message in batch
        ]
        if self._patterns:
            passing = [record for record in records if passes_filters(record, self._patterns)]
            dropped = [record for record in records if record not in passing]
            await self._delete(dropped)
            records = passing
            if not records:
                return True
        request_id = str(uuid4())
        try:
            config = await node.function(mapping.function_name, mapping.qualifier, route=True)
            outcome = await node.invoke(
                config,
                json.dumps({"Records": records}).encode(),
                request_id=request_id,
                invoked_qualifier=mapping.qualifier,
            )
        except TooManyRequestsException:
            log.info("event source mapping %s: throttled, backing off", mapping.uuid)
            return False
        except AwsError as error:
            log.warning(
                "event source mapping %s: invoke %s failed: %s",
                mapping.uuid,
                request_id,
                error.message,
            )
            return False
        if outcome.result.function_error:
            log.info(
                "event source mapping %s: invoke %s failed (%s); %d messages stay in the queue",
                mapping.uuid,
                request_id,
                outcome.result.function_error,
                len(records),
            )
            return True
        failed: set[str] = set()
        if mapping.reports_batch_item_failures:
            reported = failed_message_ids(
                outcome.result.payload, {record["messageId"] for record in records}
            )
            if reported is None:
                log.warning(
                    "event source mapping %s: invoke %s returned an invalid batchItemFailures"
                    " response; the whole batch failed",
                    mapping.uuid,
                    request_id,
                )
                return True
            failed = reported
        await self._delete([record for record in records if record["messageId"] not in failed])
        return True

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        """Delete received messages from the queue, ten at a time."""
        for start in range(0, len(records), RECEIVE_MAX):
            chunk = records[start : start + RECEIVE_MAX]
            entries = [
                {"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
                for index, record in enumerate(chunk)
            ]
            _, failed = await self.node.queues.delete_message_batch(
                self.mapping.queue_name, entries
            )
            for failure in failed:
                log.warning(
                    "event source mapping %s: could not delete a message: %s",
                    self.mapping.uuid,
                    failure["Message"],
                )


class MappingPollers:
    """The pollers of a node's mappings, started and stopped with the node, following each
    mapping's changes: ``changed(uuid)`` brings the pollers in line with the stored mapping
    and moves it to its settled state (or deletes it)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        # Held by every read-modify-write of a stored mapping on this node.
        self.write_lock = asyncio.Lock()
        self._pollers: dict[str, QueuePoller] = {}
        self._settling: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Start the pollers of the stored mappings, finishing transitions cut short."""
        for key, _ in await self.node.store.list_resources(KIND):
            await self._settle(key)

    async def stop(self) -> None:
        """Stop every poller; batches in flight get a short grace period."""
        for task in self._settling.values():
            task.cancel()
        await asyncio.gather(*self._settling.values(), return_exceptions=True)
        self._settling.clear()
        pollers = list(self._pollers.values())
        self._pollers.clear()
        await asyncio.gather(*(poller.stop() for poller in pollers), return_exceptions=True)

    def poller(self, uuid: str) -> QueuePoller | None:
        """The running poller of a mapping, if it has one."""
        return self._pollers.get(uuid)

    def changed(self, uuid: str, *, grace_s: float = STOP_GRACE_S) -> None:
        """Follow a change of a stored mapping, in the background, after earlier ones; a
        batch in flight gets ``grace_s`` to finish."""
        previous = self._settling.get(uuid)

        async def settle() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own to log
            await self._settle(uuid, grace_s)

        task = asyncio.create_task(settle(), name=f"settle-mapping-{uuid}")
        self._settling[uuid] = task
        task.add_done_callback(lambda done: self._settled(uuid, done))

    def _settled(self, uuid: str, task: asyncio.Task[None]) -> None:
        if self._settling.get(uuid) is task:
            del self._settling[uuid]
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "event source mapping %s: could not apply a change",
                uuid,
                exc_info=task.exception(),
            )

    def function_deleted(self, name: str) -> None:
        """Stop the work in flight for a deleted function; its mappings stay (as on AWS)
        and wait for a function of that name to exist again."""
        for uuid, poller in list(self._pollers.items()):
            if poller.mapping.function_name == name:
                self.changed(uuid, grace_s=0)

    async def _settle(self, uuid: str, grace_s: float = STOP_GRACE_S) -> None:
        record = await self.node.store.get_resource(KIND, uuid)
        old = self._pollers.get(uuid)
        if old is not None:
            await old.stop(grace_s)
            # Removed once stopped: if this is cancelled meanwhile, stop() still finds it.
            self._pollers.pop(uuid, None)
        if record is None:
            return
        mapping = EventSourceMapping.from_record(record)
        if mapping.state == DELETING:
            async with self.write_lock:
                await self.node.store.delete_resource(KIND, uuid)
            return
        if mapping.enabled:
            poller = QueuePoller(self.node, mapping)
            poller.start()
            self._pollers[uuid] = poller
        final = ENABLED if mapping.enabled else DISABLED
        if mapping.state in SETTLED and mapping.state == final:
            return
        async with self.write_lock:
            # A change made meanwhile has its own settle queued: leave the state to it.
            if await self.node.store.get_resource(KIND, uuid) == record:
                await self.node.store.replace_resource(KIND, uuid, {**record, "State": final})
