"""The ``fixed`` keep-alive policy: every idle sandbox stays loaded N minutes, then stops.

This is what AWS Lambda (about 10 minutes) and Azure Functions (20 minutes) did when Shahrad et
al. measured them, and lambdalet's behaviour before policies were pluggable. It learns nothing
and never pre-warms.
"""

from __future__ import annotations

from lambdalet.scheduler.keepalive.base import (
    DEFAULT_KEEP_ALIVE_MS,
    FunctionKey,
    KeepAlivePolicy,
)


class FixedKeepAlive(KeepAlivePolicy):
    """Keeps every idle sandbox for the same time, ``keep_alive_ms`` (default 10 minutes)."""

    name = "fixed"

    def __init__(self, keep_alive_ms: int = DEFAULT_KEEP_ALIVE_MS) -> None:
        if keep_alive_ms < 0:
            raise ValueError(f"keep_alive_ms must be 0 or more, not {keep_alive_ms}")
        self._keep_alive_ms = keep_alive_ms

    def __repr__(self) -> str:
        return f"FixedKeepAlive(keep_alive_ms={self._keep_alive_ms})"

    def on_invocation(self, function_key: FunctionKey, at_ms: int) -> None:
        """Nothing to learn: the keep-alive is the same for every function."""

    def keep_alive_ms(self, function_key: FunctionKey) -> int:
        """The configured keep-alive, whatever the function."""
        return self._keep_alive_ms

    def prewarm_after_ms(self, function_key: FunctionKey) -> int | None:
        """Never pre-warm: keep the sandbox loaded after each invocation."""
        return None
