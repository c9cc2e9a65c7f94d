"""A pool of blank, already isolated namespaces sandboxes, so a cold start only binds code.

Starting a namespaces sandbox costs the launcher's and the runtime's interpreters, the
namespaces, the root and the cgroups: tens of milliseconds. None of it depends on the
function, only on its runtime, so the pool does it ahead of time. A blank sandbox is a
:class:`PooledSandbox` whose ``/var/task`` and ``/opt`` are read-only binds of two empty host
staging directories of its own, whose cgroup allows AWS's largest MemorySize, and whose Python
runtime (started with ``_LAMBDALET_POOLED=1``) has imported its client, compiled once (its
first compile, about 2 ms on a VM, would otherwise be the handler's) and sent ``parked`` on
its channel. Acquiring it for a function:

1. hard-links the function's code tree and merged layers into the staging directories (the
   blob store's trees are hard links already: no data is copied), which the sandbox sees at
   once through its binds;
2. sets the cgroup's memory limit to the function's MemorySize;
3. sends the function's environment over the channel (``bind``); the runtime sets
   ``os.environ``, changes into ``/var/task``, imports the handler and goes on as usual.

Init Duration is measured from step 1. The pool is refilled in the background after each
acquire, up to ``Settings.pool_size`` blank sandboxes per Python runtime that has been asked
for; each idle blank sandbox counts :data:`BLANK_SANDBOX_COST_MB` towards the memory budget
(a blank Python runtime and its launcher hold about 10 MB resident).

Refills are forked from the runtime's blank zygote (``sandbox/blank_zygote.py``), started with
the first refill: the sandbox's init and runtime are forks of an interpreter that has imported
and warmed up the runtime once, not two interpreters started anew, which cuts a blank
sandbox's CPU time to about a quarter (the isolation is the same; the blank zygote's module
says what forks share). Where the zygote cannot start, blank sandboxes are started as before.
Forked, a few start at once (:data:`ZYGOTE_REFILL_BATCH`), each as soon as one parks; an
acquire that finds the pool empty while the zygote refills it waits for the next one to park
(up to :data:`BLANK_WAIT_S`) rather than start a sandbox from scratch, at four times the CPU.
A forked blank sandbox holds about 3 MB of its own (PSS) and its zygote about 13 MB resident,
most of it shared with its forks: the blank sandboxes' count covers their zygote.

Only functions the blank sandbox fits are served: Python runtimes, with the default
EphemeralStorage (the /tmp tmpfs is sized when the root is built), the host's network (not
tagged ``lambdalet:network`` = ``none``), no user-set
``PYTHONPATH`` or ``LD_LIBRARY_PATH`` beyond what is applied at bind time (``LD_LIBRARY_PATH``
is read by the dynamic loader when the interpreter starts). Others start from scratch.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import marshal
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lambdalet.errors import SandboxError
from lambdalet.models import FunctionConfig
from lambdalet.runtime import launch
from lambdalet.runtime.channel import FD_ENV, FramedChannel
from lambdalet.runtime.server import RuntimeApiServer
from lambdalet.sandbox import blank_zygote, network, rootfs
from lambdalet.sandbox.base import SandboxInitError, SandboxSpec, SandboxState
from lambdalet.sandbox.blank_zygote import FORKS_PER_ZYGOTE, BlankZygote, ForkedInit
from lambdalet.sandbox.namespaces import NamespacesBackend, NamespacesSandbox
from lambdalet.sandbox.process import INIT_TIMEOUT_S, describe_exit, error_payload
from lambdalet.sandbox.snapshot import ForkedSandbox, SnapshotRegistry, applies

log = logging.getLogger(__name__)

POOLED_ENV = "_LAMBDALET_POOLED"
# AWS's largest MemorySize: a cgroup v1 limit can be lowered to the function's in place (raising
# it would have to raise memory.memsw first). Only lambdalet's own runtime runs until then.
BLANK_MEMORY_MB = 10_240
BLANK_SANDBOX_COST_MB = 16
DEFAULT_EPHEMERAL_STORAGE_MB = 512
# At most this many blank sandboxes start at once per runtime: refills stay in the background.
REFILL_BATCH = 2
# Forked from a blank zygote, a start costs a few ms of CPU and waits mostly on the kernel
# (an RCU grace period as it enters its cgroups): more of them overlap.
ZYGOTE_REFILL_BATCH = 4
REFILL_BACKOFF_S = 5.0
REFILL_DELAY_S = 0.05
# An acquire that finds the pool empty while a blank zygote refills it waits up to this long for
# the next blank sandbox (tens of ms each, a few at once) rather than start one from scratch
# (a hundred ms or more, and four times the CPU, which would slow the refill further).
BLANK_WAIT_S = 1.0


class PooledChannel(FramedChannel):
    """The framed channel of a blank runtime: it also says ``parked`` and is sent ``bind``."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def bind(self, env: dict[str, str]) -> None:
        """Give the waiting runtime its function's environment."""
        self.send({"op": "bind", "env": env})

    def _dispatch(self, header: dict[str, Any], payload: bytes) -> None:
        if header.get("op") == "parked":
            if not self.parked.done():
                self.parked.set_result(None)
            return
        super()._dispatch(header, payload)


def blank_function(runtime: str) -> FunctionConfig:
    """The placeholder function a blank sandbox is built for: only its runtime matters."""
    return FunctionConfig(
        name="lambdalet-pool",
        runtime=runtime,
        handler="pooled.handler",
        role="",
        code_sha256_hex="",
        code_size_bytes=0,
        revision_id="",
        last_modified_ms=0,
        memory_mb=BLANK_MEMORY_MB,
        ephemeral_storage_mb=DEFAULT_EPHEMERAL_STORAGE_MB,
    )


def link_tree(source: Path, target: Path) -> None:
    """Fill ``target`` with hard links to ``source``'s files (copies across file systems)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link, dirs_exist_ok=True)
    target.chmod(0o755)


class PooledSandbox(NamespacesSandbox):
    """A namespaces sandbox started blank (:meth:`park`) and later bound to a function; with
    a ``zygote``, its init and runtime are forked from it rather than started."""

    def __init__(
        self, spec: SandboxSpec, backend: NamespacesBackend, zygote: BlankZygote | None = None
    ) -> None:
        super().__init__(spec, backend)
        self._zygote = zygote
        self._init: ForkedInit | None = None
        if zygote is not None:
            zygote.reserve()
        self._task_stage = self._scratch / "task"
        self._opt_stage = self._scratch / "opt"
        self.spec = dataclasses.replace(spec, code_dir=self._task_stage, opt_dir=self._opt_stage)
        self._pooled_channel: PooledChannel | None = None
        self._runtime_api = ""
        self.parked = False

    async def park(self) -> None:
        """Start the blank runtime and wait until it is parked; raise SandboxInitError."""
        self._server = RuntimeApiServer()
        self._runtime_api = await self._server.start()
        for directory in (self._task_stage, self._opt_stage):
            directory.mkdir(parents=True)
            directory.chmod(0o755)
        env = self._blank_environment(self._runtime_api)
        self._channel = self._api = self._pooled_channel = PooledChannel()
        inherited = (await self._channel.start(),)
        env[FD_ENV] = str(inherited[0])
        await self._spawn(env, inherited)
        assert self._exit is not None and self._output is not None
        waiting: set[asyncio.Future[Any]] = {self._pooled_channel.parked, self._exit}
        await asyncio.wait(waiting, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if self._pooled_channel.parked.done() and not self._exit.done():
            self.parked = True
            return
        lines = self._output.take()
        await self.stop()
        reason = "exited" if self._exit.done() else "did not park in time"
        message = f"RequestId: Error: blank sandbox {reason}: {' | '.join(lines)[-400:]}"
        raise SandboxInitError(error_payload("Runtime.Unknown", message), "Runtime.Unknown", [], 0)

    def _blank_environment(self, runtime_api: str) -> dict[str, str]:
        env = self._environment(runtime_api)
        # What the interpreter reads as it starts, and nothing of the placeholder function.
        kept = ("PATH", "LANG", "TZ", "LD_LIBRARY_PATH", "TMPDIR", "PYTHONPATH")
        blank = {key: env[key] for key in kept if key in env}
        blank["LAMBDA_TASK_ROOT"] = env["LAMBDA_TASK_ROOT"]
        blank[POOLED_ENV] = "1"
        return blank

    async def _start_runtime(
        self, env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> asyncio.Future[int]:
        if self._zygote is None:
            return await super()._start_runtime(env, inherited, output_fd)
        self._init = await asyncio.to_thread(self._fork, env, inherited[0], output_fd)
        return self._init.watch_exit()

    def _fork(self, env: dict[str, str], channel_fd: int, output_fd: int) -> ForkedInit:
        """Lay out the root, make the cgroups, have the zygote fork the sandbox's init, move it
        into the cgroups, hand it its plan and map its ids (blocking: runs in a thread)."""
        assert self._zygote is not None
        argv = self._checked_command()
        try:
            init = self._zygote.fork(output_fd, channel_fd)
        except OSError as error:
            payload = error_payload("Runtime.Unknown", f"RequestId: Error: {error}")
            raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0) from None
        plan = self._plan(argv, env)
        plan["in_process"] = True
        try:
            # Before it reads its plan: everything it forks is born in the cgroups.
            if self._cgroup is not None:
                self._cgroup.add_process(init.pid)
            with open(init.plan_fd, "wb") as plan_pipe:
                init.plan_fd = -1
                plan_pipe.write(marshal.dumps(plan))
            init.map_ids(plan)
        except OSError as error:
            init.kill()
            message = f"RequestId: Error: cannot start the blank sandbox's init: {error}"
            payload = error_payload("Runtime.Unknown", message)
            self._init = init  # stopped, and its end seen, with the sandbox
            raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0) from None
        return init

    async def stop(self) -> None:
        init = self._init
        first = not self._stopped
        if init is not None and first:
            init.kill()
            if self._exit is None:  # it failed to start: its end is still to be seen
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(init.watch_exit(), INIT_TIMEOUT_S)
        await super().stop()
        if init is not None:
            init.close()
        elif first and self._zygote is not None:
            self._zygote.fork_ended()  # reserved, never made

    @property
    def usable(self) -> bool:
        """Parked and still alive."""
        return self.parked and self._exit is not None and not self._exit.done()

    async def bind(self, spec: SandboxSpec) -> None:
        """Give this blank sandbox a function: link its code, set its limits, init it."""
        assert self._pooled_channel is not None and self._exit is not None
        assert self._output is not None
        started = time.perf_counter()
        self.parked = False
        self.spec = spec
        try:
            await asyncio.to_thread(self._stage, spec)
        except OSError as error:
            await self.stop()
            message = f"RequestId: Error: cannot bind the function's code: {error}"
            payload = error_payload("Runtime.Unknown", message)
            raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0) from None
        env = self._environment(self._runtime_api)
        self._pooled_channel.bind(env)
        api = self._pooled_channel
        waiting: set[asyncio.Future[Any]] = {api.first_poll, api.init_error, self._exit}
        await asyncio.wait(waiting, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        init_ms = (time.perf_counter() - started) * 1000
        if api.first_poll.done() and not api.init_error.done():
            self.state = SandboxState.READY
            self._stats.init_duration_ms = init_ms
            self._after_init()
            return
        if api.init_error.done():
            reply = api.init_error.result()
            error_type = reply.error_type or "Runtime.Unknown"
            payload = reply.payload
        elif self._exit.done():
            error_type = "Runtime.ExitError"
            described = describe_exit(self._exit.result())
            message = f"RequestId: Error: Runtime exited with error: {described}"
            payload = error_payload(error_type, message)
        else:
            error_type = "Runtime.InitTimeout"
            message = f"Init timed out after {INIT_TIMEOUT_S:.2f} seconds"
            payload = error_payload(error_type, message)
        await self.stop()
        raise SandboxInitError(payload, error_type, self._output.take(), init_ms)

    def _stage(self, spec: SandboxSpec) -> None:
        """Link the code and layers in, and give the cgroup the function's memory (blocking)."""
        link_tree(spec.code_dir, self._task_stage)
        if spec.opt_dir.is_dir() and any(spec.opt_dir.iterdir()):
            link_tree(spec.opt_dir, self._opt_stage)
        if self._cgroup is not None:
            self._cgroup.limit_memory(spec.function.memory_mb)

    def _on_exit(self, future: asyncio.Future[int]) -> None:
        if self.parked and not self._stopped:  # a blank runtime died: drop it, the pool skips it
            self.parked = False
            self.state = SandboxState.READY  # so the process backend's cleanup stops it
        super()._on_exit(future)


@dataclasses.dataclass
class _RuntimePool:
    """The blank sandboxes of one runtime, and the task that refills them."""

    blank: list[PooledSandbox] = dataclasses.field(default_factory=list)
    starting: int = 0
    refill: asyncio.Task[None] | None = None
    zygote: BlankZygote | None = None
    next_zygote: asyncio.Task[BlankZygote | None] | None = None  # its successor, starting
    zygote_failed: bool = False  # it could not start: blank sandboxes are started instead
    # Acquires waiting for the next blank sandbox to park, first come first served.
    waiters: collections.deque[asyncio.Future[PooledSandbox | None]] = dataclasses.field(
        default_factory=collections.deque
    )


class SandboxPool:
    """Keeps ``size`` blank sandboxes per Python runtime in use; hands them out bound. Versions
    that opt into SnapStart are forked from their snapshot's zygote instead."""

    def __init__(
        self,
        backend: NamespacesBackend,
        *,
        size: int,
        runtimes: dict[str, str],
        region: str,
        scratch_root: Path,
        cache_dir: Path,
        has_room_mb: Callable[[int], bool] = lambda _: True,
        snapshot_spares: int = 1,
    ) -> None:
        self._backend = backend
        self.size = size
        self._runtimes = runtimes
        self._region = region
        self._scratch_root = scratch_root
        self._cache_dir = cache_dir
        self._has_room_mb = has_room_mb
        self._pools: dict[str, _RuntimePool] = {}
        self._stopped = False
        self.refilling = True  # False: hand out what is parked, start no more
        self.snapshots = SnapshotRegistry(backend, spares=snapshot_spares, has_room_mb=has_room_mb)

    def serves(self, function: FunctionConfig) -> bool:
        """Whether a blank sandbox fits this function."""
        return (
            self.size > 0
            and launch.family(function.runtime) == "python"
            and function.runtime in self._runtimes
            and function.ephemeral_storage_mb == DEFAULT_EPHEMERAL_STORAGE_MB
            and "LD_LIBRARY_PATH" not in function.environment
            # An empty network namespace is made with the sandbox: blank ones share the host's.
            and not network.wants_no_network(function)
        )

    def blank_count(self, runtime: str | None = None) -> int:
        """Blank sandboxes parked now, of one runtime or of all."""
        return sum(
            sum(1 for s in pool.blank if s.usable)
            for name, pool in self._pools.items()
            if runtime in (None, name)
        )

    def memory_in_use_mb(self) -> int:
        """What the blank sandboxes, parked and starting, count towards the memory budget."""
        count = sum(len(pool.blank) + pool.starting for pool in self._pools.values())
        return count * BLANK_SANDBOX_COST_MB + self.snapshots.memory_in_use_mb()

    def warm(self, runtime: str) -> None:
        """Start filling the pool of a runtime (in the background)."""
        if self._stopped or self.size <= 0 or not self.refilling:
            return
        pool = self._pools.setdefault(runtime, _RuntimePool())
        if pool.refill is None or pool.refill.done():
            pool.refill = asyncio.create_task(self._fill(runtime, pool), name=f"pool-{runtime}")

    async def wait_filled(self, runtime: str, timeout_s: float = 30.0) -> bool:
        """Wait until the runtime's pool is full (for tests and benchmarks)."""
        self.warm(runtime)
        deadline = time.monotonic() + timeout_s
        while self.blank_count(runtime) < self.size:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def acquire(self, spec: SandboxSpec) -> PooledSandbox | ForkedSandbox | None:
        """A sandbox bound to ``spec``'s function and READY: forked from its snapshot, or a
        blank one bound; None if neither applies or no blank one is parked.

        Raises SandboxInitError as a sandbox's start would.
        """
        function = spec.function
        if applies(function):
            return await self.snapshots.acquire(spec)
        if not self.serves(function):
            return None
        pool = self._pools.setdefault(function.runtime, _RuntimePool())
        sandbox: PooledSandbox | None = None
        while pool.blank:
            candidate = pool.blank.pop()
            if candidate.usable:
                sandbox = candidate
                break
        if sandbox is None:
            sandbox = await self._wait_for_blank(function.runtime, pool)
            if sandbox is None:
                return None
        try:
            await sandbox.bind(spec)
        finally:
            # Refilled a little later: a runtime starting beside it would slow this cold
            # start's first invocation.
            loop = asyncio.get_running_loop()
            loop.call_later(REFILL_DELAY_S, self.warm, function.runtime)
        return sandbox

    async def _wait_for_blank(self, runtime: str, pool: _RuntimePool) -> PooledSandbox | None:
        """The next blank sandbox to park, if a blank zygote is refilling the pool and one parks
        within BLANK_WAIT_S; else None (the caller starts one from scratch)."""
        self.warm(runtime)
        refilling = pool.refill is not None and not pool.refill.done()
        if not refilling or pool.zygote is None or pool.zygote_failed:
            return None
        waiter: asyncio.Future[PooledSandbox | None] = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, BLANK_WAIT_S)
        except TimeoutError:
            return None

    async def _park_into(
        self, runtime: str, pool: _RuntimePool, zygote: BlankZygote | None
    ) -> None:
        """Park one blank sandbox; hand it to the first acquire waiting, else to the pool."""
        sandbox = await self._park_one(runtime, zygote)
        if self._stopped:
            await sandbox.stop()
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(sandbox)
                return
        pool.blank.append(sandbox)

    async def _fill(self, runtime: str, pool: _RuntimePool) -> None:
        try:
            await self._refill(runtime, pool)
        finally:
            while pool.waiters:  # no more are coming now: they start from scratch
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    async def _refill(self, runtime: str, pool: _RuntimePool) -> None:
        """Park blank sandboxes, a few at a time, until the pool is full (or the budget has no
        room); one that parks makes room for the next at once."""
        running: set[asyncio.Task[None]] = set()

        def started(task: asyncio.Task[None]) -> None:
            pool.starting -= 1

        while not self._stopped:
            pool.blank = [s for s in pool.blank if s.usable]
            missing = self.size - len(pool.blank) - pool.starting
            if missing > 0:
                zygote = await self._zygote(runtime, pool)
                limit = REFILL_BATCH if zygote is None else ZYGOTE_REFILL_BATCH
                if len(running) < limit and self._has_room_mb(BLANK_SANDBOX_COST_MB):
                    pool.starting += 1
                    task = asyncio.create_task(self._park_into(runtime, pool, zygote))
                    task.add_done_callback(started)
                    running.add(task)
                    continue
            if not running:
                return  # full, or the budget is for functions first: the next acquire tries again
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            failures = [task.exception() for task in done if task.exception() is not None]
            for error in failures:
                log.warning("starting a blank %s sandbox failed: %s", runtime, error)
            if failures:
                await asyncio.sleep(REFILL_BACKOFF_S)

    async def _zygote(self, runtime: str, pool: _RuntimePool) -> BlankZygote | None:
        """The runtime's blank zygote, started (again) if need be; None if it cannot start.
        Its successor is started in the background before it is retired, so that the refill
        does not wait for an interpreter to start."""
        zygote = pool.zygote
        if zygote is not None and zygote.usable:
            if zygote.forks >= FORKS_PER_ZYGOTE * 3 // 4 and pool.next_zygote is None:
                pool.next_zygote = asyncio.create_task(self._start_zygote(runtime, pool))
            return zygote
        if pool.zygote_failed:
            return None
        starting, pool.next_zygote = pool.next_zygote, None
        if starting is None:
            starting = asyncio.create_task(self._start_zygote(runtime, pool))
        successor = await starting
        if zygote is not None:
            zygote.retire()  # it ends with its last fork
        pool.zygote = successor
        if successor is not None and self._stopped:
            successor.retire()
            return None
        return successor

    async def _start_zygote(self, runtime: str, pool: _RuntimePool) -> BlankZygote | None:
        """A new blank zygote of ``runtime``; None, once and for all, if it cannot start."""
        env = launch.environment(
            blank_function(runtime),
            code_dir=Path(rootfs.TASK_DIR),
            opt_dir=Path(rootfs.OPT_DIR),
            tmp_dir=Path(rootfs.TMP_DIR),
            runtime_api="",
            region=self._region,
            log_stream_name="",
        )
        python = self._runtimes[runtime]
        try:
            roots = rootfs.interpreter_roots(python)
        except SandboxError as error:
            roots, reason = [], str(error)
        else:
            built_from = [self._scratch_root, self._cache_dir, blank_zygote.ISOLATE_DIR, *roots]
            reason = blank_zygote.why_not(built_from)
        if reason:
            log.info("no blank zygote for %s, blank sandboxes are started: %s", runtime, reason)
            pool.zygote_failed = True
            return None
        zygote = BlankZygote(python, env)
        try:
            await asyncio.to_thread(zygote.start)
        except OSError as error:
            log.warning(
                "no blank zygote for %s, blank sandboxes are started instead: %s", runtime, error
            )
            pool.zygote_failed = True
            return None
        return zygote

    async def _park_one(self, runtime: str, zygote: BlankZygote | None = None) -> PooledSandbox:
        spec = SandboxSpec(
            function=blank_function(runtime),
            code_dir=self._scratch_root,  # replaced by the staging directories
            opt_dir=self._scratch_root,
            runtimes=self._runtimes,
            region=self._region,
            scratch_root=self._scratch_root,
            cache_dir=self._cache_dir,
        )
        sandbox = PooledSandbox(spec, self._backend, zygote)
        await sandbox.park()
        return sandbox

    async def release_blank(self, need_mb: int) -> int:
        """Stop parked blank sandboxes, then spare snapshot instances, until ``need_mb`` of the
        memory budget is free again (a function's sandbox needs it); return how many MB were
        freed."""
        doomed: list[PooledSandbox] = []
        for pool in self._pools.values():
            while pool.blank and len(doomed) * BLANK_SANDBOX_COST_MB < need_mb:
                doomed.append(pool.blank.pop())
        await asyncio.gather(*(s.stop() for s in doomed), return_exceptions=True)
        freed_mb = len(doomed) * BLANK_SANDBOX_COST_MB
        if freed_mb < need_mb:  # then the snapshots' spares
            freed_mb += await self.snapshots.release_spares(need_mb - freed_mb)
        return freed_mb

    async def retire(self, name: str, version: str | None = None) -> None:
        """Forget the snapshots of a function (or one version) that changed or was deleted."""
        await self.snapshots.retire(name, version)

    async def stop(self) -> None:
        """Stop refilling and stop every blank sandbox and zygote."""
        self._stopped = True
        await self.snapshots.stop()
        for pool in self._pools.values():
            if pool.refill is not None:
                # Blank sandboxes being started are stopped as they park (see _fill).
                await asyncio.wait({pool.refill}, timeout=INIT_TIMEOUT_S)
                pool.refill.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pool.refill
        blank = [s for pool in self._pools.values() for s in pool.blank]
        zygotes = [pool.zygote for pool in self._pools.values() if pool.zygote is not None]
        for pool in self._pools.values():
            if pool.next_zygote is not None:
                successor = await pool.next_zygote
                if successor is not None:
                    zygotes.append(successor)
        self._pools.clear()
        await asyncio.gather(*(s.stop() for s in blank), return_exceptions=True)
        for zygote in zygotes:
            zygote.retire()  # it ends with the last sandbox it forked, bound ones included


def make_pool(
    backend: object,
    *,
    size: int,
    runtimes: dict[str, str],
    region: str,
    scratch_root: Path,
    cache_dir: Path,
    has_room_mb: Callable[[int], bool],
    snapshot_spares: int = 1,
) -> SandboxPool | None:
    """A pool for the namespaces backend (with no blank sandboxes when ``size`` is 0, but
    snapshots still); None for other backends."""
    if not isinstance(backend, NamespacesBackend):
        return None
    return SandboxPool(
        backend,
        size=size,
        runtimes=runtimes,
        region=region,
        scratch_root=scratch_root,
        cache_dir=cache_dir,
        has_room_mb=has_room_mb,
        snapshot_spares=snapshot_spares,
    )
