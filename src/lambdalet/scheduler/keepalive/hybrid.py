"""The ``hybrid-histogram`` keep-alive policy of Shahrad et al., "Serverless in the Wild" (ATC '20).

Per function it keeps a histogram of idle times (IT): the time from the end of the function's
last execution to its next arrival. An arrival while another invocation of the function is still
running ends no idle period and is not recorded. This is our reading of §4.2 of the paper; the
PDF was not at hand when this was written, and the numbers below are the ones the dslab and
OpenDC reimplementations of the policy use too:

- **Range-limited histogram.** 1-minute bins over 4 hours (240 bins); an IT of 4 hours or more
  is out of bounds (OOB) and only counted.
- **Head and tail.** The head is the bin holding the 5th percentile of the ITs, the tail the bin
  holding the 99th. The paper adds a 10% margin to both. We read the margin as widening the time
  the sandbox is loaded on both sides, so that loaded time covers ``[0.9 × head, 1.1 × tail]``
  after an execution ends, with the head's lower and the tail's upper bin edge:
  ``prewarm_after_ms = 0.9 × head`` and ``keep_alive_ms = 1.1 × tail - prewarm_after_ms`` (the
  keep-alive window counts from the pre-warm). A margin on ``tail - head`` instead would end the
  window before the tail: a function called every 30 minutes would be pre-warmed at 27 and
  stopped at 28.1 minutes. A head of 0 means no unloading: the sandbox stays loaded
  ``1.1 × tail`` after the execution.
- **Representative or not.** The histogram is used only when the coefficient of variation (CV)
  of its 240 bin counts is at least 2 (ITs concentrated in a few bins; spread evenly over k bins
  the CV is ``sqrt(240 / k - 1)``, so below 2 means spread over more than 48 bins). Otherwise,
  and while fewer than ``min_observations`` ITs are in range (our addition: with one or two ITs
  the CV is high but the percentiles mean nothing), the policy falls back to a standard keep-alive
  without pre-warming, ``fallback_keep_alive_ms``. Reimplementations of the paper (dslab,
  OpenDC) keep the sandbox for the whole histogram range (4 hours) in that case; our default is
  the platform's fixed keep-alive (``Settings.keep_alive_ms``, 10 minutes); pass
  ``fallback_keep_alive_ms=range_ms`` for the 4-hour reading.
- **Out of bounds.** When at least ``oob_threshold`` (half) of at least ``min_observations`` ITs
  are OOB, the paper fits an ARIMA model to the ITs and predicts the next one, ``p``; it
  pre-warms at ``0.85 × p`` and keeps the sandbox until ``1.15 × p``. We keep those margins but
  **do not fit ARIMA**: ``p`` is the median of the last ``forecast_window`` (5) ITs, a simple,
  robust stand-in.

**Concurrency (ours).** The paper models one container per application, so its windows say
when the function's *last* loaded sandbox is next needed. They say nothing about when load will
again need a second or tenth sandbox: applied to those, a busy function whose ITs are all under
a minute would stop its scale-out sandboxes after 66 s and cold-start them again at the next
burst. So a sandbox freed while other invocations of the function are still running keeps
``fallback_keep_alive_ms`` without pre-warm (``fallback_for_scale_out``, default on; off applies
the function's windows to every sandbox, the literal per-function reading).
``bench/keepalive_sim.py`` reports both.

The histogram never forgets (no ageing window): a function whose pattern changes keeps its old
percentiles until new ITs outweigh them. Call :meth:`forget` when a function is deleted.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from lambdalet.scheduler.keepalive.base import (
    DEFAULT_KEEP_ALIVE_MS,
    MINUTE_MS,
    FunctionKey,
    KeepAlivePolicy,
)

Basis = Literal["fallback", "histogram", "forecast", "scale-out"]


@dataclass(frozen=True)
class HistogramParams:
    """The hybrid policy's knobs; the defaults are the paper's values unless noted."""

    range_ms: int = 240 * MINUTE_MS
    bin_ms: int = MINUTE_MS
    head_percentile: float = 5.0
    tail_percentile: float = 99.0
    margin: float = 0.10
    cv_threshold: float = 2.0
    min_observations: int = 5
    """Ours: in-range ITs needed before the histogram is trusted."""
    oob_threshold: float = 0.5
    forecast_margin: float = 0.15
    forecast_window: int = 5
    """Ours: how many recent ITs the median stand-in for ARIMA looks at."""
    fallback_keep_alive_ms: int = DEFAULT_KEEP_ALIVE_MS
    """Ours: the platform's fixed keep-alive; the paper's reading is ``range_ms``."""
    fallback_for_scale_out: bool = True
    """Ours: a sandbox freed while others of its function run keeps the fallback keep-alive."""

    def __post_init__(self) -> None:
        if self.bin_ms <= 0 or self.range_ms < self.bin_ms:
            raise ValueError("need 0 < bin_ms <= range_ms")
        if not 0 <= self.head_percentile <= self.tail_percentile <= 100:
            raise ValueError("need 0 <= head_percentile <= tail_percentile <= 100")
        if not (0 <= self.margin < 1 and 0 <= self.forecast_margin < 1):
            raise ValueError("margins must be in [0, 1)")
        if not 0 < self.oob_threshold <= 1:
            raise ValueError("oob_threshold must be in (0, 1]")
        if self.min_observations < 1 or self.forecast_window < 1:
            raise ValueError("min_observations and forecast_window must be at least 1")
        if self.fallback_keep_alive_ms < 0 or self.cv_threshold < 0:
            raise ValueError("fallback_keep_alive_ms and cv_threshold must be 0 or more")

    @property
    def bin_count(self) -> int:
        """How many bins the histogram has (240 with the defaults)."""
        return math.ceil(self.range_ms / self.bin_ms)

    @classmethod
    def from_options(cls, options: Mapping[str, float]) -> HistogramParams:
        """Build from loose ``name=value`` options (settings, a CLI); unknown names are refused."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown hybrid-histogram option(s) {unknown}; known: {sorted(known)}"
            )
        values: dict[str, Any] = {}
        for name, value in options.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                values[name] = bool(value)
            elif isinstance(default, int):
                if value != int(value):
                    raise ValueError(f"hybrid-histogram option {name} must be whole, not {value}")
                values[name] = int(value)
            else:
                values[name] = float(value)
        return cls(**values)


@dataclass(frozen=True)
class HybridWindows:
    """What the policy does after an invocation of one function ends, and why."""

    prewarm_after_ms: int | None
    keep_alive_ms: int
    basis: Basis


class _History:
    """One function's idle-time histogram and the little state needed to measure ITs."""

    __slots__ = ("bins", "in_range", "sum_sq", "out_of_range", "recent", "in_flight", "last_end_ms")

    def __init__(self, bin_count: int, forecast_window: int) -> None:
        self.bins = [0] * bin_count
        self.in_range = 0
        self.sum_sq = 0  # sum of squared bin counts, for the CV in O(1)
        self.out_of_range = 0
        self.recent: deque[int] = deque(maxlen=forecast_window)
        self.in_flight = 0
        self.last_end_ms: int | None = None

    def coefficient_of_variation(self) -> float:
        n = len(self.bins)
        mean = self.in_range / n
        if mean == 0:
            return 0.0
        variance = max(self.sum_sq / n - mean * mean, 0.0)
        return math.sqrt(variance) / mean

    def percentile_bin(self, percentile: float) -> int:
        """The first bin at which the cumulative count reaches ``percentile`` % of the ITs."""
        cumulative = 0
        for index, count in enumerate(self.bins):
            cumulative += count
            if count and cumulative * 100 >= percentile * self.in_range:
                return index
        return len(self.bins) - 1


class HybridHistogramPolicy(KeepAlivePolicy):
    """Learns each function's idle times; pre-warms and keeps alive from their histogram."""

    name = "hybrid-histogram"

    def __init__(self, params: HistogramParams | None = None) -> None:
        self.params = params or HistogramParams()
        self._histories: dict[FunctionKey, _History] = {}
        self._cached: dict[FunctionKey, HybridWindows] = {}

    def __repr__(self) -> str:
        return f"HybridHistogramPolicy({self.params!r})"

    def on_invocation(self, function_key: FunctionKey, at_ms: int) -> None:
        """Record the idle time that this arrival ends, if the function was idle."""
        history = self._histories.get(function_key)
        if history is None:
            history = _History(self.params.bin_count, self.params.forecast_window)
            self._histories[function_key] = history
        if history.in_flight == 0 and history.last_end_ms is not None:
            self._record(function_key, history, max(at_ms - history.last_end_ms, 0))
        history.in_flight += 1

    def on_invocation_end(self, function_key: FunctionKey, at_ms: int) -> None:
        """Record that an invocation ended; the function is idle once none is running."""
        history = self._histories.get(function_key)
        if history is None:
            return
        history.in_flight = max(history.in_flight - 1, 0)
        if history.last_end_ms is None or at_ms > history.last_end_ms:
            history.last_end_ms = at_ms

    def keep_alive_ms(self, function_key: FunctionKey) -> int:
        """The keep-alive window, counted from the end or from the pre-warm if there is one."""
        return self._windows_for_freed(function_key).keep_alive_ms

    def prewarm_after_ms(self, function_key: FunctionKey) -> int | None:
        """The pre-warm window: when to start a fresh sandbox after unloading, or None."""
        return self._windows_for_freed(function_key).prewarm_after_ms

    def forget(self, function_key: FunctionKey) -> None:
        """Drop the function's histogram."""
        self._histories.pop(function_key, None)
        self._cached.pop(function_key, None)

    def windows(self, function_key: FunctionKey) -> HybridWindows:
        """The function's windows when it is idle (no scale-out rule) and which rule chose them."""
        cached = self._cached.get(function_key)
        if cached is None:
            cached = self._compute(self._histories.get(function_key))
            self._cached[function_key] = cached
        return cached

    def _windows_for_freed(self, function_key: FunctionKey) -> HybridWindows:
        """The windows for a sandbox just freed: scale-out ones may keep the fallback."""
        history = self._histories.get(function_key)
        if self.params.fallback_for_scale_out and history is not None and history.in_flight > 0:
            return HybridWindows(None, self.params.fallback_keep_alive_ms, "scale-out")
        return self.windows(function_key)

    def _record(self, function_key: FunctionKey, history: _History, idle_ms: int) -> None:
        self._cached.pop(function_key, None)
        history.recent.append(idle_ms)
        if idle_ms >= self.params.range_ms:
            history.out_of_range += 1
            return
        index = idle_ms // self.params.bin_ms
        history.sum_sq += 2 * history.bins[index] + 1
        history.bins[index] += 1
        history.in_range += 1

    def _compute(self, history: _History | None) -> HybridWindows:
        params = self.params
        fallback = HybridWindows(None, params.fallback_keep_alive_ms, "fallback")
        if history is None:
            return fallback
        total = history.in_range + history.out_of_range
        if (
            total >= params.min_observations
            and history.out_of_range >= params.oob_threshold * total
        ):
            predicted_ms = statistics.median(history.recent)
            return _windows(
                predicted_ms * (1 - params.forecast_margin),
                predicted_ms * (1 + params.forecast_margin),
                "forecast",
            )
        if (
            history.in_range < params.min_observations
            or history.coefficient_of_variation() < params.cv_threshold
        ):
            return fallback
        head_ms = history.percentile_bin(params.head_percentile) * params.bin_ms
        tail_ms = (history.percentile_bin(params.tail_percentile) + 1) * params.bin_ms
        return _windows(head_ms * (1 - params.margin), tail_ms * (1 + params.margin), "histogram")


def _windows(prewarm_ms: float, loaded_until_ms: float, basis: Basis) -> HybridWindows:
    """Windows keeping a sandbox loaded from ``prewarm_ms`` to ``loaded_until_ms`` after an end."""
    prewarm = round(prewarm_ms)  # to the ms: 1.1 x 60_000 is 66_000.000000000001
    until = round(loaded_until_ms)
    if prewarm <= 0:
        return HybridWindows(None, until, basis)
    return HybridWindows(prewarm, until - prewarm, basis)
