"""The sandbox interface: an isolated runtime that serves one invocation at a time.

Lifecycle (as LocalStack and AWS name it): STARTING → READY ⇄ INVOKING → STOPPED. A sandbox
whose init fails raises :class:`SandboxInitError` from ``start``; one whose process dies or
times out is STOPPED and never reused. Backends are chosen by ``Settings.sandbox_backend``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from lambdalet.errors import SandboxError
from lambdalet.models import FunctionConfig, Invocation, InvocationResult


class SandboxState(enum.Enum):
    """Where a sandbox is in its life."""

    STARTING = "starting"
    READY = "ready"
    INVOKING = "invoking"
    STOPPED = "stopped"


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a backend needs to start a sandbox for one function version."""

    function: FunctionConfig
    code_dir: Path
    opt_dir: Path
    runtimes: dict[str, str]
    region: str
    scratch_root: Path
    cache_dir: Path


@dataclass
class SandboxStats:
    """What a sandbox has used so far."""

    invocations: int = 0
    max_memory_used_mb: int = 0
    init_duration_ms: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


class SandboxInitError(SandboxError):
    """Raised when a sandbox's runtime failed to initialise; carries what AWS would return."""

    def __init__(self, payload: bytes, error_type: str, log_lines: list[str], init_ms: float):
        super().__init__(error_type)
        self.payload = payload
        self.error_type = error_type
        self.log_lines = log_lines
        self.init_duration_ms = init_ms


class Sandbox(Protocol):
    """One isolated runtime of one function version."""

    spec: SandboxSpec
    state: SandboxState
    last_used_monotonic: float

    async def start(self) -> None:
        """Start the runtime and wait until it polls for work; raise SandboxInitError."""

    async def invoke(self, invocation: Invocation, timeout_ms: int) -> InvocationResult:
        """Run one invocation; a timeout or crash stops the sandbox and shows in the result."""

    async def stop(self) -> None:
        """Kill the runtime and release everything it held; safe to call twice."""

    def stats(self) -> SandboxStats:
        """Counters for metering and monitoring."""


class SandboxBackend(Protocol):
    """Makes sandboxes of one kind."""

    name: str

    def create(self, spec: SandboxSpec) -> Sandbox:
        """A new sandbox, not yet started."""
