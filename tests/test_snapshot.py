"""SnapStart: published versions that opt in run instances forked from a zygote that ran the
init once; each instance is its own process with its own channel, logs, cgroup and exit."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import boto_client

from lambdalet.sandbox.namespaces import probe_namespaces
from lambdalet.testing import Deploy, ServerThread, tail

if os.geteuid() != 0 or probe_namespaces().get("user"):
    pytest.skip("the namespaces backend needs root and user namespaces", allow_module_level=True)

SNAP = {"ApplyOn": "PublishedVersions"}

# The init leaves a mark in /tmp, which the instances of one zygote share.
COUNTED = """
import os, time
with open("/tmp/inits", "a") as inits:
    inits.write(f"{os.getpid()}\\n")
INIT_PID = os.getpid()
INIT_NS = time.monotonic_ns()
calls = 0

def handler(event, context):
    global calls
    calls += 1
    time.sleep(event.get("sleep_s", 0))
    print("instance", os.getpid(), "says hi")
    if event.get("exit"):
        os._exit(event["exit"])
    if event.get("hog_mb"):
        blocks = [bytearray(1024 * 1024) for _ in range(event["hog_mb"])]
        for block in blocks:
            block[::4096] = b"x" * len(block[::4096])
    return {
        "pid": os.getpid(),
        "init_pid": INIT_PID,
        "init_ns": INIT_NS,
        "inits": open("/tmp/inits").read().split(),
        "calls": calls,
        "init_type": os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"],
    }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node of namespaces sandboxes (snapshots need them)."""
    data_dir = tmp_path_factory.mktemp("lambdalet-snapshot")
    with ServerThread(sandbox_backend="namespaces", data_dir=data_dir, pool_size=0) as up:
        yield up


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node (``deploy`` uses it)."""
    return boto_client(server.url)


def invoke(client: Any, name: str, qualifier: str, payload: Any = None) -> tuple[Any, Any]:
    response = client.invoke(
        FunctionName=name, Qualifier=qualifier, Payload=json.dumps(payload or {}), LogType="Tail"
    )
    return json.loads(response["Payload"].read()), response


def published(deploy: Deploy, client: Any, source: str = COUNTED, **settings: Any) -> str:
    name = str(deploy(source, SnapStart=SNAP, **settings)["FunctionName"])
    client.publish_version(FunctionName=name)
    return name


def test_snap_start_is_configured_and_reported_as_aws_does(
    deploy: Deploy, lambda_client: Any
) -> None:
    created = deploy(COUNTED, SnapStart=SNAP)
    assert created["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    name = created["FunctionName"]
    version = lambda_client.publish_version(FunctionName=name)
    assert version["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    got = lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")
    assert got["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
    updated = lambda_client.update_function_configuration(
        FunctionName=name, SnapStart={"ApplyOn": "None"}
    )
    assert updated["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    # The published version keeps what it was published with.
    got = lambda_client.get_function_configuration(FunctionName=name, Qualifier="1")
    assert got["SnapStart"]["OptimizationStatus"] == "On"


def test_bad_snap_start_settings_are_refused(deploy: Deploy, lambda_client: Any) -> None:
    errors = lambda_client.exceptions
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        deploy(COUNTED, SnapStart={"ApplyOn": "Always"})
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "snapStart.applyOn" in caught.value.response["Error"]["Message"]
    assert "PublishedVersions, None" in caught.value.response["Error"]["Message"]
    with pytest.raises(errors.InvalidParameterValueException) as caught:
        deploy(
            "exports.handler = async () => 1;\n",
            files={"index.js": "exports.handler = async () => 1;\n"},
            handler="index.handler",
            runtime="nodejs20.x",
            SnapStart=SNAP,
        )
    assert "snapshots Python runtimes only" in caught.value.response["Error"]["Message"]


def test_init_runs_once_for_concurrent_instances(deploy: Deploy, lambda_client: Any) -> None:
    name = published(deploy, lambda_client)
    with ThreadPoolExecutor(4) as threads:
        calls = list(
            threads.map(lambda _: invoke(lambda_client, name, "1", {"sleep_s": 0.5}), range(4))
        )
    results = [result for result, _ in calls]
    for _, response in calls:
        assert "FunctionError" not in response, tail(response)
        assert "says hi" in tail(response)
    assert len({result["pid"] for result in results}) == 4  # four instances, four processes
    assert {result["init_pid"] for result in results} == {results[0]["init_pid"]}
    assert {result["init_ns"] for result in results} == {results[0]["init_ns"]}
    assert all(result["pid"] != result["init_pid"] for result in results)
    assert all(len(result["inits"]) == 1 for result in results)  # the init ran once
    assert all(result["calls"] == 1 for result in results)  # each its own module state on
    assert {result["init_type"] for result in results} == {"snap-start"}
    # Each instance's log holds its own lines only.
    for result, response in calls:
        assert f"instance {result['pid']} says hi" in tail(response)
    # A cold start from the snapshot reports its restore as the init.
    assert any("Init Duration:" in tail(response) for _, response in calls)


def test_latest_is_not_snapshotted(deploy: Deploy, lambda_client: Any) -> None:
    name = published(deploy, lambda_client)
    result, _ = invoke(lambda_client, name, "$LATEST")
    assert result["pid"] == result["init_pid"]
    assert result["init_type"] == "on-demand"


def test_an_instance_that_dies_is_reported_and_replaced(deploy: Deploy, lambda_client: Any) -> None:
    name = published(deploy, lambda_client, MemorySize=128)
    first, _ = invoke(lambda_client, name, "1")
    error, response = invoke(lambda_client, name, "1", {"exit": 3})
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    error, response = invoke(lambda_client, name, "1", {"hog_mb": 400})
    assert error["errorType"] == "Runtime.ExitError", error
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    after, response = invoke(lambda_client, name, "1")
    assert "FunctionError" not in response, tail(response)
    assert after["init_pid"] == first["init_pid"]  # the same zygote: no new init
    assert after["inits"] == first["inits"]


def test_an_init_error_is_reported_for_a_snapshotted_version(
    deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client, "raise ValueError('no config')\n")
    error, response = invoke(lambda_client, name, "1")
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "no config"


def test_a_timed_out_instance_is_killed_and_the_next_one_forked(
    deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client, Timeout=1)
    error, response = invoke(lambda_client, name, "1", {"sleep_s": 3})
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in tail(response)
    result, response = invoke(lambda_client, name, "1")
    assert "FunctionError" not in response, tail(response)
    assert len(result["inits"]) == 1


def test_each_instance_is_born_in_a_cgroup_of_its_own(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import os, time
ZYGOTE_CGROUP = open("/proc/self/cgroup").read()

def handler(event, context):
    time.sleep(event.get("sleep_s", 0))
    memory = [line for line in open("/proc/self/cgroup").read().splitlines() if "memory" in line]
    return {"pid": os.getpid(), "memory_cgroup": memory, "zygote": ZYGOTE_CGROUP}
"""
    name = published(deploy, lambda_client, source)
    with ThreadPoolExecutor(3) as threads:
        calls = list(
            threads.map(lambda _: invoke(lambda_client, name, "1", {"sleep_s": 0.5}), range(3))
        )
    results = [result for result, _ in calls]
    assert len({result["pid"] for result in results}) == 3
    cgroups = [tuple(result["memory_cgroup"]) for result in results]
    assert all(cgroups) and len(set(cgroups)) == 3, cgroups
    assert all(line not in results[0]["zygote"] for group in cgroups for line in group)
