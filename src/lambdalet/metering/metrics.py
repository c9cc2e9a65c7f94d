"""Prometheus metrics: invocations, errors, cold starts, throttles, durations, concurrency.

Counting is a dictionary increment on the hot path; the text exposition format is rendered
only when ``/metrics`` is scraped.
"""

from __future__ import annotations

import bisect
from collections import defaultdict

DURATION_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and histograms per function, rendered in Prometheus' text format."""

    def __init__(self) -> None:
        self.invocations: defaultdict[str, int] = defaultdict(int)
        self.errors: defaultdict[str, int] = defaultdict(int)
        self.cold_starts: defaultdict[str, int] = defaultdict(int)
        self.throttles: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = {}
        self._sum_ms: defaultdict[str, float] = defaultdict(float)

    def observe(self, function: str, duration_ms: float, *, error: bool, cold: bool) -> None:
        """Count one finished invocation."""
        self.invocations[function] += 1
        if error:
            self.errors[function] += 1
        if cold:
            self.cold_starts[function] += 1
        buckets = self._buckets.setdefault(function, [0] * (len(DURATION_BUCKETS_MS) + 1))
        buckets[bisect.bisect_left(DURATION_BUCKETS_MS, duration_ms)] += 1
        self._sum_ms[function] += duration_ms

    def throttled(self, function: str, reason: str) -> None:
        """Count one invocation refused with 429."""
        self.throttles[(function, reason)] += 1

    def render(self, concurrent: dict[str, int], idle: dict[str, int]) -> str:
        """The exposition text, with gauges of running and idle sandboxes passed in."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")

        def fn(function: str) -> str:
            return f'function="{_escape(function)}"'

        family("lambdalet_invocations_total", "counter", "Invocations that ran.")
        lines += [
            f"lambdalet_invocations_total{{{fn(f)}}} {n}" for f, n in self.invocations.items()
        ]
        family("lambdalet_errors_total", "counter", "Invocations that ended in a function error.")
        lines += [f"lambdalet_errors_total{{{fn(f)}}} {n}" for f, n in self.errors.items()]
        family("lambdalet_cold_starts_total", "counter", "Invocations that started a sandbox.")
        lines += [
            f"lambdalet_cold_starts_total{{{fn(f)}}} {n}" for f, n in self.cold_starts.items()
        ]
        family("lambdalet_throttles_total", "counter", "Invocations refused with 429.")
        lines += [
            f'lambdalet_throttles_total{{{fn(f)},reason="{_escape(r)}"}} {n}'
            for (f, r), n in self.throttles.items()
        ]
        family("lambdalet_concurrent_executions", "gauge", "Invocations running now.")
        lines += [f"lambdalet_concurrent_executions{{{fn(f)}}} {n}" for f, n in concurrent.items()]
        family("lambdalet_idle_sandboxes", "gauge", "Warm sandboxes waiting for work.")
        lines += [f"lambdalet_idle_sandboxes{{{fn(f)}}} {n}" for f, n in idle.items()]
        family("lambdalet_duration_ms", "histogram", "Invocation duration in milliseconds.")
        for function, buckets in self._buckets.items():
            running = 0
            for bound, count in zip((*DURATION_BUCKETS_MS, "+Inf"), buckets, strict=True):
                running += count
                lines.append(
                    f'lambdalet_duration_ms_bucket{{{fn(function)},le="{bound}"}} {running}'
                )
            lines.append(
                f"lambdalet_duration_ms_sum{{{fn(function)}}} {self._sum_ms[function]:.3f}"
            )
            lines.append(f"lambdalet_duration_ms_count{{{fn(function)}}} {running}")
        return "\n".join(lines) + "\n"
