"""How records are turned into JSON columns and back, shared by the SQL stores."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from lambdalet.models import FunctionConfig, InvocationRecord


def function_to_json(config: FunctionConfig) -> str:
    """A function configuration as one JSON document."""
    return json.dumps(dataclasses.asdict(config), separators=(",", ":"))


def function_from_json(text: str) -> FunctionConfig:
    """Inverse of :func:`function_to_json`, tolerant of fields added later."""
    data: dict[str, Any] = json.loads(text)
    known = {f.name for f in dataclasses.fields(FunctionConfig)}
    data = {key: value for key, value in data.items() if key in known}
    data["architectures"] = tuple(data.get("architectures", ("x86_64",)))
    return FunctionConfig(**data)


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
