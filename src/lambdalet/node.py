"""A node: one running lambdalet with its store, code blobs, router and async dispatcher.

The API, the CLI's ``serve`` and the tests all build a Node from one Settings object; this is
the Python API the HTTP layer is a thin skin over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from lambdalet.config import Settings
from lambdalet.errors import AwsError, ResourceNotFoundException, TooManyRequestsException
from lambdalet.metering.recorder import Recorder
from lambdalet.models import (
    LATEST,
    Alias,
    AsyncEvent,
    EventRetry,
    FunctionConfig,
    Invocation,
    now_ms,
)
from lambdalet.queues.service import QueueService
from lambdalet.sandbox import make_backend
from lambdalet.scheduler.async_queue import AsyncDispatcher, throttle_delay_ms
from lambdalet.scheduler.router import InvokeOutcome, Router
from lambdalet.store import BlobStore, Store, make_store
from lambdalet.topics.service import TopicService
from lambdalet.triggers.pollers import MappingPollers
from lambdalet.triggers.schedules import Clock, Scheduler

log = logging.getLogger(__name__)

RESERVED = "reserved_concurrency"
EVENT_INVOKE_CONFIG = "event_invoke_config:"
PROVISIONED = "provisioned:"


_ids = random.Random()  # seeded from os.urandom once; request ids need not be secret


def new_request_id() -> str:
    """A request id in AWS's form (a version 4 UUID), without a system call per id."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


class Node:
    """Everything one lambdalet process runs, started and stopped together."""

    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.store: Store = make_store(settings)
        self.blobs = BlobStore(settings.data_dir / "code")
        self.recorder = Recorder(self.store)
        self.router = Router(
            settings,
            make_backend(settings.sandbox_backend, freeze_idle=settings.freeze_idle),
            self.blobs,
            self.recorder,
        )
        self.code_lock = asyncio.Lock()
        self._random = random.Random()
        # Function configurations by (name, version); this node is the only writer of its store.
        self._cache: dict[tuple[str, str], FunctionConfig] = {}
        self._generation: dict[str, int] = {}
        self._settings_cache: dict[str, dict[tuple[str, str], Any]] = {}
        self._provisioning: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.dispatcher = AsyncDispatcher(self.store, self.run_async_event, settings.async_workers)
        self.queues = QueueService(self.store, settings)  # SQS-compatible queues
        self.topics = TopicService(self.store, settings, self.queues, self.enqueue)  # SNS
        self.mapping_pollers = MappingPollers(self)  # event source mappings from queues
        # ``clock`` is for tests (lambdalet.testing): schedules then follow a clock they move.
        self.schedules = Scheduler(
            self.store,
            self.enqueue,
            region=settings.region,
            account_id=settings.account_id,
            clock=clock,
        )

    async def start(self) -> None:
        """Open the store, restore concurrency settings and start the background loops."""
        await self.store.open()
        await asyncio.to_thread(self.blobs.sweep_scratch)
        self.recorder.start()
        self.router.start()
        for (name, key), value in (await self.store.list_settings(None)).items():
            if key == RESERVED:
                self.router.limiter.set_reserved(name, int(value))
            elif key.startswith(PROVISIONED):
                self._start_provisioning(name, key.removeprefix(PROVISIONED), value["requested"])
        await self.dispatcher.start()
        await self.schedules.start()
        await self.mapping_pollers.start()

    async def stop(self) -> None:
        """Stop taking work, finish what runs, flush records, close the store."""
        for task in self._provisioning.values():
            task.cancel()
        await self.mapping_pollers.stop()
        await self.schedules.stop()
        await self.dispatcher.stop()
        await self.router.stop()
        await self.recorder.stop()
        await self.store.close()

    async def function(
        self, name: str, qualifier: str | None = None, *, route: bool = False
    ) -> FunctionConfig:
        """The configuration a name and qualifier ($LATEST, a version or an alias) stand for.

        With ``route`` an alias picks among its versions by their weights, as Invoke does;
        without, it stands for its primary version. ResourceNotFoundException if unknown.
        """
        latest = await self._latest(name)
        if latest is None:
            raise ResourceNotFoundException(
                f"Function not found: {self.settings.function_arn(name)}"
            )
        if qualifier in (None, LATEST):
            return latest
        assert qualifier is not None
        missing = ResourceNotFoundException(
            f"Function not found: {self.settings.function_arn(name, qualifier)}"
        )
        if qualifier.isdigit():
            version = self._cache.get((name, qualifier))
            if version is None:
                generation = self._generation.get(name, 0)
                version = await self.store.get_version(name, int(qualifier))
                if version is None:
                    raise missing
                if generation == self._generation.get(name, 0):
                    self._cache[(name, qualifier)] = version  # versions never change
            return version
        alias = await self.store.get_alias(name, qualifier)
        if alias is None:
            raise missing
        target = self.pick_version(alias) if route else alias.function_version
        return await self.function(name, target)

    async def _latest(self, name: str) -> FunctionConfig | None:
        """$LATEST from the cache, or from the store (every invoke needs it: keep it cheap)."""
        cached = self._cache.get((name, LATEST))
        if cached is not None:
            return cached
        generation = self._generation.get(name, 0)
        latest = await self.store.get_function(name)
        # A change made while the store was read must not be overwritten by what was read.
        if latest is not None and generation == self._generation.get(name, 0):
            self._cache[(name, LATEST)] = latest
        return latest

    async def retire(self, name: str, version: str | None = None) -> None:
        """Forget what is cached of a function (or one version) that changed or was deleted,
        and stop its idle sandboxes."""
        self._generation[name] = self._generation.get(name, 0) + 1
        self._settings_cache.pop(name, None)
        for key in [k for k in self._cache if k[0] == name and version in (None, k[1])]:
            del self._cache[key]
        await self.router.retire(name, version)

    def pick_version(self, alias: Alias) -> str:
        """The version an invocation of ``alias`` runs, drawn by the routing weights."""
        draw = self._random.random()
        for version, weight in alias.additional_version_weights.items():
            if draw < weight:
                return version
            draw -= weight
        return alias.function_version

    async def function_settings(self, name: str) -> dict[tuple[str, str], Any]:
        """A function's settings (concurrency, async invocation...), cached: every async
        event needs them."""
        cached = self._settings_cache.get(name)
        if cached is None:
            generation = self._generation.get(name, 0)
            cached = await self.store.list_settings(name)
            if generation == self._generation.get(name, 0):
                self._settings_cache[name] = cached
        return cached

    async def put_setting(self, name: str, key: str, value: Any) -> None:
        """Keep (or with None, remove) a function setting."""
        self._generation[name] = self._generation.get(name, 0) + 1
        self._settings_cache.pop(name, None)
        await self.store.put_setting(name, key, value)
        self._settings_cache.pop(name, None)

    async def set_reserved_concurrency(self, name: str, value: int | None) -> None:
        """Reserve concurrency for a function (None removes the reservation)."""
        if value is not None:
            self.router.limiter.check_reservation(name, value)
        await self.put_setting(name, RESERVED, value)
        self.router.limiter.set_reserved(name, value)

    async def reserved_concurrency(self, name: str) -> int | None:
        """A function's reserved concurrency, if it has one."""
        value = (await self.function_settings(name)).get((name, RESERVED))
        return None if value is None else int(value)

    async def put_provisioned_concurrency(self, name: str, qualifier: str, count: int) -> None:
        """Keep ``count`` sandboxes of a version (or an alias's version) initialized."""
        await self.function(name, qualifier)
        await self.put_setting(
            name, PROVISIONED + qualifier, {"requested": count, "last_modified_ms": now_ms()}
        )
        self._start_provisioning(name, qualifier, count)

    def _start_provisioning(self, name: str, qualifier: str, count: int) -> None:
        async def provision() -> None:
            config = await self.function(name, qualifier)
            await self.router.provision(config, count)

        previous = self._provisioning.pop((name, qualifier), None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(provision(), name=f"provision-{name}-{qualifier}")
        task.add_done_callback(_log_provisioning_failure)
        self._provisioning[(name, qualifier)] = task

    async def provisioned_concurrency(self, name: str) -> dict[str, dict[str, Any]]:
        """Each qualifier's provisioned concurrency: requested, allocated, status."""
        found: dict[str, dict[str, Any]] = {}
        for (_, key), value in (await self.function_settings(name)).items():
            if not key.startswith(PROVISIONED):
                continue
            qualifier = key.removeprefix(PROVISIONED)
            task = self._provisioning.get((name, qualifier))
            try:
                allocated = self.router.provisioned_ready(await self.function(name, qualifier))
            except ResourceNotFoundException:
                allocated = 0
            status, reason = "IN_PROGRESS", None
            if allocated >= value["requested"]:
                status = "READY"
            elif task is not None and task.done() and not task.cancelled() and task.exception():
                status, reason = "FAILED", str(task.exception())
            found[qualifier] = {**value, "allocated": allocated, "status": status, "reason": reason}
        return found

    async def delete_provisioned_concurrency(self, name: str, qualifier: str) -> None:
        """Stop keeping sandboxes initialized for a qualifier."""
        config = await self.function(name, qualifier)
        await self.put_setting(name, PROVISIONED + qualifier, None)
        task = self._provisioning.pop((name, qualifier), None)
        if task is not None:
            task.cancel()
        await self.router.unprovision(name, config.version)

    async def forget(self, name: str) -> None:
        """Drop every sandbox and concurrency setting of a deleted function; its event
        source mappings stay, as on AWS, but their work in flight stops."""
        self.router.limiter.set_reserved(name, None)
        self.mapping_pollers.function_deleted(name)
        for key in [k for k in self._provisioning if k[0] == name]:
            self._provisioning.pop(key).cancel()
        await self.router.unprovision(name, None)
        await self.retire(name)

    async def invoke(
        self,
        function: FunctionConfig,
        payload: bytes,
        *,
        request_id: str,
        client_context: str | None = None,
        invoked_qualifier: str | None = None,
    ) -> InvokeOutcome:
        """Run one invocation of ``function`` now and wait for its result."""
        invocation = Invocation(
            request_id=request_id,
            payload=payload or b"{}",
            function_arn=self.settings.function_arn(function.name, invoked_qualifier),
            deadline_unix_ms=now_ms() + function.timeout_s * 1000,
            client_context=client_context,
            trace_id=_trace_id(),
        )
        return await self.router.invoke(function, invocation)

    async def enqueue(
        self, function_name: str, qualifier: str | None, payload: bytes, request_id: str
    ) -> None:
        """Durably accept an async event; it is committed when this returns."""
        await self.store.enqueue_event(function_name, qualifier or LATEST, payload, request_id)
        self.dispatcher.notify()

    async def event_invoke_config(self, name: str, qualifier: str) -> dict[str, Any] | None:
        """The asynchronous invocation settings of a function's qualifier, if any were put."""
        value: dict[str, Any] | None = (await self.function_settings(name)).get(
            (name, EVENT_INVOKE_CONFIG + qualifier)
        )
        return value

    async def run_async_event(self, event: AsyncEvent) -> EventRetry | None:
        """Run one queued event (the dispatcher calls this); return when to retry it, if it
        should be, as AWS does: up to MaximumRetryAttempts after function errors, with the
        delay doubling; throttles with a backoff from 1 s to 5 minutes until the event is
        too old; then the destinations."""
        try:
            config = await self.function(event.function_name, event.qualifier, route=True)
        except ResourceNotFoundException:
            log.warning(
                "dropping async event %s: %s:%s is gone",
                event.request_id,
                event.function_name,
                event.qualifier,
            )
            return None
        settings = await self.event_invoke_config(event.function_name, event.qualifier) or {}
        max_retries = int(settings.get("MaximumRetryAttempts", 2))
        max_age_ms = int(settings.get("MaximumEventAgeInSeconds", 21_600)) * 1000
        age_ms = now_ms() - event.accepted_unix_ms
        if age_ms > max_age_ms:
            await self._send_to_destination(event, config, settings, "EventAgeExceeded", None)
            await self._send_to_dead_letter(event, config, None)
            return None
        try:
            outcome = await self.invoke(
                config,
                event.payload,
                request_id=event.request_id,
                invoked_qualifier=None if event.qualifier == LATEST else event.qualifier,
            )
        except TooManyRequestsException:
            # Never past the event's age limit: still throttled then, it fails on time.
            retry_at_ms = min(
                now_ms() + throttle_delay_ms(event.throttles),
                event.accepted_unix_ms + max_age_ms,
            )
            return EventRetry(event.event_id, retry_at_ms, throttled=True)
        if not outcome.result.function_error:
            await self._send_to_destination(event, config, settings, "Success", outcome)
            return None
        delay_ms = self.settings.async_retry_delay_ms << max(event.attempts - 1, 0)
        if event.attempts <= max_retries and age_ms + delay_ms <= max_age_ms:
            log.info(
                "async event %s failed; retry %d in %d ms",
                event.request_id,
                event.attempts,
                delay_ms,
            )
            return EventRetry(event.event_id, now_ms() + delay_ms)
        condition = "RetriesExhausted" if event.attempts > max_retries else "EventAgeExceeded"
        await self._send_to_destination(event, config, settings, condition, outcome)
        await self._send_to_dead_letter(event, config, outcome)
        return None

    async def _send_to_destination(
        self,
        event: AsyncEvent,
        config: FunctionConfig,
        settings: dict[str, Any],
        condition: str,
        outcome: InvokeOutcome | None,
    ) -> None:
        """Deliver AWS's invocation record to OnSuccess or OnFailure, if one is set."""
        which = "OnSuccess" if condition == "Success" else "OnFailure"
        destination = settings.get("DestinationConfig", {}).get(which, {}).get("Destination")
        if not destination:
            if condition != "Success" and not config.dead_letter_target_arn:
                log.warning(
                    "async event %s of %s dropped: %s",
                    event.request_id,
                    event.function_name,
                    condition,
                )
            return
        record = invocation_record(self.settings, event, config, condition, outcome)
        await self._deliver(event, destination, json.dumps(record), None)

    async def _send_to_dead_letter(
        self, event: AsyncEvent, config: FunctionConfig, outcome: InvokeOutcome | None
    ) -> None:
        """Send a failed event's payload to the function's DeadLetterConfig target, if it has
        one, with the message attributes AWS adds: RequestID, ErrorCode, ErrorMessage."""
        target = config.dead_letter_target_arn
        if not target:
            return
        error_code, error_message = "200", "Event age exceeded before the event could run"
        if outcome is not None:
            try:
                error_message = str(json.loads(outcome.result.payload)["errorMessage"])
            except (ValueError, KeyError, TypeError):
                error_message = outcome.result.payload.decode("utf-8", "replace")
        else:
            error_code = "408"
        attributes = {
            "RequestID": {"DataType": "String", "StringValue": event.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": error_code},
            "ErrorMessage": {"DataType": "String", "StringValue": error_message[:1024] or "-"},
        }
        body = event.payload.decode("utf-8", "replace") or "{}"
        await self._deliver(event, target, body, attributes)

    async def _deliver(
        self,
        event: AsyncEvent,
        target: str,
        body: str,
        attributes: dict[str, dict[str, str]] | None,
    ) -> None:
        """Hand a record to a function, queue or topic; a target that is gone is logged."""
        try:
            service = destination_service(target)
            if service == "lambda":
                name, qualifier = destination_function(target)
                await self.enqueue(name, qualifier, body.encode(), new_request_id())
            elif service == "sqs":
                await self.queues.send_message(target, body, message_attributes=attributes)
            else:
                await self.topics.publish(target, body, message_attributes=attributes)
        except (AwsError, ValueError) as error:
            log.warning(
                "async event %s of %s: could not deliver to %s: %s",
                event.request_id,
                event.function_name,
                target,
                getattr(error, "message", error),
            )


def invocation_record(
    settings: Settings,
    event: AsyncEvent,
    config: FunctionConfig,
    condition: str,
    outcome: InvokeOutcome | None,
) -> dict[str, Any]:
    """The record AWS sends to an asynchronous invocation's destination."""
    try:
        request_payload: Any = json.loads(event.payload) if event.payload else {}
    except ValueError:
        request_payload = event.payload.decode("utf-8", "replace")
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": stamp,
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": settings.function_arn(event.function_name, event.qualifier),
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": request_payload,
    }
    if outcome is not None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": config.version}
        if outcome.result.function_error:
            response["functionError"] = outcome.result.function_error
        record["responseContext"] = response
        try:
            record["responsePayload"] = json.loads(outcome.result.payload)
        except ValueError:
            record["responsePayload"] = outcome.result.payload.decode("utf-8", "replace")
    return record


def destination_function(arn: str) -> tuple[str, str | None]:
    """(name, qualifier) of a function destination ARN."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[2] != "lambda" or parts[5] != "function":
        raise ValueError(f"not a function ARN: {arn}")
    return parts[6], parts[7] if len(parts) > 7 else None


def destination_service(arn: str) -> str:
    """The service (``lambda``, ``sqs`` or ``sns``) of a destination or dead-letter ARN;
    ValueError if it is not the ARN of a function, queue or topic."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and all(parts[3:6]):
        if parts[2] == "lambda":
            destination_function(arn)
            return "lambda"
        if parts[2] in ("sqs", "sns") and len(parts) == 6:
            return parts[2]
    raise ValueError(f"not a function, queue or topic ARN: {arn}")


def _log_provisioning_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("provisioning sandboxes failed: %s", task.exception())


def _trace_id() -> str:
    """An X-Ray-style trace header value."""
    root = f"1-{now_ms() // 1000:08x}-{_ids.getrandbits(96):024x}"
    return f"Root={root};Parent={_ids.getrandbits(64):016x};Sampled=0"


def decode_client_context(value: str) -> str:
    """The JSON text of a base64 ClientContext header; ValueError if it is not that."""
    text = base64.b64decode(value, validate=True).decode("utf-8")
    if not isinstance(json.loads(text), dict):
        raise ValueError("client context is not a JSON object")
    return text
