"""Asynchronous invocation: retries, event age, destinations, and their settings API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.testing import ServerThread, make_zip, wait_for_file

# Appends each attempt's request id to a file; fails while fewer than "succeed_on" attempts ran.
FLAKY = """
import json, pathlib
def handler(event, context):
    log = pathlib.Path(event["log"])
    with log.open("a") as out:
        out.write(context.aws_request_id + "\\n")
    attempts = len(log.read_text().splitlines())
    if attempts < event.get("succeed_on", 99):
        raise RuntimeError(f"attempt {attempts} failed")
    return {"attempts": attempts}
"""

# A destination: writes the invocation record it receives to a file named by the record.
RECORDER = """
import json, pathlib
def handler(event, context):
    target = pathlib.Path(event["requestPayload"]["record"])
    target.write_text(json.dumps(event))
"""


@pytest.fixture(scope="module")
def fast_retry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node that retries failed async events after 50 ms (then 100 ms)."""
    with ServerThread(
        data_dir=tmp_path_factory.mktemp("async"), async_retry_delay_ms=50
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(fast_retry_server: ServerThread) -> Iterator[Any]:
    lambda_client = boto_client(fast_retry_server.url)
    yield lambda_client
    lambda_client.close()


def create(client: Any, name: str, source: str) -> str:
    arn: str = client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
    )["FunctionArn"]
    return arn


def test_retries_then_on_failure_destination(client: Any, tmp_path: Path) -> None:
    create(client, "flaky-fail", FLAKY)
    recorder_arn = create(client, "recorder-fail", RECORDER)
    config = client.put_function_event_invoke_config(
        FunctionName="flaky-fail",
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": recorder_arn}},
    )
    assert config["MaximumRetryAttempts"] == 1
    assert config["FunctionArn"].endswith(":function:flaky-fail:$LATEST")
    log, record_path = tmp_path / "attempts", tmp_path / "record.json"
    payload = {"log": str(log), "record": str(record_path)}
    response = client.invoke(
        FunctionName="flaky-fail", InvocationType="Event", Payload=json.dumps(payload)
    )
    assert response["StatusCode"] == 202
    record = json.loads(wait_for_file(record_path))
    attempts = log.read_text().splitlines()
    assert len(attempts) == 2  # the first try and one retry, no more
    assert len(set(attempts)) == 1  # retries keep the request id, as on AWS
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["requestId"] == response["ResponseMetadata"]["RequestId"]
    assert record["requestPayload"] == payload
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_retry_succeeds_then_on_success_destination(client: Any, tmp_path: Path) -> None:
    create(client, "flaky-ok", FLAKY)
    recorder_arn = create(client, "recorder-ok", RECORDER)
    client.put_function_event_invoke_config(
        FunctionName="flaky-ok", DestinationConfig={"OnSuccess": {"Destination": recorder_arn}}
    )
    log, record_path = tmp_path / "attempts", tmp_path / "record.json"
    payload = {"log": str(log), "record": str(record_path), "succeed_on": 3}
    client.invoke(FunctionName="flaky-ok", InvocationType="Event", Payload=json.dumps(payload))
    record = json.loads(wait_for_file(record_path))
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"] == {"attempts": 3}
    assert len(log.read_text().splitlines()) == 3


def test_no_retries(client: Any, tmp_path: Path) -> None:
    create(client, "flaky-once", FLAKY)
    client.put_function_event_invoke_config(FunctionName="flaky-once", MaximumRetryAttempts=0)
    log = tmp_path / "attempts"
    client.invoke(
        FunctionName="flaky-once", InvocationType="Event", Payload=json.dumps({"log": str(log)})
    )
    wait_for_file(log, 1)
    time.sleep(0.5)  # ten retry delays: a retry, if any were made, would have run by now
    assert len(log.read_text().splitlines()) == 1


def test_event_invoke_config_api(client: Any) -> None:
    create(client, "configured", "def handler(e, c):\n    return 1\n")
    with pytest.raises(ClientError) as caught:
        client.get_function_event_invoke_config(FunctionName="configured")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    client.put_function_event_invoke_config(
        FunctionName="configured", MaximumRetryAttempts=2, MaximumEventAgeInSeconds=600
    )
    updated = client.update_function_event_invoke_config(
        FunctionName="configured", MaximumRetryAttempts=0
    )
    assert updated["MaximumRetryAttempts"] == 0
    assert updated["MaximumEventAgeInSeconds"] == 600
    got = client.get_function_event_invoke_config(FunctionName="configured")
    assert got["MaximumRetryAttempts"] == 0
    listed = client.list_function_event_invoke_configs(FunctionName="configured")
    assert len(listed["FunctionEventInvokeConfigs"]) == 1
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"MaximumRetryAttempts": 3}, "ValidationException", "less than or equal to 2"),
        ({"MaximumEventAgeInSeconds": 30}, "ValidationException", "greater than or equal to 60"),
        (
            {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:0:q"}}},
            "InvalidParameterValueException",
            "functions",
        ),
    ]
    raw = boto_client(client.meta.endpoint_url, parameter_validation=False)
    try:
        for arguments, code, fragment in cases:
            with pytest.raises(ClientError) as caught:
                raw.put_function_event_invoke_config(FunctionName="configured", **arguments)
            error = caught.value.response["Error"]
            assert error["Code"] == code, arguments
            assert fragment in error["Message"]
    finally:
        raw.close()
    client.delete_function_event_invoke_config(FunctionName="configured")
    with pytest.raises(ClientError) as caught:
        client.delete_function_event_invoke_config(FunctionName="configured")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
