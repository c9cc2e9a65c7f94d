"""The monthly usage and cost report: GB-seconds and requests, priced as AWS prices them.

Every invocation's record (``metering/recorder.py``) holds its billed duration (rounded up to
``LAMBDALET_BILLING_INCREMENT_MS``) and its MemorySize; a function's compute is the sum of
billed seconds × GB (1 GB = 1,024 MB). A calendar month (UTC) of the whole node is priced at
``LAMBDALET_PRICE_PER_GB_SECOND`` and ``LAMBDALET_PRICE_PER_MILLION_REQUESTS`` after the free
tier, which, as AWS's, is per month for the account: ``LAMBDALET_FREE_TIER_GB_SECONDS`` and
``LAMBDALET_FREE_TIER_REQUESTS``. The defaults are AWS's list prices for x86 in us-east-1.
Each function's line shows its own usage at list price; the free tier comes off the total.
Not priced: provisioned concurrency, ephemeral storage over 512 MB, data transfer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdalet.models import FunctionUsage

MONTH = re.compile(r"(\d{4})-(\d{2})")
MB_MS_PER_GB_SECOND = 1024 * 1000


@dataclass(frozen=True)
class Pricing:
    """What compute and requests cost, and what the free tier leaves free each month."""

    per_gb_second: float
    per_million_requests: float
    free_gb_seconds: float
    free_requests: int


def month_bounds(month: str) -> tuple[int, int]:
    """[start, end) of a ``YYYY-MM`` month (UTC) in Unix milliseconds; ValueError if it is not
    one."""
    match = MONTH.fullmatch(month)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"month must be YYYY-MM, like 2026-11, not {month!r}")
    year, number = int(match[1]), int(match[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def current_month(now_unix_ms: int) -> str:
    """The ``YYYY-MM`` (UTC) a moment falls in."""
    return datetime.fromtimestamp(now_unix_ms / 1000, UTC).strftime("%Y-%m")


def report(month: str, usage: list[FunctionUsage], pricing: Pricing) -> dict[str, Any]:
    """The month's report: each function's usage and list cost, the totals, what the free tier
    took and what is left to pay (rounded to a hundredth of a cent)."""

    def cost(requests: float, gb_seconds: float) -> float:
        return round(
            requests / 1e6 * pricing.per_million_requests + gb_seconds * pricing.per_gb_second, 4
        )

    functions = [
        {
            "FunctionName": line.function_name,
            "Invocations": line.invocations,
            "Errors": line.errors,
            "BilledDurationMs": line.billed_duration_ms,
            "GBSeconds": line.mb_ms / MB_MS_PER_GB_SECOND,
            "ListCost": cost(line.invocations, line.mb_ms / MB_MS_PER_GB_SECOND),
        }
        for line in usage
    ]
    requests = sum(line.invocations for line in usage)
    gb_seconds = sum(line.mb_ms for line in usage) / MB_MS_PER_GB_SECOND
    free_requests = min(requests, pricing.free_requests)
    free_gb_seconds = min(gb_seconds, pricing.free_gb_seconds)
    paid_requests, paid_gb_seconds = requests - free_requests, gb_seconds - free_gb_seconds
    return {
        "Month": month,
        "Functions": functions,
        "Totals": {
            "Invocations": requests,
            "Errors": sum(line.errors for line in usage),
            "BilledDurationMs": sum(line.billed_duration_ms for line in usage),
            "GBSeconds": gb_seconds,
        },
        "FreeTier": {"Requests": free_requests, "GBSeconds": free_gb_seconds},
        "Cost": {
            "Requests": cost(paid_requests, 0),
            "Compute": cost(0, paid_gb_seconds),
            "Total": cost(paid_requests, paid_gb_seconds),
            "Currency": "USD",
        },
    }
