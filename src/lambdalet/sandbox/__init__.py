"""Sandboxes: the interface and its named backends.

``auto`` (the default) picks ``namespaces`` where the host can run it fully: lambdalet runs as
root, the kernel lets it make user, pid and mount namespaces, and cgroups limit memory and
processes. Elsewhere it falls back to ``process``, which isolates nothing, and says so loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.process import ProcessBackend

log = logging.getLogger(__name__)

BACKENDS = ("auto", "namespaces", "process")


def _namespaces(freeze_idle: bool) -> SandboxBackend:
    # Imported on demand: probing the host is for nodes that use it.
    from lambdalet.sandbox.namespaces import NamespacesBackend

    return NamespacesBackend(freeze_idle=freeze_idle)


def auto_choice() -> tuple[str, str]:
    """The backend ``auto`` stands for on this host, and why (blocking: probes the host)."""
    from lambdalet.sandbox.namespaces import detect_isolation, why_not_namespaces

    reason = why_not_namespaces(detect_isolation())
    return ("process", reason) if reason else ("namespaces", "the host allows full isolation")


def _auto(freeze_idle: bool) -> SandboxBackend:
    from lambdalet.sandbox.namespaces import NamespacesBackend, detect_isolation, why_not_namespaces

    isolation = detect_isolation()
    reason = why_not_namespaces(isolation)
    if reason:
        log.warning(
            "SANDBOXES ARE NOT ISOLATED: the namespaces backend cannot run here (%s); functions"
            " run as plain processes of the host user (sandbox backend 'process')",
            reason,
        )
        return ProcessBackend()
    log.info("sandbox backend 'auto': namespaces")
    return NamespacesBackend(freeze_idle=freeze_idle, isolation=isolation)


def make_backend(name: str, *, freeze_idle: bool = True) -> SandboxBackend:
    """The sandbox backend called ``name`` (``auto``: namespaces where possible)."""
    backends: dict[str, Callable[[], SandboxBackend]] = {
        "auto": lambda: _auto(freeze_idle),
        "process": ProcessBackend,
        "namespaces": lambda: _namespaces(freeze_idle),
    }
    if name not in backends:
        raise ValueError(f"unknown sandbox backend {name!r}: choose from {sorted(backends)}")
    return backends[name]()
