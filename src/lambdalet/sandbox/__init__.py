"""Sandboxes: the interface and its named backends."""

from __future__ import annotations

from collections.abc import Callable

from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.process import ProcessBackend


def _namespaces() -> SandboxBackend:
    # Imported on demand: probing the host is for nodes that use it.
    from lambdalet.sandbox.namespaces import NamespacesBackend

    return NamespacesBackend()


def make_backend(name: str) -> SandboxBackend:
    """The sandbox backend called ``name``."""
    backends: dict[str, Callable[[], SandboxBackend]] = {
        "process": ProcessBackend,
        "namespaces": _namespaces,
    }
    if name not in backends:
        raise ValueError(f"unknown sandbox backend {name!r}: choose from {sorted(backends)}")
    return backends[name]()
