"""Blank sandboxes forked from a runtime's blank zygote (``sandbox/blank_zygote.py``): their
runtime is as isolated as one started from scratch (same user, capabilities, filter,
namespaces, mounts, limits; nothing of the zygote's or the init's open), the host sees the
runtime's end as it would a started one's, and a zygote ends only with its last fork."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from test_sandbox_launcher import ENDS, alive, make_backend
from test_sandbox_namespaces import direct_spec

from lambdalet.models import Invocation
from lambdalet.sandbox import blank_zygote
from lambdalet.sandbox.base import SandboxSpec
from lambdalet.sandbox.blank_zygote import BlankZygote
from lambdalet.sandbox.namespaces import NamespacesBackend, probe_namespaces
from lambdalet.sandbox.pool import PooledSandbox, SandboxPool, _RuntimePool

if os.geteuid() != 0 or probe_namespaces().get("user"):
    pytest.skip("the namespaces backend needs root and user namespaces", allow_module_level=True)

RUNTIME = "python3.11"

# What a runtime can learn of its own isolation; fds are listed by number of what they are.
LOOK = r"""
import os, resource, sys

def handler(event, context):
    status = dict(
        line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines()
        if ":\t" in line
    )
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
        except OSError:
            pass
    return {
        "status": {key: status.get(key) for key in (
            "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
            "NoNewPrivs", "Seccomp", "SigIgn", "Umask")},
        "namespaces": {name: os.readlink(f"/proc/self/ns/{name}") for name in
                       ("mnt", "pid", "ipc", "uts", "user", "cgroup")},
        "fds": sorted(fds.values()),
        "rlimits": {name: resource.getrlimit(getattr(resource, name))
                    for name in ("RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC")},
        "mounts": sorted(line.split()[4] for line in open("/proc/self/mountinfo")),
        "cgroups": open("/proc/self/cgroup").read().count("\n"),
        "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "path": sys.path,
        "flags": repr(sys.flags),
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "cmdline": open("/proc/self/cmdline", "rb").read().rstrip(b"\0").decode(),
        "environ": sorted(os.environ),
        "dumpable": open("/proc/self/status").read().count("\n"),
    }
"""


def new_pool(backend: NamespacesBackend, spec: SandboxSpec, *, zygote: bool) -> SandboxPool:
    pool = SandboxPool(
        backend,
        size=1,
        runtimes=spec.runtimes,
        region=spec.region,
        scratch_root=spec.scratch_root,
        cache_dir=spec.cache_dir,
    )
    if not zygote:  # as on a host where the zygote cannot start
        pool._pools[RUNTIME] = _RuntimePool(zygote_failed=True)
    return pool


async def look(backend: NamespacesBackend, spec: SandboxSpec, *, zygote: bool) -> dict[str, Any]:
    """What a pooled runtime, forked from the zygote or started, sees of itself."""
    pool = new_pool(backend, spec, zygote=zygote)
    try:
        assert await pool.wait_filled(RUNTIME, timeout_s=60)
        sandbox = await pool.acquire(spec)
        assert isinstance(sandbox, PooledSandbox)
        assert (sandbox._init is not None) == zygote
        try:
            result = await sandbox.invoke(Invocation("r1", b"{}", "arn:direct", 2**62), 10_000)
            seen: dict[str, Any] = json.loads(result.payload)
            return seen
        finally:
            await sandbox.stop()
    finally:
        await pool.stop()


def test_a_forked_runtime_is_isolated_as_a_started_one(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, LOOK)
    backend = make_backend(True)

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        return await look(backend, spec, zygote=False), await look(backend, spec, zygote=True)

    started, forked = asyncio.run(both())
    # A process keeps its capabilities in a user namespace its parent made, across setresuid,
    # where exec would drop them: the forked runtime must have none either.
    assert forked["status"]["CapEff"] == forked["status"]["CapPrm"] == "0000000000000000"
    assert forked["status"]["NoNewPrivs"] == "1" and forked["status"]["Seccomp"] == "2"
    assert forked["status"]["Uid"].split() == ["993"] * 4
    for key in ("status", "rlimits", "mounts", "cgroups", "processes", "path", "flags"):
        assert forked[key] == started[key], key
    for key in ("argv", "cwd", "environ", "cmdline"):
        assert forked[key] == started[key], key
    # Namespaces of its own, not the host's (the started sandbox's are gone: their numbers
    # may have been given again).
    for name, link in forked["namespaces"].items():
        assert link != os.readlink(f"/proc/self/ns/{name}"), name
    # Nothing open but its output, stdin and channel (an exec closes the rest; so must it).
    assert forked["fds"] == started["fds"], forked["fds"]


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ({"how": "exit", "value": 3}, "exit status 3"),
        ({"how": "signal", "value": signal.SIGSEGV}, "signal: segmentation fault"),
        ({"how": "signal", "value": signal.SIGKILL}, "signal: killed"),
    ],
    ids=["exit-3", "sigsegv", "sigkill"],
)
def test_a_forked_runtimes_end_is_the_sandboxs_end(
    tmp_path: Path, event: dict[str, Any], detail: str
) -> None:
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> str:
        pool = new_pool(backend, spec, zygote=True)
        try:
            assert await pool.wait_filled(RUNTIME, timeout_s=60)
            sandbox = await pool.acquire(spec)
            assert isinstance(sandbox, PooledSandbox) and sandbox._init is not None
            try:
                invocation = Invocation("r1", json.dumps(event).encode(), "arn:direct", 2**62)
                result = await sandbox.invoke(invocation, 5000)
                assert result.sandbox_died
                message: str = json.loads(result.payload)["errorMessage"]
                return message
            finally:
                await sandbox.stop()
        finally:
            await pool.stop()

    assert asyncio.run(run()).endswith(f"Runtime exited with error: {detail}")


def test_a_retired_zygote_ends_with_its_last_fork(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, ENDS)
    backend = make_backend(True)

    async def run() -> tuple[bool, bool, bool]:
        pool = new_pool(backend, spec, zygote=True)
        assert await pool.wait_filled(RUNTIME, timeout_s=60)
        zygote = pool._pools[RUNTIME].zygote
        assert zygote is not None and zygote._process is not None
        sandbox = await pool.acquire(spec)
        assert isinstance(sandbox, PooledSandbox)
        await pool.stop()  # stops the blank one, retires the zygote: this one is still bound
        process = zygote._process
        alive_while_bound = alive(process.pid) and sandbox.state.value == "ready"
        payload = json.dumps({"how": "sleep", "value": 0}).encode()
        served = await sandbox.invoke(Invocation("r1", payload, "arn:direct", 2**62), 5000)
        await sandbox.stop()
        for _ in range(200):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.01)
        return alive_while_bound, json.loads(served.payload) == "slept", process.poll() == 0

    alive_while_bound, served, ended = asyncio.run(run())
    assert alive_while_bound and served and ended


def test_a_zygote_that_cannot_start_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(OSError, match="did not start"):
        BlankZygote(str(fake), {"PATH": "/usr/bin:/bin"}).start()


def test_without_a_zygote_blank_sandboxes_are_started(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, LOOK)
    fake = tmp_path / "python-without-zygote"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    backend = make_backend(True)

    async def run() -> tuple[bool, bool]:
        pool = new_pool(backend, spec, zygote=True)
        # The zygote runs this runtime's interpreter: one that cannot start leaves the pool
        # to blank sandboxes started the usual way (by the real interpreter, for the test).
        zygote_start = BlankZygote.start

        def failing(zygote: BlankZygote) -> None:
            zygote.python = str(fake)
            zygote_start(zygote)

        setattr(BlankZygote, "start", failing)  # noqa: B010  (mypy: no method assignment)
        try:
            assert await pool.wait_filled(RUNTIME, timeout_s=60)
        finally:
            setattr(BlankZygote, "start", zygote_start)  # noqa: B010
        runtime_pool = pool._pools[RUNTIME]
        sandbox = await pool.acquire(dataclasses.replace(spec))
        assert isinstance(sandbox, PooledSandbox)
        try:
            result = await sandbox.invoke(Invocation("r1", b"{}", "arn:direct", 2**62), 10_000)
            return runtime_pool.zygote_failed and sandbox._init is None, not result.function_error
        finally:
            await sandbox.stop()
            await pool.stop()

    assert asyncio.run(run()) == (True, True)


def test_no_zygote_where_a_sandbox_is_built_from_what_it_cannot_see() -> None:
    # A zygote hides the host's /opt where it has no /opt/lib (runtime/isolate.py).
    assert blank_zygote.why_not([Path("/tmp"), blank_zygote.ISOLATE_DIR]) == ""
    reason = blank_zygote.why_not([Path("/tmp"), Path("/opt/lambdalet/data")])
    if Path("/opt/lib").is_dir():
        assert reason == ""
    else:
        assert "/opt/lambdalet/data" in reason
