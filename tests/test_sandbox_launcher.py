"""The namespaces sandbox's launcher and init (``runtime/isolate.py``): once the sandbox is
set up the launcher is a shell holding the init as its child, and the init the native program
of ``runtime/init.c`` (a Python process without a C compiler), and the host still sees the
runtime's end as its own: the same exit status or signal, on every path (runtime exits, init
killed, setup failure, timeout, stop)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import marshal
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_sandbox_namespaces import direct_spec

from lambdalet.models import Invocation
from lambdalet.runtime import isolate
from lambdalet.sandbox import native_init
from lambdalet.sandbox.namespaces import NamespacesBackend, launcher_command, probe_namespaces

if os.geteuid() != 0 or probe_namespaces().get("pid"):
    pytest.skip("the namespaces backend needs root and pid namespaces", allow_module_level=True)
if native_init.program() is None:
    pytest.skip("no C compiler to build the native init", allow_module_level=True)

HELLO = "def handler(event, context):\n    return event\n"
ENDS = """
import os, signal, time

def handler(event, context):
    if event["how"] == "exit":
        os._exit(event["value"])
    if event["how"] == "signal":
        os.kill(os.getpid(), event["value"])
    time.sleep(event["value"])
    return "slept"
"""
SHELL = os.path.realpath(isolate.SHELL)


def make_backend(user_namespace: bool) -> NamespacesBackend:
    """A backend, with its user namespace turned off if asked (as a kernel without them)."""
    backend = NamespacesBackend(freeze_idle=False)
    if not user_namespace:
        namespaces = {**backend.isolation.namespaces, "user": "turned off by this test"}
        backend.isolation = dataclasses.replace(backend.isolation, namespaces=namespaces)
    return backend


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listed:
        return [int(child) for child in listed.read().split()]


def program(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().split(b"\0")[0]


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError(f"no Pss for {pid}")


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("user_namespace", [True, False], ids=["user-ns", "no-user-ns"])
def test_an_idle_sandbox_launcher_is_a_shell_and_stop_ends_all(
    tmp_path: Path, user_namespace: bool
) -> None:
    spec = direct_spec(tmp_path, HELLO)
    backend = make_backend(user_namespace)

    async def run() -> tuple[bytes, dict[str, Any], list[int]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            result = await sandbox.invoke(Invocation("r1", b'{"a": 1}', "arn:direct", 2**62), 5000)
            assert sandbox._process is not None
            launcher = sandbox._process.pid
            [init] = children(launcher)
            runtime = children(init)[0]
            # The init execs its native program once it has forked the runtime: maybe only
            # after the invocation, on a busy machine.
            for _ in range(1000):  # 10 s at most
                if program(init) == b"lambdalet-init":
                    break
                await asyncio.sleep(0.01)
            seen = {
                "launcher_exe": os.readlink(f"/proc/{launcher}/exe"),
                "launcher_pss_kb": pss_kb(launcher),
                "init_cmdline": program(init),
                "init_pss_kb": pss_kb(init),
            }
            # A second invocation, after the launcher became a shell.
            again = await sandbox.invoke(Invocation("r2", b'{"b": 2}', "arn:direct", 2**62), 5000)
            assert json.loads(again.payload) == {"b": 2}
        finally:
            await sandbox.stop()
        return result.payload, seen, [launcher, init, runtime]

    payload, seen, pids = asyncio.run(run())
    assert json.loads(payload) == {"a": 1}
    assert seen["launcher_exe"] == SHELL
    assert seen["launcher_pss_kb"] < 1024, seen
    assert seen["init_cmdline"] == b"lambdalet-init"
    assert seen["init_pss_kb"] < 512, seen
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(
    ("event", "returncode", "detail"),
    [
        ({"how": "exit", "value": 0}, 0, "exit status 0"),
        ({"how": "exit", "value": 3}, 3, "exit status 3"),
        ({"how": "signal", "value": signal.SIGSEGV}, -signal.SIGSEGV, "signal: segmentation fault"),
        ({"how": "signal", "value": signal.SIGTERM}, -signal.SIGTERM, "signal: terminated"),
        ({"how": "signal", "value": signal.SIGKILL}, -signal.SIGKILL, "signal: killed"),
    ],
    ids=["exit-0", "exit-3", "sigsegv", "sigterm", "sigkill"],
)
def test_the_runtime_end_is_the_sandbox_end(
    tmp_path: Path, event: dict[str, Any], returncode: int, detail: str
) -> None:
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> tuple[str, int | None]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            invocation = Invocation("r1", json.dumps(event).encode(), "arn:direct", 2**62)
            result = await sandbox.invoke(invocation, 5000)
            assert sandbox._process is not None
            return json.loads(result.payload)["errorMessage"], sandbox._process.returncode
        finally:
            await sandbox.stop()

    message, code = asyncio.run(run())
    assert message.endswith(f"Runtime exited with error: {detail}")
    assert code == returncode


def test_a_killed_init_ends_the_sandbox_as_killed(tmp_path: Path) -> None:
    # Only SIGKILL reaches the init from outside: pid 1 gets only the signals it handles.
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> tuple[str, int | None, list[int]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            assert sandbox._process is not None
            launcher = sandbox._process.pid
            [init] = children(launcher)
            runtime = children(init)[0]
            os.kill(init, signal.SIGTERM)  # dropped: the init has no handler for it
            payload = json.dumps({"how": "sleep", "value": 0.2}).encode()
            slept = await sandbox.invoke(Invocation("r1", payload, "arn:direct", 2**62), 5000)
            assert json.loads(slept.payload) == "slept"
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, os.kill, init, signal.SIGKILL)
            payload = json.dumps({"how": "sleep", "value": 30}).encode()
            result = await sandbox.invoke(Invocation("r2", payload, "arn:direct", 2**62), 10_000)
            return (
                json.loads(result.payload)["errorMessage"],
                sandbox._process.returncode,
                [
                    launcher,
                    init,
                    runtime,
                ],
            )
        finally:
            await sandbox.stop()

    message, code, pids = asyncio.run(run())
    assert message.endswith("Runtime exited with error: signal: killed")
    assert code == -signal.SIGKILL
    assert not any(alive(pid) for pid in pids)


def test_the_init_dies_with_the_launcher_after_its_exec(tmp_path: Path) -> None:
    # The init's parent-death signal is still armed: exec did not count as the parent's death.
    spec = direct_spec(tmp_path, HELLO)
    backend = make_backend(True)

    async def run() -> tuple[list[int], list[bool]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            await sandbox.invoke(Invocation("r1", b"{}", "arn:direct", 2**62), 5000)
            assert sandbox._process is not None
            launcher = sandbox._process.pid
            [init] = children(launcher)
            runtime = children(init)[0]
            before = [alive(init), alive(runtime)]
            os.kill(launcher, signal.SIGKILL)  # the launcher alone, not its process group
            for _ in range(100):
                if not alive(init) and not alive(runtime):
                    break
                await asyncio.sleep(0.02)
            return [launcher, init, runtime], before
        finally:
            await sandbox.stop()

    pids, before = asyncio.run(run())
    assert before == [True, True]
    assert not any(alive(pid) for pid in pids)


def test_a_timeout_kills_the_whole_sandbox(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> tuple[str, list[int]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        assert sandbox._process is not None
        launcher = sandbox._process.pid
        [init] = children(launcher)
        runtime = children(init)[0]
        payload = json.dumps({"how": "sleep", "value": 30}).encode()
        result = await sandbox.invoke(Invocation("r1", payload, "arn:direct", 2**62), 500)
        await sandbox.stop()
        return json.loads(result.payload)["errorMessage"], [launcher, init, runtime]

    message, pids = asyncio.run(run())
    assert "Task timed out after 0.50 seconds" in message
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize("user_namespace", [True, False], ids=["user-ns", "no-user-ns"])
def test_a_setup_failure_ends_the_launcher_with_125(tmp_path: Path, user_namespace: bool) -> None:
    # Without a user namespace the launcher is a shell before the init builds the root: the
    # init reports its own failure.
    root = tmp_path / "root"
    root.mkdir()
    plan = {
        "root": str(root),
        "steps": [["no-such-step", "", "/x", ""]],
        "hostname": "localhost",
        "namespaces": {"user": user_namespace},
        "uid": 993,
        "gid": 990,
        "host_uid": 100_993,
        "host_gid": 100_993,
    }
    plan_read, plan_write = os.pipe()
    try:
        process = subprocess.Popen(
            launcher_command(str(plan_read)),
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={},
            pass_fds=(plan_read,),
        )
    finally:
        os.close(plan_read)
    with os.fdopen(plan_write, "wb") as plan_pipe:
        plan_pipe.write(marshal.dumps(plan))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == isolate.SETUP_FAILED
    assert b"sandbox setup failed: unknown step 'no-such-step'" in stderr


def test_without_a_compiler_the_init_stays_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no cc, gcc or clang on it
    native_init.program.cache_clear()
    try:
        assert native_init.program() is None
        spec = direct_spec(tmp_path, ENDS)
        backend = make_backend(True)

        async def run() -> tuple[bytes, str, int | None]:
            sandbox = backend.create(spec)
            await sandbox.start()
            try:
                assert sandbox._process is not None
                [init] = children(sandbox._process.pid)
                init_program = program(init)
                payload = json.dumps({"how": "signal", "value": signal.SIGABRT}).encode()
                result = await sandbox.invoke(Invocation("r1", payload, "arn:direct", 2**62), 5000)
                message = json.loads(result.payload)["errorMessage"]
                return init_program, message, sandbox._process.returncode
            finally:
                await sandbox.stop()

        init_program, message, code = asyncio.run(run())
    finally:
        native_init.program.cache_clear()
    assert b"python" in init_program
    assert message.endswith("Runtime exited with error: signal: aborted")
    assert code == -signal.SIGABRT


def test_an_init_program_that_cannot_run_leaves_a_python_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a kernel that refuses to exec a memfd would: the sandbox works, its init unshrunk.
    monkeypatch.setattr(native_init, "program", lambda: b"not an executable")
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> tuple[bytes, str, list[str]]:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            assert sandbox._process is not None
            [init] = children(sandbox._process.pid)
            init_program = program(init)
            payload = json.dumps({"how": "exit", "value": 7}).encode()
            result = await sandbox.invoke(Invocation("r1", payload, "arn:direct", 2**62), 5000)
            return init_program, json.loads(result.payload)["errorMessage"], result.log_lines
        finally:
            await sandbox.stop()

    init_program, message, lines = asyncio.run(run())
    assert b"python" in init_program
    assert message.endswith("Runtime exited with error: exit status 7")
    assert any("sandbox init stays a Python process: [Errno 8]" in line for line in lines), lines


def test_the_native_init_is_checked_to_run_from_a_memfd() -> None:
    executable = native_init.program()
    assert executable is not None and executable.startswith(b"\x7fELF")
    assert native_init.run_from_memfd(executable) == native_init.USAGE_STATUS
    with pytest.raises(OSError):
        native_init.run_from_memfd(b"not an executable")
