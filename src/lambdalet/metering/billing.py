"""Billing arithmetic and the log lines AWS writes around each invocation."""

from __future__ import annotations

import math


def billed_duration_ms(duration_ms: float, increment_ms: int) -> int:
    """Duration rounded up to the billing increment (1 ms today on AWS, 100 ms classic)."""
    return max(1, math.ceil(duration_ms / increment_ms)) * increment_ms


def start_line(request_id: str, version: str) -> str:
    """``START RequestId: … Version: …``."""
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    """``END RequestId: …``."""
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    billed_ms: int,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None,
) -> str:
    """The REPORT line, tab-separated as AWS writes it."""
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
    return "\t".join(fields) + "\t"
