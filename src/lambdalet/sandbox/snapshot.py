"""Post-init snapshots (SnapStart): instances forked from a zygote that has run the init.

For a published version of a Python function with ``SnapStart: {"ApplyOn":
"PublishedVersions"}``, the first cold start starts a :class:`ZygoteSandbox`: a namespaces
sandbox whose runtime imports the handler (the function's init, once) and then, instead of
serving invocations, forks an instance for each request. A forked instance inherits the
initialized interpreter (module state, imports, open files) copy-on-write, so a cold start
costs a fork rather than an interpreter start and an init.

Each instance gets, from the host:

- its own Runtime API channel and log pipe, passed to the zygote with SCM_RIGHTS;
- its own cgroup (memory = MemorySize, pids, CPU), in which it is born: the host moves the
  zygote's runtime into a fresh cgroup ahead of each fork (off the cold start's path: on
  cgroup v1 a move waits for an RCU grace period, milliseconds), so what the instance copies
  on write, its page tables and everything it allocates are charged to it from its first
  instruction; the pages it still shares with the zygote stay charged to the zygote. Max
  Memory Used is its own cgroup's peak. Its host pid, for the host to signal it, comes from
  the SCM_CREDENTIALS of its first byte;
- its own exit status, which the zygote (its parent) reports when it reaps it.

What instances share with their zygote and each other, since they are forked inside it: the
pid, mount, ipc, uts and user namespaces, the root (``/var/task``, ``/opt``, and one ``/tmp``
tmpfs: a file one instance writes there the others can see), and the pids cgroup limit of the
zygote. They can see and signal each other's processes. This is why only instances of one
function version share a zygote, as AWS's SnapStart resumes one version's snapshot in many
execution environments. Also inherited, as on AWS: whatever the init made unique (a random
seed is reseeded by Python at fork; a UUID made at import is not), and network connections
opened during init.

Init Duration of a forked instance is its restore: the fork until it polls for work.

A fork on a 2-core VM takes a few milliseconds, and the instance's first steps fault in the
pages it writes (copy-on-write). So each snapshotted version keeps ``spares`` (a setting,
``LAMBDALET_SNAPSHOT_SPARES``) instances forked ahead, READY and waiting for their first
invocation: a cold start takes one (its Init Duration is then only the handing over) and a
new one is forked in the background, a little later so as not to slow the invocation of the
one just taken. A spare counts :data:`SPARE_COST_MB` towards the memory budget (what it
holds of its own; it has run no handler code yet), is forked only when the budget has room,
and is stopped with its version's zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

from lambdalet.models import LATEST, FunctionConfig
from lambdalet.runtime import launch
from lambdalet.runtime.channel import FramedChannel
from lambdalet.sandbox import cgroups
from lambdalet.sandbox.base import SandboxInitError, SandboxSpec, SandboxState
from lambdalet.sandbox.namespaces import MB, NamespacesBackend, NamespacesSandbox
from lambdalet.sandbox.output import OutputCollector
from lambdalet.sandbox.process import INIT_TIMEOUT_S, ProcessSandbox, error_payload

log = logging.getLogger(__name__)

ZYGOTE_FD_ENV = "_LAMBDALET_ZYGOTE_FD"
APPLY_ON_PUBLISHED = "PublishedVersions"
_UCRED = struct.Struct("3i")
SPARE_COST_MB = 4
# A spare is forked this long after a cold start took one: not beside its first invocation.
SPARE_DELAY_S = 0.05


def applies(function: FunctionConfig) -> bool:
    """Whether this version runs from a snapshot: opted in, published, a Python runtime."""
    return (
        function.snap_start_apply_on == APPLY_ON_PUBLISHED
        and function.version != LATEST
        and launch.family(function.runtime) == "python"
    )


class ZygoteSandbox(NamespacesSandbox):
    """A namespaces sandbox whose initialized runtime forks instances instead of serving."""

    def __init__(self, spec: SandboxSpec, backend: NamespacesBackend) -> None:
        super().__init__(spec, backend)
        self._control, self._zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._control.setblocking(False)
        self._buffer = b""
        self._forked: asyncio.Queue[int] = asyncio.Queue()
        self._instances: dict[int, ForkedSandbox] = {}  # by pid inside the sandbox
        self._statuses: dict[int, int] = {}  # exits reported before their fork's answer
        self._fork_lock = asyncio.Lock()
        self._runtime_pid: int | None = None  # the zygote's runtime, as the host sees it
        # The cgroup the zygote's runtime waits in, the next instance's (None: none could be
        # made; instances then count in the zygote's own).
        self._next: asyncio.Task[cgroups.SandboxCgroup | None] | None = None

    async def start(self) -> None:
        try:
            await super().start()
        finally:
            self._zygote_end.close()
        asyncio.get_running_loop().add_reader(self._control.fileno(), self._read_control)
        self._exit_future().add_done_callback(self._zygote_exited)
        self._runtime_pid = self._find_runtime_pid()
        if self._runtime_pid is not None and self._cgroup is not None:
            self._next = asyncio.create_task(asyncio.to_thread(self._enter_next_cgroup))

    def _find_runtime_pid(self) -> int | None:
        """The runtime's host pid: the launcher's child is the init, whose child it is."""
        if self._process is None:
            return None
        pid = self._process.pid
        try:
            for _ in range(2):
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    pid = int(children.read().split()[0])
        except (OSError, ValueError, IndexError) as error:
            log.warning("zygote %s: cannot find its runtime: %s", self.sandbox_id, error)
            return None
        return pid

    def _enter_next_cgroup(self) -> cgroups.SandboxCgroup | None:
        """Make the next instance's cgroup and move the zygote's runtime into it (blocking)."""
        assert self._runtime_pid is not None
        function = self.spec.function
        cgroup: cgroups.SandboxCgroup | None = None
        try:
            cgroup = cgroups.SandboxCgroup.create(
                self._backend.isolation.cgroups,
                uuid.uuid4().hex[:12],
                memory_mb=function.memory_mb,
                pids_max=self._backend.pids_max,
            )
            cgroup.limit_cpu(function.memory_mb)
            cgroup.add_process(self._runtime_pid)
            return cgroup
        except OSError as error:
            if self.alive:
                log.warning(
                    "zygote %s: cannot make an instance's cgroup: %s", self.sandbox_id, error
                )
            if self._cgroup is not None:
                # Back into its own sandbox's cgroup: the last instance's is removed with it.
                with contextlib.suppress(OSError):
                    self._cgroup.add_process(self._runtime_pid)
            if cgroup is not None:
                cgroup.remove()
            return None

    def _exit_future(self) -> asyncio.Future[int]:
        assert self._exit is not None
        return self._exit

    def _environment(self, runtime_api: str) -> dict[str, str]:
        env = super()._environment(runtime_api)
        env[ZYGOTE_FD_ENV] = str(self._zygote_end.fileno())
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
        return env

    def _popen(
        self, argv: list[str], env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> subprocess.Popen[bytes]:
        return super()._popen(argv, env, (*inherited, self._zygote_end.fileno()), output_fd)

    def _read_control(self) -> None:
        try:
            data = self._control.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._control.fileno())
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            word, *values = line.decode().split()
            if word == "f":
                self._forked.put_nowait(int(values[0]))
            elif word == "x":
                pid, status = int(values[0]), int(values[1])
                instance = self._instances.pop(pid, None)
                if instance is None:
                    self._statuses[pid] = status
                else:
                    instance.exited(status)

    def _zygote_exited(self, _: asyncio.Future[int]) -> None:
        # Its pid namespace is gone, and every instance with it.
        for instance in self._instances.values():
            instance.exited(-signal.SIGKILL)
        self._instances.clear()

    @property
    def alive(self) -> bool:
        """Initialized and still running."""
        return self.state is SandboxState.READY and self._exit is not None and not self._exit.done()

    async def fork(self, spec: SandboxSpec) -> ForkedSandbox:
        """A new READY instance forked from this zygote; raise SandboxInitError."""
        started = time.perf_counter()
        instance = ForkedSandbox(spec, self._backend)
        try:
            await instance.attach(self)
        except BaseException:
            await instance.stop()
            raise
        instance.stats().init_duration_ms = (time.perf_counter() - started) * 1000
        return instance

    async def request_fork(
        self, channel_fd: int, output_fd: int
    ) -> tuple[int, cgroups.SandboxCgroup | None, asyncio.Task[Any] | None]:
        """Ask the zygote for an instance; return its pid inside the sandbox, the cgroup it was
        born in, and the task after which the zygote has left that cgroup."""
        async with self._fork_lock:  # answers come in the order of the requests
            cgroup = await self._next if self._next is not None else None
            socket.send_fds(self._control, [b"F"], [channel_fd, output_fd])
            pid = await self._forked_pid()
            departed = None
            if self._next is not None:
                # Into a fresh cgroup for the next instance, off this cold start's path.
                departed = self._next = asyncio.create_task(
                    asyncio.to_thread(self._enter_next_cgroup)
                )
            return pid, cgroup, departed

    async def _forked_pid(self) -> int:
        """The pid the zygote answers with; SandboxInitError if it ends or does not answer."""
        answer = asyncio.ensure_future(self._forked.get())
        waiting: set[asyncio.Future[Any]] = {answer, self._exit_future()}
        await asyncio.wait(waiting, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        reason = "ended" if self._exit_future().done() else "did not fork in time"
        message = f"RequestId: Error: the snapshot's zygote {reason}"
        payload = error_payload("Runtime.Unknown", message)
        raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0)

    def adopt(self, pid: int, instance: ForkedSandbox) -> None:
        """Route the exit status of the instance ``pid`` to it."""
        status = self._statuses.pop(pid, None)
        if status is not None:
            instance.exited(status)
        else:
            self._instances[pid] = instance

    async def stop(self) -> None:
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(self._control.fileno())
        self._control.close()
        await super().stop()
        waiting, self._next = self._next, None
        if waiting is not None:
            cgroup = await waiting
            if cgroup is not None:
                await asyncio.to_thread(cgroup.remove)


class ForkedSandbox(ProcessSandbox):
    """One instance forked from a zygote: a process of its sandbox, with its own channel, log
    pipe and cgroup."""

    def __init__(self, spec: SandboxSpec, backend: NamespacesBackend) -> None:
        super().__init__(spec)
        self._backend = backend
        self._cgroup: cgroups.SandboxCgroup | None = None
        self._pidfd: int | None = None
        self._departed: asyncio.Task[Any] | None = None
        self.host_pid: int | None = None
        self.sandbox_pid: int | None = None  # as the processes of its sandbox see it

    @property
    def usable(self) -> bool:
        """READY and still running: a spare that can be handed out."""
        return self.state is SandboxState.READY and self._exit is not None and not self._exit.done()

    async def attach(self, zygote: ZygoteSandbox) -> None:
        """Have the zygote fork this instance, then wait until it polls for work."""
        loop = asyncio.get_running_loop()
        self._exit = loop.create_future()
        self._channel = self._api = channel = FramedChannel()
        host_end: socket.socket = channel._host_end
        host_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        read_fd, write_fd = os.pipe()
        self._output = OutputCollector(read_fd)
        try:
            forked = await zygote.request_fork(channel.runtime_end.fileno(), write_fd)
        finally:
            os.close(write_fd)
            channel.runtime_started()
        pid, self._cgroup, self._departed = forked
        self.sandbox_pid = pid
        zygote.adopt(pid, self)
        self.host_pid = await self._read_credentials(host_end)
        self._pidfd = os.pidfd_open(self.host_pid)
        await channel.start()
        waiting: set[asyncio.Future[Any]] = {channel.first_poll, channel.init_error, self._exit}
        await asyncio.wait(waiting, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if channel.first_poll.done() and not self._exit.done():
            self.state = SandboxState.READY
            return
        message = "RequestId: Error: the snapshot's instance did not start"
        payload = error_payload("Runtime.Unknown", message)
        raise SandboxInitError(payload, "Runtime.Unknown", self._output.take(), 0.0)

    async def _read_credentials(self, host_end: socket.socket) -> int:
        """The instance's pid as the host sees it, from the credentials of its first byte."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(host_end.fileno(), ready)
        try:
            await asyncio.wait_for(readable, INIT_TIMEOUT_S)
        finally:
            loop.remove_reader(host_end.fileno())
        _, ancillary, _, _ = host_end.recvmsg(1, socket.CMSG_SPACE(_UCRED.size))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid: int = _UCRED.unpack(data[: _UCRED.size])[0]
                return pid
        raise SandboxInitError(
            error_payload("Runtime.Unknown", "RequestId: Error: the instance sent no credentials"),
            "Runtime.Unknown",
            [],
            0.0,
        )

    def exited(self, status: int) -> None:
        """The zygote reaped this instance."""
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(status)
            self._on_exit(self._exit)

    def _peak_memory_mb(self, reported_kb: int | None = None) -> int:
        peak = self._cgroup.peak_memory_bytes() if self._cgroup is not None else None
        if peak is not None:
            peak_mb = -(-peak // MB)
            self._stats.max_memory_used_mb = max(self._stats.max_memory_used_mb, peak_mb)
        return self._stats.max_memory_used_mb

    async def stop(self) -> None:
        if self._stopped:
            return
        if self._pidfd is not None and self._exit is not None and not self._exit.done():
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exit), INIT_TIMEOUT_S)
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(-signal.SIGKILL)
        await super().stop()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None:
            if self._departed is not None:
                # Removing the cgroup kills what is in it: the zygote must have left it.
                with contextlib.suppress(Exception):
                    await self._departed
            await asyncio.to_thread(cgroup.remove)


class SnapshotRegistry:
    """One zygote per snapshotted function version; instances are forked from it, and up to
    ``spares`` of them ahead of need."""

    def __init__(
        self,
        backend: NamespacesBackend,
        *,
        spares: int = 1,
        has_room_mb: Callable[[int], bool] = lambda _: True,
    ) -> None:
        self._backend = backend
        self.spares = spares
        self._has_room_mb = has_room_mb
        self._zygotes: dict[tuple[str, str], ZygoteSandbox] = {}
        self._starting: dict[tuple[str, str], asyncio.Task[ZygoteSandbox]] = {}
        self._spares: dict[tuple[str, str], list[ForkedSandbox]] = {}
        self._forking: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._stopped = False

    def zygote_count(self) -> int:
        """Zygotes alive now."""
        return sum(1 for zygote in self._zygotes.values() if zygote.alive)

    def spares_of(self, name: str | None = None, version: str | None = None) -> list[ForkedSandbox]:
        """Spare instances READY now, of one function (or version) or of all."""
        return [
            spare
            for key, spares in list(self._spares.items())
            if name in (None, key[0]) and version in (None, key[1])
            for spare in list(spares)
            if spare.usable
        ]

    def memory_in_use_mb(self) -> int:
        """MemorySize of each live zygote (it counts towards the node's budget like a
        sandbox), and what the spare instances hold."""
        zygotes_mb = sum(z.spec.function.memory_mb for z in self._zygotes.values() if z.alive)
        spares = sum(len(spares) for spares in self._spares.values())
        return zygotes_mb + spares * SPARE_COST_MB

    async def acquire(self, spec: SandboxSpec) -> ForkedSandbox:
        """A READY instance of ``spec``'s version: a spare, or forked from its zygote (started
        if need be); raise SandboxInitError as a sandbox's start would (the init's errors
        included)."""
        started = time.perf_counter()
        function = spec.function
        key = (function.name, function.version)
        zygote = self._zygotes.get(key)
        if zygote is not None and (
            not zygote.alive or zygote.spec.function.revision_id != function.revision_id
        ):
            if self._zygotes.get(key) is zygote:  # not already replaced by a concurrent call
                del self._zygotes[key]
            await asyncio.gather(zygote.stop(), self._drop_spares(key), return_exceptions=True)
            zygote = None
        if zygote is None:
            starting = self._starting.get(key)
            if starting is None:
                starting = asyncio.create_task(self._start_zygote(spec))
                self._starting[key] = starting
            try:
                zygote = await asyncio.shield(starting)
            finally:
                if self._starting.get(key) is starting and starting.done():
                    del self._starting[key]
            self._zygotes[key] = zygote
        instance = await self._take_spare(key)
        if instance is not None:
            instance.spec = spec
            instance.stats().init_duration_ms = (time.perf_counter() - started) * 1000
        else:
            instance = await zygote.fork(spec)
        if self.spares > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(SPARE_DELAY_S, self._fork_spares_soon, key, zygote, spec)
        return instance

    async def _take_spare(self, key: tuple[str, str]) -> ForkedSandbox | None:
        await self._stop_dead_spares(key)
        spares = self._spares.get(key)
        return spares.pop(0) if spares else None

    async def _stop_dead_spares(self, key: tuple[str, str]) -> None:
        """Forget (and stop, to free their cgroups) the spares of ``key`` that died waiting."""
        spares = self._spares.get(key, [])
        dead = [spare for spare in spares if not spare.usable]
        if dead:
            spares[:] = [spare for spare in spares if spare.usable]
            await asyncio.gather(*(spare.stop() for spare in dead), return_exceptions=True)

    def _fork_spares_soon(
        self, key: tuple[str, str], zygote: ZygoteSandbox, spec: SandboxSpec
    ) -> None:
        if self._stopped or self._zygotes.get(key) is not zygote:
            return
        forking = self._forking.get(key)
        if forking is None or forking.done():
            name = f"spares-{key[0]}:{key[1]}"
            self._forking[key] = asyncio.create_task(
                self._fork_spares(key, zygote, spec), name=name
            )

    async def _fork_spares(
        self, key: tuple[str, str], zygote: ZygoteSandbox, spec: SandboxSpec
    ) -> None:
        """Fork spares of ``key`` until there are ``spares`` (or the budget has no room)."""
        while not self._stopped and self._zygotes.get(key) is zygote and zygote.alive:
            await self._stop_dead_spares(key)
            if len(self._spares.get(key, [])) >= self.spares:
                return
            if not self._has_room_mb(SPARE_COST_MB):
                return  # the budget is for functions first; the next cold start tries again
            try:
                spare = await zygote.fork(spec)
            except (SandboxInitError, OSError) as error:  # TimeoutError included
                if zygote.alive:
                    log.warning("zygote %s: cannot fork a spare: %s", zygote.sandbox_id, error)
                return
            if self._stopped or self._zygotes.get(key) is not zygote:
                await spare.stop()
                return
            self._spares.setdefault(key, []).append(spare)

    async def _drop_spares(self, key: tuple[str, str]) -> None:
        """Stop the spares of ``key`` and the task forking them."""
        forking = self._forking.pop(key, None)
        if forking is not None:
            # Not cancelled: the zygote's answer to a fork under way must be read. The task
            # stops what it forks once it sees its version dropped (or the zygote ends).
            await asyncio.wait({forking}, timeout=INIT_TIMEOUT_S)
        spares = self._spares.pop(key, [])
        await asyncio.gather(*(spare.stop() for spare in spares), return_exceptions=True)

    async def release_spares(self, need_mb: int) -> int:
        """Stop spares until ``need_mb`` of the memory budget is free again (a function's
        sandbox needs it); return how many MB were freed."""
        doomed: list[ForkedSandbox] = []
        for spares in self._spares.values():
            while spares and len(doomed) * SPARE_COST_MB < need_mb:
                doomed.append(spares.pop())
        await asyncio.gather(*(spare.stop() for spare in doomed), return_exceptions=True)
        return len(doomed) * SPARE_COST_MB

    async def _start_zygote(self, spec: SandboxSpec) -> ZygoteSandbox:
        zygote = ZygoteSandbox(spec, self._backend)
        await zygote.start()
        return zygote

    async def retire(self, name: str, version: str | None = None) -> None:
        """Stop the zygotes of a function (or one version), and their spares."""
        doomed = [k for k in self._zygotes if k[0] == name and version in (None, k[1])]
        zygotes = [self._zygotes.pop(key) for key in doomed]
        await asyncio.gather(
            *(self._drop_spares(key) for key in doomed),
            *(z.stop() for z in zygotes),
            return_exceptions=True,
        )

    async def stop(self) -> None:
        """Stop every zygote and spare (the instances die with their zygote)."""
        self._stopped = True
        zygotes = list(self._zygotes.values())
        keys = list(self._spares) + [k for k in self._forking if k not in self._spares]
        self._zygotes.clear()
        await asyncio.gather(
            *(self._drop_spares(key) for key in keys),
            *(z.stop() for z in zygotes),
            return_exceptions=True,
        )
