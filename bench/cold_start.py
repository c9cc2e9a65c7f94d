"""Cold and warm invoke latency per runtime, beside a fresh process of the same program, in one run.

    python bench/cold_start.py [--cold 40] [--warm 500] [--fresh 40]
                               [--runtimes python,node,java,go] [--pause-ms 50] [--no-fork]
                               [--isolated yes|no|only] [--out bench/results/cold_start.json]

With ``--isolated only`` the other runtimes' rows and targets already in ``--out`` are kept.

One row per runtime, each running the repository's example for it: ``examples/hello``
(python3.11, or whichever Python runs this script), ``examples/node-hello`` (nodejs20.x),
``examples/java-hello`` (java17, compiled here with ``javac``) and ``examples/custom-go``
(provided.al2023: its ``bootstrap``, built here with ``go build`` offline, GOPATH mode, caches
in the run's temporary directory). Every event is ``{"name": "bench"}``.

- **lambdalet** (all rows): one ``python -m lambdalet serve --port P --data-dir <tmp>``
  subprocess on a free loopback port; the functions are created through the API, and every
  timed call is the real Invoke API (``POST /2015-03-31/functions/<name>/invocations``,
  RequestResponse, ``X-Amz-Log-Type: Tail``) on one keep-alive connection, timed from the
  request being sent to the whole answer being read (``perf_counter``). Only the Invoke is
  timed.

  *Cold*: before each cold invoke, UpdateFunctionConfiguration changes an environment
  variable, which retires (stops) the function's warm sandboxes, so the invoke starts a new
  one. Each cold invoke must carry ``Init Duration`` in its REPORT line (the log tail), and
  that Init Duration is reported too; one that does not is counted as not cold and left out.
  The first invoke of each function (for Java it also compiles lambdalet's bootstrap and
  records its class-data archive) is kept aside as ``first_invoke_ms``.

  *Warm*: then ``--warm`` invokes, one after another, on the sandbox the last cold start left;
  each must have no Init Duration.
- **fresh process** (baseline, all rows; built and run by ``runtime_examples.py``): the same
  handler run by hand, one new process per event, timed from just before the process is
  spawned to its answer being received (not to its exit):

  - Python: ``python -c`` that imports the handler's module, calls it once and prints the
    result (the same interpreter lambdalet runs);
  - Node.js: ``node -e`` that ``import()``s the module, awaits the handler and prints;
  - Java: ``java <lambdalet's JVM flags> -cp <driver>:<classes> BenchMain``, a small ``main``
    compiled here with ``javac`` that calls ``new example.Hello().handleRequest(event)`` once
    and prints (JVM flags from ``lambdalet.runtime.java.JVM_FLAGS``: C1 only, serial GC,
    no perf data; not lambdalet's class-data archive, which covers its own bootstrap);
  - Go: the same ``bootstrap`` binary against a one-shot Runtime API served by this script (a
    ``http.server`` on loopback that answers one ``/invocation/next`` and accepts one
    ``/response``), timed until the response arrives; the process is then killed.

  Every fresh process gets the base of the environment lambdalet gives a function (PATH, LANG,
  TZ, LD_LIBRARY_PATH, TMPDIR), not this script's, which may hold variables that slow a start
  down (NODE_EXTRA_CA_CERTS makes Node.js read a CA bundle first). Cold starts and fresh
  processes alternate, event by event, so both see the same machine load.
- **plain fork** (Python row only): ``os.fork()`` of an already-running interpreter (a helper
  that has made this script's imports, not this script itself: a fork leaves the parent's
  pages copy-on-write, which would slow its next timed invoke) that has imported the handler's
  module; the child calls the handler, writes the result to a pipe and exits. The floor for a
  fork-server or snapshot design.

Isolated rows (``--isolated``, as root): the Python hello in ``namespaces`` sandboxes started
with no pool, taken from the prewarmed pool, and forked from a SnapStart snapshot (a published
version), each on a node of its own whose keep-alive is 20 ms: a cold start is an invoke 150 ms
after the last one. Beside them, **warm after the same pause**: a node whose keep-alive
outlasts the pause, its sandbox invoked 150 ms after the last invoke (frozen in between, as
every idle sandbox is). It is what the pause alone costs an invoke on this machine (caches gone
cold, an idle sandbox thawed), which no cold start after that pause can beat.

Prints a table (lambdalet cold p50/p99, warm p50/p99, Init Duration p50, fresh process p50,
and the ratios cold ÷ fresh and warm ÷ fresh; the plain-fork line gives cold ÷ fork and
warm ÷ fork), then DESIGN.md's cold-start target (Python hello, client-seen p50 ≤ 5 ms) and
whether it is met. p99 is nearest-rank: below 100 samples it is the slowest one. Writes every
sample, the machine facts and the exact commands to ``--out``. A runtime that cannot be
prepared or invoked (no JDK, a broken runtime) is reported as unavailable with the reason; the
others are still measured. The server is stopped by its process group, then leftover
descendants by pid (``harness.py``); every fresh process is waited for or killed by its pid.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import BenchError, ManagedProcess, free_port, percentile, started
from runtime_examples import (
    EVENT,
    EVENT_BYTES,
    RUNTIMES,
    Prepared,
    RuntimeSpec,
    baseline_env,
)
from throughput import machine_facts, write_json

from lambdalet.client import ApiError, Client, zip_directory

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUT = BENCH_DIR / "results" / "cold_start.json"
INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
COLD_ENV_VAR = "BENCH_COLD_START"
FUNCTION_TIMEOUT_S = 60
FIRST_INVOKE_TIMEOUT_S = 300.0  # the first Java invoke compiles and trains lambdalet's bootstrap
INVOKE_TIMEOUT_S = 60.0
SERVER_START_TIMEOUT_S = 60.0
# uvicorn closes a keep-alive connection idle for 5 s; one idle for longer than this is
# replaced before the next timed invoke rather than found closed in the middle of it.
IDLE_RECONNECT_S = 2.0
TARGET_PYTHON_COLD_P50_MS = 5.0
INIT_DURATION = re.compile(r"Init Duration: ([\d.]+) ms")
DURATION = re.compile(r"\tDuration: ([\d.]+) ms")

# --- results ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """Order statistics of a list of milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Stats | None:
        """The statistics of ``samples_ms``, or None when there are none."""
        if not samples_ms:
            return None
        ordered = sorted(samples_ms)
        return cls(
            count=len(ordered),
            p50_ms=percentile(ordered, 0.50),
            p99_ms=percentile(ordered, 0.99),
            mean_ms=sum(ordered) / len(ordered),
            min_ms=ordered[0],
            max_ms=ordered[-1],
        )


@dataclass
class Measured:
    """One system's samples on one runtime, or why there are none."""

    ok: bool = False
    reason: str = ""
    samples_ms: list[float] = field(default_factory=list)
    stats: Stats | None = None
    command: str = ""

    def finish(self) -> None:
        """Compute the statistics once the samples are in."""
        self.stats = Stats.of(self.samples_ms)
        self.ok = self.stats is not None and not self.reason


@dataclass
class RuntimeRow:
    """Everything measured for one runtime."""

    key: str
    runtime: str
    example: str
    handler: str
    ok: bool = False
    reason: str = ""
    version: str = ""
    commands: list[str] = field(default_factory=list)
    first_invoke_ms: float | None = None
    cold: Measured = field(default_factory=Measured)
    cold_not_cold: int = 0
    init_duration: Measured = field(default_factory=Measured)
    cold_report_duration: Measured = field(default_factory=Measured)
    warm: Measured = field(default_factory=Measured)
    warm_not_warm: int = 0
    fresh: Measured = field(default_factory=Measured)
    fork: Measured | None = None
    # Isolated rows: warm invokes, each after the pause the cold ones follow (another node,
    # whose keep-alive outlasts the pause): what the pause alone costs an invoke.
    after_pause: Measured | None = None


# --- the lambdalet side ----------------------------------------------------------------------


class Invoker:
    """Invoke calls on one keep-alive connection, each timed on its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connection: http.client.HTTPConnection | None = None
        self._last_used_monotonic = 0.0

    def close(self) -> None:
        """Close the connection; the next invoke opens a new one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def invoke(
        self, name: str, timeout_s: float = INVOKE_TIMEOUT_S, qualifier: str | None = None
    ) -> tuple[float, str]:
        """Invoke ``name`` with LogType=Tail; return (milliseconds, decoded log tail).

        Raises BenchError when the answer is not a successful invocation.
        """
        headers = {"Content-Type": "application/json", "X-Amz-Log-Type": "Tail"}
        path = INVOKE_PATH.format(name=name)
        if qualifier is not None:
            path += f"?Qualifier={qualifier}"
        if time.monotonic() - self._last_used_monotonic > IDLE_RECONNECT_S:
            self.close()  # the server may be closing it: reconnect now, outside the timing
        if self._connection is None:
            self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._connection.connect()
        connection = self._connection
        assert connection.sock is not None
        connection.sock.settimeout(timeout_s)
        begin = time.perf_counter()
        try:
            connection.request("POST", path, body=EVENT_BYTES, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise BenchError(f"invoke {name}: {error!r}") from error
        elapsed_ms = (time.perf_counter() - begin) * 1000
        self._last_used_monotonic = time.monotonic()
        log_result = response.getheader("X-Amz-Log-Result") or ""
        log_text = base64.b64decode(log_result).decode("utf-8", "replace") if log_result else ""
        function_error = response.getheader("X-Amz-Function-Error")
        if response.status != 200 or function_error:
            raise BenchError(
                f"invoke {name}: status {response.status}, function error {function_error}: "
                f"{payload[:400]!r}; log tail: {log_text[-600:]!r}"
            )
        return elapsed_ms, log_text


# The plain-fork baseline runs in a process of its own: forking the bench itself would leave
# its pages copy-on-write, and the copy faults would slow its next timed invoke (by about
# 0.3 ms on a 2-core VM, more than the difference measured).
FORK_COMMAND = "os.fork() of a helper interpreter of the bench's size, handler module imported"
FORK_HELPER = """
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import cold_start  # noqa: F401  (the bench's imports: an interpreter of the bench's size)
from runtime_examples import fork_once, load_python_handler

handler = load_python_handler(Path(sys.argv[2]))
print("ready", flush=True)
for _ in sys.stdin:
    print(fork_once(handler), flush=True)
"""


class ForkBaseline:
    """A helper interpreter with the example's handler imported, forked on demand."""

    def __init__(self, function_dir: Path) -> None:
        argv = [sys.executable, "-c", FORK_HELPER, str(BENCH_DIR), str(function_dir)]
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_DIR
        )
        if self._read() != "ready":
            self.close()
            raise BenchError("the plain-fork helper did not start")

    def _read(self) -> str:
        assert self._process.stdout is not None
        return self._process.stdout.readline().strip()

    def once(self) -> float:
        """One fork of the helper, the handler called in the child: ms until its result."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write("\n")
            self._process.stdin.flush()
            return float(self._read())
        except (OSError, ValueError) as error:
            raise BenchError(f"the plain-fork helper failed: {error!r}") from error

    def close(self) -> None:
        """Stop the helper."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()


def report_numbers(log_text: str) -> tuple[float | None, float | None]:
    """(Init Duration, Duration) in ms from the REPORT line of a log tail."""
    report = next((ln for ln in reversed(log_text.splitlines()) if ln.startswith("REPORT")), "")
    init = INIT_DURATION.search(report)
    duration = DURATION.search(report)
    return (
        float(init.group(1)) if init else None,
        float(duration.group(1)) if duration else None,
    )


def start_lambdalet(
    work_dir: Path, extra_env: dict[str, str] | None = None, data_name: str = "lambdalet-data"
) -> tuple[ManagedProcess, Client, int]:
    """``lambdalet serve`` on a free port with a fresh data directory, once it answers."""
    port = free_port()
    argv = [sys.executable, "-m", "lambdalet", "serve", "--port", str(port)]
    argv += ["--data-dir", str(work_dir / data_name)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    server = ManagedProcess(
        "lambdalet", argv, cwd=REPO_DIR, env=env, log_path=work_dir / f"{data_name}.log"
    )
    client = Client(f"http://127.0.0.1:{port}", timeout_s=FIRST_INVOKE_TIMEOUT_S)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    last = "no answer yet"
    try:
        while time.monotonic() < deadline:
            server.check_alive()
            try:
                client.list_functions()
            except (httpx.HTTPError, ApiError) as error:
                last = repr(error)
                time.sleep(0.2)
                continue
            return server, client, port
        raise BenchError(f"lambdalet did not answer in {SERVER_START_TIMEOUT_S:.0f} s ({last})")
    except BaseException:
        client.close()
        server.stop()
        raise


def measure_lambdalet_cold_once(
    row: RuntimeRow, client: Client, invoker: Invoker, name: str, index: int
) -> None:
    """Retire the warm sandbox by changing an environment variable, then time one invoke."""
    client.update_function_configuration(
        name, Environment={"Variables": {COLD_ENV_VAR: str(index)}}
    )
    elapsed_ms, log_text = invoker.invoke(name)
    init_ms, duration_ms = report_numbers(log_text)
    if init_ms is None:
        row.cold_not_cold += 1
        return
    row.cold.samples_ms.append(elapsed_ms)
    row.init_duration.samples_ms.append(init_ms)
    if duration_ms is not None:
        row.cold_report_duration.samples_ms.append(duration_ms)


def measure_lambdalet_warm(row: RuntimeRow, invoker: Invoker, name: str, count: int) -> None:
    """Time ``count`` invokes one after another on the warm sandbox."""
    for _ in range(count):
        elapsed_ms, log_text = invoker.invoke(name)
        init_ms, _ = report_numbers(log_text)
        if init_ms is not None:
            row.warm_not_warm += 1
        row.warm.samples_ms.append(elapsed_ms)


# --- fresh processes -------------------------------------------------------------------------


def measure_runtime(
    spec: RuntimeSpec,
    args: argparse.Namespace,
    work_dir: Path,
    client: Client,
    invoker: Invoker,
) -> RuntimeRow:
    """Deploy one runtime's example, then alternate cold starts and fresh processes, then warm."""
    row = RuntimeRow(spec.key, spec.runtime, spec.example, handler="")
    try:
        prepared = spec.prepare(work_dir)
    except (BenchError, OSError, subprocess.SubprocessError) as error:
        row.reason = f"could not prepare: {error}"
        return row
    row.version = prepared.version
    row.commands += prepared.commands
    try:
        measure_prepared(row, prepared, spec, args, client, invoker)
    finally:
        parts = [row.cold, row.init_duration, row.cold_report_duration, row.warm, row.fresh]
        for measured in [*parts, *([row.fork] if row.fork else [])]:
            measured.finish()
    row.ok = row.cold.ok or row.warm.ok
    if not row.ok and not row.reason:
        row.reason = row.cold.reason or row.warm.reason or "no samples"
    return row


def measure_cold_and_fresh(
    row: RuntimeRow,
    args: argparse.Namespace,
    prepared: Prepared,
    client: Client,
    invoker: Invoker,
    name: str,
    fork_baseline: ForkBaseline | None,
) -> None:
    """Cold starts alternating with fresh processes and plain forks, into ``row``."""
    pause_s = args.pause_ms / 1000
    for index in range(max(args.cold, args.fresh)):
        if index < args.cold and not row.cold.reason:
            try:
                measure_lambdalet_cold_once(row, client, invoker, name, index)
            except (BenchError, ApiError, OSError) as error:
                row.cold.reason = f"cold start {index}: {error}"
            time.sleep(pause_s)
        if index < args.fresh and not row.fresh.reason:
            try:
                row.fresh.samples_ms.append(prepared.fresh_once(index))
            except (BenchError, OSError, subprocess.SubprocessError) as error:
                row.fresh.reason = f"fresh process {index}: {error}"
            time.sleep(pause_s)
        if row.fork is not None and fork_baseline is not None and not row.fork.reason:
            try:
                row.fork.samples_ms.append(fork_baseline.once())
            except (BenchError, OSError) as error:
                row.fork.reason = str(error)


def create_function(client: Client, name: str, prepared: Prepared, **settings: Any) -> None:
    """CreateFunction of the prepared example, as every row creates it: 512 MB (CPU follows
    memory, as on AWS), FUNCTION_TIMEOUT_S."""
    client.create_function(
        name,
        zip_directory(prepared.function_dir),
        Runtime=prepared.runtime_id,
        Handler=prepared.handler,
        Timeout=FUNCTION_TIMEOUT_S,
        MemorySize=512,
        **settings,
    )


def measure_prepared(
    row: RuntimeRow,
    prepared: Prepared,
    spec: RuntimeSpec,
    args: argparse.Namespace,
    client: Client,
    invoker: Invoker,
) -> None:
    """Create the function, prime it, alternate cold starts and fresh processes, then warm."""
    row.handler = prepared.handler
    row.fresh.command = prepared.fresh_command
    name = f"bench-{spec.key}"
    try:
        create_function(client, name, prepared)
    except (ApiError, OSError) as error:
        row.reason = f"CreateFunction failed: {error}"
        return
    row.commands.append(
        f"CreateFunction {name}: Runtime={prepared.runtime_id} Handler={prepared.handler}"
        f" Timeout={FUNCTION_TIMEOUT_S} MemorySize=512, code from {spec.example}"
    )
    invoke = (
        f"POST http://127.0.0.1:{invoker.port}{INVOKE_PATH.format(name=name)}"
        f" X-Amz-Log-Type: Tail, body {EVENT_BYTES.decode()}"
    )
    row.warm.command = invoke
    row.cold.command = f"UpdateFunctionConfiguration {COLD_ENV_VAR}=<i>, then (timed) {invoke}"
    try:
        row.first_invoke_ms, _ = invoker.invoke(name, FIRST_INVOKE_TIMEOUT_S)
    except BenchError as error:
        row.reason = f"lambdalet cannot run it: {error}"
        return
    print(f"  first invoke {row.first_invoke_ms:,.1f} ms (kept aside)", flush=True)

    fork_baseline: ForkBaseline | None = None
    if spec.key == "python" and not args.no_fork:
        row.fork = Measured(command=FORK_COMMAND)
        try:
            fork_baseline = ForkBaseline(prepared.function_dir)
        except (BenchError, OSError) as error:
            row.fork.reason = str(error)
    try:
        measure_cold_and_fresh(row, args, prepared, client, invoker, name, fork_baseline)
    finally:
        if fork_baseline is not None:
            fork_baseline.close()
    if row.cold.reason:
        row.warm.reason = "not measured: the cold starts failed"
        return
    try:
        measure_lambdalet_warm(row, invoker, name, args.warm)
    except BenchError as error:
        row.warm.reason = f"warm invokes: {error}"


# --- isolated (namespaces) Python rows ---------------------------------------------------------

ISOLATED_KEEP_ALIVE_MS = 20
ISOLATED_PAUSE_MS = 150.0  # past the keep-alive and a reaper pass (every 50 ms): cold again
AFTER_PAUSE_KEEP_ALIVE_MS = 600_000
ISOLATED_ROWS = {
    "python-ns-nopool": ("namespaces, no pool", "0", False),
    "python-ns-pool": ("namespaces, pool", "2", False),
    "python-ns-snapshot": ("namespaces, SnapStart", "2", True),
}
TARGETS_MS = {"python-ns-pool": 5.0, "python-ns-snapshot": 2.0}


def publish_version(port: int, name: str) -> str:
    """PublishVersion through the API; the new version's number."""
    url = f"http://127.0.0.1:{port}/2015-03-31/functions/{name}/versions"
    answer = httpx.post(url, json={}, timeout=30)
    if answer.status_code != 201:
        raise BenchError(f"PublishVersion {name}: {answer.status_code} {answer.text[:300]}")
    version: str = answer.json()["Version"]
    return version


def measure_isolated_row(
    key: str, args: argparse.Namespace, work_dir: Path, prepared: Prepared
) -> RuntimeRow:
    """One isolated Python row: its own server, cold starts forced by the keep-alive running
    out, alternating with the fresh-process and plain-fork baselines; then warm."""
    label, pool_size, snapshot = ISOLATED_ROWS[key]
    row = RuntimeRow(key, f"python ({label})", "examples/hello", prepared.handler)
    row.fresh.command = prepared.fresh_command
    row.fork = Measured(command=FORK_COMMAND)
    fork_baseline: ForkBaseline | None = None
    env = {
        "LAMBDALET_SANDBOX_BACKEND": "namespaces",
        "LAMBDALET_POOL_SIZE": pool_size,
        "LAMBDALET_KEEP_ALIVE_MS": str(ISOLATED_KEEP_ALIVE_MS),
    }
    row.commands.append(" ".join(f"{k}={v}" for k, v in env.items()) + " lambdalet serve")
    try:
        server, client, port = start_lambdalet(work_dir, env, data_name=f"data-{key}")
    except (BenchError, OSError) as error:
        row.reason = f"lambdalet serve did not start: {error}"
        return row
    invoker = Invoker(port)
    name = f"bench-{key}"
    qualifier: str | None = None
    with started(server):
        try:
            settings: dict[str, Any] = {"SnapStart": {"ApplyOn": "PublishedVersions"}}
            create_function(client, name, prepared, **(settings if snapshot else {}))
            if snapshot:
                qualifier = publish_version(port, name)
            what = f"{name}:{qualifier}" if qualifier else name
            row.cold.command = (
                f"invoke {what} {ISOLATED_PAUSE_MS:.0f} ms after the last one (keep-alive"
                f" {ISOLATED_KEEP_ALIVE_MS} ms: its sandbox is gone)"
            )
            row.first_invoke_ms, _ = invoker.invoke(name, FIRST_INVOKE_TIMEOUT_S, qualifier)
            fork_baseline = ForkBaseline(prepared.function_dir)
            for index in range(args.cold):
                time.sleep(ISOLATED_PAUSE_MS / 1000)
                elapsed_ms, log_text = invoker.invoke(name, qualifier=qualifier)
                init_ms, duration_ms = report_numbers(log_text)
                if init_ms is None:
                    row.cold_not_cold += 1
                else:
                    row.cold.samples_ms.append(elapsed_ms)
                    row.init_duration.samples_ms.append(init_ms)
                    if duration_ms is not None:
                        row.cold_report_duration.samples_ms.append(duration_ms)
                if index < args.fresh:
                    row.fresh.samples_ms.append(prepared.fresh_once(index))
                row.fork.samples_ms.append(fork_baseline.once())
            time.sleep(ISOLATED_PAUSE_MS / 1000)
            invoker.invoke(name, qualifier=qualifier)  # cold: the warm ones follow it
            for _ in range(args.warm):
                elapsed_ms, log_text = invoker.invoke(name, qualifier=qualifier)
                if report_numbers(log_text)[0] is not None:
                    row.warm_not_warm += 1
                row.warm.samples_ms.append(elapsed_ms)
        except (BenchError, ApiError, OSError, ImportError, subprocess.SubprocessError) as error:
            row.reason = f"{label}: {error}"
        finally:
            invoker.close()
            client.close()
            if fork_baseline is not None:
                fork_baseline.close()
    for measured in (row.cold, row.init_duration, row.cold_report_duration, row.warm):
        measured.finish()
    row.fresh.finish()
    row.fork.finish()
    row.ok = row.cold.ok and not row.reason
    return row


def measure_warm_after_pause(
    args: argparse.Namespace, work_dir: Path, prepared: Prepared
) -> Measured:
    """Warm invokes of the isolated hello, each after the isolated rows' pause, on a node of
    its own whose keep-alive outlasts the pause (its sandbox stays, frozen while idle)."""
    measured = Measured(
        command=f"invoke {ISOLATED_PAUSE_MS:.0f} ms after the last one (keep-alive"
        f" {AFTER_PAUSE_KEEP_ALIVE_MS} ms: its sandbox is still there)"
    )
    env = {
        "LAMBDALET_SANDBOX_BACKEND": "namespaces",
        "LAMBDALET_KEEP_ALIVE_MS": str(AFTER_PAUSE_KEEP_ALIVE_MS),
    }
    try:
        server, client, port = start_lambdalet(work_dir, env, data_name="data-after-pause")
    except (BenchError, OSError) as error:
        measured.reason = f"lambdalet serve did not start: {error}"
        return measured
    invoker = Invoker(port)
    name = "bench-after-pause"
    with started(server):
        try:
            create_function(client, name, prepared)
            invoker.invoke(name, FIRST_INVOKE_TIMEOUT_S)  # the cold start: not counted
            for _ in range(args.cold):
                time.sleep(ISOLATED_PAUSE_MS / 1000)
                elapsed_ms, log_text = invoker.invoke(name)
                if report_numbers(log_text)[0] is not None:
                    raise BenchError("an invoke after the pause was a cold start")
                measured.samples_ms.append(elapsed_ms)
        except (BenchError, ApiError, OSError) as error:
            measured.reason = str(error)
        finally:
            invoker.close()
            client.close()
    measured.finish()
    return measured


def measure_isolated(args: argparse.Namespace, work_dir: Path) -> list[RuntimeRow]:
    """The isolated Python rows (root only: the namespaces backend needs it)."""
    if os.geteuid() != 0:
        reason = "the namespaces backend needs root"
        return [
            RuntimeRow(k, f"python ({v[0]})", "", "", reason=reason)
            for k, v in ISOLATED_ROWS.items()
        ]
    directory = work_dir / "isolated"
    directory.mkdir()
    prepared = RUNTIMES["python"].prepare(directory)
    rows = []
    for key in ISOLATED_ROWS:
        print(f"python, isolated: {ISOLATED_ROWS[key][0]} ...", flush=True)
        rows.append(measure_isolated_row(key, args, directory, prepared))
    print("python, isolated: warm after the same pause ...", flush=True)
    after_pause = measure_warm_after_pause(args, directory, prepared)
    for row in rows:
        row.after_pause = after_pause
    return rows


def isolated_targets(rows: Sequence[RuntimeRow]) -> list[dict[str, Any]]:
    """This work's targets: isolated Python hello from the pool and from a snapshot."""
    found = []
    for key, target_ms in TARGETS_MS.items():
        row = next((r for r in rows if r.key == key), None)
        value = _p(row.cold) if row else None
        found.append(
            {
                "target": f"cold, Python hello, {ISOLATED_ROWS[key][0]}: p50 <= {target_ms:g} ms",
                "value_ms": value,
                "met": value <= target_ms if value is not None else None,
            }
        )
    return found


# --- report ----------------------------------------------------------------------------------


def _p(measured: Measured | None, which: str = "p50_ms") -> float | None:
    if measured is None or measured.stats is None:
        return None
    value: float = getattr(measured.stats, which)
    return value


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:{spec}}{suffix}"


def ratios(row: RuntimeRow) -> dict[str, float | None]:
    """The row's ratios of p50s: lambdalet cold and warm over the fresh process (and fork)."""
    found = {
        "cold_over_fresh_process": _ratio(_p(row.cold), _p(row.fresh)),
        "warm_over_fresh_process": _ratio(_p(row.warm), _p(row.fresh)),
    }
    if row.fork is not None:
        found["cold_over_plain_fork"] = _ratio(_p(row.cold), _p(row.fork))
        found["warm_over_plain_fork"] = _ratio(_p(row.warm), _p(row.fork))
    if row.after_pause is not None:
        found["cold_over_warm_after_pause"] = _ratio(_p(row.cold), _p(row.after_pause))
    return found


def python_target(rows: Sequence[RuntimeRow]) -> dict[str, Any]:
    """DESIGN.md's cold-start target for the Python hello, and whether this run met it."""
    python = next((row for row in rows if row.key == "python"), None)
    value = _p(python.cold) if python else None
    return {
        "target": "cold start, Python hello, client-seen p50 <= 5 ms",
        "value_ms": value,
        "met": value <= TARGET_PYTHON_COLD_P50_MS if value is not None else None,
    }


def print_report(rows: Sequence[RuntimeRow]) -> None:
    """The table, one row per runtime (and the plain-fork line), then the target."""
    width = 134
    print("\n" + "=" * width)
    print(
        f"{'runtime':<34}{'cold p50':>10}{'cold p99':>10}{'warm p50':>10}{'warm p99':>10}"
        f"{'init p50':>10}{'fresh p50':>11}{'fresh p99':>11}{'cold÷fresh':>12}"
        f"{'warm÷fresh':>12}{'n cold':>8}"
    )
    print(f"{'':<34}{'(all times: milliseconds; baseline = fresh process per event)':>94}")
    print("-" * width)
    for row in rows:
        if not row.ok:
            print(f"{row.runtime:<34}  unavailable: {row.reason.splitlines()[0][:94]}")
            continue
        found = ratios(row)
        print(
            f"{row.runtime:<34}{_fmt(_p(row.cold)):>10}{_fmt(_p(row.cold, 'p99_ms')):>10}"
            f"{_fmt(_p(row.warm), '.3f'):>10}{_fmt(_p(row.warm, 'p99_ms'), '.3f'):>10}"
            f"{_fmt(_p(row.init_duration)):>10}{_fmt(_p(row.fresh)):>11}"
            f"{_fmt(_p(row.fresh, 'p99_ms')):>11}"
            f"{_fmt(found['cold_over_fresh_process'], '.2f', '×'):>12}"
            f"{_fmt(found['warm_over_fresh_process'], '.3f', '×'):>12}"
            f"{row.cold.stats.count if row.cold.stats else 0:>8}"
        )
        if row.fork is not None:
            print(
                f"{'  vs plain fork':<34}{'':>50}{_fmt(_p(row.fork), '.2f'):>11}"
                f"{_fmt(_p(row.fork, 'p99_ms')):>11}"
                f"{_fmt(found['cold_over_plain_fork'], '.2f', '×'):>12}"
                f"{_fmt(found['warm_over_plain_fork'], '.3f', '×'):>12}"
            )
        if row.after_pause is not None:
            print(
                f"{'  vs warm after the same pause':<34}{'':>50}"
                f"{_fmt(_p(row.after_pause), '.2f'):>11}{_fmt(_p(row.after_pause, 'p99_ms')):>11}"
                f"{_fmt(found['cold_over_warm_after_pause'], '.2f', '×'):>12}"
            )
            if row.after_pause.reason:
                print(f"{'':<34}  warm after the pause: {row.after_pause.reason[:80]}")
        for part, measured in (("cold", row.cold), ("warm", row.warm), ("fresh", row.fresh)):
            if measured.reason:
                print(f"{'':<34}  {part}: {measured.reason.splitlines()[0][:94]}")
        if row.fork is not None and row.fork.reason:
            print(f"{'':<34}  plain fork: {row.fork.reason.splitlines()[0][:90]}")
        if row.cold_not_cold or row.warm_not_warm:
            print(
                f"{'':<34}  warning: {row.cold_not_cold} 'cold' invoke(s) had no Init Duration"
                f" (left out), {row.warm_not_warm} warm invoke(s) had one"
            )
    print("-" * width)
    for target in [python_target(rows), *isolated_targets(rows)]:
        verdict = {True: "MET", False: "NOT MET", None: "not measured"}[target["met"]]
        value = _fmt(target["value_ms"], ".2f", " ms")
        print(f"target: {target['target']:<60} {value:>12}  {verdict}")
    print("=" * width)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--cold", type=int, default=40, help="cold starts per runtime")
    parser.add_argument("--warm", type=int, default=500, help="warm invokes per runtime")
    parser.add_argument(
        "--fresh", type=int, default=None, help="fresh processes per runtime (default: --cold)"
    )
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help=f"comma-separated subset of {', '.join(RUNTIMES)}",
    )
    parser.add_argument(
        "--pause-ms", type=float, default=50.0, help="pause after each cold start and process"
    )
    parser.add_argument("--no-fork", action="store_true", help="leave out the plain-fork line")
    parser.add_argument(
        "--isolated",
        choices=("yes", "no", "only"),
        default="yes",
        help="the namespaces Python rows (pool, no pool, SnapStart; root only)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.fresh = args.cold if args.fresh is None else args.fresh
    args.keys = [key.strip() for key in args.runtimes.split(",") if key.strip()]
    unknown = set(args.keys) - set(RUNTIMES)
    if unknown:
        parser.error(f"unknown runtimes: {', '.join(sorted(unknown))}")
    if min(args.cold, args.warm, args.fresh) < 1 or args.pause_ms < 0:
        parser.error("--cold, --warm and --fresh must be >= 1, --pause-ms >= 0")
    return args


def collect_machine_facts() -> dict[str, Any]:
    """throughput.py's machine facts, or the few this script can read itself if those fail."""
    try:
        return machine_facts()
    except (OSError, subprocess.SubprocessError) as error:  # no git on PATH, say
        return {
            "nproc": os.cpu_count(),
            "python": sys.version,
            "python_executable": sys.executable,
            "platform": platform.platform(),
            "loadavg_at_start": list(os.getloadavg()),
            "machine_facts_error": repr(error),
        }


def measure_all(args: argparse.Namespace, work_dir: Path, rows: list[RuntimeRow]) -> str:
    """Start lambdalet, measure each runtime asked for into ``rows``; the server's command.

    If the server cannot start or dies, the runtimes not measured yet get a row saying so.
    """
    print("starting lambdalet serve ...", flush=True)
    try:
        server, client, port = start_lambdalet(work_dir)
    except (BenchError, OSError) as error:
        failure = f"lambdalet serve did not start: {error}"
        rows += [RuntimeRow(k, RUNTIMES[k].runtime, RUNTIMES[k].example, "") for k in args.keys]
        for row in rows:
            row.reason = failure
        return ""
    invoker = Invoker(port)
    with started(server):
        try:
            for key in args.keys:
                spec = RUNTIMES[key]
                try:
                    server.check_alive()
                except BenchError as error:
                    rows.append(RuntimeRow(key, spec.runtime, spec.example, "", reason=str(error)))
                    continue
                print(f"{spec.runtime} ({spec.example}) ...", flush=True)
                row = measure_runtime(spec, args, work_dir, client, invoker)
                rows.append(row)
                if not row.ok:
                    print(f"  UNAVAILABLE: {row.reason}", flush=True)
        finally:
            invoker.close()
            client.close()
    return server.command


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every runtime asked for, print the table and write the JSON."""
    args = parse_args(argv)
    began = time.perf_counter()
    facts = collect_machine_facts()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows: list[RuntimeRow] = []
    server_command = ""
    with tempfile.TemporaryDirectory(prefix="lambdalet-cold-") as temporary:
        fresh_env = baseline_env(Path(temporary))
        if args.isolated != "only":
            server_command = measure_all(args, Path(temporary), rows)
        if args.isolated != "no":
            rows += measure_isolated(args, Path(temporary))
    print_report(rows)
    elapsed = time.perf_counter() - began
    document = {
        "benchmark": "cold_start",
        "started_at": started_at,
        "elapsed_s": round(elapsed, 1),
        "command": shlex.join([sys.executable, *sys.argv]),
        "settings": {
            "cold": args.cold,
            "warm": args.warm,
            "fresh": args.fresh,
            "pause_ms": args.pause_ms,
            "event": EVENT,
            "server": server_command,
            "cold_start_forced_by": f"UpdateFunctionConfiguration Environment {COLD_ENV_VAR}=i",
            "percentiles": "nearest rank",
            "fresh_process_env": fresh_env,
        },
        "machine": facts | {"loadavg_at_end": list(os.getloadavg())},
        "runtimes": {row.key: asdict(row) | {"ratios": ratios(row)} for row in rows},
        "targets": [python_target(rows), *isolated_targets(rows)],
    }
    if args.isolated == "only":
        document = keep_other_rows(document, args.out)
    write_json(args.out, document)
    print(f"wrote {args.out} ({elapsed:.0f} s)")
    return 0


def keep_other_rows(document: dict[str, Any], path: Path) -> dict[str, Any]:
    """With ``--isolated only``: the rows and targets ``path`` holds of the other runtimes,
    measured by an earlier run (named in ``earlier_rows_from``), beside this run's."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return document
    if not isinstance(earlier, dict) or not isinstance(earlier.get("runtimes"), dict):
        return document
    isolated = {target["target"] for target in isolated_targets([])}
    kept_rows = {k: v for k, v in earlier["runtimes"].items() if k not in ISOLATED_ROWS}
    kept_targets = [t for t in earlier.get("targets", []) if t.get("target") not in isolated]
    fresh_targets = [t for t in document["targets"] if t["target"] in isolated]
    return document | {
        "runtimes": kept_rows | document["runtimes"],
        "targets": kept_targets + fresh_targets,
        "earlier_rows_from": {
            "started_at": earlier.get("started_at"),
            "command": earlier.get("command"),
            "rows": sorted(kept_rows),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
