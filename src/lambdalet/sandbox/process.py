"""The ``process`` sandbox backend: each sandbox is a child process in its own session.

This backend runs the function as the host user with no namespaces or cgroups: it is the
portable fallback and the reference for behaviour (Runtime API, logs, timeouts, crashes),
not an isolation boundary. A crash or timeout kills the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from lambdalet.errors import SandboxError
from lambdalet.models import Invocation, InvocationResult
from lambdalet.runtime import launch
from lambdalet.runtime.channel import FD_ENV, FramedChannel
from lambdalet.runtime.server import RuntimeApiServer
from lambdalet.sandbox.base import SandboxInitError, SandboxSpec, SandboxState, SandboxStats
from lambdalet.sandbox.output import OutputCollector

INIT_TIMEOUT_S = 10.0


def watch_exit(process: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future of the process's exit status, resolved by the event loop through a pidfd:
    no thread and no signal handler per sandbox."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()
    pidfd = os.pidfd_open(process.pid)

    def reap() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(process.wait())

    loop.add_reader(pidfd, reap)
    return exited


def describe_exit(returncode: int) -> str:
    """An exit status in the words AWS uses: ``exit status 1``, ``signal: killed``."""
    if returncode < 0:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"


def error_payload(error_type: str, message: str) -> bytes:
    """The JSON body of an error lambdalet reports on a runtime's behalf."""
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def log_stream_name(version: str) -> str:
    """A log stream name in AWS's form: ``2026/11/23/[$LATEST]<32 hex>``."""
    return f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"


def _expire(api: RuntimeApiServer | FramedChannel) -> None:
    api.fail_pending(TimeoutError("the invocation timed out"))


class ProcessSandbox:
    """A sandbox that is a plain child process."""

    def __init__(self, spec: SandboxSpec) -> None:
        self.spec = spec
        self.state = SandboxState.STARTING
        self.last_used_monotonic = time.monotonic()
        self.sandbox_id = uuid.uuid4().hex[:12]
        self._scratch = spec.scratch_root / self.sandbox_id
        self._server: RuntimeApiServer | None = None
        self._channel: FramedChannel | None = None
        self._api: RuntimeApiServer | FramedChannel | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._exit: asyncio.Future[int] | None = None
        self._output: OutputCollector | None = None
        self._stats = SandboxStats()
        self._stopped = False
        self._status_fd: int | None = None

    async def start(self) -> None:
        started = time.perf_counter()
        self._server = RuntimeApiServer()
        address = await self._server.start()
        function = self.spec.function
        env = self._environment(address)
        self._api = self._server
        inherited: tuple[int, ...] = ()
        if launch.family(function.runtime) == "python":
            # lambdalet's own runtime takes the cheaper private channel.
            self._channel = self._api = FramedChannel()
            inherited = (await self._channel.start(),)
            env[FD_ENV] = str(inherited[0])
        await self._spawn(env, inherited)
        assert self._exit is not None and self._output is not None
        waiting: set[asyncio.Future[Any]] = {
            self._api.first_poll,
            self._api.init_error,
            self._exit,
        }
        await asyncio.wait(waiting, timeout=INIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        init_ms = (time.perf_counter() - started) * 1000
        if self._api.first_poll.done() and not self._api.init_error.done():
            self.state = SandboxState.READY
            self._stats.init_duration_ms = init_ms
            return
        if self._api.init_error.done():
            reply = self._api.init_error.result()
            error_type = reply.error_type or "Runtime.Unknown"
            payload = reply.payload
        elif self._exit.done():
            error_type = "Runtime.ExitError"
            message = (
                f"RequestId: Error: Runtime exited with error: {describe_exit(self._exit.result())}"
            )
            payload = error_payload(error_type, message)
        else:
            error_type = "Runtime.InitTimeout"
            payload = error_payload(
                error_type, f"Init timed out after {INIT_TIMEOUT_S:.2f} seconds"
            )
        await self.stop()
        lines = self._output.take()
        raise SandboxInitError(payload, error_type, lines, init_ms)

    async def invoke(self, invocation: Invocation, timeout_ms: int) -> InvocationResult:
        assert self._api is not None and self._exit is not None and self._output is not None
        assert self.state is SandboxState.READY, f"sandbox is {self.state.value}"
        self.state = SandboxState.INVOKING
        # What the runtime printed since the last invocation is this one's, as on AWS. The
        # pipe is not read here: its reader (OutputCollector) has read whatever the loop saw.
        lines = self._output.take()
        api = self._api
        started = time.perf_counter()
        reply = api.submit(invocation)
        # The reply fails when the runtime exits (_on_exit) or when this timer fires: one
        # timer and one future, no task, on every invocation.
        # The loop from a future of it: asyncio.get_running_loop() makes a system call on 3.11.
        timer = self._exit.get_loop().call_later(timeout_ms / 1000, _expire, api)
        if self._exit.done():
            api.fail_pending(ConnectionResetError("runtime exited"))
        with contextlib.suppress(ConnectionError, TimeoutError):
            await reply
        timer.cancel()
        duration_ms = (time.perf_counter() - started) * 1000
        self._stats.invocations += 1
        if not reply.exception():
            # No read of the pipe either: the runtime wrote its lines before its reply, so the
            # loop saw the pipe readable no later than the channel, and ran its reader before
            # resuming this coroutine (I/O callbacks run before the ready queue).
            self.state = SandboxState.READY
            self.last_used_monotonic = time.monotonic()
            result = reply.result()
            return InvocationResult(
                payload=result.payload,
                function_error="Unhandled" if result.error_type else None,
                log_lines=lines + self._output.take(with_partial=True),
                duration_ms=duration_ms,
                max_memory_used_mb=self._peak_memory_mb(result.max_rss_kb),
            )
        memory_mb = self._peak_memory_mb()
        request_id = invocation.request_id
        if self._exit.done():
            error_type = "Runtime.ExitError"
            detail = f"Runtime exited with error: {describe_exit(self._exit.result())}"
        else:
            error_type = "Sandbox.Timedout"
            detail = f"Task timed out after {timeout_ms / 1000:.2f} seconds"
            # The loop's timer may fire a hair early; the function did use its whole timeout.
            duration_ms = max(duration_ms, float(timeout_ms))
        self._api.forget()
        await self.stop()
        lines += self._output.take()
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines.append(f"{stamp} {request_id} {detail}")
        return InvocationResult(
            payload=error_payload(error_type, f"RequestId: {request_id} Error: {detail}"),
            function_error="Unhandled",
            log_lines=lines,
            duration_ms=duration_ms,
            max_memory_used_mb=memory_mb,
            sandbox_died=True,
        )

    async def _spawn(self, env: dict[str, str], inherited: tuple[int, ...]) -> None:
        """Start the runtime process, passing it ``inherited`` fds; collect its output and
        watch for its exit. A launch that fails, or a runtime that cannot be watched once it
        started, stops the sandbox (its process with it) and raises."""
        read_fd, write_fd = os.pipe()
        try:
            self._exit = await self._start_runtime(env, inherited, write_fd)
        except BaseException:
            os.close(read_fd)
            await self.stop()
            raise
        finally:
            os.close(write_fd)
            if self._channel is not None:
                self._channel.runtime_started()
        self._output = OutputCollector(read_fd)
        self._exit.add_done_callback(self._on_exit)

    async def _start_runtime(
        self, env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> asyncio.Future[int]:
        """Start the runtime's process (in a thread); the future of its exit status."""
        self._process = await asyncio.to_thread(self._launch, env, inherited, output_fd)
        return watch_exit(self._process)

    def _launch(
        self, env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> subprocess.Popen[bytes]:
        """Build the command line and start the runtime (blocking: runs in a thread).

        Popen (vfork and exec) rather than the event loop's subprocess support: uvloop's forks
        the whole server process, which costs milliseconds on every cold start.
        """
        argv = self._checked_command()
        try:
            return self._popen(argv, env, inherited, output_fd)
        except OSError as error:
            reason = error.strerror.lower() if error.strerror else str(error)
            message = f"RequestId: Error: fork/exec {argv[0]}: {reason}"
            payload = error_payload("Runtime.InvalidEntrypoint", message)
            raise SandboxInitError(payload, "Runtime.InvalidEntrypoint", [], 0.0) from None

    def _checked_command(self) -> list[str]:
        """:meth:`_command`, a SandboxError of it raised as the sandbox's init error."""
        try:
            return self._command()
        except SandboxError as error:
            payload = error_payload("Runtime.Unknown", f"RequestId: Error: {error}")
            raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0) from None

    # What a backend that isolates the runtime overrides: the paths the runtime sees, its
    # command line and how its process is started.

    def _environment(self, runtime_api: str) -> dict[str, str]:
        """The runtime's environment, naming the host's own paths (this backend's view),
        its TMPDIR a directory of the sandbox's scratch (made here)."""
        function = self.spec.function
        tmp_dir = self._scratch / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return launch.environment(
            function,
            code_dir=self.spec.code_dir,
            opt_dir=self.spec.opt_dir,
            tmp_dir=tmp_dir,
            runtime_api=runtime_api,
            region=self.spec.region,
            log_stream_name=log_stream_name(function.version),
        )

    def _command(self) -> list[str]:
        """The runtime's command line (blocking: Java may compile its bootstrap)."""
        return launch.command(
            self.spec.function,
            self.spec.runtimes,
            self.spec.code_dir,
            self.spec.cache_dir,
            self.spec.opt_dir,
        )

    def _popen(
        self, argv: list[str], env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> subprocess.Popen[bytes]:
        """Start the runtime's process, in a session of its own (blocking)."""
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output_fd,
            stderr=output_fd,
            env=env,
            cwd=self.spec.code_dir,
            start_new_session=True,
            pass_fds=inherited,
        )

    def _on_exit(self, _: asyncio.Future[int]) -> None:
        if self._api is not None:  # an invocation running now ends with the runtime
            self._api.fail_pending(ConnectionResetError("runtime exited"))
        # A runtime that dies while idle must not be handed the next invocation.
        if self.state is SandboxState.READY:
            self.state = SandboxState.STOPPED
            cleanup = asyncio.get_running_loop().create_task(self.stop())
            cleanup.add_done_callback(lambda task: task.exception())

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.state = SandboxState.STOPPED
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)
        if self._exit is not None:
            await self._exit
        elif self._process is not None:
            await asyncio.to_thread(self._process.wait)  # started, but never watched
        if self._output is not None:
            self._output.drain()
            self._output.close()
        if self._status_fd is not None:
            os.close(self._status_fd)
            self._status_fd = None
        if self._channel is not None:
            await self._channel.close()
        if self._server is not None:
            await self._server.close()
        await asyncio.to_thread(shutil.rmtree, self._scratch, True)

    def stats(self) -> SandboxStats:
        return self._stats

    def _peak_memory_mb(self, reported_kb: int | None = None) -> int:
        """The runtime process's peak resident memory (VmHWM), in MB, rounded up: as the
        runtime reported it with its reply (``reported_kb``), else from its status file,
        which stays open and is re-read from offset 0 (one syscall, but the kernel formats
        the whole file: tens of microseconds).
        """
        if reported_kb is not None:
            peak_mb = -(-reported_kb // 1024)
            self._stats.max_memory_used_mb = max(self._stats.max_memory_used_mb, peak_mb)
            return self._stats.max_memory_used_mb
        if self._process is None:
            return 0
        try:
            if self._status_fd is None:
                self._status_fd = os.open(f"/proc/{self._process.pid}/status", os.O_RDONLY)
            status = os.pread(self._status_fd, 8192, 0)
            start = status.index(b"VmHWM:") + 6
            peak_kb = int(status[start : status.index(b"kB", start)])
            peak_mb = -(-peak_kb // 1024)
            self._stats.max_memory_used_mb = max(self._stats.max_memory_used_mb, peak_mb)
        except (OSError, ValueError):
            pass  # the process is gone: keep the last reading
        return self._stats.max_memory_used_mb


class ProcessBackend:
    """Makes :class:`ProcessSandbox` instances."""

    name = "process"

    def create(self, spec: SandboxSpec) -> ProcessSandbox:
        """A new, not yet started, process sandbox."""
        return ProcessSandbox(spec)
