"""Keep-alive policies: how long idle sandboxes stay loaded, and when to pre-warm them.

Chosen by name with :func:`make_policy`; ``fixed`` is the classic N-minute keep-alive and
``hybrid-histogram`` the policy of "Serverless in the Wild" (Shahrad et al., ATC '20).
``bench/keepalive_sim.py`` replays the Azure Functions 2019 sample through the same classes.
"""

from __future__ import annotations

from lambdalet.scheduler.keepalive.base import (
    DEFAULT_KEEP_ALIVE_MS,
    FunctionKey,
    KeepAlivePolicy,
)
from lambdalet.scheduler.keepalive.fixed import FixedKeepAlive
from lambdalet.scheduler.keepalive.hybrid import (
    HistogramParams,
    HybridHistogramPolicy,
    HybridWindows,
)

POLICY_NAMES = (FixedKeepAlive.name, HybridHistogramPolicy.name)

__all__ = [
    "DEFAULT_KEEP_ALIVE_MS",
    "POLICY_NAMES",
    "FixedKeepAlive",
    "FunctionKey",
    "HistogramParams",
    "HybridHistogramPolicy",
    "HybridWindows",
    "KeepAlivePolicy",
    "make_policy",
]


def make_policy(
    name: str, *, keep_alive_ms: int = DEFAULT_KEEP_ALIVE_MS, **options: float
) -> KeepAlivePolicy:
    """Build the keep-alive policy called ``name``.

    ``keep_alive_ms`` (``Settings.keep_alive_ms``) is the fixed policy's keep-alive and the
    hybrid policy's fallback; ``options`` set :class:`HistogramParams` fields of the hybrid one.
    Raises ValueError for an unknown name or option.
    """
    if name == FixedKeepAlive.name:
        if options:
            raise ValueError(f"the fixed keep-alive policy takes no options, got {sorted(options)}")
        return FixedKeepAlive(keep_alive_ms)
    if name == HybridHistogramPolicy.name:
        params = HistogramParams.from_options({"fallback_keep_alive_ms": keep_alive_ms, **options})
        return HybridHistogramPolicy(params)
    raise ValueError(f"unknown keep-alive policy {name!r}; choose one of {list(POLICY_NAMES)}")
