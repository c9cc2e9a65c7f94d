"""The keep-alive policy interface: how long an idle sandbox stays loaded, and when to pre-warm.

A policy learns from the arrivals and completions it is told about and answers, per function,
what to do with a sandbox whose invocation just ended:

- ``prewarm_after_ms(key) is None``: keep the sandbox loaded and idle for
  ``keep_alive_ms(key)``, then stop it.
- ``prewarm_after_ms(key) == d``: stop the sandbox now, start a fresh one ``d`` ms after the
  invocation ended, and keep that one idle for ``keep_alive_ms(key)`` before stopping it.
  One pre-warm is planned per function: a later end replaces the plan, and an arrival before
  the planned start cancels it (the invocation it was for came early).

Time comes only from arguments, in milliseconds on any clock that does not jump (the router's
monotonic clock, the simulator's virtual one); a policy never reads a clock itself. Policies hold
per-function state in memory, are not thread-safe, and are driven from one event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import ClassVar, TypeAlias

FunctionKey: TypeAlias = Hashable
"""Whatever identifies a function to the caller: a name, or a (name, version) tuple."""

MINUTE_MS = 60_000
DEFAULT_KEEP_ALIVE_MS = 10 * MINUTE_MS


class KeepAlivePolicy(ABC):
    """Decides how long idle sandboxes of each function stay loaded, and when to pre-warm one.

    The caller reports every arrival with :meth:`on_invocation` and every completion (also a
    failed one) with :meth:`on_invocation_end`, in time order per function, then asks
    :meth:`prewarm_after_ms` and :meth:`keep_alive_ms` right after each
    :meth:`on_invocation_end`: the answers are for the sandbox that invocation freed, and may
    depend on whether other invocations of the function are still running.
    """

    name: ClassVar[str]

    @abstractmethod
    def on_invocation(self, function_key: FunctionKey, at_ms: int) -> None:
        """Record that an invocation of the function arrived at ``at_ms``."""

    def on_invocation_end(self, function_key: FunctionKey, at_ms: int) -> None:
        """Record that an invocation of the function ended at ``at_ms`` (default: ignored)."""
        return None

    @abstractmethod
    def keep_alive_ms(self, function_key: FunctionKey) -> int:
        """How long an idle sandbox of the function stays loaded (after its invocation ended,
        or after it was pre-warmed) before it is stopped."""

    @abstractmethod
    def prewarm_after_ms(self, function_key: FunctionKey) -> int | None:
        """None to keep the sandbox loaded after an invocation ends; otherwise unload it and
        pre-warm a new one this many ms after the end."""

    def eviction_priority(
        self, function_key: FunctionKey, idle_since_ms: int, now_ms: int
    ) -> float:
        """How much an idle sandbox is worth keeping when memory runs short; the lowest goes first.

        The default is the keep-alive time it has left by the policy's current
        :meth:`keep_alive_ms` (negative once overdue): evicting the sandbox that would expire
        soonest anyway loses the least. With one keep-alive for every function this is
        least-recently-used order.
        """
        return float(self.keep_alive_ms(function_key) - (now_ms - idle_since_ms))

    def forget(self, function_key: FunctionKey) -> None:
        """Drop what was learnt about a function (deleted or replaced); default: nothing held."""
        return None
