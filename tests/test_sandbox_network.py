"""``network: none`` (the ``lambdalet:network`` tag) and the ``auto`` sandbox backend.

A function tagged ``lambdalet:network`` = ``none`` runs in an empty network namespace: it
cannot reach a listener this test opens on the host's loopback, while an untagged function
can. Runtimes that speak HTTP to the Runtime API still reach it through the relay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import boto_client
from test_sandbox_namespaces import direct_spec

from lambdalet.config import Settings
from lambdalet.sandbox import auto_choice, make_backend
from lambdalet.sandbox.base import SandboxInitError
from lambdalet.sandbox.namespaces import (
    NamespacesBackend,
    describe,
    detect_isolation,
    probe_namespaces,
    why_not_namespaces,
)
from lambdalet.sandbox.network import TAG, wants_no_network
from lambdalet.sandbox.process import ProcessBackend
from lambdalet.testing import Deploy, ServerThread, tail


def _why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the namespaces backend needs root (mounts, cgroups, id maps)"
    found = probe_namespaces()
    for name in ("user", "network"):
        if found.get(name):
            return f"{name} namespaces are unavailable here: {found[name]}"
    return None


if (_REASON := _why_unavailable()) is not None:
    pytest.skip(_REASON, allow_module_level=True)

NO_NETWORK = {TAG: "none"}

CONNECT = """
import errno, os, socket

def handler(event, context):
    try:
        with socket.create_connection(("127.0.0.1", event["port"]), timeout=2) as connection:
            connection.sendall(b"hello from the sandbox")
        outcome = "connected"
    except OSError as error:
        outcome = errno.errorcode.get(error.errno, str(error))
    with open("/proc/net/dev") as devices:
        interfaces = sorted(line.split(":")[0].strip() for line in devices.readlines()[2:])
    return {"outcome": outcome, "interfaces": interfaces}
"""

# A custom runtime's bootstrap: a script of the system's Python (its /usr is in the sandbox's
# root) speaking HTTP to AWS_LAMBDA_RUNTIME_API.
SYSTEM_PYTHON = "/usr/bin/python3"
BOOTSTRAP = f"""#!{SYSTEM_PYTHON} -I
import json, os, socket, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation"

def reach(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as error:
        return type(error).__name__

def processes():
    found = []
    for pid in sorted(int(name) for name in os.listdir("/proc") if name.isdigit()):
        status = dict(line.split(":", 1) for line in open(f"/proc/{{pid}}/status"))
        found.append([pid, *(status[key].split()[0] for key in ("Seccomp", "NoNewPrivs"))])
    return found

while True:
    with urllib.request.urlopen(API + "/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    body = json.dumps({{
        "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "outcome": reach(event["port"]),
        "event": event,
        "processes": processes(),
    }}).encode()
    urllib.request.urlopen(urllib.request.Request(API + "/" + request_id + "/response", body))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node of its own whose sandboxes are namespaces sandboxes."""
    data_dir = tmp_path_factory.mktemp("lambdalet-network")
    with ServerThread(sandbox_backend="namespaces", data_dir=data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node (``deploy`` uses it)."""
    return boto_client(server.url)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on the host's loopback, on a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        listening.settimeout(0.5)
        yield listening


def accepted(listening: socket.socket) -> bytes | None:
    """What a connection to the listener sent, or None if none came."""
    try:
        connection, _ = listening.accept()
    except TimeoutError:
        return None
    with connection:
        connection.settimeout(2)
        return connection.recv(1024)


def invoke(client: Any, name: str, payload: Any) -> Any:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload), LogType="Tail")
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, (result, tail(response))
    return result


def test_function_with_no_network_cannot_reach_the_host(
    deploy: Deploy, lambda_client: Any, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    name = deploy(CONNECT, Tags=NO_NETWORK)["FunctionName"]
    result = invoke(lambda_client, name, {"port": port})
    assert result == {"outcome": "ECONNREFUSED", "interfaces": ["lo"]}
    assert accepted(listener) is None
    # Warm (thawed) again, still without network.
    assert invoke(lambda_client, name, {"port": port})["outcome"] == "ECONNREFUSED"
    assert accepted(listener) is None


def test_function_with_the_default_network_reaches_the_host(
    deploy: Deploy, lambda_client: Any, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    name = deploy(CONNECT, Tags={TAG: "host"})["FunctionName"]
    result = invoke(lambda_client, name, {"port": port})
    assert result["outcome"] == "connected"
    assert len(result["interfaces"]) >= 1
    assert accepted(listener) == b"hello from the sandbox"


def test_tagging_a_warm_function_no_network_cuts_its_next_sandbox_off(
    deploy: Deploy, lambda_client: Any, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    created = deploy(CONNECT)
    assert invoke(lambda_client, created["FunctionName"], {"port": port})["outcome"] == "connected"
    assert accepted(listener) == b"hello from the sandbox"
    lambda_client.tag_resource(Resource=created["FunctionArn"], Tags=NO_NETWORK)
    result = invoke(lambda_client, created["FunctionName"], {"port": port})
    assert result == {"outcome": "ECONNREFUSED", "interfaces": ["lo"]}
    assert accepted(listener) is None


def test_custom_runtime_with_no_network_reaches_the_runtime_api_through_the_relay(
    deploy: Deploy, lambda_client: Any, listener: socket.socket
) -> None:
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is not installed")
    port = listener.getsockname()[1]
    name = deploy(
        files={"bootstrap": BOOTSTRAP},
        handler="unused",
        runtime="provided.al2023",
        modes={"bootstrap": 0o100755},
        Tags=NO_NETWORK,
    )["FunctionName"]
    for number in range(3):  # a long poll and a response per invocation, through the relay
        result = invoke(lambda_client, name, {"port": port, "n": number})
        # The init (pid 1), the relay and the runtime: both under the filter, no new privileges.
        init, *others = result.pop("processes")
        assert init == [1, "0", "1"]
        assert sorted(seccomp for _, seccomp, _ in others) == ["2", "2"], others
        assert {no_new_privs for _, _, no_new_privs in others} == {"1"}
        assert result == {
            "api": "127.0.0.1:9001",
            "outcome": "ConnectionRefusedError",
            "event": {"port": port, "n": number},
        }
    assert accepted(listener) is None


def test_node_function_with_no_network_runs(
    deploy: Deploy, lambda_client: Any, listener: socket.socket
) -> None:
    if not os.path.exists("/usr/bin/node"):
        pytest.skip("node is not installed")
    source = """
const net = require('net');
exports.handler = async (event) => {
  const outcome = await new Promise((resolve) => {
    const connection = net.connect(event.port, '127.0.0.1', () => {
      connection.end('hello from node');
      resolve('connected');
    });
    connection.on('error', (error) => resolve(error.code));
  });
  return {outcome, api: process.env.AWS_LAMBDA_RUNTIME_API};
};
"""
    port = listener.getsockname()[1]
    name = deploy(
        files={"index.js": source}, handler="index.handler", runtime="nodejs20.x", Tags=NO_NETWORK
    )["FunctionName"]
    result = invoke(lambda_client, name, {"port": port})
    assert result == {"outcome": "ECONNREFUSED", "api": "127.0.0.1:9001"}
    assert accepted(listener) is None


def test_the_tag_is_read_case_insensitively(deploy: Deploy, lambda_client: Any) -> None:
    created = deploy(CONNECT, Tags={TAG: " None "})
    assert lambda_client.get_function(FunctionName=created["FunctionName"])["Tags"][TAG]
    config = lambda_client.get_function(FunctionName=created["FunctionName"])
    assert config["Tags"] == {TAG: " None "}
    result = invoke(lambda_client, created["FunctionName"], {"port": 9})
    assert result["interfaces"] == ["lo"]


def test_isolation_report_lists_network_seccomp_and_freezer() -> None:
    isolation = detect_isolation()
    report = {name: (on, detail) for name, on, detail in describe(isolation)}
    assert report["network namespace"][0] is True
    assert TAG in report["network namespace"][1]
    assert report["seccomp"][0] is True
    freezer = "freezer" in isolation.cgroups.controllers
    assert report["cgroup freezer"][0] is freezer
    off = describe(
        type(isolation)(
            isolation.is_root,
            {**isolation.namespaces, "network": "turned off by this test"},
            isolation.cgroups,
            "turned off by this test",
        )
    )
    report = {name: (on, detail) for name, on, detail in off}
    assert report["network namespace"][0] is False
    assert "turned off by this test" in report["network namespace"][1]
    assert report["seccomp"] == (
        False,
        "turned off by this test: runtimes run with no system call filter",
    )


def test_auto_backend_is_namespaces_here_and_process_without_root() -> None:
    isolation = detect_isolation()
    assert why_not_namespaces(isolation) == ""
    assert auto_choice() == ("namespaces", "the host allows full isolation")
    backend = make_backend("auto", freeze_idle=False)
    assert isinstance(backend, NamespacesBackend) and backend.freeze_idle is False
    assert Settings().sandbox_backend == "auto"
    not_root = type(isolation)(False, isolation.namespaces, isolation.cgroups)
    assert why_not_namespaces(not_root) == "lambdalet does not run as root"
    no_user = type(isolation)(True, {**isolation.namespaces, "user": "disabled"}, isolation.cgroups)
    assert why_not_namespaces(no_user) == "no user namespace: disabled"
    assert isinstance(make_backend("process"), ProcessBackend)
    with pytest.raises(ValueError, match="unknown sandbox backend 'jail'"):
        make_backend("jail")


def test_wants_no_network_reads_the_tag() -> None:
    from lambdalet.models import FunctionConfig

    def function(tags: dict[str, str]) -> FunctionConfig:
        return FunctionConfig(
            name="f",
            runtime="python3.11",
            handler="app.handler",
            role="arn:aws:iam::000000000000:role/r",
            code_sha256_hex="0" * 64,
            code_size_bytes=0,
            revision_id="r1",
            last_modified_ms=0,
            tags=tags,
        )

    assert wants_no_network(function({TAG: "none"}))
    assert wants_no_network(function({TAG: "NONE"}))
    assert not wants_no_network(function({TAG: "host"}))
    assert not wants_no_network(function({}))


def test_without_network_namespaces_such_a_function_fails_to_start(tmp_path: Path) -> None:
    # Network namespaces work on this host: the test turns them off in the probe result.
    spec = direct_spec(tmp_path, "def handler(event, context):\n    return 1\n")
    spec = dataclasses.replace(
        spec, function=dataclasses.replace(spec.function, tags=dict(NO_NETWORK))
    )
    backend = NamespacesBackend(freeze_idle=False)
    namespaces = {**backend.isolation.namespaces, "network": "turned off by this test"}
    backend.isolation = dataclasses.replace(backend.isolation, namespaces=namespaces)

    async def start() -> SandboxInitError:
        sandbox = backend.create(spec)
        with pytest.raises(SandboxInitError) as caught:
            await sandbox.start()
        await sandbox.stop()
        return caught.value

    error = asyncio.run(start())
    assert error.error_type == "Runtime.Unknown"
    assert json.loads(error.payload)["errorMessage"] == (
        "RequestId: Error: lambdalet:network=none: no network namespaces on this host"
    )
