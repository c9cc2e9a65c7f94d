"""The router under each keep-alive policy: warm reuse, then scale to zero."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROLE, boto_client

from lambdalet.config import Settings
from lambdalet.testing import ServerThread, make_zip


@pytest.fixture(params=["fixed", "hybrid-histogram"])
def quick_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    """A node whose idle sandboxes are stopped after 300 ms."""
    with ServerThread(
        data_dir=tmp_path_factory.mktemp("quick"),
        keep_alive_ms=300,
        keep_alive_policy=request.param,
    ) as running:
        yield running


def test_warm_reuse_then_scale_to_zero(quick_server: ServerThread) -> None:
    client: Any = boto_client(quick_server.url)
    try:
        client.create_function(
            FunctionName="pid",
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={
                "ZipFile": make_zip(
                    {"app.py": "import os\ndef handler(e, c):\n    return os.getpid()\n"}
                )
            },
        )
        pids = [json.loads(client.invoke(FunctionName="pid")["Payload"].read()) for _ in range(3)]
        assert len(set(pids)) == 1  # warm reuse, whatever the policy (nothing learnt yet)
        deadline = time.monotonic() + 20
        while quick_server.node.router.idle_count("pid") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert quick_server.node.router.idle_count("pid") == 0
        again = json.loads(client.invoke(FunctionName="pid")["Payload"].read())
        assert again != pids[0]  # a fresh sandbox after scaling to zero
    finally:
        client.close()


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keep-alive policy"):
        Settings(keep_alive_policy="forever")
