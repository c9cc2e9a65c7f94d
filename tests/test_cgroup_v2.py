"""The sandboxes' cgroup v2 limits, on a kernel whose only cgroup hierarchy is v2.

A controller serves one hierarchy at a time, and hosts like this one bind memory, pids and cpu
to cgroup v1: there the sandboxes get v1 limits, and the v2 paths (``memory.max`` and
``memory.swap.max``, ``pids.max``, ``cpu.max``, controllers handed down through
``cgroup.subtree_control``, ``cgroup.freeze``, ``memory.peak``) would go untried. So this
module boots User-Mode Linux (Debian's ``user-mode-linux``: a Linux kernel run as a process,
no virtual machine needed) with only a cgroup2 hierarchy mounted, and runs the tests of the
sandboxes' limits inside it, with pytest, as they run on the host.

Harmless by construction: the guest's root file system is the host's, mounted read-only
(hostfs); it writes only to tmpfs of its own and to this module's scratch directory; its
memory is the ``mem=`` it boots with, and its processes are host processes of the kernel's
own process group, all killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UML = shutil.which("linux.uml")
GUEST_MEMORY_MB = 2048  # 3/4 of it is the node's budget: a 1,024 MB function fits
BOOT_TIMEOUT_S = 900
# The tests of limits, freezing and cgroup clean-up, run again inside the guest.
INNER_TESTS = [
    "tests/test_sandbox_namespaces.py::test_hello_runs_unprivileged_and_stays_warm",
    "tests/test_sandbox_namespaces.py::test_sandbox_limits_follow_its_memory_size",
    "tests/test_sandbox_namespaces.py::test_memory_hog_is_killed_alone",
    "tests/test_sandbox_namespaces.py::test_fork_bomb_is_contained_by_pids_max",
    "tests/test_sandbox_namespaces.py::test_cpu_is_held_to_the_share_of_a_vcpu_its_memory_buys",
    "tests/test_sandbox_namespaces.py::test_sandbox_cgroups_live_and_die_with_the_sandbox",
    "tests/test_sandbox_namespaces.py::test_removing_a_cgroup_kills_what_is_left_in_it",
    "tests/test_sandbox_namespaces.py::test_sandboxes_of_a_killed_node_are_reaped_by_the_next",
    "tests/test_sandbox_hostile.py::test_idle_sandbox_is_frozen_and_thawed_for_the_next_invoke",
    "tests/test_sandbox_hostile.py::test_cgroup_v2_freezer_freezes_and_thaws",
    "tests/test_snapshot.py::test_each_instance_is_born_in_a_cgroup_of_its_own",
    "tests/test_sandbox_pool.py::test_a_pooled_sandbox_gets_its_functions_memory_limit",
]

if UML is None:
    pytest.skip("no User-Mode Linux (apt-get install user-mode-linux)", allow_module_level=True)

# PID 1 of the guest. The host's /tmp stays visible (the scratch directory, maybe this
# checkout) and read-only: the guest's own temporary files go to a tmpfs on /run.
INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o size=512m tmpfs /run
mkdir -p /run/tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t hostfs -o {scratch} hostfs /mnt
ip link set lo up
cd {root}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/run/tmp TMPDIR=/run/tmp PYTHONDONTWRITEBYTECODE=1
{python} -c {detect} > /mnt/detect.json 2> /mnt/detect.err
{python} -m pytest -p no:cacheprovider -p no:xdist -q --junitxml=/mnt/junit.xml \\
    {tests} > /mnt/pytest.log 2>&1
echo o > /proc/sysrq-trigger
"""
DETECT = (
    "import dataclasses, json; from lambdalet.sandbox import cgroups; s = cgroups.detect(); "
    "print(json.dumps({'versions': {n: c.version for n, c in s.controllers.items()}, "
    "'missing': s.missing, 'limits_swap': s.limits_swap, 'reports_peak': s.reports_peak}))"
)


def _memory_file_env(scratch: Path) -> dict[str, str]:
    """The kernel backs the guest's memory with a file in /dev/shm; where that is too small (a
    container's 64 MB), in the scratch directory instead (TMPDIR)."""
    try:
        found = os.statvfs("/dev/shm")
        free_mb = found.f_bavail * found.f_frsize // (1024 * 1024)
    except OSError:
        free_mb = 0
    return {} if free_mb > 2 * GUEST_MEMORY_MB else {"TMPDIR": str(scratch)}


@dataclass
class Guest:
    """What the guest reported: how it saw its cgroups, and each inner test's outcome."""

    detected: dict[str, object]
    outcomes: dict[str, str]  # test id → passed, failed, error or skipped (with its message)
    log: str


def _outcomes(junit: Path) -> dict[str, str]:
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[test_id] = f"{found[0].tag}: {found[0].get('message', '')}" if found else "passed"
    return outcomes


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    """Boot the guest once, run the inner tests in it, and read what it wrote."""
    scratch = tmp_path_factory.mktemp("uml")
    init = scratch / "init.sh"
    init.write_text(
        INIT.format(
            scratch=shlex.quote(str(scratch)),
            root=shlex.quote(str(ROOT)),
            python=shlex.quote(sys.executable),
            detect=shlex.quote(DETECT),
            tests=" ".join(INNER_TESTS),
        )
    )
    init.chmod(0o755)
    command = [
        str(UML),
        f"mem={GUEST_MEMORY_MB}M",
        "rootfstype=hostfs",
        "rootflags=/",
        "ro",
        f"init={init}",
        "con=null",
        "con0=null,fd:1",
        f"uml_dir={scratch}",
        f"umid=lambdalet-{os.getpid()}",
    ]
    with (scratch / "console.log").open("wb") as console:
        kernel = subprocess.Popen(
            command,
            env=os.environ | _memory_file_env(scratch),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
        )
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                kernel.wait(BOOT_TIMEOUT_S)
        finally:
            # The kernel and every process of the guest, still there or not.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kernel.pid, signal.SIGKILL)
            kernel.wait()
    log = (scratch / "pytest.log").read_text() if (scratch / "pytest.log").exists() else ""
    console_tail = (scratch / "console.log").read_text(errors="replace")[-3000:]
    junit = scratch / "junit.xml"
    assert junit.exists(), f"the guest ran no tests\n{log}\n--- console ---\n{console_tail}"
    detected = json.loads((scratch / "detect.json").read_text() or "{}")
    return Guest(detected, _outcomes(junit), log)


def test_the_guest_has_only_cgroup_v2_with_every_controller(guest: Guest) -> None:
    assert guest.detected["versions"] == {"memory": 2, "pids": 2, "cpu": 2, "freezer": 2}
    assert guest.detected["missing"] == {}
    assert guest.detected["limits_swap"] is True
    assert guest.detected["reports_peak"] is True


@pytest.mark.parametrize("test_id", INNER_TESTS)
def test_passes_on_cgroup_v2(guest: Guest, test_id: str) -> None:
    outcome = guest.outcomes.get(test_id, "not run")
    assert outcome == "passed", f"{test_id} on cgroup v2: {outcome}\n{guest.log[-6000:]}"
