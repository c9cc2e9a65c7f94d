"""Per-route throttling of HTTP APIs: a token bucket per stage and route, as API Gateway has.

A stage's ``RouteSettings[<route key>]`` (or else its ``DefaultRouteSettings``) give
``ThrottlingRateLimit`` (tokens added per second) and ``ThrottlingBurstLimit`` (the bucket's
size). A request takes one token; with none left it is answered 429. A route with neither
limit set is not throttled here (AWS would still apply its account-level limits); a limit of
0 refuses every request, as on AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate_per_s``; starts full."""

    rate_per_s: float
    burst: int
    tokens: float = field(init=False)
    updated_s: float = field(init=False, default=0.0)
    started: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now_s: float) -> bool:
        """Take one token at time ``now_s`` (monotonic seconds); False when there is none."""
        if self.started:
            elapsed = max(0.0, now_s - self.updated_s)
            self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.started = True
        self.updated_s = now_s
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def limits_for(stage: dict[str, Any], route_key: str) -> tuple[float, int] | None:
    """(rate per second, burst) that apply to ``route_key`` in ``stage``, or None for none."""
    default = stage.get("defaultRouteSettings") or {}
    specific = (stage.get("routeSettings") or {}).get(route_key) or {}
    rate = specific.get("throttlingRateLimit", default.get("throttlingRateLimit"))
    burst = specific.get("throttlingBurstLimit", default.get("throttlingBurstLimit"))
    if rate is None and burst is None:
        return None
    if rate is None:
        rate = float(burst or 0)
    if burst is None:
        # API Gateway needs a burst to go with a rate; one second's worth is what it suggests.
        burst = max(1, int(rate)) if rate > 0 else 0
    return float(rate), int(burst)


class Throttle:
    """The token buckets of every stage route of a node; a bucket restarts when its limits
    change."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[tuple[float, int], TokenBucket]] = {}

    def allow(self, api_id: str, stage: dict[str, Any], route_key: str) -> bool:
        """Whether a request to ``route_key`` of ``stage`` may go on now."""
        limits = limits_for(stage, route_key)
        key = (api_id, str(stage.get("stageName")), route_key)
        if limits is None:
            self._buckets.pop(key, None)
            return True
        held = self._buckets.get(key)
        if held is None or held[0] != limits:
            held = (limits, TokenBucket(rate_per_s=limits[0], burst=limits[1]))
            self._buckets[key] = held
        return held[1].take(self.clock())
