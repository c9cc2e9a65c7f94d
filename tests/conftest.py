"""Shared fixtures: a real lambdalet node on a loopback port, and boto3 clients of it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lambdalet.store.base import Store
from lambdalet.store.memory import MemoryStore
from lambdalet.store.sqlite import SqliteStore
from lambdalet.testing import Deploy, ServerThread, make_zip

ROLE = "arn:aws:iam::000000000000:role/lambdalet-test"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One node for the whole session (per xdist worker), on SQLite, with a short timeout."""
    data_dir = tmp_path_factory.mktemp("lambdalet-data")
    # The process backend, whatever the environment says: some tests signal the pids handlers
    # report, which are host pids only there.
    with ServerThread(data_dir=data_dir, sandbox_backend="process") as running:
        yield running


def boto_client(url: str, service: str = "lambda", **config: Any) -> Any:
    """A boto3 client of a lambdalet node, with dummy credentials and no retries."""
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120, **config
        ),
    )


@pytest.fixture(scope="session")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of the session's node."""
    return boto_client(server.url)


@pytest.fixture(scope="session")
def raw_client(server: ServerThread) -> Any:
    """boto3's Lambda client with client-side validation off, to reach server-side checks."""
    return boto_client(server.url, parameter_validation=False)


@pytest.fixture
def unique_name() -> str:
    """A fresh function name."""
    return f"fn-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def deploy(lambda_client: Any, unique_name: str) -> Iterator[Deploy]:
    """Create a Python function from source text; deleted after the test."""
    created: list[str] = []

    def create(
        source: str | None = None,
        *,
        files: dict[str, str | bytes] | None = None,
        handler: str = "app.handler",
        runtime: str = "python3.11",
        name: str | None = None,
        modes: dict[str, int] | None = None,
        **settings: Any,
    ) -> dict[str, Any]:
        code = dict(files or {})
        if source is not None:
            code["app.py"] = source
        function_name = name or f"{unique_name}-{len(created)}"
        result: dict[str, Any] = lambda_client.create_function(
            FunctionName=function_name,
            Runtime=runtime,
            Role=ROLE,
            Handler=handler,
            Code={"ZipFile": make_zip(code, modes=modes)},
            **settings,
        )
        created.append(function_name)
        return result

    yield create
    for function_name in created:
        with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
            lambda_client.delete_function(FunctionName=function_name)


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes a store of each implementation: SQLite in a scratch directory, and memory."""
    if request.param == "sqlite":
        return lambda: SqliteStore(tmp_path / "state.db")
    return MemoryStore
