"""Reserved, account and burst concurrency limits, and provisioned concurrency."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.testing import Deploy, ServerThread, make_zip

# Holds the invocation open until the test creates the release file, so that "in flight"
# is a fact the test arranges, not a race it hopes to win.
GATED = """
import os, pathlib, time
def handler(event, context):
    gate = pathlib.Path(event["gate"])
    (gate.parent / context.aws_request_id).touch()
    deadline = time.time() + 20
    while not gate.exists() and time.time() < deadline:
        time.sleep(0.01)
    return os.getpid()
"""


class Gate:
    """Invocations of a GATED function, started in threads and held open until release."""

    def __init__(self, client: Any, name: str, directory: Path, qualifier: str | None = None):
        self.client = client
        self.name = name
        self.directory = directory
        self.qualifier = qualifier
        self.results: list[Any] = []
        self.threads: list[threading.Thread] = []

    @property
    def payload(self) -> bytes:
        return json.dumps({"gate": str(self.directory / "open")}).encode()

    def invoke(self, **kwargs: Any) -> Any:
        """Invoke and read the whole response, so its connection goes back to the pool."""
        extra = {"Qualifier": self.qualifier} if self.qualifier else {}
        response = self.client.invoke(
            FunctionName=self.name, Payload=self.payload, LogType="Tail", **extra, **kwargs
        )
        response["Payload"] = response["Payload"].read()
        return response

    def hold(self, count: int) -> None:
        """Start ``count`` invocations and wait until every one is inside the handler."""
        before = self.started()
        for _ in range(count):
            thread = threading.Thread(target=lambda: self.results.append(self.invoke()))
            thread.start()
            self.threads.append(thread)
        deadline = time.monotonic() + 30
        while self.started() < before + count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.started() == before + count

    def started(self) -> int:
        return sum(1 for p in self.directory.iterdir() if p.name != "open")

    def release(self) -> None:
        (self.directory / "open").touch()
        for thread in self.threads:
            thread.join(30)


def throttle_reason(caught: pytest.ExceptionInfo[ClientError]) -> str:
    response = caught.value.response
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    return str(response["Reason"])


def test_reserved_concurrency(deploy: Deploy, lambda_client: Any, tmp_path: Path) -> None:
    name = deploy(GATED)["FunctionName"]
    before = lambda_client.get_account_settings()["AccountLimit"]
    put = lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)
    assert put["ReservedConcurrentExecutions"] == 2
    assert lambda_client.get_function_concurrency(FunctionName=name) == {
        "ReservedConcurrentExecutions": 2,
        "ResponseMetadata": lambda_client.get_function_concurrency(FunctionName=name)[
            "ResponseMetadata"
        ],
    }
    assert lambda_client.get_function(FunctionName=name)["Concurrency"] == {
        "ReservedConcurrentExecutions": 2
    }
    after = lambda_client.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 2
    gate = Gate(lambda_client, name, tmp_path)
    gate.hold(2)
    with pytest.raises(ClientError) as caught:
        gate.invoke()
    assert throttle_reason(caught) == "ReservedFunctionConcurrentInvocationLimitExceeded"
    gate.release()
    assert len(gate.results) == 2
    lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    with pytest.raises(ClientError) as caught:
        gate.invoke()
    assert throttle_reason(caught) == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lambda_client.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lambda_client.get_function_concurrency(
        FunctionName=name
    )
    assert gate.invoke()["StatusCode"] == 200


def test_reservation_must_leave_the_unreserved_minimum(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(GATED)["FunctionName"]
    limit = lambda_client.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    with pytest.raises(ClientError) as caught:
        lambda_client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=limit - 50
        )
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "below its minimum value of [100]" in error["Message"]


@pytest.fixture
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node whose account runs at most 2 invocations at once."""
    with ServerThread(
        data_dir=tmp_path_factory.mktemp("small"),
        concurrency_limit=2,
        unreserved_concurrency_minimum=1,
    ) as running:
        yield running


@pytest.fixture
def small_client(small_server: ServerThread) -> Iterator[Any]:
    client = boto_client(small_server.url)
    yield client
    client.close()


@pytest.fixture
def bursty_client(bursty_server: ServerThread) -> Iterator[Any]:
    client = boto_client(bursty_server.url)
    yield client
    client.close()


@pytest.fixture
def bursty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node where a function may start only 2 new sandboxes per 10 s."""
    with ServerThread(
        data_dir=tmp_path_factory.mktemp("bursty"), burst_sandboxes_per_10s=2
    ) as running:
        yield running


def create(client: Any, name: str) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": GATED})},
    )


def test_account_limit(small_client: Any, tmp_path: Path) -> None:
    client = small_client
    create(client, "busy")
    create(client, "other")
    gate = Gate(client, "busy", tmp_path)
    gate.hold(2)
    with pytest.raises(ClientError) as caught:
        Gate(client, "other", tmp_path).invoke()
    assert throttle_reason(caught) == "ConcurrentInvocationLimitExceeded"
    gate.release()


def test_burst_limit(bursty_client: Any, tmp_path: Path) -> None:
    client = bursty_client
    create(client, "bursty")
    gate = Gate(client, "bursty", tmp_path)
    gate.hold(2)  # two new sandboxes: the whole burst allowance
    gate.release()
    (tmp_path / "open").unlink()
    second = tmp_path / "second"
    second.mkdir()
    gate = Gate(client, "bursty", second)
    gate.hold(2)  # the two warm sandboxes serve these: no new sandbox needed
    with pytest.raises(ClientError) as caught:
        gate.invoke()  # a third would need a new sandbox within the same 10 s
    assert throttle_reason(caught) == "FunctionInvocationRateLimitExceeded"
    gate.release()


def init_duration(response: Any) -> bool:
    return "Init Duration" in base64.b64decode(response["LogResult"]).decode()


def test_provisioned_concurrency(deploy: Deploy, lambda_client: Any, tmp_path: Path) -> None:
    name = deploy(GATED)["FunctionName"]
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as caught:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert caught.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as caught:
        lambda_client.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    put = lambda_client.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["Status"] in ("IN_PROGRESS", "READY")
    deadline = time.monotonic() + 30
    config = put
    while config["Status"] != "READY" and time.monotonic() < deadline:
        time.sleep(0.05)
        config = lambda_client.get_provisioned_concurrency_config(
            FunctionName=name, Qualifier="live"
        )
    assert config["Status"] == "READY"
    assert config["AllocatedProvisionedConcurrentExecutions"] == 2
    listed = lambda_client.list_provisioned_concurrency_configs(FunctionName=name)
    assert [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]] == [
        f"arn:aws:lambda:us-east-1:000000000000:function:{name}:live"
    ]
    gate = Gate(lambda_client, name, tmp_path, qualifier="live")
    gate.hold(2)
    spilled = gate.invoke  # a third concurrent invocation spills over to on-demand
    third: list[Any] = []
    thread = threading.Thread(target=lambda: third.append(spilled()))
    thread.start()
    deadline = time.monotonic() + 30
    while gate.started() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.release()
    thread.join(30)
    assert not any(init_duration(r) for r in gate.results)  # provisioned: never cold
    assert init_duration(third[0])  # on-demand: cold
    lambda_client.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(ClientError) as caught:
        lambda_client.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert caught.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"
