"""Invoke through boto3 against a real node: results, context, logs, errors, timeouts."""

from __future__ import annotations

import base64
import errno
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

import lambdalet.runtime
import lambdalet.sandbox.process as process_sandbox
from lambdalet.testing import Deploy, ServerThread, invoke, tail

CONTEXT = """
import os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    print("event", event)
    return {
        "calls": calls,
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "identity": context.identity,
        "client_context": context.client_context and context.client_context.custom,
        "env": {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "LAMBDA_TASK_ROOT", "AWS_REGION", "TZ",
            "_HANDLER", "AWS_LAMBDA_RUNTIME_API", "GREETING", "AWS_EXECUTION_ENV",
            "AWS_LAMBDA_LOG_GROUP_NAME", "_X_AMZN_TRACE_ID")},
        "cwd": os.getcwd(),
    }
"""


def test_context_environment_and_warm_state(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        CONTEXT, MemorySize=256, Timeout=7, Environment={"Variables": {"GREETING": "hi"}}
    )["FunctionName"]
    first, response = invoke(lambda_client, name, {"n": 1})
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert first["event"] == {"n": 1}
    assert first["function_name"] == name
    assert first["function_version"] == "$LATEST"
    assert first["invoked_function_arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert first["memory_limit_in_mb"] == "256"
    assert re.fullmatch(r"[0-9a-f-]{36}", first["aws_request_id"])
    assert first["log_group_name"] == f"/aws/lambda/{name}"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", first["log_stream_name"])
    assert 0 < first["remaining_ms"] <= 7000
    assert first["identity"] is None
    env = first["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["TZ"] == ":UTC"
    assert env["_HANDLER"] == "app.handler"
    assert env["GREETING"] == "hi"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert first["cwd"] == env["LAMBDA_TASK_ROOT"]
    # Module-level state survives in the warm sandbox, as on Lambda.
    second, _ = invoke(lambda_client, name, {"n": 2})
    assert second["calls"] == first["calls"] + 1
    assert second["aws_request_id"] != first["aws_request_id"]
    assert second["env"]["_X_AMZN_TRACE_ID"] != env["_X_AMZN_TRACE_ID"]


TRACE_IDS = """
import os, sys
sys.path.insert(0, sys.argv[1])
import python_bootstrap

def rss_kb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0])

python_bootstrap.set_trace_id("Root=1-00000000-000000000000000000000000;Parent=0;Sampled=0")
before = rss_kb()
for i in range(200_000):
    python_bootstrap.set_trace_id(f"Root=1-5e1b4151-{i:024x};Parent={i:016x};Sampled=0")
assert os.environ["_X_AMZN_TRACE_ID"].startswith("Root=1-5e1b4151-")
assert os.getenv("_X_AMZN_TRACE_ID") == os.environ["_X_AMZN_TRACE_ID"]
python_bootstrap.set_trace_id(None)
assert "_X_AMZN_TRACE_ID" not in os.environ
print(rss_kb() - before)
"""


def test_a_trace_id_per_invocation_does_not_grow_the_runtime() -> None:
    # With os.environ[...] = value, the C library's setenv keeps every value: 200,000 trace
    # ids take about 28 MB that are never freed.
    runtime_dir = Path(lambdalet.runtime.__file__).parent
    done = subprocess.run(
        [sys.executable, "-c", TRACE_IDS, str(runtime_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(done.stdout) < 2048, f"the runtime grew by {done.stdout.strip()} KB"


def test_log_tail_start_end_report(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    result, response = invoke(lambda_client, name, {"tell": "me"}, LogType="Tail")
    request_id = result["aws_request_id"]
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] == request_id
    lines = tail(response).splitlines()
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    assert "event {'tell': 'me'}" in lines[start + 1 :]
    assert f"END RequestId: {request_id}" in lines
    report = lines[-1]
    match = re.fullmatch(
        rf"REPORT RequestId: {request_id}\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms"
        r"\tMemory Size: 128 MB\tMax Memory Used: (\d+) MB\t(Init Duration: \d+\.\d\d ms\t)?",
        report,
    )
    assert match, report
    duration_ms, billed_ms, used_mb = float(match[1]), int(match[2]), int(match[3])
    assert billed_ms >= duration_ms and billed_ms - duration_ms < 1  # 1 ms increment
    assert used_mb > 0
    warm = tail(invoke(lambda_client, name, LogType="Tail")[1])
    assert "Init Duration" not in warm.splitlines()[-1]


def test_max_memory_used_is_the_real_peak(deploy: Deploy, lambda_client: Any) -> None:
    source = """
def handler(event, context):
    block = bytearray(event["mb"] * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])
    return len(block)
"""
    name = deploy(source, MemorySize=512)["FunctionName"]
    _, response = invoke(lambda_client, name, {"mb": 120}, LogType="Tail")
    used = int(re.search(r"Max Memory Used: (\d+) MB", tail(response))[1])  # type: ignore[index]
    assert used >= 120


def test_unhandled_exception(deploy: Deploy, lambda_client: Any) -> None:
    source = """
class OrderError(Exception):
    pass

def handler(event, context):
    print("about to fail")
    raise OrderError("order 42 is missing")
"""
    name = deploy(source)["FunctionName"]
    error, response = invoke(lambda_client, name, LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "OrderError"
    assert error["errorMessage"] == "order 42 is missing"
    assert any("raise OrderError" in frame for frame in error["stackTrace"])
    assert not any("python_bootstrap" in frame for frame in error["stackTrace"])
    log = tail(response)
    assert "about to fail" in log
    assert "[ERROR] OrderError: order 42 is missing" in log
    # The sandbox is still good after a handled failure.
    assert invoke(lambda_client, name)[1]["FunctionError"] == "Unhandled"


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "fragment"),
    [
        (
            {"app.py": "import not_installed_anywhere\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named",
        ),
        (
            {"app.py": "x = 1\n"},
            "app.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(:\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app'",
        ),
        (
            {"app.py": "raise RuntimeError('bad config')\n"},
            "app.handler",
            "RuntimeError",
            "bad config",
        ),
    ],
)
def test_init_errors(
    deploy: Deploy,
    lambda_client: Any,
    files: dict[str, str],
    handler: str,
    error_type: str,
    fragment: str,
) -> None:
    name = deploy(files=files, handler=handler)["FunctionName"]
    error, response = invoke(lambda_client, name, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == error_type
    assert fragment in error["errorMessage"]
    assert "Init Duration" in tail(response)


def test_unserializable_result_is_a_marshal_error(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy("def handler(event, context):\n    return {1, 2}\n")["FunctionName"]
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.MarshalError"
    assert "set is not JSON serializable" in error["errorMessage"]


def test_timeout_kills_and_replaces_the_sandbox(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import os, time
def handler(event, context):
    if event.get("sleep"):
        print("sleeping")
        time.sleep(event["sleep"])
    return os.getpid()
"""
    name = deploy(source, Timeout=1)["FunctionName"]
    first_pid, _ = invoke(lambda_client, name)
    error, response = invoke(lambda_client, name, {"sleep": 30}, LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    log = tail(response)
    assert "sleeping" in log
    assert "Task timed out after 1.00 seconds" in log
    assert re.search(r"Duration: 1\d{3}\.\d\d ms", log)
    new_pid, response = invoke(lambda_client, name)
    assert "FunctionError" not in response
    assert new_pid != first_pid
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(first_pid, 0)


def test_runtime_exit_is_reported(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import os, signal
def handler(event, context):
    if event.get("signal"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)
"""
    name = deploy(source)["FunctionName"]
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    error, _ = invoke(lambda_client, name, {"signal": True})
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")


def test_response_over_6_mb_fails_the_invocation(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy("def handler(event, context):\n    return 'x' * 7_000_000\n")["FunctionName"]
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    ok, response = invoke(lambda_client, name)  # the sandbox or its replacement still serves
    assert error["errorType"] == ok["errorType"]


def test_client_context_reaches_the_handler(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    context = base64.b64encode(json.dumps({"custom": {"tenant": "acme"}}).encode()).decode()
    result, _ = invoke(lambda_client, name, ClientContext=context)
    assert result["client_context"] == {"tenant": "acme"}


def test_empty_payload_is_an_empty_event(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    response = lambda_client.invoke(FunctionName=name)
    assert json.loads(response["Payload"].read())["event"] == {}


def test_dry_run(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, InvocationType="DryRun")
    assert response["StatusCode"] == 204


def test_event_invocation_is_run_in_the_background(
    deploy: Deploy, lambda_client: Any, tmp_path: Path
) -> None:
    source = """
import pathlib
def handler(event, context):
    pathlib.Path(event["marker"]).write_text(context.aws_request_id)
"""
    name = deploy(source)["FunctionName"]
    marker = tmp_path / "ran"
    response = lambda_client.invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps({"marker": str(marker)})
    )
    assert response["StatusCode"] == 202
    request_id = response["ResponseMetadata"]["RequestId"]
    deadline = time.monotonic() + 30
    # The file exists as soon as the handler opens it: wait for what it writes.
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == request_id


@pytest.mark.parametrize(
    ("invocation_type", "size", "limit"),
    [("RequestResponse", 6 * 1024 * 1024 + 1, 6291456), ("Event", 256 * 1024 + 1, 262144)],
)
def test_payload_too_large(
    deploy: Deploy, lambda_client: Any, invocation_type: str, size: int, limit: int
) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    payload = json.dumps("x" * (size - 2))
    with pytest.raises(ClientError) as caught:
        lambda_client.invoke(FunctionName=name, InvocationType=invocation_type, Payload=payload)
    error = caught.value.response
    assert error["Error"]["Code"] == "RequestTooLargeException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert f"Request must be smaller than {limit} bytes" in error["Error"]["Message"]


def test_payload_that_is_not_json(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    with pytest.raises(ClientError) as caught:
        lambda_client.invoke(FunctionName=name, Payload=b"{not json")
    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidRequestContentException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "Could not parse payload into json" in error["Error"]["Message"]


def test_unsupported_media_type(deploy: Deploy, server: ServerThread) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    response = httpx.post(
        f"{server.url}/2015-03-31/functions/{name}/invocations",
        content=b"<event/>",
        headers={"Content-Type": "application/xml"},
    )
    assert response.status_code == 415
    assert response.headers["x-amzn-ErrorType"] == "UnsupportedMediaTypeException"
    assert "application/xml" in response.json()["message"]


def test_bad_client_context_and_invocation_type(deploy: Deploy, server: ServerThread) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    url = f"{server.url}/2015-03-31/functions/{name}/invocations"
    response = httpx.post(url, content=b"{}", headers={"X-Amz-Client-Context": "%%%"})
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    response = httpx.post(url, content=b"{}", headers={"X-Amz-Invocation-Type": "Later"})
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    assert "RequestResponse" in response.json()["Message"]


def test_parallel_invocations_overlap(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import os, time
def handler(event, context):
    started = time.time()
    time.sleep(0.5)
    return {"pid": os.getpid(), "started": started, "ended": time.time()}
"""
    name = deploy(source)["FunctionName"]
    results: list[dict[str, Any]] = []

    def call() -> None:
        results.append(invoke(lambda_client, name)[0])

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({r["pid"] for r in results}) == 4  # one sandbox per concurrent invocation
    latest_start = max(r["started"] for r in results)
    earliest_end = min(r["ended"] for r in results)
    assert latest_start < earliest_end  # all four were running at one moment


def test_update_replaces_warm_sandboxes(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy("def handler(event, context):\n    return 'v1'\n")["FunctionName"]
    assert invoke(lambda_client, name)[0] == "v1"
    from lambdalet.testing import make_zip

    lambda_client.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    )
    assert invoke(lambda_client, name)[0] == "v2"
    lambda_client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"VERSION": "3"}}
    )
    lambda_client.update_function_code(
        FunctionName=name,
        ZipFile=make_zip(
            {"app.py": "import os\ndef handler(e, c):\n    return os.environ['VERSION']\n"}
        ),
    )
    assert invoke(lambda_client, name)[0] == "3"


def test_a_sandbox_that_died_while_idle_is_not_reused(deploy: Deploy, lambda_client: Any) -> None:
    import os
    import signal

    name = deploy("import os\ndef handler(event, context):\n    return os.getpid()\n")[
        "FunctionName"
    ]
    first_pid, _ = invoke(lambda_client, name)
    os.kill(first_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(first_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    second_pid, response = invoke(lambda_client, name)
    assert "FunctionError" not in response
    assert second_pid != first_pid


def test_a_runtime_whose_exit_cannot_be_watched_is_stopped(
    deploy: Deploy, lambda_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a kernel without pidfd_open: the runtime has started, but nothing could tell the
    # node when it ends. The invocation fails and the runtime must not be left running.
    started: list[int] = []

    def unwatchable(process: subprocess.Popen[bytes]) -> Any:
        started.append(process.pid)
        raise OSError(errno.ENOSYS, "Function not implemented")

    name = deploy("import os\ndef handler(event, context):\n    return os.getpid()\n")[
        "FunctionName"
    ]
    monkeypatch.setattr(process_sandbox, "watch_exit", unwatchable)
    with pytest.raises(ClientError) as failure:
        invoke(lambda_client, name)
    assert failure.value.response["Error"]["Code"] == "ServiceException"
    assert len(started) == 1
    assert not Path(f"/proc/{started[0]}").exists()  # killed and reaped
    monkeypatch.undo()
    pid, response = invoke(lambda_client, name)
    assert "FunctionError" not in response and pid != started[0]


def test_output_without_a_final_newline_is_in_the_log(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import sys
def handler(event, context):
    sys.stdout.write("no newline at the end")
    return 1
"""
    name = deploy(source)["FunctionName"]
    _, response = invoke(lambda_client, name, LogType="Tail")
    assert "no newline at the end" in tail(response)


def test_each_invocation_logs_only_what_it_printed(
    deploy: Deploy, lambda_client: Any, server: ServerThread
) -> None:
    # More than a pipe holds (64 KB), so the runtime blocks until the node reads it.
    source = """
def handler(event, context):
    print(("x" * 99 + "\\n") * 1000, end="")
    print("printed by", event["n"])
    return event["n"]
"""
    name = deploy(source)["FunctionName"]
    request_ids = []
    for n in range(3):
        result, response = invoke(lambda_client, name, {"n": n})
        assert result == n
        request_ids.append(response["ResponseMetadata"]["RequestId"])
    url = f"{server.url}/_lambdalet/functions/{name}/logs"
    by_request: dict[str, str] = {}
    for _ in range(100):
        by_request = {}
        for event in httpx.get(url).json()["events"]:
            by_request[event["requestId"]] = (
                by_request.get(event["requestId"], "") + "\n" + event["message"]
            )
        if all("REPORT RequestId" in by_request.get(r, "") for r in request_ids):
            break
        time.sleep(0.05)
    for n, request_id in enumerate(request_ids):
        lines = by_request[request_id].splitlines()
        assert [line for line in lines if line.startswith("printed by")] == [f"printed by {n}"]
        assert lines.count("x" * 99) == 1000


def test_other_methods_on_invocations_are_unknown_operations(
    deploy: Deploy, server: ServerThread
) -> None:
    name = deploy(CONTEXT)["FunctionName"]
    response = httpx.get(f"{server.url}/2015-03-31/functions/{name}/invocations")
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "GET" in response.json()["message"]
