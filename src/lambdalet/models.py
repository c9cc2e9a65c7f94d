"""Plain data shared by the parts: functions, invocations and their outcomes."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field, replace
from typing import Any

LATEST = "$LATEST"


def now_ms() -> int:
    """Wall-clock time in Unix milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class LayerRef:
    """A layer version a function uses, as it was when the function was configured."""

    arn: str
    code_sha256_hex: str
    code_size_bytes: int


@dataclass(frozen=True)
class LayerVersion:
    """One published, immutable version of a layer: a zip extracted under ``/opt``."""

    name: str
    version: int
    code_sha256_hex: str
    code_size_bytes: int
    unzipped_size_bytes: int
    created_ms: int
    description: str = ""
    compatible_runtimes: tuple[str, ...] = ()
    compatible_architectures: tuple[str, ...] = ()
    license_info: str | None = None
    policy_statements: tuple[str, ...] = ()
    policy_revision_id: str = ""

    @property
    def code_sha256_b64(self) -> str:
        """CodeSha256 as AWS reports it."""
        return base64.b64encode(bytes.fromhex(self.code_sha256_hex)).decode()


@dataclass(frozen=True)
class FunctionConfig:
    """One version of a function: everything needed to run it and to describe it to AWS clients."""

    name: str
    runtime: str
    handler: str
    role: str
    code_sha256_hex: str
    code_size_bytes: int
    revision_id: str
    last_modified_ms: int
    description: str = ""
    timeout_s: int = 3
    memory_mb: int = 128
    ephemeral_storage_mb: int = 512
    environment: dict[str, str] = field(default_factory=dict)
    architectures: tuple[str, ...] = ("x86_64",)
    tags: dict[str, str] = field(default_factory=dict)
    version: str = LATEST
    layers: tuple[LayerRef, ...] = ()
    # DeadLetterConfig.TargetArn: a queue or topic for async events that failed for good.
    dead_letter_target_arn: str | None = None
    # SnapStart.ApplyOn: "PublishedVersions" runs published versions from a post-init snapshot.
    snap_start_apply_on: str = "None"

    @property
    def code_sha256_b64(self) -> str:
        """CodeSha256 as AWS reports it: base64 of the zip's SHA-256 digest."""
        return base64.b64encode(bytes.fromhex(self.code_sha256_hex)).decode()

    @property
    def sandbox_key(self) -> tuple[str, str, str]:
        """Sandboxes may be shared only between invocations with the same key."""
        return (self.name, self.version, self.revision_id)

    def evolve(self, **changes: Any) -> FunctionConfig:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass(frozen=True)
class Alias:
    """A named pointer to a function version, optionally splitting traffic with a second one."""

    function_name: str
    name: str
    function_version: str
    revision_id: str
    description: str = ""
    additional_version_weights: dict[str, float] = field(default_factory=dict)


def same_code_and_settings(a: FunctionConfig, b: FunctionConfig) -> bool:
    """Whether two configurations would run the same way (what PublishVersion compares)."""
    ignored: dict[str, Any] = {
        "version": LATEST,
        "revision_id": "",
        "last_modified_ms": 0,
        "description": "",
        "tags": {},
    }
    return replace(a, **ignored) == replace(b, **ignored)


@dataclass(frozen=True)
class Invocation:
    """One event to run, as the Runtime API hands it to a runtime."""

    request_id: str
    payload: bytes
    function_arn: str
    deadline_unix_ms: int
    client_context: str | None = None
    cognito_identity: str | None = None
    trace_id: str = ""


@dataclass
class InvocationResult:
    """What came back from running one invocation in a sandbox."""

    payload: bytes
    function_error: str | None
    log_lines: list[str]
    duration_ms: float
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    sandbox_died: bool = False


@dataclass(frozen=True)
class InvocationRecord:
    """A metered invocation, as kept by the store for usage and cost reports."""

    request_id: str
    function_name: str
    version: str
    started_unix_ms: int
    duration_ms: float
    billed_duration_ms: int
    memory_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None
    error_type: str | None


@dataclass(frozen=True)
class FunctionUsage:
    """What a function's metered invocations add up to over a period."""

    function_name: str
    invocations: int
    errors: int
    billed_duration_ms: int
    mb_ms: int  # billed milliseconds times MemorySize, summed: GB-seconds × 1024 × 1000


@dataclass(frozen=True)
class LogEvent:
    """One log line of a function, in the order it was written."""

    function_name: str
    request_id: str
    at_unix_ms: int
    message: str


@dataclass(frozen=True)
class AsyncEvent:
    """An event accepted with InvocationType=Event, kept until it has run."""

    event_id: int
    function_name: str
    qualifier: str
    payload: bytes
    request_id: str
    accepted_unix_ms: int
    attempts: int  # times it was run, this one included; throttled tries do not count
    throttles: int = 0  # times it could not run for want of concurrency (429)


@dataclass(frozen=True)
class EventRetry:
    """A claimed async event to run again, due at ``not_before_ms`` (Unix ms); ``throttled``
    when it could not run at all, so that try counts as a throttle, not as an attempt."""

    event_id: int
    not_before_ms: int
    throttled: bool = False
