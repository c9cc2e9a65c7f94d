"""SnapStart: published versions that opt in run instances forked from a zygote that ran the
init once; each instance is its own process with its own channel, logs, cgroup and exit."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pydantic
import pytest
from conftest import boto_client

from lambdalet.config import Settings
from lambdalet.sandbox.namespaces import probe_namespaces
from lambdalet.sandbox.snapshot import SPARE_COST_MB, ForkedSandbox
from lambdalet.testing import Deploy, ServerThread, make_zip, tail

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
    # A timeout long enough that the memory hog meets the OOM killer even on a busy machine.
    name = published(deploy, lambda_client, MemorySize=128, Timeout=60)
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
    lines = open("/proc/self/cgroup").read().splitlines()
    # v1's memory hierarchy, or else the one v2 hierarchy.
    memory = [line for line in lines if ":memory:" in line] or [
        line for line in lines if line.startswith("0::")
    ]
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


def spares(server: ServerThread, name: str, version: str = "1") -> list[ForkedSandbox]:
    pool = server.node.router.pool
    assert pool is not None
    return pool.snapshots.spares_of(name, version)


def wait_for_spare(server: ServerThread, name: str, but_not: int | None = None) -> ForkedSandbox:
    """The version's spare, once one is forked (other than the instance ``but_not``)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = [s for s in spares(server, name) if s.sandbox_pid != but_not]
        if ready:
            return ready[0]
        time.sleep(0.02)
    raise AssertionError(f"no spare instance of {name}:1 was forked")


def test_a_spare_instance_is_forked_after_the_first_cold_start(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client)
    assert spares(server, name) == []
    first, _ = invoke(lambda_client, name, "1")
    spare = wait_for_spare(server, name)
    assert spare.sandbox_pid != first["pid"]
    assert spare.host_pid is not None and os.path.exists(f"/proc/{spare.host_pid}")
    assert len(spares(server, name)) == 1  # one spare per version, not one per cold start


def test_a_cold_start_takes_the_spare_and_another_is_forked(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client)
    first, _ = invoke(lambda_client, name, "1")
    spare = wait_for_spare(server, name)
    with ThreadPoolExecutor(1) as threads:
        # The warm instance is busy: the next invocation is a cold start.
        busy = threads.submit(invoke, lambda_client, name, "1", {"sleep_s": 1})
        time.sleep(0.3)
        taken, response = invoke(lambda_client, name, "1")
        assert busy.result()[0]["pid"] == first["pid"]
    assert "FunctionError" not in response, tail(response)
    assert taken["pid"] == spare.sandbox_pid  # the spare, forked before this cold start
    assert taken["calls"] == 1 and taken["inits"] == first["inits"]
    assert "Init Duration:" in tail(response)
    assert f"instance {taken['pid']} says hi" in tail(response)
    replacement = wait_for_spare(server, name, but_not=spare.sandbox_pid)
    assert replacement.sandbox_pid not in (first["pid"], taken["pid"])


def test_deleting_the_version_stops_its_spare(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client, MemorySize=192)
    invoke(lambda_client, name, "1")
    spare = wait_for_spare(server, name)
    assert spare.host_pid is not None
    snapshots = server.node.router.pool.snapshots  # type: ignore[union-attr]
    held_mb = snapshots.memory_in_use_mb()
    lambda_client.delete_function(FunctionName=name, Qualifier="1")
    assert spares(server, name) == []
    # The zygote counted its MemorySize, the spare its own share.
    assert held_mb - snapshots.memory_in_use_mb() == 192 + SPARE_COST_MB
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{spare.host_pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{spare.host_pid}")


def test_spares_give_way_when_a_function_needs_the_budget(
    server: ServerThread, deploy: Deploy, lambda_client: Any
) -> None:
    name = published(deploy, lambda_client)
    invoke(lambda_client, name, "1")
    spare = wait_for_spare(server, name)
    pool = server.node.router.pool
    assert pool is not None and pool.size == 0  # no blank sandboxes to give way first
    freed_mb = server.call(pool.release_blank(len(pool.snapshots.spares_of()) * SPARE_COST_MB))
    assert freed_mb >= SPARE_COST_MB
    assert pool.snapshots.spares_of() == [] and not spare.usable


def test_no_spares_when_turned_off_or_when_the_budget_has_no_room(
    tmp_path: Any, unique_name: str
) -> None:
    choices: list[dict[str, Any]] = [{"snapshot_spares": 0}, {"memory_budget_mb": 200}]
    for settings in choices:
        data_dir = tmp_path / str(len(list(tmp_path.iterdir())))
        with ServerThread(
            sandbox_backend="namespaces", data_dir=data_dir, pool_size=0, **settings
        ) as node:
            client = boto_client(node.url)
            client.create_function(
                FunctionName=unique_name,
                Runtime="python3.11",
                Role="arn:aws:iam::123456789012:role/lambda",
                Handler="app.handler",
                Code={"ZipFile": make_zip({"app.py": COUNTED})},
                MemorySize=192,  # zygote and instance hold 384 MB: no room for a spare
                SnapStart=SNAP,
            )
            client.publish_version(FunctionName=unique_name)
            _, response = invoke(client, unique_name, "1")
            assert "FunctionError" not in response, tail(response)
            time.sleep(0.5)
            assert spares(node, unique_name) == [], settings


@pytest.mark.parametrize("count", [-1, 9])
def test_a_spare_count_out_of_range_is_refused(count: int) -> None:
    with pytest.raises(pydantic.ValidationError, match="snapshot_spares"):
        Settings(snapshot_spares=count)
