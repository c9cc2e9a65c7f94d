"""The ``lambdalet`` console script, run as a user runs it, against a real node on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdalet.testing import ServerThread

LAMBDALET = Path(sys.executable).parent / "lambdalet"
COMMAND_TIMEOUT_S = 120.0
WAIT_S = 60.0

HANDLER = """
import json
import pathlib

VERSION = {version}


def handler(event, context):
    print("handled " + json.dumps(event, sort_keys=True))
    if "marker" in event:
        pathlib.Path(event["marker"]).write_text(context.aws_request_id)
    if event.get("fail"):
        raise ValueError("the handler was told to fail")
    return {{"version": VERSION, "event": event}}
"""

REQUEST_ID = re.compile(r"^START RequestId: (\S+)", re.MULTILINE)


def cli_env(**extra: str) -> dict[str, str]:
    """A CLI run's environment: no terminal settings inherited, so output is the same anywhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in (
            "COLUMNS",
            "LINES",
            "FORCE_COLOR",
            "TTY_COMPATIBLE",
            "TTY_INTERACTIVE",
            "LAMBDALET_ENDPOINT_URL",
        )
    }
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def lambdalet(
    server: ServerThread, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``lambdalet ARGS --endpoint-url <server>`` and return what it did."""
    return subprocess.run(
        [str(LAMBDALET), *args, "--endpoint-url", server.url],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def request_id_of(log_text: str) -> str:
    """The request id of the (first) START line in a log tail."""
    found = REQUEST_ID.search(log_text)
    assert found, f"no START line in {log_text!r}"
    return found.group(1)


@pytest.fixture
def function_name(lambda_client: Any) -> Iterator[str]:
    """A fresh function name; the function is deleted after the test if it exists."""
    name = f"cli-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.delete_function(FunctionName=name)


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A function directory holding app.py (version 1)."""
    directory = tmp_path / "function"
    directory.mkdir()
    (directory / "app.py").write_text(HANDLER.format(version=1))
    return directory


@pytest.fixture
def deployed(server: ServerThread, code_dir: Path, function_name: str) -> str:
    """The name of a function deployed from ``code_dir`` with ``lambdalet deploy``."""
    result = lambdalet(
        server,
        "deploy",
        str(code_dir),
        "--name",
        function_name,
        "--handler",
        "app.handler",
        "--runtime",
        "python3.11",
    )
    assert result.returncode == 0, result.stderr
    return function_name


def test_deploy_with_flags_then_invoke(
    server: ServerThread, lambda_client: Any, deployed: str
) -> None:
    configuration = lambda_client.get_function_configuration(FunctionName=deployed)
    assert configuration["Handler"] == "app.handler"
    assert configuration["Runtime"] == "python3.11"

    result = lambdalet(server, "invoke", deployed, "--payload", '{"x":1}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"version": 1, "event": {"x": 1}}
    request_id = request_id_of(result.stderr)
    lines = result.stderr.splitlines()
    assert f"START RequestId: {request_id} Version: $LATEST" in lines
    assert 'handled {"x": 1}' in lines
    assert f"END RequestId: {request_id}" in lines
    # The log tail is printed as the function wrote it: a REPORT line is one line, not wrapped.
    (report,) = [line for line in lines if line.startswith("REPORT ")]
    assert report.startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert "\tBilled Duration: " in report
    assert "\tMemory Size: 128 MB\t" in report


def test_deploy_prints_what_it_deployed(
    server: ServerThread, code_dir: Path, function_name: str
) -> None:
    result = lambdalet(
        server,
        "deploy",
        str(code_dir),
        "--name",
        function_name,
        "--handler",
        "app.handler",
        "--runtime",
        "python3.11",
        "--memory",
        "256",
    )
    assert result.returncode == 0, result.stderr
    assert f"deployed {function_name} (python3.11, app.handler, 256 MB)" in result.stdout


def test_deploy_from_manifest(server: ServerThread, code_dir: Path, function_name: str) -> None:
    manifest = {"name": function_name, "handler": "app.handler", "runtime": "python3.11"}
    (code_dir / "lambdalet.json").write_text(json.dumps(manifest))
    deployed = lambdalet(server, "deploy", str(code_dir))
    assert deployed.returncode == 0, deployed.stderr
    assert f"deployed {function_name}" in deployed.stdout

    invoked = lambdalet(server, "invoke", function_name, "--payload", '{"from":"manifest"}')
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"version": 1, "event": {"from": "manifest"}}


def test_redeploy_updates_the_code(server: ServerThread, code_dir: Path, deployed: str) -> None:
    first = lambdalet(server, "invoke", deployed)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["version"] == 1

    (code_dir / "app.py").write_text(HANDLER.format(version=2))
    redeployed = lambdalet(server, "deploy", str(code_dir), "--name", deployed)
    assert redeployed.returncode == 0, redeployed.stderr

    second = lambdalet(server, "invoke", deployed)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["version"] == 2


def test_deploy_of_a_missing_directory_fails(server: ServerThread, tmp_path: Path) -> None:
    result = lambdalet(server, "deploy", str(tmp_path / "nowhere"), "--name", "x")
    assert result.returncode == 1
    assert "is not a directory" in result.stderr


def test_deploy_error_message_is_printed_verbatim(
    server: ServerThread, code_dir: Path, function_name: str
) -> None:
    # AWS validation messages quote regular expressions in brackets: printed as rich markup they
    # would lose those parts, leaving a message nobody can act on.
    manifest = {
        "name": function_name,
        "handler": "app.handler",
        "runtime": "python3.11",
        "environment": {"1BAD": "x"},
    }
    (code_dir / "lambdalet.json").write_text(json.dumps(manifest))
    result = lambdalet(server, "deploy", str(code_dir))
    assert result.returncode == 1
    assert "ValidationException" in result.stderr
    assert "[a-zA-Z]([a-zA-Z0-9_])+" in result.stderr
    assert "(key '1BAD')" in result.stderr


def test_failing_handler_exits_1_with_the_error_payload(
    server: ServerThread, deployed: str
) -> None:
    result = lambdalet(server, "invoke", deployed, "--payload", '{"fail":true}')
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "the handler was told to fail"
    assert "[ERROR] ValueError: the handler was told to fail" in result.stderr.splitlines()
    assert "REPORT RequestId: " in result.stderr


def test_invalid_payload_exits_1(server: ServerThread, deployed: str) -> None:
    result = lambdalet(server, "invoke", deployed, "--payload", "not json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "InvalidRequestContentException" in result.stderr
    assert "Could not parse request body into json" in result.stderr


def test_invoke_event_runs_the_handler(server: ServerThread, deployed: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    payload = json.dumps({"marker": str(marker)})
    result = lambdalet(server, "invoke", deployed, "--event", "--payload", payload)
    assert result.returncode == 0, result.stderr
    accepted = re.search(r"accepted \(status 202, request id (\S+)\)", result.stdout)
    assert accepted, result.stdout

    deadline = time.monotonic() + WAIT_S
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the handler did not run within {WAIT_S} s of an Event invoke"
    # The handler ran for this very event: it wrote the request id the API answered with.
    deadline = time.monotonic() + WAIT_S
    while not marker.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == accepted.group(1)


def test_ls_lists_the_function(server: ServerThread, deployed: str) -> None:
    result = lambdalet(server, "ls", env=cli_env(COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if deployed in line]
    assert len(rows) == 1, result.stdout
    assert "python3.11" in rows[0]
    assert "app.handler" in rows[0]


def test_logs_prints_earlier_invokes(server: ServerThread, deployed: str) -> None:
    request_ids = []
    for number in (1, 2):
        invoked = lambdalet(server, "invoke", deployed, "--payload", json.dumps({"n": number}))
        assert invoked.returncode == 0, invoked.stderr
        request_ids.append(request_id_of(invoked.stderr))

    result = lambdalet(server, "logs", deployed)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for number, request_id in zip((1, 2), request_ids, strict=True):
        start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
        assert lines[start + 1] == f'handled {{"n": {number}}}'
        assert lines[start + 2] == f"END RequestId: {request_id}"
        assert lines[start + 3].startswith(f"REPORT RequestId: {request_id}\tDuration: ")


def test_logs_of_an_unknown_function_fails(server: ServerThread, function_name: str) -> None:
    result = lambdalet(server, "logs", function_name)
    assert result.returncode == 1
    assert "ResourceNotFoundException" in result.stderr


def _read_lines(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _wait_for_line(lines: queue.Queue[str | None], wanted: str, seen: list[str]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            pytest.fail(f"logs --follow ended before printing {wanted!r}; it printed {seen}")
        seen.append(line)
        if line.startswith(wanted):
            return
    pytest.fail(f"logs --follow did not print {wanted!r} within {WAIT_S} s; it printed {seen}")


def test_logs_follow_prints_new_invokes(server: ServerThread, deployed: str) -> None:
    before = lambdalet(server, "invoke", deployed, "--payload", '{"when":"before"}')
    assert before.returncode == 0, before.stderr
    before_id = request_id_of(before.stderr)

    follower = subprocess.Popen(
        [str(LAMBDALET), "logs", deployed, "--follow", "--endpoint-url", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(follower.stdout, lines), daemon=True)
    reader.start()
    try:
        seen: list[str] = []
        # The history first, then what happens while it follows.
        _wait_for_line(lines, f"REPORT RequestId: {before_id}", seen)

        after = lambdalet(server, "invoke", deployed, "--payload", '{"when":"after"}')
        assert after.returncode == 0, after.stderr
        after_id = request_id_of(after.stderr)
        _wait_for_line(lines, f"REPORT RequestId: {after_id}", seen)
        assert f"START RequestId: {after_id} Version: $LATEST" in seen
        assert 'handled {"when": "after"}' in seen
        assert follower.poll() is None, "logs --follow stopped by itself"
    finally:
        os.kill(follower.pid, signal.SIGTERM)
        try:
            follower.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(follower.pid, signal.SIGKILL)
            follower.wait(timeout=30)
        reader.join(timeout=30)
        if follower.stdout is not None:
            follower.stdout.close()


def test_rm_then_invoke_fails(server: ServerThread, deployed: str) -> None:
    removed = lambdalet(server, "rm", deployed)
    assert removed.returncode == 0, removed.stderr
    assert f"deleted {deployed}" in removed.stdout

    result = lambdalet(server, "invoke", deployed)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "ResourceNotFoundException" in result.stderr
    assert f"function:{deployed}" in result.stderr


def test_rm_of_an_unknown_function_fails(server: ServerThread, function_name: str) -> None:
    result = lambdalet(server, "rm", function_name)
    assert result.returncode == 1
    assert "ResourceNotFoundException" in result.stderr


def test_bench_invokes_many_times_and_counts_what_came_back(
    server: ServerThread, deployed: str
) -> None:
    result = lambdalet(server, "bench", deployed, "-n", "40", "-c", "4", env=cli_env(COLUMNS="200"))
    assert result.returncode == 0, result.stderr
    # The table's row of counts, whatever characters draw its box.
    row = next(line for line in result.stdout.splitlines() if re.match(r"^\W*40\W", line))
    assert re.findall(r"\d[\d,]*", row)[:5] == ["40", "40", "0", "0", "0"], result.stdout
    assert "latency (ms): p50" in result.stdout
    failing = lambdalet(server, "bench", "no-such-function", "-n", "3", "-c", "2")
    assert failing.returncode == 1  # 404s are failures
