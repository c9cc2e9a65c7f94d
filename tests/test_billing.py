"""Billing arithmetic and log line shapes."""

from __future__ import annotations

import pytest

from lambdalet.metering.billing import billed_duration_ms, report_line


@pytest.mark.parametrize(
    ("duration_ms", "increment_ms", "billed_ms"),
    [
        (0.2, 1, 1),
        (1.0, 1, 1),
        (1.01, 1, 2),
        (99.9, 100, 100),
        (100.0, 100, 100),
        (100.01, 100, 200),
        (0.0, 100, 100),
        (2500.4, 1, 2501),
    ],
)
def test_billed_duration_rounds_up(duration_ms: float, increment_ms: int, billed_ms: int) -> None:
    assert billed_duration_ms(duration_ms, increment_ms) == billed_ms


def test_report_line_matches_aws() -> None:
    line = report_line(
        "id-1",
        duration_ms=1.234,
        billed_ms=2,
        memory_mb=128,
        max_memory_used_mb=20,
        init_duration_ms=55.556,
    )
    assert line == (
        "REPORT RequestId: id-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB"
        "\tMax Memory Used: 20 MB\tInit Duration: 55.56 ms\t"
    )
    warm = report_line(
        "id-2",
        duration_ms=1,
        billed_ms=1,
        memory_mb=128,
        max_memory_used_mb=20,
        init_duration_ms=None,
    )
    assert "Init Duration" not in warm
