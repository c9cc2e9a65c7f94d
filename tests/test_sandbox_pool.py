"""The prewarmed pool: a cold start of a Python function in a namespaces sandbox takes a blank
sandbox started before the function existed, binds its code, environment and limits, and
behaves in every way as a sandbox started for it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
from conftest import boto_client

from lambdalet.config import Settings
from lambdalet.sandbox.namespaces import probe_namespaces
from lambdalet.sandbox.pool import BLANK_SANDBOX_COST_MB, make_pool
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.testing import Deploy, ServerThread, make_zip, tail

if os.geteuid() != 0 or probe_namespaces().get("user"):
    pytest.skip("the namespaces backend needs root and user namespaces", allow_module_level=True)

POOL_SIZE = 2
RUNTIME = "python3.11"

# How old the runtime's process was when the handler's module was imported: a pooled runtime
# was started before the function was even created.
AGE = """
import os, time
with open("/proc/uptime") as uptime:
    now_s = float(uptime.read().split()[0])
with open("/proc/self/stat") as stat:
    started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
AGE_S = now_s - started_ticks / os.sysconf("SC_CLK_TCK")
IMPORTED_TZ = time.strftime("%Z")

def handler(event, context):
    return {
        "age_s": AGE_S,
        "greeting": os.environ.get("GREETING"),
        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "memory": os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"],
        "pooled": "_LAMBDALET_POOLED" in os.environ,
        "cwd": os.getcwd(),
        "task": sorted(os.listdir("/var/task")),
        "tz": IMPORTED_TZ,
        "uid": os.getuid(),
        "context_name": context.function_name,
    }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node of namespaces sandboxes with a pool of two blank sandboxes per runtime."""
    data_dir = tmp_path_factory.mktemp("lambdalet-pool")
    with ServerThread(sandbox_backend="namespaces", data_dir=data_dir, pool_size=POOL_SIZE) as up:
        yield up


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node (``deploy`` uses it)."""
    return boto_client(server.url)


def fill_pool(server: ServerThread) -> None:
    pool = server.node.router.pool
    assert pool is not None
    assert server.call(pool.wait_filled(RUNTIME)), "the pool did not fill"


def invoke(client: Any, name: str, payload: Any = None) -> tuple[Any, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}), LogType="Tail")
    return json.loads(response["Payload"].read()), response


def test_cold_start_takes_a_runtime_started_before_the_function(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    fill_pool(server)
    time.sleep(0.6)
    name = deploy(AGE, MemorySize=256, Environment={"Variables": {"GREETING": "hi", "TZ": "EST"}})[
        "FunctionName"
    ]
    result, response = invoke(lambda_client, name)
    assert "FunctionError" not in response, tail(response)
    assert result["age_s"] >= 0.5, result  # started before the function was created
    assert result["greeting"] == "hi"
    assert result["name"] == result["context_name"] == name
    assert result["memory"] == "256"
    assert result["pooled"] is False
    assert result["cwd"] == "/var/task"
    assert result["task"] == ["app.py"]
    assert result["tz"] == "EST"  # the function's TZ holds from the handler's import on
    assert result["uid"] == 993
    assert "Init Duration:" in tail(response)
    # Warm: the same sandbox, no new init.
    again, response = invoke(lambda_client, name)
    assert again["age_s"] == result["age_s"]
    assert "Init Duration:" not in tail(response)
    # Refilled in the background.
    fill_pool(server)


def test_two_functions_from_the_pool_do_not_see_each_other(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    fill_pool(server)
    source = "import os\ndef handler(event, context):\n    return sorted(os.listdir('/var/task'))\n"
    first = deploy(source, files={"first.txt": "1"})["FunctionName"]
    second = deploy(source, files={"second.txt": "2"})["FunctionName"]
    assert invoke(lambda_client, first)[0] == ["app.py", "first.txt"]
    assert invoke(lambda_client, second)[0] == ["app.py", "second.txt"]


@pytest.mark.parametrize(
    ("source", "handler", "error_type"),
    [
        ("def handler(event, context):\n    return 1\n", "app.missing", "Runtime.HandlerNotFound"),
        ("import not_installed_anywhere\n", "app.handler", "Runtime.ImportModuleError"),
        ("def handler(:\n", "app.handler", "Runtime.UserCodeSyntaxError"),
        ("raise KeyError('boom')\n", "app.handler", "KeyError"),
    ],
)
def test_init_errors_in_a_pooled_sandbox_are_aws_shaped(
    server: ServerThread,
    deploy: Deploy,
    lambda_client: Any,
    source: str,
    handler: str,
    error_type: str,
) -> None:
    fill_pool(server)
    name = deploy(source, handler=handler)["FunctionName"]
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == error_type, error
    # A failed init does not poison the pool: the next function starts.
    name = deploy(AGE)["FunctionName"]
    assert "FunctionError" not in invoke(lambda_client, name)[1]


def test_a_pooled_sandbox_gets_its_functions_memory_limit(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    source = (
        AGE
        + """
def hog(event, context):
    blocks = []
    for _ in range(event["cap_mb"]):
        block = bytearray(1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        blocks.append(block)
    return {"mb": len(blocks), "age_s": AGE_S}
"""
    )
    fill_pool(server)
    time.sleep(0.3)
    # Long timeouts: a slow kernel (User-Mode Linux, test_cgroup_v2.py) still gets there.
    name = deploy(source, handler="app.hog", MemorySize=128, Timeout=60)["FunctionName"]
    error, response = invoke(lambda_client, name, {"cap_mb": 400})
    assert error["errorType"] == "Runtime.ExitError", error
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    fill_pool(server)
    time.sleep(0.3)
    big = deploy(source, handler="app.hog", MemorySize=1024, Timeout=60)["FunctionName"]
    result, response = invoke(lambda_client, big, {"cap_mb": 400})
    assert "FunctionError" not in response, tail(response)
    assert result["mb"] == 400 and result["age_s"] >= 0.3


def test_layers_are_bound_under_opt(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    layer = lambda_client.publish_layer_version(
        LayerName="pool-shared",
        Content={"ZipFile": make_zip({"python/shared.py": "WHO = 'layer'\n", "data.txt": "d"})},
    )
    fill_pool(server)
    time.sleep(0.3)
    source = (
        AGE
        + """
import shared
def with_layer(event, context):
    return {"who": shared.WHO, "file": shared.__file__, "age_s": AGE_S,
            "data": open("/opt/data.txt").read()}
"""
    )
    name = deploy(source, handler="app.with_layer", Layers=[layer["LayerVersionArn"]])[
        "FunctionName"
    ]
    result, response = invoke(lambda_client, name)
    assert "FunctionError" not in response, tail(response)
    assert result["who"] == "layer" and result["file"] == "/opt/python/shared.py"
    assert result["data"] == "d" and result["age_s"] >= 0.3


def test_a_pooled_handler_imports_its_package_its_modules_and_the_standard_library(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    # The blank runtime looked at /var/task while it was empty, and has compiled code before
    # (ahead of the bind): neither may hide the function's modules, nor the standard
    # library's modules it had not imported.
    fill_pool(server)
    time.sleep(0.3)
    files = {
        "pkg/__init__.py": "",
        "pkg/entry.py": AGE
        + """
import fractions, uuid
from pkg import helper
import sibling

def handler(event, context):
    return {"age_s": AGE_S, "helper": helper.WHO, "sibling": sibling.WHO,
            "third": str(fractions.Fraction(1, 3)), "uuid": len(str(uuid.uuid4())),
            "file": helper.__file__}
""",
        "pkg/helper.py": "WHO = 'helper'\n",
        "sibling.py": "WHO = 'sibling'\n",
    }
    name = deploy("", files=files, handler="pkg/entry.handler")["FunctionName"]
    result, response = invoke(lambda_client, name)
    assert "FunctionError" not in response, tail(response)
    assert result["age_s"] >= 0.3  # from the pool
    assert result["helper"] == "helper" and result["sibling"] == "sibling"
    assert result["third"] == "1/3" and result["uuid"] == 36
    assert result["file"] == "/var/task/pkg/helper.py"


def test_blank_sandboxes_count_towards_the_memory_budget(server: ServerThread) -> None:
    fill_pool(server)
    router = server.node.router
    assert router.pool is not None

    async def measure() -> tuple[int, int]:
        return router.pool.memory_in_use_mb() if router.pool else 0, router.memory_in_use_mb()

    pool_mb, total_mb = server.call(measure())
    assert pool_mb >= POOL_SIZE * BLANK_SANDBOX_COST_MB
    assert total_mb >= pool_mb


def test_pool_size_zero_or_another_backend_means_no_blank_sandboxes(tmp_path: Any) -> None:
    common: dict[str, Any] = {
        "runtimes": Settings().runtimes,
        "region": "us-east-1",
        "scratch_root": tmp_path,
        "cache_dir": tmp_path,
        "has_room_mb": lambda _: True,
    }
    assert make_pool(ProcessBackend(), size=2, **common) is None
    with ServerThread(sandbox_backend="namespaces", data_dir=tmp_path, pool_size=0) as node:
        pool = node.node.router.pool
        assert pool is not None and pool.size == 0
        node.call(pool.wait_filled(RUNTIME, timeout_s=0.2))
        assert pool.blank_count() == 0


def test_a_negative_pool_size_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="pool_size"):
        Settings(pool_size=-1)


def test_blank_sandboxes_give_way_when_a_function_needs_the_budget(tmp_path: Any) -> None:
    settings: dict[str, Any] = {"sandbox_backend": "namespaces", "pool_size": POOL_SIZE}
    with ServerThread(data_dir=tmp_path, memory_budget_mb=140, **settings) as node:
        client = boto_client(node.url)
        fill_pool(node)
        client.create_function(
            FunctionName="budget",
            Runtime=RUNTIME,
            Role="arn:aws:iam::000000000000:role/lambda",
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(event, context):\n    return 7\n"})},
            MemorySize=128,
        )
        response = client.invoke(FunctionName="budget", Payload=b"{}")
        assert "FunctionError" not in response
        assert json.loads(response["Payload"].read()) == 7
        router = node.node.router

        async def used() -> int:
            return router.memory_in_use_mb()

        assert node.call(used()) <= 140
