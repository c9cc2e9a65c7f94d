"""The router: runs an invocation in a warm sandbox of its function, or starts one.

Idle sandboxes are kept per (function, version, revision) and the most recently used one is
picked first, so the others grow idle and expire. A configuration or code change makes a new
revision: sandboxes of older ones are stopped rather than reused. How long an idle sandbox
stays loaded, and whether it is unloaded and pre-warmed shortly before the next predicted
invocation instead, is the keep-alive policy's call (``Settings.keep_alive_policy``); with
none loaded a function costs nothing (scale to zero). Limits are ``scheduler.concurrency``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from lambdalet.config import Settings
from lambdalet.errors import TooManyRequestsException
from lambdalet.metering.billing import billed_duration_ms, end_line, report_line, start_line
from lambdalet.metering.metrics import Metrics
from lambdalet.metering.recorder import Recorder
from lambdalet.models import (
    FunctionConfig,
    Invocation,
    InvocationRecord,
    InvocationResult,
    LogEvent,
    now_ms,
)
from lambdalet.sandbox import pool as sandbox_pool
from lambdalet.sandbox.base import (
    Sandbox,
    SandboxBackend,
    SandboxInitError,
    SandboxSpec,
    SandboxState,
)
from lambdalet.scheduler.concurrency import ConcurrencyLimiter
from lambdalet.scheduler.keepalive import make_policy
from lambdalet.store.blobs import BlobStore

log = logging.getLogger(__name__)

SandboxKey = tuple[str, str, str]


@dataclass
class InvokeOutcome:
    """An invocation's result with the log lines AWS would show for it."""

    result: InvocationResult
    log_lines: list[str]
    billed_duration_ms: int


class Router:
    """Routes invocations to sandboxes and keeps the warm ones."""

    def __init__(
        self,
        settings: Settings,
        backend: SandboxBackend,
        blobs: BlobStore,
        recorder: Recorder,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._blobs = blobs
        self._recorder = recorder
        self._idle: dict[SandboxKey, list[Sandbox]] = defaultdict(list)
        self._busy: set[Sandbox] = set()
        self._provisioned_idle: dict[SandboxKey, list[Sandbox]] = defaultdict(list)
        self._provisioned: dict[SandboxKey, set[Sandbox]] = defaultdict(set)
        self._provision_tasks: dict[SandboxKey, asyncio.Task[None]] = {}
        self.policy = make_policy(settings.keep_alive_policy, keep_alive_ms=settings.keep_alive_ms)
        self._expires_monotonic: dict[Sandbox, float] = {}
        self._prewarms: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.metrics = Metrics()
        self.memory_budget_mb = settings.memory_budget_mb or default_memory_budget_mb()
        self._starting_mb = 0
        self.limiter = ConcurrencyLimiter(
            settings.concurrency_limit,
            settings.unreserved_concurrency_minimum,
            settings.burst_sandboxes_per_10s,
        )
        self._current_revision: dict[tuple[str, str], str] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._scratch_root = settings.data_dir / "sandboxes"
        self._empty_opt_dir = settings.data_dir / "empty-opt"
        # Blank sandboxes started ahead of need (namespaces backend; sandbox/pool.py).
        self.pool = sandbox_pool.make_pool(
            backend,
            size=settings.pool_size,
            runtimes=settings.runtimes,
            region=settings.region,
            scratch_root=self._scratch_root,
            cache_dir=settings.data_dir / "cache",
            has_room_mb=lambda mb: self.memory_in_use_mb() + mb <= self.memory_budget_mb,
            snapshot_spares=settings.snapshot_spares,
        )

    def idle_by_function(self) -> dict[str, int]:
        """Idle warm sandboxes per function name."""
        counts: dict[str, int] = defaultdict(int)
        for key, idle in self._idle.items():
            counts[key[0]] += len(idle)
        return dict(counts)

    def idle_count(self, name: str | None = None) -> int:
        """Idle warm sandboxes, of one function or of all."""
        return sum(len(s) for key, s in self._idle.items() if name is None or key[0] == name)

    def start(self) -> None:
        """Start the reaper that stops sandboxes idle for longer than the keep-alive."""
        self._scratch_root.mkdir(parents=True, exist_ok=True)
        self._empty_opt_dir.mkdir(parents=True, exist_ok=True)
        self._reaper = asyncio.create_task(self._reap_forever(), name="sandbox-reaper")

    async def stop(self) -> None:
        """Stop the reaper and every sandbox."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in [*self._provision_tasks.values(), *self._prewarms.values()]:
            task.cancel()
        if self.pool is not None:
            await self.pool.stop()
        sandboxes = [s for idle in self._idle.values() for s in idle] + list(self._busy)
        sandboxes += [s for members in self._provisioned.values() for s in members]
        self._idle.clear()
        self._provisioned.clear()
        self._provisioned_idle.clear()
        await asyncio.gather(*(s.stop() for s in set(sandboxes)), return_exceptions=True)

    async def retire(self, name: str, version: str | None = None) -> None:
        """Stop the idle sandboxes of a function (or one version) that changed or was deleted."""
        for key in [k for k in self._prewarms if k[0] == name and version in (None, k[1])]:
            self._prewarms.pop(key).cancel()
            self.policy.forget(key)
        if self.pool is not None:
            await self.pool.retire(name, version)
        doomed = [key for key in self._idle if key[0] == name and version in (None, key[1])]
        sandboxes = [s for key in doomed for s in self._idle.pop(key)]
        self._current_revision = {
            k: v
            for k, v in self._current_revision.items()
            if not (k[0] == name and version in (None, k[1]))
        }
        await asyncio.gather(*(s.stop() for s in sandboxes), return_exceptions=True)

    def provisioned_ready(self, function: FunctionConfig) -> int:
        """How many provisioned sandboxes of a version are initialized now."""
        return len(self._provisioned.get(function.sandbox_key, ()))

    async def provision(self, function: FunctionConfig, count: int) -> None:
        """Keep ``count`` initialized sandboxes of a version ready, starting them now; they are
        used before on-demand ones and never reaped. Returns once they are all ready."""
        key = function.sandbox_key
        self._current_revision[(function.name, function.version)] = function.revision_id
        previous = self._provision_tasks.pop(key, None)
        if previous is not None:
            previous.cancel()
        members = self._provisioned[key]
        surplus = list(members)[count:] if len(members) > count else []
        for sandbox in surplus:
            members.discard(sandbox)
            if sandbox in self._provisioned_idle[key]:
                self._provisioned_idle[key].remove(sandbox)
                await sandbox.stop()
        task = asyncio.create_task(self._fill_provisioned(function, count))
        self._provision_tasks[key] = task
        await asyncio.shield(task)

    async def _fill_provisioned(self, function: FunctionConfig, count: int) -> None:
        key = function.sandbox_key
        while len(self._provisioned[key]) < count:
            missing = count - len(self._provisioned[key])
            started = await asyncio.gather(
                *(self._start_sandbox(function) for _ in range(min(missing, 8))),
                return_exceptions=True,
            )
            for sandbox in started:
                if isinstance(sandbox, BaseException):
                    raise sandbox
                self._provisioned[key].add(sandbox)
                self._provisioned_idle[key].append(sandbox)

    async def unprovision(self, name: str, version: str | None) -> None:
        """Stop the provisioned sandboxes of a version (or of every version)."""
        for key in [k for k in self._provisioned if k[0] == name and version in (None, k[1])]:
            task = self._provision_tasks.pop(key, None)
            if task is not None:
                task.cancel()
            members = self._provisioned.pop(key)
            idle = self._provisioned_idle.pop(key, [])
            await asyncio.gather(*(s.stop() for s in idle), return_exceptions=True)
            # Busy ones are stopped when their invocation ends (see _release).
            del members

    async def invoke(
        self,
        function: FunctionConfig,
        invocation: Invocation,
    ) -> InvokeOutcome:
        """Run one invocation and meter it; raise TooManyRequestsException when over a limit."""
        try:
            ticket = self.limiter.acquire(function.name)
        except TooManyRequestsException as error:
            self.metrics.throttled(function.name, str(error.extra.get("Reason", "")))
            raise
        try:
            return await self._invoke(function, invocation)
        finally:
            self.limiter.release(ticket)

    async def _invoke(self, function: FunctionConfig, invocation: Invocation) -> InvokeOutcome:
        policy_key = (function.name, function.version)
        self.policy.on_invocation(policy_key, _monotonic_ms())
        prewarm = self._prewarms.pop(policy_key, None)
        if prewarm is not None:
            prewarm.cancel()  # the invocation it was for came early (or it is already warm)
        self._current_revision[policy_key] = function.revision_id
        started_ms = now_ms()
        init_ms: float | None = None
        sandbox = self._take_idle(function.sandbox_key)
        if sandbox is None:
            self.limiter.note_sandbox_start(function.name)
            try:
                sandbox = await self._start_sandbox(function)
            except SandboxInitError as error:
                return self._finish(
                    function, invocation, started_ms, self._init_failure(error), error.log_lines
                )
            init_ms = sandbox.stats().init_duration_ms
        self._busy.add(sandbox)
        try:
            result = await sandbox.invoke(invocation, function.timeout_s * 1000)
        finally:
            self._busy.discard(sandbox)
            self._release(sandbox)
        result.init_duration_ms = init_ms
        return self._finish(function, invocation, started_ms, result, [])

    def memory_in_use_mb(self) -> int:
        """MemorySize summed over live sandboxes and those starting: the node's budget use."""
        live = {s for pool in self._idle.values() for s in pool} | self._busy
        live |= {s for members in self._provisioned.values() for s in members}
        used = sum(s.spec.function.memory_mb for s in live if s.state is not SandboxState.STOPPED)
        if self.pool is not None:
            used += self.pool.memory_in_use_mb()
        return used + self._starting_mb

    async def _make_room(self, need_mb: int) -> None:
        """Evict idle sandboxes, least valuable first by the keep-alive policy, until a new one
        of ``need_mb`` fits the memory budget; TooManyRequestsException if it cannot."""
        over_mb = self.memory_in_use_mb() + need_mb - self.memory_budget_mb
        if over_mb <= 0:
            return
        now = _monotonic_ms()
        candidates = sorted(
            (
                self.policy.eviction_priority(
                    (s.spec.function.name, s.spec.function.version),
                    int(s.last_used_monotonic * 1000),
                    now,
                ),
                id(s),
                s,
            )
            for pool in self._idle.values()
            for s in pool
            if s.state is SandboxState.READY
        )
        evicted: list[Sandbox] = []
        for _, _, sandbox in candidates:
            if over_mb <= 0:
                break
            self._idle[sandbox.spec.function.sandbox_key].remove(sandbox)
            self._expires_monotonic.pop(sandbox, None)
            evicted.append(sandbox)
            over_mb -= sandbox.spec.function.memory_mb
        await asyncio.gather(*(s.stop() for s in evicted), return_exceptions=True)
        if over_mb > 0 and self.pool is not None:
            over_mb -= await self.pool.release_blank(over_mb)  # blank sandboxes give way last
        if over_mb > 0:
            raise TooManyRequestsException(
                f"Rate Exceeded. The node's memory budget of {self.memory_budget_mb} MB is held"
                " by running sandboxes; retry later or raise LAMBDALET_MEMORY_BUDGET_MB",
                Reason="ConcurrentInvocationLimitExceeded",
            )

    async def _start_sandbox(self, function: FunctionConfig) -> Sandbox:
        await self._make_room(function.memory_mb)
        self._starting_mb += function.memory_mb
        try:
            return await self._create_sandbox(function)
        finally:
            self._starting_mb -= function.memory_mb

    async def _create_sandbox(self, function: FunctionConfig) -> Sandbox:
        opt_dir = self._empty_opt_dir
        if function.layers:
            layer_shas = [ref.code_sha256_hex for ref in function.layers]
            opt_dir = await asyncio.to_thread(self._blobs.opt_tree, layer_shas)
        spec = SandboxSpec(
            function=function,
            code_dir=self._blobs.tree_path(function.code_sha256_hex),
            opt_dir=opt_dir,
            runtimes=self._settings.runtimes,
            region=self._settings.region,
            scratch_root=self._scratch_root,
            cache_dir=self._settings.data_dir / "cache",
        )
        if self.pool is not None:
            pooled = await self.pool.acquire(spec)
            if pooled is not None:
                return pooled
        sandbox = self._backend.create(spec)
        await sandbox.start()
        return sandbox

    def _take_idle(self, key: SandboxKey) -> Sandbox | None:
        for pool in (self._provisioned_idle, self._idle):
            idle = pool.get(key)
            while idle:
                sandbox = idle.pop()
                self._expires_monotonic.pop(sandbox, None)
                if sandbox.state is SandboxState.READY:
                    return sandbox
        return None

    def _release(self, sandbox: Sandbox) -> None:
        function = sandbox.spec.function
        key = function.sandbox_key
        current = self._current_revision.get((function.name, function.version))
        usable = sandbox.state is SandboxState.READY and current == function.revision_id
        if sandbox in self._provisioned.get(key, ()):
            if usable:
                self._provisioned_idle[key].append(sandbox)
                return
            # A provisioned sandbox died (timeout, crash): start its replacement.
            self._provisioned[key].discard(sandbox)
            count = len(self._provisioned[key]) + 1
            refill = asyncio.create_task(self._fill_provisioned(function, count))
            refill.add_done_callback(_log_failure)
            self._provision_tasks[key] = refill
        policy_key = (function.name, function.version)
        self.policy.on_invocation_end(policy_key, _monotonic_ms())
        prewarm_after_ms = self.policy.prewarm_after_ms(policy_key) if usable else None
        if usable and prewarm_after_ms is None:
            self._keep_idle(sandbox, self.policy.keep_alive_ms(policy_key))
            return
        if usable and prewarm_after_ms is not None:
            task = asyncio.create_task(self._prewarm(function, prewarm_after_ms))
            task.add_done_callback(_log_failure)
            previous = self._prewarms.pop(policy_key, None)
            if previous is not None:
                previous.cancel()
            self._prewarms[policy_key] = task
        if sandbox.state is not SandboxState.STOPPED:
            task = asyncio.create_task(sandbox.stop())
            task.add_done_callback(_log_failure)

    def _keep_idle(self, sandbox: Sandbox, keep_alive_ms: int) -> None:
        self._expires_monotonic[sandbox] = time.monotonic() + keep_alive_ms / 1000
        self._idle[sandbox.spec.function.sandbox_key].append(sandbox)

    async def _prewarm(self, function: FunctionConfig, after_ms: int) -> None:
        """Start a sandbox shortly before the policy expects the next invocation."""
        await asyncio.sleep(after_ms / 1000)
        current = self._current_revision.get((function.name, function.version))
        if current != function.revision_id:
            return
        try:
            sandbox = await self._start_sandbox(function)
        except SandboxInitError as error:
            log.warning("pre-warming %s failed: %s", function.name, error.error_type)
            return
        self._keep_idle(sandbox, self.policy.keep_alive_ms((function.name, function.version)))

    @staticmethod
    def _init_failure(error: SandboxInitError) -> InvocationResult:
        return InvocationResult(
            payload=error.payload,
            function_error="Unhandled",
            log_lines=[],
            duration_ms=error.init_duration_ms,
            max_memory_used_mb=0,
            init_duration_ms=error.init_duration_ms,
            sandbox_died=True,
        )

    def _finish(
        self,
        function: FunctionConfig,
        invocation: Invocation,
        started_ms: int,
        result: InvocationResult,
        before_start: list[str],
    ) -> InvokeOutcome:
        request_id = invocation.request_id
        billed = billed_duration_ms(result.duration_ms, self._settings.billing_increment_ms)
        lines = [
            *before_start,
            start_line(request_id, function.version),
            *result.log_lines,
            end_line(request_id),
            report_line(
                request_id,
                duration_ms=result.duration_ms,
                billed_ms=billed,
                memory_mb=function.memory_mb,
                max_memory_used_mb=result.max_memory_used_mb,
                init_duration_ms=result.init_duration_ms,
            ),
        ]
        error_type = None
        if result.function_error:
            error_type = _error_type(result.payload)
        record = InvocationRecord(
            request_id=request_id,
            function_name=function.name,
            version=function.version,
            started_unix_ms=started_ms,
            duration_ms=result.duration_ms,
            billed_duration_ms=billed,
            memory_mb=function.memory_mb,
            max_memory_used_mb=result.max_memory_used_mb,
            init_duration_ms=result.init_duration_ms,
            error_type=error_type,
        )
        # One log event per invocation, holding all its lines: one row to store, not four.
        self._recorder.add(
            record, [LogEvent(function.name, request_id, now_ms(), "\n".join(lines))]
        )
        self.metrics.observe(
            function.name,
            result.duration_ms,
            error=result.function_error is not None,
            cold=result.init_duration_ms is not None,
        )
        return InvokeOutcome(result=result, log_lines=lines, billed_duration_ms=billed)

    async def _reap_forever(self) -> None:
        interval_s = min(max(self._settings.keep_alive_ms / 4000, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reap_idle()
            except Exception:
                log.exception("sandbox reaper failed; going on")

    async def reap_idle(self) -> int:
        """Stop sandboxes idle past their keep-alive; return how many stopped."""
        now = time.monotonic()
        expired: list[Sandbox] = []
        for key, idle in list(self._idle.items()):
            keep = [s for s in idle if self._expires_monotonic.get(s, now) > now]
            expired += [s for s in idle if self._expires_monotonic.get(s, now) <= now]
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        for sandbox in expired:
            self._expires_monotonic.pop(sandbox, None)
        await asyncio.gather(*(s.stop() for s in expired), return_exceptions=True)
        return len(expired)


def default_memory_budget_mb() -> int:
    """Three quarters of the machine's memory, for sandboxes (the rest for the node and OS)."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return total_kb * 3 // 4 // 1024


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _error_type(payload: bytes) -> str:
    """The errorType of an error payload, or 'Unhandled' if it has none."""
    try:
        value = json.loads(payload)
    except ValueError:
        return "Unhandled"
    if isinstance(value, dict) and isinstance(value.get("errorType"), str):
        return str(value["errorType"])
    return "Unhandled"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("stopping a sandbox failed", exc_info=task.exception())
