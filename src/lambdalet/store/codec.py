"""How records are turned into JSON columns and back, shared by the SQL stores."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from lambdalet.models import Alias, FunctionConfig, InvocationRecord, LayerRef, LayerVersion
from lambdalet.triggers.models import Schedule


def function_to_json(config: FunctionConfig) -> str:
    """A function configuration as one JSON document."""
    return json.dumps(dataclasses.asdict(config), separators=(",", ":"))


def function_from_json(text: str) -> FunctionConfig:
    """Inverse of :func:`function_to_json`, tolerant of fields added later."""
    data: dict[str, Any] = json.loads(text)
    known = {f.name for f in dataclasses.fields(FunctionConfig)}
    data = {key: value for key, value in data.items() if key in known}
    data["architectures"] = tuple(data.get("architectures", ("x86_64",)))
    data["layers"] = tuple(LayerRef(**layer) for layer in data.get("layers", ()))
    return FunctionConfig(**data)


def layer_to_json(layer: LayerVersion) -> str:
    """A layer version as one JSON document."""
    return json.dumps(dataclasses.asdict(layer), separators=(",", ":"))


def layer_from_json(text: str) -> LayerVersion:
    """Inverse of :func:`layer_to_json`."""
    data: dict[str, Any] = json.loads(text)
    for key in ("compatible_runtimes", "compatible_architectures", "policy_statements"):
        data[key] = tuple(data.get(key, ()))
    return LayerVersion(**data)


def code_shas(config: FunctionConfig) -> str:
    """Every code blob a function uses (its own and its layers'), space-separated."""
    return " ".join([config.code_sha256_hex, *(ref.code_sha256_hex for ref in config.layers)])


def invocation_row(record: InvocationRecord) -> tuple[Any, ...]:
    """An invocation record as a row of the ``invocations`` table."""
    return (
        record.request_id,
        record.function_name,
        record.version,
        record.started_unix_ms,
        record.duration_ms,
        record.billed_duration_ms,
        record.memory_mb,
        record.max_memory_used_mb,
        record.init_duration_ms,
        record.error_type,
    )


def invocation_from_row(row: tuple[Any, ...]) -> InvocationRecord:
    """Inverse of :func:`invocation_row`."""
    return InvocationRecord(*row)


def alias_to_json(alias: Alias) -> str:
    """An alias as one JSON document."""
    return json.dumps(dataclasses.asdict(alias), separators=(",", ":"))


def alias_from_json(text: str) -> Alias:
    """Inverse of :func:`alias_to_json`."""
    return Alias(**json.loads(text))


def schedule_to_json(schedule: Schedule) -> str:
    """A schedule as one JSON document (its next tick is kept in a column of its own)."""
    data = dataclasses.asdict(schedule)
    del data["next_fire_ms"]
    return json.dumps(data, separators=(",", ":"))


def schedule_from_json(text: str, next_fire_ms: int | None) -> Schedule:
    """Inverse of :func:`schedule_to_json`, with the next tick from its column."""
    return Schedule(**json.loads(text), next_fire_ms=next_fire_ms)
