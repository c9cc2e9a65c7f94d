"""Sandboxes: the interface and its named backends."""

from __future__ import annotations

from lambdalet.sandbox.base import SandboxBackend
from lambdalet.sandbox.process import ProcessBackend


def make_backend(name: str) -> SandboxBackend:
    """The sandbox backend called ``name``."""
    backends: dict[str, type[ProcessBackend]] = {"process": ProcessBackend}
    if name not in backends:
        raise ValueError(f"unknown sandbox backend {name!r}: choose from {sorted(backends)}")
    return backends[name]()
