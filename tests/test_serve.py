"""``lambdalet serve`` as a user runs it: a process on a free port, deployed, restarted, stopped."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROLE, boto_client

from lambdalet.testing import make_zip, process_ended

LAMBDALET = Path(sys.executable).parent / "lambdalet"
HELLO_DIR = Path(__file__).resolve().parent.parent / "examples" / "hello"
WAIT_S = 60.0
BILLED = re.compile(r"\tBilled Duration: (\d+) ms\t")


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_env() -> dict[str, str]:
    """The server's environment: classic 100 ms billing steps, no other LAMBDALET_ setting."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LAMBDALET_")}
    env["LAMBDALET_BILLING_INCREMENT_MS"] = "100"
    # A function's environment is its own, not the host's: this must not reach the handler.
    env["GREETING"] = "Leaked from the host"
    return env


@contextmanager
def serving(
    port: int, data_dir: Path, log_path: Path, *args: str, settings: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``lambdalet serve`` (with ``LAMBDALET_`` ``settings`` in its environment, if given);
    stopped on the way out if the test did not stop it."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(LAMBDALET), "serve", "--port", str(port), "--data-dir", str(data_dir), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=serve_env() | (settings or {}),
            cwd=data_dir.parent,
        )
    try:
        yield process
    finally:
        # SIGTERM first, so the node stops its sandboxes; SIGKILL if it does not go.
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.kill(process.pid, stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=WAIT_S)


def wait_until_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    """Poll /_lambdalet/health until it answers, for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"lambdalet serve exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            response = httpx.get(f"{url}/_lambdalet/health", timeout=5)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        return
    pytest.fail(f"lambdalet serve did not answer within {WAIT_S} s:\n{log_path.read_text()}")


def wait_for_function(client: Any, name: str, log_path: Path) -> dict[str, Any]:
    """GetFunction of ``name`` once it exists (``--deploy`` runs after the server starts)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            found: dict[str, Any] = client.get_function(FunctionName=name)
            return found
        except client.exceptions.ResourceNotFoundException:
            time.sleep(0.1)
    pytest.fail(f"{name} was not deployed within {WAIT_S} s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM, and check the server shut down cleanly."""
    os.kill(process.pid, signal.SIGTERM)
    try:
        returncode = process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lambdalet serve did not stop within {WAIT_S} s of SIGTERM")
    assert returncode == 0, log_path.read_text()


def invoke_hello(client: Any) -> tuple[dict[str, Any], str]:
    """Invoke ``hello`` for Ada; its result and its log tail."""
    response = client.invoke(
        FunctionName="hello", Payload=json.dumps({"name": "Ada"}), LogType="Tail"
    )
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    result: dict[str, Any] = json.loads(response["Payload"].read())
    log_text = base64.b64decode(response["LogResult"]).decode()
    return result, log_text


def test_serve_deploys_persists_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    log_path = tmp_path / "serve.log"
    client = boto_client(url)

    with serving(port, data_dir, log_path, "--deploy", str(HELLO_DIR)) as process:
        wait_until_healthy(process, url, log_path)
        function = wait_for_function(client, "hello", log_path)
        assert function["Configuration"]["Handler"] == "app.handler"
        assert function["Configuration"]["Runtime"] == "python3.11"

        result, log_text = invoke_hello(client)
        assert result["message"] == "Hello, Ada!"
        assert "greeting Ada from hello" in log_text.splitlines()
        (report,) = [line for line in log_text.splitlines() if line.startswith("REPORT ")]
        billed = BILLED.search(report)
        assert billed, report
        billed_ms = int(billed.group(1))
        assert billed_ms >= 100
        assert billed_ms % 100 == 0, report

        stop(process, log_path)

    # Started again on the same data directory, without --deploy: the function is still there.
    with serving(port, data_dir, log_path) as process:
        wait_until_healthy(process, url, log_path)
        function_again = client.get_function(FunctionName="hello")
        assert (
            function_again["Configuration"]["CodeSha256"] == function["Configuration"]["CodeSha256"]
        )
        assert (
            function_again["Configuration"]["LastModified"]
            == (function["Configuration"]["LastModified"])
        )
        result, _ = invoke_hello(client)
        assert result["message"] == "Hello, Ada!"

        stop(process, log_path)


def _children(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children


def test_process_sandboxes_end_once_their_node_is_killed(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    client = boto_client(url)
    settings = {"LAMBDALET_SANDBOX_BACKEND": "process", "LAMBDALET_POOL_SIZE": "0"}
    node_dir = HELLO_DIR.parent / "node-hello"
    with serving(
        port, tmp_path / "data", log_path, "--deploy", str(HELLO_DIR), settings=settings
    ) as node:
        wait_until_healthy(node, url, log_path)
        wait_for_function(client, "hello", log_path)
        invoke_hello(client)
        manifest = json.loads((node_dir / "lambdalet.json").read_text())
        code = {"ZipFile": make_zip({p.name: p.read_text() for p in node_dir.glob("*.*js")})}
        client.create_function(
            FunctionName="node-hello",
            Runtime=manifest["runtime"],
            Handler=manifest["handler"],
            Role=ROLE,
            Code=code,
        )
        answer = client.invoke(FunctionName="node-hello", Payload=b'{"name": "Ada"}')
        assert "FunctionError" not in answer, answer["Payload"].read()
        sandboxes = _children(node.pid)
        assert len(sandboxes) == 2, sandboxes  # the Python and the Node.js runtime
        os.kill(node.pid, signal.SIGKILL)
        node.wait()
    # Their channel and Runtime API are gone with the node: each runtime ends on its own.
    deadline = time.monotonic() + WAIT_S
    while not all(process_ended(pid) for pid in sandboxes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(process_ended(pid) for pid in sandboxes), sandboxes
