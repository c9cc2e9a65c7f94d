"""What the bench scripts share: servers started and stopped by pid, and load generators.

:class:`ManagedProcess` runs a server in its own session, logging to a file, and stops its
process group, then any descendant left over (lambdalet's sandboxes have sessions of their
own). :func:`tree_cpu` reads the CPU a server's process tree used from /proc.

The load generators keep N requests in flight on keep-alive connections for a bounded time:
:func:`run_wrk` (the Debian ``wrk`` package, with a Lua script for the POST body whose
``done`` hook prints exact percentiles) and :func:`run_python_client` (spawned processes of
8 connections each, raw HTTP/1.1 on asyncio; for machines without wrk). Both post ``{}`` and
count non-2xx answers as errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

CONNECTIONS_PER_CLIENT_PROCESS = 8
REQUEST_TIMEOUT_S = 10.0

WRK_LUA = """\
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d,'
    .. ' "mean_us": %.1f, "max_us": %d, "errors": {"connect": %d, "read": %d,'
    .. ' "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class BenchError(Exception):
    """Raised when a system cannot be started or measured; the run goes on without it."""


@dataclass
class LoadResult:
    """What one bounded load run measured."""

    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    latency_distribution_ms: dict[str, float] = field(default_factory=dict)
    command: str = ""


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, str, int, int]]:
    """pid → (ppid, comm, start time, user + system CPU), times in clock ticks, from /proc."""
    table: dict[int, tuple[int, str, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue
        comm = text[text.find("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        # fields[0] is stat's 3rd field: ppid is the 4th, utime/stime 14th/15th, start 22nd.
        cpu_ticks = int(fields[11]) + int(fields[12])
        table[int(entry)] = (int(fields[1]), comm, int(fields[19]), cpu_ticks)
    return table


def descendants(
    root_pid: int, table: dict[int, tuple[int, str, int, int]] | None = None
) -> dict[int, tuple[str, int]]:
    """Every process below ``root_pid``: pid → (comm, start time)."""
    table = _process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, tuple[str, int]] = {}
    stack = list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found[pid] = (table[pid][1], table[pid][2])
        stack += children.get(pid, [])
    return found


# (pid, start time) → (is a Python process below the root, CPU ticks used so far)
CpuSnapshot = dict[tuple[int, int], tuple[bool, int]]


def tree_cpu(root_pid: int) -> CpuSnapshot:
    """CPU used so far by ``root_pid`` and every process below it."""
    table = _process_table()
    found: CpuSnapshot = {
        (pid, started): (comm.startswith("python"), table[pid][3])
        for pid, (comm, started) in descendants(root_pid, table).items()
    }
    if root_pid in table:
        found[(root_pid, table[root_pid][2])] = (False, table[root_pid][3])
    return found


def cpu_seconds_between(before: CpuSnapshot, after: CpuSnapshot) -> tuple[float, float]:
    """CPU seconds a process tree used between two snapshots, in all and in its Python
    children (processes gone in between are not counted; ones born in between count whole)."""
    total = in_python = 0
    for key, (is_python, ticks) in after.items():
        used = ticks - before.get(key, (False, 0))[1]
        total += used
        in_python += used if is_python else 0
    return total / CLOCK_TICKS_PER_S, in_python / CLOCK_TICKS_PER_S


def python_processes(root_pid: int) -> int:
    """Python interpreters below ``root_pid``: sandboxes, or serverless-offline's runners."""
    return sum(1 for comm, _ in descendants(root_pid).values() if comm.startswith("python"))


class ManagedProcess:
    """A server started in its own session, logging to a file, stopped by its pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.command = shlex.join(self.argv)
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.started_at = time.perf_counter()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the server printed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise BenchError, with the log's end, if the server has exited."""
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with status {code}:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 15 s, then any descendant left over."""
        left = descendants(self.pid)
        try:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(10)
            # Children in sessions of their own (lambdalet's sandboxes) outlive a killpg.
            time.sleep(0.2)
            now = _process_table()
            for pid, (_, started) in left.items():
                if pid in now and now[pid][2] == started:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            self._log.close()


def http_post(url: str, body: bytes = b"{}", timeout_s: float = 5.0) -> tuple[int, bytes]:
    """POST ``body`` and return (status, payload); connection errors raise OSError."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_invocable(server: ManagedProcess, url: str, timeout_s: float) -> float:
    """Poll ``url`` with an invoke until it answers 200 ``{}``; return seconds since start."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            status, payload = http_post(url, timeout_s=30.0)
        except OSError as error:
            last = repr(error)
        else:
            if status == 200 and json.loads(payload or b"null") == {}:
                return time.perf_counter() - server.started_at
            last = f"status {status}: {payload[:300]!r}"
        time.sleep(0.2)
    raise BenchError(f"{server.name} not invocable after {timeout_s:.0f} s ({last})")


@contextlib.contextmanager
def started(server: ManagedProcess) -> Iterator[ManagedProcess]:
    """Stop the server however the block ends."""
    try:
        yield server
    finally:
        server.stop()


# --- load generators -------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


_WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk_distribution(text: str) -> dict[str, float]:
    """wrk's ``--latency`` block (``50%  1.23ms`` lines) as percentile → milliseconds."""
    found: dict[str, float] = {}
    block = text.split("Latency Distribution", 1)
    if len(block) < 2:
        return found
    for match in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", block[1], re.MULTILINE):
        found[f"p{match.group(1)}"] = float(match.group(2)) * _WRK_UNITS_MS[match.group(3)]
    return found


def run_wrk(work_dir: Path, url: str, concurrency: int, duration_s: int) -> LoadResult:
    """One wrk run of ``duration_s`` seconds with ``concurrency`` keep-alive connections."""
    script = work_dir / "post.lua"
    if not script.exists():
        script.write_text(WRK_LUA)
    threads = max(1, min(concurrency, os.cpu_count() or 1))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        f"--timeout={REQUEST_TIMEOUT_S:.0f}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    marker = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if completed.returncode != 0 or not marker:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    data = json.loads(marker[-1].removeprefix("BENCH_JSON "))
    duration = data["duration_us"] / 1e6
    requests = int(data["requests"])
    return LoadResult(
        requests=requests,
        duration_s=duration,
        requests_per_s=requests / duration if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_distribution_ms=parse_wrk_distribution(completed.stdout),
        command=shlex.join(argv),
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); return its status."""
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    chunked = False
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return status


async def _client_connections(
    url: str, connections: int, duration_s: float, barrier: Barrier
) -> tuple[list[int], int, int, float]:
    """Keep ``connections`` requests in flight for ``duration_s``: latencies (ns), errors."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    request = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    await asyncio.to_thread(barrier.wait, 60)
    latencies: list[int] = []
    status_errors = 0
    other_errors = 0
    started = time.perf_counter()
    end = started + duration_s

    async def drive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal status_errors, other_errors
        while time.perf_counter() < end:
            sent = time.perf_counter_ns()
            writer.write(request)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                other_errors += 1
                return
            latencies.append(time.perf_counter_ns() - sent)
            if not 200 <= status < 400:
                status_errors += 1

    await asyncio.gather(*(drive(reader, writer) for reader, writer in streams))
    elapsed = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return latencies, status_errors, other_errors, elapsed


def _client_process(
    url: str,
    connections: int,
    duration_s: float,
    barrier: Barrier,
    results: Queue[tuple[list[int], int, int, float]],
) -> None:
    """Entry point of one spawned client process."""
    results.put(asyncio.run(_client_connections(url, connections, duration_s, barrier)))


def run_python_client(url: str, concurrency: int, duration_s: int) -> LoadResult:
    """One bounded run with spawned Python client processes, 8 connections each."""
    context = multiprocessing.get_context("spawn")
    count = math.ceil(concurrency / CONNECTIONS_PER_CLIENT_PROCESS)
    shares = [concurrency // count + (1 if i < concurrency % count else 0) for i in range(count)]
    barrier = context.Barrier(count)
    results: Queue[tuple[list[int], int, int, float]] = context.Queue()
    workers = [
        context.Process(
            target=_client_process, args=(url, share, float(duration_s), barrier, results)
        )
        for share in shares
    ]
    latencies: list[int] = []
    status_errors = other_errors = 0
    rate = 0.0
    elapsed_max = 0.0
    try:
        for worker in workers:
            worker.start()
        for _ in workers:
            found, status_bad, other_bad, elapsed = results.get(timeout=duration_s + 90)
            latencies += found
            status_errors += status_bad
            other_errors += other_bad
            rate += len(found) / elapsed if elapsed else 0.0
            elapsed_max = max(elapsed_max, elapsed)
    finally:
        for worker in workers:
            worker.join(5)
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGKILL)
                worker.join(5)
    ordered = sorted(ns / 1e6 for ns in latencies)
    return LoadResult(
        requests=len(ordered),
        duration_s=elapsed_max,
        requests_per_s=rate,
        p50_ms=percentile(ordered, 0.50),
        p99_ms=percentile(ordered, 0.99),
        mean_ms=sum(ordered) / len(ordered) if ordered else math.nan,
        max_ms=ordered[-1] if ordered else math.nan,
        errors={"status": status_errors, "other": other_errors},
        latency_distribution_ms={f"p{p}": percentile(ordered, p / 100) for p in (50, 75, 90, 99)},
        command=f"python client: {count} spawned process(es) × {shares} connections → {url}",
    )


LoadFunction = Callable[[str, int, int], LoadResult]


def make_load_function(client: str, work_dir: Path) -> tuple[str, LoadFunction]:
    """The load generator to use: ``wrk`` when asked for or found, else the Python client."""
    if client == "wrk" or (client == "auto" and shutil.which("wrk")):
        if not shutil.which("wrk"):
            raise SystemExit("wrk not found: apt-get install -y wrk, or use --client python")
        return "wrk", lambda url, c, d: run_wrk(work_dir, url, c, d)
    return "python", run_python_client
