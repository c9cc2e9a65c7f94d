"""A store kept in this process's memory: for tests and throwaway nodes; nothing survives."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from lambdalet.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.models import (
    Alias,
    AsyncEvent,
    EventRetry,
    FunctionConfig,
    FunctionUsage,
    InvocationRecord,
    LayerVersion,
    LogEvent,
    now_ms,
    same_code_and_settings,
)
from lambdalet.store.codec import code_shas
from lambdalet.store.memory_queues import MemoryQueues
from lambdalet.store.memory_resources import MemoryResources
from lambdalet.store.memory_schedules import MemorySchedules


# The mixins' __init__s call on to each other's, in this order.
class MemoryStore(MemorySchedules, MemoryQueues, MemoryResources):
    """The Store interface on dictionaries and lists (queues: see ``memory_queues``,
    schedules: ``memory_schedules``, resources: ``memory_resources``)."""

    def __init__(self) -> None:
        super().__init__()
        self._functions: dict[str, FunctionConfig] = {}
        self._logs: list[tuple[int, LogEvent]] = []
        self._invocations: list[InvocationRecord] = []
        self._events: dict[int, tuple[AsyncEvent, str]] = {}
        self._ids = itertools.count(1)
        self._layers: dict[tuple[str, int], LayerVersion] = {}
        self._versions: dict[str, dict[int, FunctionConfig]] = {}
        self._last_version: dict[str, int] = {}
        self._aliases: dict[str, dict[str, Alias]] = {}
        self._settings: dict[tuple[str, str], Any] = {}
        self._not_before_ms: dict[int, int] = {}
        self._latest_layer_version: dict[str, int] = {}

    async def open(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to release."""

    async def create_function(self, config: FunctionConfig) -> None:
        if config.name in self._functions:
            raise ResourceConflictException(f"Function already exist: {config.name}")
        self._functions[config.name] = config

    async def get_function(self, name: str) -> FunctionConfig | None:
        return self._functions.get(name)

    async def list_functions(self, marker: str | None, max_items: int) -> list[FunctionConfig]:
        names = sorted(name for name in self._functions if name > (marker or ""))
        return [self._functions[name] for name in names[:max_items]]

    async def update_function(self, config: FunctionConfig, expected_revision_id: str) -> None:
        current = self._functions.get(config.name)
        if current is None:
            raise ResourceNotFoundException(f"Function not found: {config.name}")
        if current.revision_id != expected_revision_id:
            raise PreconditionFailedException.stale_revision("GetFunction/GetAlias")
        self._functions[config.name] = config

    async def delete_function(self, name: str) -> FunctionConfig | None:
        for event_id, (event, _) in list(self._events.items()):
            if event.function_name == name:
                del self._events[event_id]
        for table in (self._versions, self._last_version, self._aliases):
            table.pop(name, None)
        for key in [k for k in self._settings if k[0] == name]:
            del self._settings[key]
        return self._functions.pop(name, None)

    async def publish_version(self, name: str, description: str | None) -> FunctionConfig:
        latest = self._functions.get(name)
        if latest is None:
            raise ResourceNotFoundException(f"Function not found: {name}")
        versions = self._versions.setdefault(name, {})
        if versions:
            newest = versions[max(versions)]
            if same_code_and_settings(newest, latest):
                return newest
        number = self._last_version.get(name, 0) + 1
        self._last_version[name] = number
        published = latest.evolve(
            version=str(number),
            revision_id=str(uuid.uuid4()),
            last_modified_ms=now_ms(),
            description=latest.description if description is None else description,
        )
        versions[number] = published
        return published

    async def get_version(self, name: str, version: int) -> FunctionConfig | None:
        return self._versions.get(name, {}).get(version)

    async def list_versions(self, name: str) -> list[FunctionConfig]:
        versions = self._versions.get(name, {})
        return [versions[number] for number in sorted(versions)]

    async def delete_version(self, name: str, version: int) -> FunctionConfig | None:
        for alias in self._aliases.get(name, {}).values():
            if str(version) in (alias.function_version, *alias.additional_version_weights):
                raise ResourceConflictException(
                    "Unable to delete version because the following aliases reference it:"
                    f" [{alias.name}]"
                )
        return self._versions.get(name, {}).pop(version, None)

    async def put_alias(self, alias: Alias, expected_revision_id: str | None) -> None:
        aliases = self._aliases.setdefault(alias.function_name, {})
        current = aliases.get(alias.name)
        if expected_revision_id is None and current is not None:
            raise ResourceConflictException(f"Alias already exists: {alias.name}")
        if expected_revision_id is not None:
            if current is None:
                raise ResourceNotFoundException(f"Alias not found: {alias.name}")
            if current.revision_id != expected_revision_id:
                raise PreconditionFailedException.stale_revision("GetAlias")
        aliases[alias.name] = alias

    async def get_alias(self, function_name: str, name: str) -> Alias | None:
        return self._aliases.get(function_name, {}).get(name)

    async def list_aliases(self, function_name: str) -> list[Alias]:
        aliases = self._aliases.get(function_name, {})
        return [aliases[name] for name in sorted(aliases)]

    async def delete_alias(self, function_name: str, name: str) -> Alias | None:
        return self._aliases.get(function_name, {}).pop(name, None)

    async def put_setting(self, function_name: str, key: str, value: Any) -> None:
        if value is None:
            self._settings.pop((function_name, key), None)
        else:
            self._settings[(function_name, key)] = value

    async def list_settings(self, function_name: str | None) -> dict[tuple[str, str], Any]:
        return {
            key: value for key, value in self._settings.items() if function_name in (None, key[0])
        }

    async def code_in_use(self, sha256_hex: str) -> bool:
        configs = [*self._functions.values()]
        configs += [v for versions in self._versions.values() for v in versions.values()]
        return any(sha256_hex in code_shas(f) for f in configs) or any(
            layer.code_sha256_hex == sha256_hex for layer in self._layers.values()
        )

    async def publish_layer_version(self, layer: LayerVersion) -> LayerVersion:
        version = self._latest_layer_version.get(layer.name, 0) + 1
        self._latest_layer_version[layer.name] = version
        published = replace(layer, version=version)
        self._layers[(layer.name, version)] = published
        return published

    async def get_layer_version(self, name: str, version: int) -> LayerVersion | None:
        return self._layers.get((name, version))

    async def list_layer_versions(self, name: str) -> list[LayerVersion]:
        found = [layer for (layer_name, _), layer in self._layers.items() if layer_name == name]
        return sorted(found, key=lambda layer: layer.version, reverse=True)

    async def list_layers(self) -> list[LayerVersion]:
        newest: dict[str, LayerVersion] = {}
        for layer in self._layers.values():
            if layer.name not in newest or layer.version > newest[layer.name].version:
                newest[layer.name] = layer
        return [newest[name] for name in sorted(newest)]

    async def update_layer_version(self, layer: LayerVersion, expected_revision_id: str) -> None:
        current = self._layers.get((layer.name, layer.version))
        if current is None:
            raise ResourceNotFoundException(
                f"Layer version {layer.name}:{layer.version} does not exist."
            )
        if current.policy_revision_id != expected_revision_id:
            raise PreconditionFailedException.stale_revision("GetLayerVersionPolicy")
        self._layers[(layer.name, layer.version)] = layer

    async def delete_layer_version(self, name: str, version: int) -> LayerVersion | None:
        return self._layers.pop((name, version), None)

    async def total_code_size_bytes(self) -> tuple[int, int]:
        total = sum(f.code_size_bytes for f in self._functions.values())
        return total, len(self._functions)

    async def record(self, invocations: list[InvocationRecord], logs: list[LogEvent]) -> None:
        self._invocations.extend(invocations)
        self._logs.extend((next(self._ids), event) for event in logs)

    async def read_logs(
        self, function_name: str, after_id: int, limit: int
    ) -> list[tuple[int, LogEvent]]:
        found = [
            (log_id, event)
            for log_id, event in self._logs
            if event.function_name == function_name and log_id > after_id
        ]
        return found[:limit]

    async def list_invocations(self, function_name: str, limit: int) -> list[InvocationRecord]:
        found = [r for r in self._invocations if r.function_name == function_name]
        return sorted(found, key=lambda r: r.started_unix_ms, reverse=True)[:limit]

    async def usage(self, since_unix_ms: int, until_unix_ms: int) -> list[FunctionUsage]:
        sums: dict[str, list[int]] = {}
        for record in self._invocations:
            if since_unix_ms <= record.started_unix_ms < until_unix_ms:
                total = sums.setdefault(record.function_name, [0, 0, 0, 0])
                total[0] += 1
                total[1] += record.error_type is not None
                total[2] += record.billed_duration_ms
                total[3] += record.billed_duration_ms * record.memory_mb
        return [FunctionUsage(name, *sums[name]) for name in sorted(sums)]

    async def enqueue_event(
        self, function_name: str, qualifier: str, payload: bytes, request_id: str
    ) -> int:
        event_id = next(self._ids)
        event = AsyncEvent(event_id, function_name, qualifier, payload, request_id, now_ms(), 0)
        self._events[event_id] = (event, "pending")
        return event_id

    async def claim_events(
        self,
        limit: int,
        *,
        finished: Sequence[int] = (),
        retries: Sequence[EventRetry] = (),
    ) -> list[AsyncEvent]:
        for event_id in finished:
            self._events.pop(event_id, None)
            self._not_before_ms.pop(event_id, None)
        for retry in retries:
            if retry.event_id in self._events:
                event = self._events[retry.event_id][0]
                if retry.throttled:
                    event = replace(
                        event, attempts=event.attempts - 1, throttles=event.throttles + 1
                    )
                self._events[retry.event_id] = (event, "pending")
                self._not_before_ms[retry.event_id] = retry.not_before_ms
        claimed: list[AsyncEvent] = []
        for event_id in sorted(self._events):
            if len(claimed) >= limit:
                break
            event, state = self._events[event_id]
            due = self._not_before_ms.get(event_id, 0) <= now_ms()
            if state == "pending" and due:
                event = replace(event, attempts=event.attempts + 1)
                self._events[event_id] = (event, "running")
                claimed.append(event)
        return claimed

    async def release_running_events(self) -> int:
        running = [i for i, (_, state) in self._events.items() if state == "running"]
        for event_id in running:
            self._events[event_id] = (self._events[event_id][0], "pending")
        return len(running)
