"""The store interface: the one place that holds lambdalet's state.

Implementations: ``sqlite`` (the embedded default) and ``memory`` (tests and throwaway nodes),
chosen by ``Settings.store_url``. Code blobs live beside the store in a :class:`BlobStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lambdalet.models import (
    Alias,
    AsyncEvent,
    EventRetry,
    FunctionConfig,
    FunctionUsage,
    InvocationRecord,
    LayerVersion,
    LogEvent,
)
from lambdalet.queues.models import Queue, QueueCounts, QueueMessage, Receipt, Received
from lambdalet.triggers.models import Schedule


class Store(Protocol):
    """Functions, logs, invocation records and the async event queue."""

    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    async def close(self) -> None:
        """Release connections; the store can not be used after."""

    async def create_function(self, config: FunctionConfig) -> None:
        """Add a function; raise ResourceConflictException if the name is taken."""

    async def get_function(self, name: str) -> FunctionConfig | None:
        """The function's $LATEST configuration, or None."""

    async def list_functions(self, marker: str | None, max_items: int) -> list[FunctionConfig]:
        """Functions ordered by name, starting after ``marker``, at most ``max_items``."""

    async def update_function(self, config: FunctionConfig, expected_revision_id: str) -> None:
        """Replace a function's configuration if its revision is still ``expected_revision_id``.

        Raise PreconditionFailedException otherwise, ResourceNotFoundException if it is gone.
        """

    async def delete_function(self, name: str) -> FunctionConfig | None:
        """Remove a function with its versions, aliases and queued events; return $LATEST."""

    async def publish_version(self, name: str, description: str | None) -> FunctionConfig:
        """Snapshot $LATEST as the next version, unless the newest version already matches it
        (then return that one); ResourceNotFoundException if the function is gone."""

    async def get_version(self, name: str, version: int) -> FunctionConfig | None:
        """A published version, or None."""

    async def list_versions(self, name: str) -> list[FunctionConfig]:
        """Published versions, oldest first."""

    async def delete_version(self, name: str, version: int) -> FunctionConfig | None:
        """Remove a published version; ResourceConflictException if an alias points to it."""

    async def put_alias(self, alias: Alias, expected_revision_id: str | None) -> None:
        """Create an alias (``expected_revision_id`` None: ResourceConflictException if it
        exists) or replace it if its revision is still ``expected_revision_id``."""

    async def get_alias(self, function_name: str, name: str) -> Alias | None:
        """An alias, or None."""

    async def list_aliases(self, function_name: str) -> list[Alias]:
        """A function's aliases by name."""

    async def delete_alias(self, function_name: str, name: str) -> Alias | None:
        """Remove an alias; return it."""

    async def put_setting(self, function_name: str, key: str, value: Any) -> None:
        """Keep a function-level setting (JSON value), or remove it with None."""

    async def list_settings(self, function_name: str | None) -> dict[tuple[str, str], Any]:
        """Settings of one function, or of all, keyed by (function name, key)."""

    async def code_in_use(self, sha256_hex: str) -> bool:
        """Whether any function or layer version still refers to this code blob."""

    async def publish_layer_version(self, layer: LayerVersion) -> LayerVersion:
        """Add ``layer`` as the next version of its layer (numbers are never reused)."""

    async def get_layer_version(self, name: str, version: int) -> LayerVersion | None:
        """One layer version, or None."""

    async def list_layer_versions(self, name: str) -> list[LayerVersion]:
        """A layer's versions, newest first."""

    async def list_layers(self) -> list[LayerVersion]:
        """The newest version of every layer that has one, ordered by layer name."""

    async def update_layer_version(self, layer: LayerVersion, expected_revision_id: str) -> None:
        """Replace a layer version's policy if its revision is still ``expected_revision_id``."""

    async def delete_layer_version(self, name: str, version: int) -> LayerVersion | None:
        """Remove a layer version; functions that use it keep their copy."""

    async def total_code_size_bytes(self) -> tuple[int, int]:
        """(sum of code sizes, number of functions)."""

    async def record(self, invocations: list[InvocationRecord], logs: list[LogEvent]) -> None:
        """Keep a batch of invocation records and log lines, in one transaction."""

    async def read_logs(
        self, function_name: str, after_id: int, limit: int
    ) -> list[tuple[int, LogEvent]]:
        """Log lines of a function with an id above ``after_id``, oldest first."""

    async def list_invocations(self, function_name: str, limit: int) -> list[InvocationRecord]:
        """The newest invocation records of a function, newest first."""

    async def usage(self, since_unix_ms: int, until_unix_ms: int) -> list[FunctionUsage]:
        """Per function, by name: its invocations that started in [since, until), summed."""

    async def enqueue_event(
        self, function_name: str, qualifier: str, payload: bytes, request_id: str
    ) -> int:
        """Durably accept an async event; return its id once it is committed."""

    async def claim_events(
        self,
        limit: int,
        *,
        finished: Sequence[int] = (),
        retries: Sequence[EventRetry] = (),
    ) -> list[AsyncEvent]:
        """In one transaction: forget the ``finished`` events, make the ``retries`` pending
        again (due at their time), then mark up to ``limit`` pending events that are due as
        running (each claimed by one caller only, as with ``FOR UPDATE SKIP LOCKED``) and
        return them, oldest first. A claim counts an attempt; a throttled retry gives it back
        and counts a throttle instead."""

    async def release_running_events(self) -> int:
        """Make events left running by a stopped node pending again; return how many."""

    # Schedules (lambdalet.triggers.schedules): EventBridge Scheduler schedules with their next
    # tick; several nodes may share the store, so ticks are claimed with a conditional update.

    async def put_schedule(self, schedule: Schedule, *, create: bool) -> None:
        """Add a schedule (ConflictException if its group has one of that name) or, without
        ``create``, replace one (ResourceNotFoundException if it is gone)."""

    async def get_schedule(self, group_name: str, name: str) -> Schedule | None:
        """A schedule, or None."""

    async def list_schedules(
        self,
        group_name: str,
        name_prefix: str | None,
        state: str | None,
        after_name: str | None,
        limit: int,
    ) -> list[Schedule]:
        """A group's schedules by name, after ``after_name``, filtered by prefix and state."""

    async def delete_schedule(
        self, group_name: str, name: str, revision_id: str | None = None
    ) -> Schedule | None:
        """Remove a schedule (only if it is still at ``revision_id``, when given); return it."""

    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        """Schedules whose next tick is due at ``now_ms``, the earliest first."""

    async def next_schedule_tick_ms(self) -> int | None:
        """When the earliest next tick of any schedule is due, or None if none is."""

    async def claim_schedule_tick(self, schedule: Schedule, next_fire_ms: int | None) -> bool:
        """Move a schedule's next tick from ``schedule.next_fire_ms`` to ``next_fire_ms`` in one
        atomic step, if the schedule is still at that tick and revision; whether it moved.

        Of several nodes claiming the same tick, exactly one gets True.
        """

    # Queues (lambdalet.queues): an SQS-compatible subset. Methods that take a queue's name
    # raise QueueDoesNotExist where the queue must exist; times are Unix milliseconds.

    async def create_queue(self, queue: Queue) -> Queue:
        """Add a queue, or return the queue of that name unchanged if there is one."""

    async def get_queue(self, name: str) -> Queue | None:
        """A queue, or None."""

    async def list_queues(self, prefix: str, after_name: str | None, limit: int) -> list[Queue]:
        """Queues whose names start with ``prefix``, by name, after ``after_name``."""

    async def set_queue_attributes(
        self, name: str, changes: dict[str, str | None], at_unix_ms: int
    ) -> Queue:
        """Merge attribute changes into a queue (None removes one); return the queue."""

    async def delete_queue(self, name: str) -> bool:
        """Remove a queue and its messages; whether it existed."""

    async def send_queue_messages(self, messages: list[QueueMessage]) -> list[QueueMessage]:
        """Commit messages of one queue in one transaction; return them with their ``seq``."""

    async def receive_queue_messages(
        self, queue: Queue, max_count: int, visibility_timeout_ms: int, at_unix_ms: int
    ) -> Received:
        """Take up to ``max_count`` visible messages, oldest first, and hide them until
        ``at_unix_ms + visibility_timeout_ms`` under a new receipt token, in one transaction.

        Messages past the queue's retention are dropped first. A message already received
        as often as the queue's redrive policy allows moves to its dead-letter queue instead
        (if that queue exists) and is not returned.
        """

    async def delete_queue_messages(self, queue_name: str, receipts: list[Receipt]) -> list[bool]:
        """Delete each message whose latest receipt token matches; whether each was deleted."""

    async def change_queue_message_visibility(
        self, queue_name: str, changes: list[tuple[Receipt, int]], at_unix_ms: int
    ) -> list[str]:
        """Make received messages visible at the given times; for each, VISIBILITY_CHANGED,
        VISIBILITY_NOT_IN_FLIGHT (visible already) or VISIBILITY_GONE (deleted, received
        again since)."""

    async def purge_queue(self, name: str) -> int:
        """Delete every message of a queue; return how many."""

    async def count_queue_messages(self, queue: Queue, at_unix_ms: int) -> QueueCounts:
        """How many of a queue's unexpired messages are visible, in flight and delayed."""

    async def next_queue_message_visible_at(self, name: str, at_unix_ms: int) -> int | None:
        """When the next message of a queue that is hidden now becomes visible, if any."""

    # Resources: JSON documents by kind and key, for the services whose objects are not
    # functions (topics and subscriptions, event source mappings, function URLs, HTTP APIs).
    # Keys may be paths ("api-id/route-id") so that one prefix lists or deletes a family.

    async def insert_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        """Add a resource; False (and nothing changed) if one of that kind and key exists."""

    async def replace_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        """Replace an existing resource; False (and nothing changed) if there is none."""

    async def get_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        """A resource, or None."""

    async def list_resources(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """(key, value) of the resources of a kind whose keys start with ``prefix``, by key."""

    async def delete_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        """Remove a resource; what it was, or None if there was none."""

    async def delete_resources(self, kind: str, prefix: str) -> int:
        """Remove every resource of a kind whose key starts with ``prefix``; how many."""
