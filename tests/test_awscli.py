"""The AWS CLI (awscli v1 from PyPI) against a real node on a loopback port."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lambdalet.testing import ServerThread, make_zip

AWS = Path(sys.executable).parent / "aws"
ROLE = "arn:aws:iam::000000000000:role/x"
COMMAND_TIMEOUT_S = 120.0

HANDLER = """
def handler(event, context):
    print("got", sorted(event))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"echo": event, "function": context.function_name}
"""

Aws = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def aws(server: ServerThread, tmp_path: Path) -> Aws:
    """Run ``aws --endpoint-url <server> ARGS`` with dummy credentials and no config files."""
    # Nothing from the developer's own AWS setup may leak in (profiles, real credentials).
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AWS), "--endpoint-url", server.url, "--output", "json", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    return run


def output_of(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def code_zip(tmp_path: Path) -> Path:
    """A zip of the test handler, as a file for ``fileb://``."""
    path = tmp_path / "function.zip"
    path.write_bytes(make_zip({"app.py": HANDLER}))
    return path


@pytest.fixture
def function_name(lambda_client: Any) -> Iterator[str]:
    """A fresh function name; the function is deleted after the test if it exists."""
    name = f"awscli-{uuid.uuid4().hex[:12]}"
    yield name
    with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.delete_function(FunctionName=name)


def create_function(aws: Aws, name: str, code_zip: Path) -> Any:
    """``aws lambda create-function`` of the test handler; its JSON output."""
    return output_of(
        aws(
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "python3.11",
            "--handler",
            "app.handler",
            "--role",
            ROLE,
            "--zip-file",
            f"fileb://{code_zip}",
        )
    )


@pytest.fixture
def created(aws: Aws, function_name: str, code_zip: Path) -> str:
    """The name of a function created with the AWS CLI."""
    create_function(aws, function_name, code_zip)
    return function_name


def test_create_function(aws: Aws, function_name: str, code_zip: Path) -> None:
    configuration = create_function(aws, function_name, code_zip)
    zip_bytes = code_zip.read_bytes()
    assert configuration["FunctionName"] == function_name
    assert configuration["FunctionArn"].endswith(f":function:{function_name}")
    assert configuration["Runtime"] == "python3.11"
    assert configuration["Handler"] == "app.handler"
    assert configuration["Role"] == ROLE
    assert configuration["CodeSize"] == len(zip_bytes)
    assert (
        configuration["CodeSha256"] == base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()
    )


def test_invoke_writes_the_result_to_the_outfile(aws: Aws, created: str, tmp_path: Path) -> None:
    # awscli v1 sends --payload as it is given; it has no --cli-binary-format (a v2 option,
    # which v1 rejects as an unknown option).
    response = output_of(
        aws(
            "lambda",
            "invoke",
            "--function-name",
            created,
            "--payload",
            '{"a":1}',
            "out.json",
        )
    )
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    assert "LogResult" not in response
    assert json.loads((tmp_path / "out.json").read_text()) == {
        "echo": {"a": 1},
        "function": created,
    }


def test_invoke_with_log_tail(aws: Aws, created: str, tmp_path: Path) -> None:
    response = output_of(
        aws(
            "lambda",
            "invoke",
            "--function-name",
            created,
            "--payload",
            '{"a":1}',
            "--log-type",
            "Tail",
            "out.json",
        )
    )
    assert response["StatusCode"] == 200
    lines = base64.b64decode(response["LogResult"]).decode().splitlines()
    assert lines[0].startswith("START RequestId: ")
    assert lines[0].endswith(" Version: $LATEST")
    request_id = lines[0].split()[2]
    assert "got ['a']" in lines
    assert f"END RequestId: {request_id}" in lines
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert "\tBilled Duration: " in lines[-1]


def test_invoke_of_a_failing_function(aws: Aws, created: str, tmp_path: Path) -> None:
    response = output_of(
        aws(
            "lambda",
            "invoke",
            "--function-name",
            created,
            "--payload",
            '{"fail":true}',
            "out.json",
        )
    )
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads((tmp_path / "out.json").read_text())
    assert error["errorType"] == "RuntimeError"
    assert error["errorMessage"] == "asked to fail"


def test_get_function(aws: Aws, created: str, code_zip: Path) -> None:
    response = output_of(aws("lambda", "get-function", "--function-name", created))
    assert response["Configuration"]["FunctionName"] == created
    assert response["Configuration"]["State"] == "Active"
    assert response["Code"]["RepositoryType"] == "S3"
    # Code.Location is a URL the zip can be downloaded from, as on AWS.
    download = httpx.get(response["Code"]["Location"], timeout=COMMAND_TIMEOUT_S)
    assert download.status_code == 200
    assert download.content == code_zip.read_bytes()


def test_list_functions(aws: Aws, created: str) -> None:
    response = output_of(aws("lambda", "list-functions"))
    listed = {function["FunctionName"]: function for function in response["Functions"]}
    assert created in listed
    assert listed[created]["Handler"] == "app.handler"


def test_delete_function(aws: Aws, created: str) -> None:
    deleted = aws("lambda", "delete-function", "--function-name", created)
    assert deleted.returncode == 0, deleted.stderr
    # Recent botocore models give DeleteFunction a StatusCode output; older ones print nothing.
    assert json.loads(deleted.stdout or "{}") in ({}, {"StatusCode": 204})

    listed = output_of(aws("lambda", "list-functions"))
    assert created not in {function["FunctionName"] for function in listed["Functions"]}
    gone = aws("lambda", "get-function", "--function-name", created)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr


def test_get_function_of_an_unknown_name_fails(aws: Aws, function_name: str) -> None:
    result = aws("lambda", "get-function", "--function-name", function_name)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "An error occurred (ResourceNotFoundException)" in result.stderr
    assert "GetFunction operation" in result.stderr
    assert f"function:{function_name}" in result.stderr
