"""The runtime examples the cold-start bench measures, and how each runs as a fresh process.

For each runtime (see ``RUNTIMES``) a ``prepare`` function builds the repository's example
into a directory ready to zip and deploy (``javac`` for Java; ``go build`` offline, GOPATH mode,
caches in the run's temporary directory, for Go) and returns, with it, the fresh-process
baseline: a function that starts one new process of the same handler, hands it one event and
returns the milliseconds from just before the spawn to the answer being received (not to the
process's exit):

- Python: ``python -c`` importing the handler's module and calling it once;
- Node.js: ``node -e`` that ``import()``s the module and awaits the handler;
- Java: ``java <lambdalet's JVM flags> -cp <driver>:<classes> BenchMain``, a small ``main``
  compiled here that calls ``new example.Hello().handleRequest(event)`` once;
- Go: the same ``bootstrap`` binary against a one-shot Runtime API served from this process
  (a ``http.server`` on loopback, a new one per process, that answers one
  ``/invocation/next`` and accepts one ``/response``); the process is then killed by its pid.

Each prints (or posts) its result, which is where the clock stops. :func:`fork_once` is the
Python floor: ``os.fork()`` of an interpreter that has imported the handler already. Fresh
processes run in :func:`baseline_env`, the base of the environment lambdalet gives a function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from harness import BenchError

REPO_DIR = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_DIR / "examples"
PYTHON_RUNTIME_ID = f"python{sys.version_info.major}.{sys.version_info.minor}"
EVENT = {"name": "bench"}
EVENT_BYTES = json.dumps(EVENT).encode()
MARKER = b"BENCH_RESULT "
FRESH_TIMEOUT_S = 60.0
BUILD_TIMEOUT_S = 300
STUB_POLL_S = 0.01  # how soon a stub's serve_forever notices shutdown()

PYTHON_DRIVER = """\
import json, sys, types
sys.path.insert(0, sys.argv[1])
import app
context = types.SimpleNamespace(function_name="bench", aws_request_id="fresh-process")
result = app.handler({"name": "bench"}, context)
sys.stdout.write("BENCH_RESULT " + json.dumps(result) + "\\n")
sys.stdout.flush()
"""

NODE_DRIVER = """\
import(process.argv[1])
  .then((m) => m.handler({ name: "bench" }, { functionName: "bench", awsRequestId: "fresh" }))
  .then((r) => process.stdout.write("BENCH_RESULT " + JSON.stringify(r) + "\\n"));
"""

JAVA_DRIVER = """\
import java.util.HashMap;
import java.util.Map;

public final class BenchMain {
    public static void main(String[] args) {
        Map<String, Object> event = new HashMap<>();
        event.put("name", "bench");
        Object result = new example.Hello().handleRequest(event);
        System.out.print("BENCH_RESULT ");
        System.out.println(result);
        System.out.flush();
    }
}
"""


# --- runtimes --------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A runtime's function, ready to deploy, and its fresh-process baseline."""

    function_dir: Path
    runtime_id: str
    handler: str
    fresh_once: Callable[[int], float]
    fresh_command: str
    version: str = ""
    commands: list[str] = field(default_factory=list)


def tool_version(argv: Sequence[str]) -> str:
    """The first line a ``--version``-style command prints, or why it could not run."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return f"unavailable: {error}"
    return next(iter((done.stdout + done.stderr).strip().splitlines()), "")


def run_build(commands: list[str], argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    """Run a compiler (noted in ``commands``); BenchError with its output if it fails."""
    commands.append(f"(cd {cwd} && {shlex.join(argv)})")
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{shlex.join(argv)} took over {BUILD_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise BenchError(
            f"{shlex.join(argv)} failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}"
        )


def require(program: str, hint: str) -> str:
    """The path of ``program`` on PATH; BenchError with an install hint if it is missing."""
    found = shutil.which(program)
    if found is None:
        raise BenchError(f"{program} not found on PATH ({hint})")
    return found


def baseline_env(work_dir: Path) -> dict[str, str]:
    """The fresh processes' environment: the base of the one lambdalet gives a function.

    Not this script's own: NODE_EXTRA_CA_CERTS, say, makes Node.js read a CA bundle as it
    starts (about 35 ms here), which the sandbox, started with a clean environment, never does.
    """
    tmp_dir = work_dir / "baseline-tmp"
    tmp_dir.mkdir(exist_ok=True)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64",
        "TMPDIR": str(tmp_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
    }


def prepare_python(work_dir: Path) -> Prepared:
    """examples/hello, and ``python -c`` importing it and calling the handler once."""
    function_dir = work_dir / "python-fn"
    shutil.copytree(EXAMPLES_DIR / "hello", function_dir)
    (function_dir / "lambdalet.json").unlink(missing_ok=True)
    argv = [sys.executable, "-c", PYTHON_DRIVER, str(function_dir)]
    env = baseline_env(work_dir)
    return Prepared(
        function_dir,
        PYTHON_RUNTIME_ID,
        "app.handler",
        lambda _: run_until_marker(argv, function_dir, env),
        shlex.join(argv),
        version=sys.version.split()[0],
    )


def prepare_node(work_dir: Path) -> Prepared:
    """examples/node-hello, and ``node -e`` importing it and calling the handler once."""
    node = require("node", "apt-get install nodejs")
    function_dir = work_dir / "node-fn"
    shutil.copytree(EXAMPLES_DIR / "node-hello", function_dir)
    (function_dir / "lambdalet.json").unlink(missing_ok=True)
    argv = [node, "-e", NODE_DRIVER, (function_dir / "index.mjs").as_uri()]
    env = baseline_env(work_dir)
    return Prepared(
        function_dir,
        "nodejs20.x",
        "index.handler",
        lambda _: run_until_marker(argv, function_dir, env),
        shlex.join(argv),
        version=tool_version([node, "--version"]),
    )


def lambdalet_jvm_flags() -> tuple[list[str], str]:
    """lambdalet's JVM flags (the Java runtime may be mid-change: then none, and why)."""
    try:
        from lambdalet.runtime import java
    except Exception as error:  # reported; measured without the flags
        return [], f"lambdalet.runtime.java not importable ({error!r}): no JVM flags"
    flags = getattr(java, "JVM_FLAGS", None)
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        return [], "lambdalet.runtime.java has no JVM_FLAGS list: no JVM flags"
    return list(flags), "lambdalet.runtime.java.JVM_FLAGS"


def prepare_java(work_dir: Path) -> Prepared:
    """examples/java-hello compiled, and a ``main`` calling its handler once, compiled."""
    java = require("java", "install a JDK: apt-get install openjdk-17-jdk-headless")
    javac = require("javac", "install a JDK, not only a JRE")
    commands: list[str] = []
    function_dir = work_dir / "java-fn"
    sources = work_dir / "java-src"
    (sources / "example").mkdir(parents=True)
    shutil.copy(EXAMPLES_DIR / "java-hello" / "Hello.java", sources / "example" / "Hello.java")
    env = dict(os.environ)
    run_build(commands, [javac, "-d", str(function_dir), "example/Hello.java"], sources, env)
    driver_dir = work_dir / "java-driver"
    driver_dir.mkdir()
    (driver_dir / "BenchMain.java").write_text(JAVA_DRIVER)
    build = [javac, "-cp", str(function_dir), "-d", str(driver_dir), "BenchMain.java"]
    run_build(commands, build, driver_dir, env)
    flags, flags_source = lambdalet_jvm_flags()
    commands.append(f"JVM flags from {flags_source}")
    classpath = os.pathsep.join([str(driver_dir), str(function_dir)])
    argv = [java, *flags, "-cp", classpath, "BenchMain"]
    return Prepared(
        function_dir,
        "java17",
        "example.Hello::handleRequest",
        lambda _: run_until_marker(argv, driver_dir, baseline_env(work_dir)),
        shlex.join(argv),
        version=tool_version([java, "-version"]),
        commands=commands,
    )


def prepare_go(work_dir: Path) -> Prepared:
    """examples/custom-go built, and a one-shot Runtime API stub to run it against."""
    go = require("go", "apt-get install golang-go")
    commands: list[str] = []
    function_dir = work_dir / "go-fn"
    function_dir.mkdir()
    source = EXAMPLES_DIR / "custom-go" / "main.go"
    # No go.mod and no network: build the one file in GOPATH mode, caches in the run's tmp.
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
        GOCACHE=str(work_dir / "gocache"),
        GOPATH=str(work_dir / "gopath"),
    )
    binary = function_dir / "bootstrap"
    run_build(commands, [go, "build", "-o", str(binary), source.name], source.parent, env)
    return Prepared(
        function_dir,
        "provided.al2023",
        "echo",
        lambda index: run_against_stub(binary, baseline_env(work_dir), index),
        f"AWS_LAMBDA_RUNTIME_API=127.0.0.1:<port> _HANDLER=echo {binary}"
        " (a one-shot Runtime API stub in this script, on a new port per process;"
        " timed until /response arrives)",
        version=tool_version([go, "version"]),
        commands=commands,
    )


@dataclass(frozen=True)
class RuntimeSpec:
    """A row of the table: which example, and how to build it and its baseline."""

    key: str
    runtime: str
    example: str
    prepare: Callable[[Path], Prepared]


RUNTIMES = {
    "python": RuntimeSpec("python", PYTHON_RUNTIME_ID, "examples/hello", prepare_python),
    "node": RuntimeSpec("node", "nodejs20.x", "examples/node-hello", prepare_node),
    "java": RuntimeSpec("java", "java17", "examples/java-hello", prepare_java),
    "go": RuntimeSpec("go", "provided.al2023 (go)", "examples/custom-go", prepare_go),
}


def load_python_handler(function_dir: Path) -> Callable[[Any, Any], Any]:
    """The Python example's handler, imported into this interpreter (for the fork row)."""
    spec = importlib.util.spec_from_file_location("bench_example_app", function_dir / "app.py")
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot import {function_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[Any, Any], Any] = module.handler
    return handler


# --- fresh processes -------------------------------------------------------------------------


def kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a fresh process (by its pid) if it still runs, and wait for it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def run_until_marker(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Spawn ``argv`` and return the milliseconds until it prints its ``BENCH_RESULT`` line."""
    selector = selectors.DefaultSelector()
    begin = time.perf_counter()
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        selector.register(fd, selectors.EVENT_READ)
        buffer = b""
        deadline = begin + FRESH_TIMEOUT_S
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchError(f"no answer in {FRESH_TIMEOUT_S:.0f} s from {shlex.join(argv)}")
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            buffer += chunk
            at = buffer.find(MARKER)
            if at >= 0 and buffer.find(b"\n", at) >= 0:
                return (time.perf_counter() - begin) * 1000
            if not chunk:
                code = process.wait(10)
                raise BenchError(
                    f"{shlex.join(argv)} exited with status {code} without an answer: "
                    f"{buffer[-600:].decode('utf-8', 'replace')}"
                )
    finally:
        selector.close()
        kill_and_reap(process)
        assert process.stdout is not None
        process.stdout.close()


class _StubServer(ThreadingHTTPServer):
    """A one-shot Lambda Runtime API: it hands out one event, then closes the door."""

    daemon_threads = True

    def __init__(self, request_id: str) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.lock = threading.Lock()
        self.pending: str | None = request_id
        self.answered = threading.Event()
        self.answered_at = 0.0
        self.answer = b""
        self.failed = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: the runtime is killed once it has answered, resetting its connection."""

    def take_event(self) -> str | None:
        """The event's request id, once; None when it was served already."""
        with self.lock:
            request_id, self.pending = self.pending, None
            return request_id


class _StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    PREFIX = "/2018-06-01/runtime/invocation/"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the bench prints its own lines."""

    def do_GET(self) -> None:
        stub = cast(_StubServer, self.server)
        request_id = stub.take_event() if self.path == self.PREFIX + "next" else None
        if request_id is None:
            # Served already: close without an answer, so the runtime gives up and exits.
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(EVENT_BYTES)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            "arn:aws:lambda:us-east-1:000000000000:function:bench",
        )
        self.end_headers()
        self.wfile.write(EVENT_BYTES)

    def do_POST(self) -> None:
        stub = cast(_StubServer, self.server)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received_at = time.perf_counter()
        outcome = self.path.rsplit("/", 1)[-1]
        accepted = self.path.startswith(self.PREFIX) and outcome in ("response", "error")
        self.send_response(202 if accepted else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if accepted:
            stub.answered_at = received_at
            stub.answer = body
            stub.failed = outcome == "error"
            stub.answered.set()


def run_against_stub(binary: Path, base_env: dict[str, str], index: int) -> float:
    """Spawn a custom runtime against a new one-shot stub; ms until its response arrives.

    A stub per process, on a port of its own: a request a killed runtime left in the old
    stub's backlog can never take the next process's event.
    """
    stub = _StubServer(f"fresh-{index:04d}")
    thread = threading.Thread(
        target=stub.serve_forever, args=(STUB_POLL_S,), name="runtime-api-stub", daemon=True
    )
    thread.start()
    env = base_env | {
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{stub.server_address[1]}",
        "_HANDLER": "echo",
    }
    try:
        begin = time.perf_counter()
        process = subprocess.Popen(
            [str(binary)],
            cwd=binary.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not stub.answered.wait(FRESH_TIMEOUT_S):
                raise BenchError(f"{binary} sent no response in {FRESH_TIMEOUT_S:.0f} s")
            if stub.failed:
                raise BenchError(f"{binary} reported an error: {stub.answer[:400]!r}")
            return (stub.answered_at - begin) * 1000
        finally:
            kill_and_reap(process)
    finally:
        stub.shutdown()
        stub.server_close()
        thread.join(10)


def fork_once(handler: Callable[[Any, Any], Any]) -> float:
    """Fork this interpreter, call the handler in the child; ms until its result is read."""
    context = SimpleNamespace(function_name="bench", aws_request_id="plain-fork")
    read_fd, write_fd = os.pipe()
    begin = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: never return into the bench
        code = 0
        try:
            os.close(read_fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            result = handler(dict(EVENT), context)
            os.write(write_fd, MARKER + json.dumps(result).encode() + b"\n")
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            buffer += chunk
        elapsed_ms = (time.perf_counter() - begin) * 1000
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if not buffer.startswith(MARKER) or os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"forked handler failed: status {status}, output {buffer[:300]!r}")
    return elapsed_ms
