"""The node-wide memory budget: idle sandboxes are evicted for new ones, then 429."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROLE, boto_client

from lambdalet.testing import ServerThread, make_zip

PID = "import os\ndef handler(event, context):\n    return os.getpid()\n"


@pytest.fixture
def budget_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node whose sandboxes may hold 400 MB of MemorySize in all."""
    with ServerThread(data_dir=tmp_path_factory.mktemp("budget"), memory_budget_mb=400) as node:
        yield node


@pytest.fixture
def client(budget_server: ServerThread) -> Iterator[Any]:
    lambda_client = boto_client(budget_server.url)
    yield lambda_client
    lambda_client.close()


def create(client: Any, name: str, memory_mb: int) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        MemorySize=memory_mb,
        Code={"ZipFile": make_zip({"app.py": PID})},
    )


def run(client: Any, name: str) -> int:
    response = client.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response
    pid: int = json.loads(response["Payload"].read())
    return pid


def test_idle_sandboxes_make_room_for_new_ones(budget_server: ServerThread, client: Any) -> None:
    router = budget_server.node.router
    assert router.memory_budget_mb == 400
    for name in ("first", "second", "third"):
        create(client, name, 192)
    first_pid = run(client, "first")
    run(client, "second")
    assert router.memory_in_use_mb() == 384
    run(client, "third")  # 576 MB would not fit: the least valuable idle sandbox goes
    assert router.memory_in_use_mb() == 384
    assert router.idle_count("first") == 0  # the oldest idle one was evicted
    assert router.idle_count("third") == 1
    assert run(client, "first") != first_pid  # a cold start again


def test_a_sandbox_that_can_never_fit_is_refused(client: Any) -> None:
    create(client, "huge", 512)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="huge", Payload=b"{}")
    error = caught.value.response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert "memory budget of 400 MB" in error["Error"]["Message"]
