"""Runtimes lambdalet did not write, run unmodified against its Runtime API.

The official ``awslambdaric`` (PyPI) as a ``provided.al2023`` bootstrap, and a custom runtime
written as a shell script with curl, prove the Runtime API behaves as AWS documents it.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from typing import Any

import pytest

from lambdalet.testing import Deploy

EXECUTABLE = 0o100755

HANDLERS = """
counter = {"calls": 0}

def handler(event, context):
    counter["calls"] += 1
    print("via awslambdaric", context.aws_request_id)
    return {"echo": event, "calls": counter["calls"], "fn": context.function_name,
            "remaining_positive": context.get_remaining_time_in_millis() > 0}

def fails(event, context):
    raise ValueError("awslambdaric saw this")
"""


def ric_bootstrap(handler: str) -> str:
    return f"#!/bin/sh\nexec {sys.executable} -m awslambdaric {handler}\n"


def test_awslambdaric_serves_invocations(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        files={"bootstrap": ric_bootstrap("app.handler"), "app.py": HANDLERS},
        modes={"bootstrap": EXECUTABLE},
        runtime="provided.al2023",
        handler="app.handler",
    )["FunctionName"]
    for calls in (1, 2):
        response = lambda_client.invoke(
            FunctionName=name, Payload=json.dumps({"n": calls}), LogType="Tail"
        )
        assert "FunctionError" not in response
        result = json.loads(response["Payload"].read())
        assert result == {
            "echo": {"n": calls},
            "calls": calls,
            "fn": name,
            "remaining_positive": True,
        }
        assert "via awslambdaric" in base64.b64decode(response["LogResult"]).decode()


def test_awslambdaric_reports_errors(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        files={"bootstrap": ric_bootstrap("app.fails"), "app.py": HANDLERS},
        modes={"bootstrap": EXECUTABLE},
        runtime="provided.al2023",
        handler="app.fails",
    )["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "awslambdaric saw this"


def test_awslambdaric_init_error(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        files={"bootstrap": ric_bootstrap("app.nowhere"), "app.py": HANDLERS},
        modes={"bootstrap": EXECUTABLE},
        runtime="provided.al2023",
        handler="app.nowhere",
    )["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.HandlerNotFound"


SHELL_BOOTSTRAP = """#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$headers" | tr -d '\\r' | cut -d' ' -f2)
  echo "shell runtime got $id"
  if [ "$event" = '{"fail":true}' ]; then
    curl -sS -X POST "$api/invocation/$id/error" \\
      -H 'Lambda-Runtime-Function-Error-Type: Shell.Failed' \\
      -d '{"errorType":"Shell.Failed","errorMessage":"asked to fail"}' > /dev/null
  else
    curl -sS -X POST "$api/invocation/$id/response" -d "{\\"echo\\":$event}" > /dev/null
  fi
  rm -f "$headers"
done
"""


@pytest.mark.skipif(shutil.which("curl") is None, reason="the shell runtime needs curl")
def test_shell_script_custom_runtime(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        files={"bootstrap": SHELL_BOOTSTRAP}, modes={"bootstrap": EXECUTABLE}, runtime="provided"
    )["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, Payload=b'{"a": 1}', LogType="Tail")
    assert json.loads(response["Payload"].read()) == {"echo": {"a": 1}}
    assert "shell runtime got" in base64.b64decode(response["LogResult"]).decode()
    response = lambda_client.invoke(FunctionName=name, Payload=b'{"fail":true}')
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Shell.Failed"


def test_bootstrap_that_is_not_executable(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(files={"bootstrap": SHELL_BOOTSTRAP}, runtime="provided")["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert "permission denied" in error["errorMessage"]


def test_bootstrap_that_exits_during_init(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(
        files={"bootstrap": "#!/bin/sh\necho broken >&2\nexit 7\n"},
        modes={"bootstrap": EXECUTABLE},
        runtime="provided.al2",
    )["FunctionName"]
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: exit status 7")
    assert "broken" in base64.b64decode(response["LogResult"]).decode()


def test_lambdalet_python_runtime_over_http(deploy: Deploy, lambda_client: Any) -> None:
    """Started as a custom runtime, our Python runtime speaks the HTTP Runtime API."""
    from lambdalet.runtime.launch import PYTHON_BOOTSTRAP

    bootstrap = f"#!/bin/sh\nexec {sys.executable} {PYTHON_BOOTSTRAP}\n"
    name = deploy(
        files={"bootstrap": bootstrap, "app.py": HANDLERS},
        modes={"bootstrap": EXECUTABLE},
        runtime="provided.al2023",
        handler="app.handler",
    )["FunctionName"]
    for calls in (1, 2):
        response = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"n": calls}))
        result = json.loads(response["Payload"].read())
        assert result["calls"] == calls
        assert result["echo"] == {"n": calls}
