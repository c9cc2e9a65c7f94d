"""The namespaces sandbox backend: functions run as usual, and cannot see, touch or exhaust
the host. Hostile functions are bounded (a cap on forks, on memory, on bytes written) so that
a broken sandbox fails a test instead of harming the machine; after each, another function
must still run."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROLE, boto_client

from lambdalet.config import Settings
from lambdalet.models import FunctionConfig, Invocation
from lambdalet.sandbox import cgroups, native_init
from lambdalet.sandbox.base import SandboxSpec
from lambdalet.sandbox.namespaces import (
    DEFAULT_HOST_ID,
    PEAK_READ_INTERVAL_S,
    NamespacesBackend,
    describe,
    isolation_report,
    probe_namespaces,
)
from lambdalet.testing import (
    Deploy,
    ServerThread,
    code_trees,
    make_zip,
    process_ended,
    tail,
)


def _why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the namespaces backend needs root (mounts, cgroups, id maps)"
    reason = probe_namespaces().get("user")
    if reason:
        return f"user namespaces are unavailable here: {reason}"
    return None


if (_REASON := _why_unavailable()) is not None:
    pytest.skip(_REASON, allow_module_level=True)

HELLO = """
import os
calls = 0

def handler(event, context):
    global calls
    calls += 1
    status = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines()
    )
    return {
        "calls": calls,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "runtime_dir": os.environ["LAMBDA_RUNTIME_DIR"],
        "no_new_privs": status["NoNewPrivs"].strip(),
        "cap_eff": status["CapEff"].strip(),
        "hostname": os.uname().nodename,
        "event": event,
    }
"""

PROBE = """
import errno, os

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))

def write(path):
    with open(path, "w") as out:
        out.write("x")

def handler(event, context):
    return {
        "write_task": attempt(lambda: write("/var/task/intruder.py")),
        "write_tmp": attempt(lambda: write("/tmp/mine.txt")),
        "write_root": attempt(lambda: write("/intruder")),
        "read_shadow": attempt(lambda: open("/etc/shadow").read()),
        "exists": {path: os.path.exists(path) for path in event["paths"]},
        "pids": sorted(int(name) for name in os.listdir("/proc") if name.isdigit()),
        "pid": os.getpid(),
        "init": open("/proc/1/cmdline", "rb").read().split(b"\\0")[0].decode(),
        "kill": {str(pid): attempt(lambda pid=pid, signal=signal: os.kill(pid, signal))
                 for pid, signal in event["signals"]},
        "task": sorted(os.listdir("/var/task")),
    }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node of its own whose sandboxes are namespaces sandboxes."""
    data_dir = tmp_path_factory.mktemp("lambdalet-namespaces")
    with ServerThread(sandbox_backend="namespaces", data_dir=data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node (``deploy`` uses it)."""
    return boto_client(server.url)


def invoke(client: Any, name: str, payload: Any = None) -> tuple[Any, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload or {}), LogType="Tail")
    return json.loads(response["Payload"].read()), response


def assert_still_serving(deploy: Deploy, client: Any) -> None:
    """Another function starts and runs: the node survived whatever came before."""
    name = deploy(HELLO)["FunctionName"]
    result, response = invoke(client, name, {"after": True})
    assert "FunctionError" not in response, result
    assert result["event"] == {"after": True}


def test_isolation_report_names_what_is_on() -> None:
    report = {name: (on, detail) for name, on, detail in isolation_report()}
    for name in ("root", "mount namespace", "pid namespace", "user namespace"):
        assert report[name][0], report[name]
    # Made only for functions tagged lambdalet:network=none (test_sandbox_network.py).
    assert report["network namespace"][0] is True
    assert all(isinstance(detail, str) and detail for _, detail in report.values())


def test_hello_runs_unprivileged_and_stays_warm(deploy: Deploy, lambda_client: Any) -> None:
    name = deploy(HELLO, MemorySize=256)["FunctionName"]
    first, response = invoke(lambda_client, name, {"n": 1})
    assert "FunctionError" not in response, first
    assert first["uid"] == 993 and first["gid"] == 990
    assert first["cwd"] == first["task_root"] == "/var/task"
    assert first["runtime_dir"] == "/var/runtime"
    assert first["no_new_privs"] == "1"
    assert int(first["cap_eff"], 16) == 0
    assert first["hostname"] == "localhost"
    report = tail(response).splitlines()[-1]
    assert "Init Duration" in report
    used = re.search(r"Max Memory Used: (\d+) MB", report)
    assert used and 0 < int(used[1]) <= 256, report
    # The same sandbox serves the next invocation, with its module state.
    second, response = invoke(lambda_client, name, {"n": 2})
    assert second["calls"] == 2 and second["pid"] == first["pid"]
    assert "Init Duration" not in tail(response).splitlines()[-1]


CHILD_MEMORY = """
import os, subprocess, sys, time

CHILD = (
    "import os, time\\n"
    "block = bytearray(64 * 1024 * 1024)\\n"
    "block[::4096] = b'x' * len(block[::4096])\\n"
    "open('/tmp/ready', 'w').close()\\n"
    "time.sleep(30)\\n"
)

def handler(event, context):
    if event.get("spawn"):
        subprocess.Popen([sys.executable, "-c", CHILD])
        while not os.path.exists("/tmp/ready"):
            time.sleep(0.01)
    return {}
"""


def test_memory_other_processes_took_is_reported_within_the_read_interval(
    deploy: Deploy, lambda_client: Any
) -> None:
    # The runtime's own peak does not grow when a child takes 64 MB: the cgroup's peak is read
    # again once its last reading is PEAK_READ_INTERVAL_S old, not after every invocation.
    name = deploy(CHILD_MEMORY, MemorySize=256)["FunctionName"]

    def used(payload: dict[str, Any]) -> int:
        _, response = invoke(lambda_client, name, payload)
        return int(re.search(r"Max Memory Used: (\d+) MB", tail(response))[1])  # type: ignore[index]

    assert used({}) < 64  # the interpreter alone
    used({"spawn": True})
    time.sleep(PEAK_READ_INTERVAL_S + 0.05)
    assert used({}) >= 64


def test_function_sees_only_its_own_files_and_processes(
    deploy: Deploy, lambda_client: Any, server: ServerThread
) -> None:
    other = deploy("def handler(event, context):\n    return 'other'\n")["FunctionName"]
    assert invoke(lambda_client, other)[0] == "other"
    name = deploy(PROBE)["FunctionName"]
    data_dir = server.settings.data_dir.resolve()
    trees = sorted(str(tree) for tree in code_trees(data_dir))
    assert len(trees) >= 2  # this function's code and the other's, on the host
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        paths = [str(data_dir), *trees, "/root", "/work", "/home"]
        # The sleeper is expendable; this test's own process is only asked whether it exists.
        signals = [[sleeper.pid, signal.SIGKILL], [os.getpid(), 0]]
        event = {"paths": paths, "signals": signals}
        result, response = invoke(lambda_client, name, event)
        assert "FunctionError" not in response, result
        assert sleeper.poll() is None  # still alive
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result["write_task"] in ("EROFS", "EACCES")
    assert result["write_root"] in ("EROFS", "EACCES")
    assert result["write_tmp"] == "ok"
    assert result["read_shadow"] in ("ENOENT", "EACCES")
    assert result["task"] == ["app.py"]
    exists = result["exists"]
    assert not any(exists[path] for path in [str(data_dir), *trees]), exists
    assert not exists["/work"] and not exists["/home"]
    # Its own pid namespace: the sandbox's init is pid 1, the runtime its child.
    assert result["pids"][0] == 1 and result["pid"] in result["pids"]
    assert len(result["pids"]) <= 3, result["pids"]
    assert ("lambdalet-init" if native_init.program() else "python") in result["init"]
    assert set(result["kill"].values()) <= {"ESRCH", "EPERM"}, result["kill"]
    assert_still_serving(deploy, lambda_client)


def test_tmp_is_private_and_limited_to_ephemeral_storage(
    deploy: Deploy, lambda_client: Any
) -> None:
    source = """
import errno, os

def handler(event, context):
    written = 0
    chunk = b"x" * (1024 * 1024)
    try:
        with open("/tmp/fill", "wb") as out:
            while written < event["cap_mb"]:
                out.write(chunk)
                out.flush()
                written += 1
        error = None
    except OSError as caught:
        error = errno.errorcode.get(caught.errno)
    os.remove("/tmp/fill")
    return {"written_mb": written, "error": error, "left": os.listdir("/tmp")}
"""
    # /tmp is a tmpfs and counts towards memory: MemorySize leaves room for all of it.
    name = deploy(source, MemorySize=1024, EphemeralStorage={"Size": 512}, Timeout=30)[
        "FunctionName"
    ]
    result, response = invoke(lambda_client, name, {"cap_mb": 600})
    assert "FunctionError" not in response, result
    assert result["error"] == "ENOSPC"
    assert 500 <= result["written_mb"] <= 512
    # Not the /tmp of another sandbox (the probe's test writes mine.txt in its own).
    assert "fill" not in result["left"] and "mine.txt" not in result["left"]
    assert_still_serving(deploy, lambda_client)


def test_memory_hog_is_killed_alone(deploy: Deploy, lambda_client: Any) -> None:
    source = """
def handler(event, context):
    blocks = []
    for _ in range(event["cap_mb"]):
        block = bytearray(1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
        blocks.append(block)
    return len(blocks)
"""
    # A long timeout: a slow kernel (User-Mode Linux, test_cgroup_v2.py) still reaches the limit.
    name = deploy(source, MemorySize=128, Timeout=60)["FunctionName"]
    error, response = invoke(lambda_client, name, {"cap_mb": 1024})
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert "Runtime exited with error: signal: killed" in tail(response)
    # A new sandbox of the same function runs what fits.
    assert invoke(lambda_client, name, {"cap_mb": 16})[0] == 16
    assert_still_serving(deploy, lambda_client)


def test_fork_bomb_is_contained_by_pids_max(deploy: Deploy, lambda_client: Any) -> None:
    source = """
import errno, os, signal, time

def handler(event, context):
    children, error = [], None
    for _ in range(event["cap"]):
        try:
            pid = os.fork()
        except OSError as caught:
            error = errno.errorcode.get(caught.errno)
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(children), "error": error}
"""
    name = deploy(source, MemorySize=512, Timeout=60)["FunctionName"]
    result, response = invoke(lambda_client, name, {"cap": 1000})
    assert "FunctionError" not in response, result
    assert result["error"] == "EAGAIN"
    assert 0 < result["forked"] < 256
    # The same sandbox forks again once its children are gone.
    again, _ = invoke(lambda_client, name, {"cap": 3})
    assert again == {"forked": 3, "error": None}
    assert_still_serving(deploy, lambda_client)


def test_cpu_is_held_to_the_share_of_a_vcpu_its_memory_buys(
    deploy: Deploy, lambda_client: Any
) -> None:
    source = """
import time

def handler(event, context):
    wall, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - wall < event["seconds"]:
        pass
    return {"wall": time.monotonic() - wall, "cpu": time.process_time() - cpu}
"""
    # 128 MB buys 128/1769 of a vCPU: about 7 ms of every 100 ms.
    name = deploy(source, MemorySize=128, Timeout=30)["FunctionName"]
    result, response = invoke(lambda_client, name, {"seconds": 1.0})
    assert "FunctionError" not in response, result
    assert 0 < result["cpu"] < 0.2 * result["wall"], result


def test_custom_runtime_reaches_the_runtime_api_over_loopback(
    deploy: Deploy, lambda_client: Any
) -> None:
    bootstrap = """#!/bin/sh
set -eu
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")"
  ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | cut -d: -f2 | tr -d '[:space:]')"
  curl -sS -X POST "$API/invocation/$ID/response" \\
    -d "{\\"uid\\": $(id -u), \\"cwd\\": \\"$(pwd)\\", \\"event\\": $EVENT}" > /dev/null
  rm -f "$HEADERS"
done
"""
    if not os.path.exists("/usr/bin/curl"):
        pytest.skip("curl is not installed")
    name = deploy(
        files={"bootstrap": bootstrap},
        handler="unused",
        runtime="provided.al2023",
        modes={"bootstrap": 0o100755},
    )["FunctionName"]
    result, response = invoke(lambda_client, name, {"k": "v"})
    assert "FunctionError" not in response, tail(response)
    assert result == {"uid": 993, "cwd": "/var/task", "event": {"k": "v"}}


def test_bootstrap_that_is_not_executable_is_an_invalid_entrypoint(
    deploy: Deploy, lambda_client: Any
) -> None:
    name = deploy(
        files={"bootstrap": "#!/bin/sh\n"},
        handler="unused",
        runtime="provided.al2023",
        modes={"bootstrap": 0o100644},
    )["FunctionName"]
    error, response = invoke(lambda_client, name)
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert error["errorMessage"].endswith("fork/exec /var/task/bootstrap: permission denied")


def test_node_runtime_runs_in_the_sandbox(deploy: Deploy, lambda_client: Any) -> None:
    if not os.path.exists("/usr/bin/node"):
        pytest.skip("node is not installed")
    source = "exports.handler = async (event) => ({uid: process.getuid(), event});\n"
    name = deploy(files={"index.js": source}, handler="index.handler", runtime="nodejs20.x")[
        "FunctionName"
    ]
    result, response = invoke(lambda_client, name, {"k": 1})
    assert "FunctionError" not in response, tail(response)
    assert result == {"uid": 993, "event": {"k": 1}}


def test_layers_are_under_opt(deploy: Deploy, lambda_client: Any) -> None:
    first = lambda_client.publish_layer_version(
        LayerName="ns-base",
        Content={"ZipFile": make_zip({"data.txt": "base", "python/shared.py": "WHO = 'base'\n"})},
    )
    second = lambda_client.publish_layer_version(
        LayerName="ns-over", Content={"ZipFile": make_zip({"data.txt": "override"})}
    )
    source = """
import shared
def handler(event, context):
    return {"data": open("/opt/data.txt").read(), "who": shared.WHO,
            "module": shared.__file__}
"""
    name = deploy(source, Layers=[first["LayerVersionArn"], second["LayerVersionArn"]])[
        "FunctionName"
    ]
    result, response = invoke(lambda_client, name)
    assert "FunctionError" not in response, tail(response)
    assert result == {"data": "override", "who": "base", "module": "/opt/python/shared.py"}


def direct_spec(tmp_path: Path, source: str) -> SandboxSpec:
    """A sandbox spec for a Python function, without a node around it."""
    code_dir = tmp_path / "code"
    code_dir.mkdir(mode=0o700)  # as the blob store makes it: the sandbox must still read it
    (code_dir / "app.py").write_text(source)
    (tmp_path / "opt").mkdir()
    function = FunctionConfig(
        name="direct",
        runtime="python3.11",
        handler="app.handler",
        role=ROLE,
        code_sha256_hex="0" * 64,
        code_size_bytes=0,
        revision_id="r1",
        last_modified_ms=0,
    )
    return SandboxSpec(
        function=function,
        code_dir=code_dir,
        opt_dir=tmp_path / "opt",
        runtimes=Settings().runtimes,
        region="us-east-1",
        scratch_root=tmp_path / "sandboxes",
        cache_dir=tmp_path / "cache",
    )


def test_sandbox_cgroups_live_and_die_with_the_sandbox(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, "def handler(event, context):\n    return event\n")
    backend = NamespacesBackend()
    parents = [controller.parent for controller in backend.isolation.cgroups.controllers.values()]
    assert {"memory", "pids"} <= set(backend.isolation.cgroups.controllers)

    async def lifecycle() -> tuple[bytes, list[bool], list[bool]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        name = f"{os.getpid()}-{sandbox.sandbox_id}"  # named after its node and itself
        during = [(parent / name).is_dir() for parent in parents]
        invocation = Invocation("req-1", b'{"a": 1}', "arn:direct", 2**62)
        result = await sandbox.invoke(invocation, 5000)
        await sandbox.stop()
        await sandbox.stop()  # twice is fine
        after = [(parent / name).exists() for parent in parents]
        return result.payload, during, after

    payload, during, after = asyncio.run(lifecycle())
    assert json.loads(payload) == {"a": 1}
    assert all(during) and not any(after)


def test_sandbox_limits_follow_its_memory_size(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, "def handler(event, context):\n    return event\n")
    spec = dataclasses.replace(spec, function=dataclasses.replace(spec.function, memory_mb=512))
    backend = NamespacesBackend()
    controllers = backend.isolation.cgroups.controllers
    assert {"memory", "pids", "cpu"} <= set(controllers)

    def read(name: str, controller: str, v1_file: str, v2_file: str) -> str | None:
        found = controllers[controller]
        path = found.parent / name / (v1_file if found.version == 1 else v2_file)
        return path.read_text().strip() if path.exists() else None

    async def limits() -> dict[str, str | None]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            name = f"{os.getpid()}-{sandbox.sandbox_id}"
            return {
                "memory": read(name, "memory", "memory.limit_in_bytes", "memory.max"),
                "swap": read(name, "memory", "memory.memsw.limit_in_bytes", "memory.swap.max"),
                "pids": read(name, "pids", "pids.max", "pids.max"),
                "cpu": read(name, "cpu", "cpu.cfs_quota_us", "cpu.max"),
                "period": read(name, "cpu", "cpu.cfs_period_us", "cpu.max"),
            }
        finally:
            await sandbox.stop()

    found = asyncio.run(limits())
    assert found["memory"] == str(512 * 1024 * 1024)
    if controllers["memory"].version == 1:  # memory and swap together, where accounted
        assert found["swap"] in (None, str(512 * 1024 * 1024))
        assert (found["cpu"], found["period"]) == ("28942", "100000")  # 512/1769 of a vCPU
    else:  # no swap at all
        assert found["swap"] in (None, "0")
        assert found["cpu"] == "28942 100000"
    assert found["pids"] == "256"


def test_without_user_namespaces_the_function_runs_as_the_host_id(tmp_path: Path) -> None:
    # User namespaces work on this host: the test turns them off in the backend's probe
    # result, as a kernel without them (or with them disabled) would report.
    spec = direct_spec(
        tmp_path, "import os\ndef handler(event, context):\n    return os.getuid()\n"
    )
    backend = NamespacesBackend()
    namespaces = {**backend.isolation.namespaces, "user": "turned off by this test"}
    backend.isolation = dataclasses.replace(backend.isolation, namespaces=namespaces)
    report = dict((name, (on, detail)) for name, on, detail in describe(backend.isolation))
    assert report["user namespace"] == (
        False,
        f"turned off by this test; runs as host uid {DEFAULT_HOST_ID} directly (no user namespace)",
    )

    async def run() -> bytes:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            invocation = Invocation("req-1", b"{}", "arn:direct", 2**62)
            return (await sandbox.invoke(invocation, 5000)).payload
        finally:
            await sandbox.stop()

    assert json.loads(asyncio.run(run())) == DEFAULT_HOST_ID


def test_cgroup_mounts_are_read_for_v1_and_v2() -> None:
    v1_host = (
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "38 31 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
        "40 31 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    )
    v1, v2 = cgroups.cgroup_mounts(v1_host)
    assert v1 == {
        "cpu": (Path("/sys/fs/cgroup/cpu,cpuacct"), "/"),
        "memory": (Path("/sys/fs/cgroup/memory"), "/"),
        "pids": (Path("/sys/fs/cgroup/pids"), "/"),
    }
    assert v2 == (Path("/sys/fs/cgroup/unified"), "/")
    v2_host = "29 23 0:26 /node /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroups.cgroup_mounts(v2_host) == ({}, (Path("/sys/fs/cgroup"), "/node"))
    own = cgroups.own_cgroups("4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/node/service\n")
    assert own == {"memory": "/process_api/x", "cpu": "/", "cpuacct": "/", "": "/node/service"}


def test_removing_a_cgroup_kills_what_is_left_in_it() -> None:
    system = cgroups.detect()
    name = f"test-{os.getpid()}"
    cgroup = cgroups.SandboxCgroup.create(system, name, memory_mb=64, pids_max=8)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_process(sleeper.pid)
        cgroup.remove()
        assert sleeper.wait(10) == -signal.SIGKILL
        assert not any((c.parent / name).exists() for c in system.controllers.values())
        # Nor is the lambdalet parent left behind, unless another sandbox is in it.
        for controller in system.controllers.values():
            parent = controller.parent
            assert not parent.exists() or any(e.is_dir() for e in parent.iterdir())
    finally:
        sleeper.kill()
        sleeper.wait()


def _cgroups_of_node(pid: int) -> list[Path]:
    """The sandbox cgroups a node of this pid made, in every hierarchy."""
    system = cgroups.detect()
    return [
        directory
        for controller in system.controllers.values()
        if controller.parent.is_dir()
        for directory in controller.parent.iterdir()
        if directory.name.startswith(f"{pid}-")
    ]


def test_sandboxes_of_a_killed_node_are_reaped_by_the_next(tmp_path: Path) -> None:
    from test_serve import free_port, serving, wait_until_healthy

    function_dir = tmp_path / "fn"
    function_dir.mkdir()
    (function_dir / "app.py").write_text("def handler(event, context):\n    return 1\n")
    manifest = {"name": "orphan", "handler": "app.handler", "runtime": "python3.11"}
    (function_dir / "lambdalet.json").write_text(json.dumps(manifest))
    port, log_path = free_port(), tmp_path / "serve.log"
    settings = {"LAMBDALET_SANDBOX_BACKEND": "namespaces", "LAMBDALET_POOL_SIZE": "0"}
    with serving(
        port, tmp_path / "data", log_path, "--deploy", str(function_dir), settings=settings
    ) as node:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(node, url, log_path)
        for _ in range(100):  # --deploy creates the function once the server listens
            response = httpx.post(f"{url}/2015-03-31/functions/orphan/invocations", content=b"{}")
            if response.status_code != 404:
                break
            time.sleep(0.1)
        assert response.status_code == 200, response.text
        time.sleep(0.3)  # idle: its sandbox is frozen (where there is a freezer)
        os.kill(node.pid, signal.SIGKILL)
        node.wait()
    left = _cgroups_of_node(node.pid)
    members = {int(pid) for d in left for pid in (d / "cgroup.procs").read_text().split()}
    assert members, f"the killed node left no sandbox behind: {left}"

    NamespacesBackend()  # what a node starting next does first

    assert _cgroups_of_node(node.pid) == []
    # Dead: gone, or a zombie its new parent has not reaped yet. A killed task leaves its cgroup
    # a moment before it becomes a zombie, a moment that lasts on a slow kernel.
    deadline = time.monotonic() + 10
    while not all(process_ended(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in members if not process_ended(pid)]
    assert not alive, f"sandbox processes still running: {alive}"
