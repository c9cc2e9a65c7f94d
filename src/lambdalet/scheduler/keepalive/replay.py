"""Replays one function's arrivals through a keep-alive policy on a virtual clock.

The model is the router's: one sandbox serves one invocation at a time, so an arrival while
every loaded sandbox of the function is busy starts a new one (a cold start), and concurrency is
counted, not assumed away. Per function:

- An invocation occupies a sandbox for ``duration_ms``. Start-up time is not simulated: a cold
  start only counts, it does not delay the invocation or occupy memory.
- When it ends the policy is asked :meth:`~KeepAlivePolicy.prewarm_after_ms` and
  :meth:`~KeepAlivePolicy.keep_alive_ms`, and the sandbox is kept idle or unloaded with a
  pre-warm planned, as :mod:`lambdalet.scheduler.keepalive.base` describes (one plan per
  function; a later end replaces it, an arrival cancels it).
- An arrival takes the most recently idled loaded sandbox (the router's order), else is cold.
- Idle memory-time is what every loaded, idle sandbox holds: from the end of its invocation (or
  its pre-warm) until it is used, stopped, or the replay ends (``end_ms``), whichever is first.

Functions do not share anything here (no memory budget), so replaying them one at a time through
one policy object gives the same numbers as interleaving them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from lambdalet.scheduler.keepalive.base import FunctionKey, KeepAlivePolicy


@dataclass
class ReplayOutcome:
    """What one function's replay cost: cold starts, pre-warms and idle memory-time."""

    invocations: int = 0
    cold_starts: int = 0
    scale_up_cold_starts: int = 0
    """Cold starts while another invocation of the function was running: a model with one
    sandbox per function (the paper's) would not count them."""
    prewarm_starts: int = 0
    idle_mb_ms: float = 0.0
    peak_loaded_sandboxes: int = 0

    @property
    def idle_gb_s(self) -> float:
        """Idle memory-time in GB-seconds (1 GB = 1024 MB)."""
        return self.idle_mb_ms / 1024 / 1000

    @property
    def cold_start_pct(self) -> float:
        """Cold starts as a percentage of invocations (0 when there were none)."""
        return 100.0 * self.cold_starts / self.invocations if self.invocations else 0.0


def replay_function(
    policy: KeepAlivePolicy,
    function_key: FunctionKey,
    arrivals_ms: Iterable[int],
    *,
    duration_ms: int,
    memory_mb: float,
    end_ms: int,
) -> ReplayOutcome:
    """Replay sorted ``arrivals_ms`` of one function until ``end_ms``; return what it cost."""
    return _Replay(policy, function_key, duration_ms, memory_mb).run(arrivals_ms, end_ms)


class _Replay:
    def __init__(
        self, policy: KeepAlivePolicy, function_key: FunctionKey, duration_ms: int, memory_mb: float
    ) -> None:
        if duration_ms < 0 or memory_mb < 0:
            raise ValueError("duration_ms and memory_mb must be 0 or more")
        self.policy = policy
        self.key = function_key
        self.duration_ms = duration_ms
        self.memory_mb = memory_mb
        self.outcome = ReplayOutcome()
        self.busy_until: list[int] = []  # heap of the running invocations' end times
        # Idle sandboxes: id -> (idle since, expires at); a LIFO stack of ids for reuse and a
        # heap of (expires at, id) for stopping. Both hold stale ids, skipped when met.
        self.idle: dict[int, tuple[int, int]] = {}
        self.idle_stack: list[int] = []
        self.expiries: list[tuple[int, int]] = []
        self.next_id = 0
        self.plan: tuple[int, int] | None = None  # planned pre-warm: (load at, expires at)

    def run(self, arrivals_ms: Iterable[int], end_ms: int) -> ReplayOutcome:
        previous = None
        for at_ms in arrivals_ms:
            if at_ms > end_ms:
                raise ValueError(f"arrival at {at_ms} ms is after the end, {end_ms} ms")
            if previous is not None and at_ms < previous:
                raise ValueError("arrivals must be sorted")
            previous = at_ms
            self._arrive(at_ms)
        self._advance(end_ms)
        for idle_since, _ in self.idle.values():
            self.outcome.idle_mb_ms += (end_ms - idle_since) * self.memory_mb
        return self.outcome

    def _arrive(self, at_ms: int) -> None:
        self._advance(at_ms)
        self.outcome.invocations += 1
        if self._take_idle(at_ms) is None:
            self.outcome.cold_starts += 1
            if self.busy_until:
                self.outcome.scale_up_cold_starts += 1
        self.plan = None  # the arrival a pending pre-warm was for has come
        self.policy.on_invocation(self.key, at_ms)
        heapq.heappush(self.busy_until, at_ms + self.duration_ms)
        loaded = len(self.busy_until) + len(self.idle)
        self.outcome.peak_loaded_sandboxes = max(self.outcome.peak_loaded_sandboxes, loaded)

    def _advance(self, to_ms: int) -> None:
        """Run the ends, pre-warms and expiries due by ``to_ms``, in time order."""
        while self.busy_until and self.busy_until[0] <= to_ms:
            ended_ms = heapq.heappop(self.busy_until)
            self._load_plan(ended_ms)
            self.policy.on_invocation_end(self.key, ended_ms)
            keep_ms = self.policy.keep_alive_ms(self.key)
            prewarm_ms = self.policy.prewarm_after_ms(self.key)
            if prewarm_ms is None:
                self._add_idle(ended_ms, ended_ms + keep_ms)
            else:
                load_ms = ended_ms + prewarm_ms
                self.plan = (load_ms, load_ms + keep_ms)
        self._load_plan(to_ms)
        while self.expiries and self.expiries[0][0] <= to_ms:
            _, sandbox_id = heapq.heappop(self.expiries)
            entry = self.idle.pop(sandbox_id, None)
            if entry is not None:
                idle_since, expires_ms = entry
                self.outcome.idle_mb_ms += (expires_ms - idle_since) * self.memory_mb

    def _load_plan(self, by_ms: int) -> None:
        if self.plan is not None and self.plan[0] <= by_ms:
            load_ms, expires_ms = self.plan
            self.plan = None
            self.outcome.prewarm_starts += 1
            self._add_idle(load_ms, expires_ms)

    def _add_idle(self, since_ms: int, expires_ms: int) -> None:
        sandbox_id = self.next_id
        self.next_id += 1
        self.idle[sandbox_id] = (since_ms, expires_ms)
        self.idle_stack.append(sandbox_id)
        heapq.heappush(self.expiries, (expires_ms, sandbox_id))

    def _take_idle(self, at_ms: int) -> int | None:
        while self.idle_stack:
            sandbox_id = self.idle_stack.pop()
            entry = self.idle.pop(sandbox_id, None)
            if entry is not None:
                self.outcome.idle_mb_ms += (at_ms - entry[0]) * self.memory_mb
                return sandbox_id
        return None
