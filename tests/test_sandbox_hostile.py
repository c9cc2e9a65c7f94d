"""Hostile functions in namespaces sandboxes: the system call filter, the freezer.

Every hostile call is harmless even if isolation were broken: it traces only a child of its
own, mounts only on a scratch directory of its own, and calls reboot, kexec and the module
loader with arguments the kernel refuses anyway (a wrong magic number, /dev/null, an unknown
architecture). A broken sandbox fails a test, never the machine. After each, an innocent
function still runs. The filter itself is first checked in a forked child of this test,
where the kernel would otherwise answer differently (this test runs as root).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import mmap
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import boto_client
from test_sandbox_namespaces import HELLO, direct_spec

from lambdalet.models import Invocation
from lambdalet.runtime.isolate import PR_SET_NO_NEW_PRIVS, install_seccomp, prctl
from lambdalet.sandbox import cgroups, seccomp
from lambdalet.sandbox.namespaces import NamespacesBackend, probe_namespaces
from lambdalet.testing import Deploy, ServerThread, code_trees, tail


def _why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the namespaces backend needs root (mounts, cgroups, id maps)"
    reason = probe_namespaces().get("user")
    if reason:
        return f"user namespaces are unavailable here: {reason}"
    if not seccomp.supported():
        return f"no system call table for {os.uname().machine}"
    return None


if (_REASON := _why_unavailable()) is not None:
    pytest.skip(_REASON, allow_module_level=True)

MACHINE = os.uname().machine
NR = seccomp.SYSCALLS[MACHINE]
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17


def _errno_name(result: int) -> str:
    if result >= 0:
        return "ok"
    number = ctypes.get_errno()
    return errno.errorcode.get(number, str(number))


def _headers_table(path: Path, prefix: str) -> dict[str, int]:
    table: dict[str, int] = {}
    for match in re.finditer(rf"#define __NR{prefix}_(\w+)\s+(\d+)", path.read_text()):
        table.setdefault(match[1], int(match[2]))
    return table


@pytest.mark.parametrize(
    ("machine", "header", "prefix"),
    [
        ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", ""),
        ("aarch64", "/usr/include/asm-generic/unistd.h", "(?:3264)?"),
    ],
)
def test_syscall_numbers_match_the_kernel_headers(machine: str, header: str, prefix: str) -> None:
    if not os.path.exists(header):
        pytest.skip(f"{header} is not installed")
    table = _headers_table(Path(header), prefix)
    ours = seccomp.SYSCALLS[machine]
    listed = {name: number for name, number in ours.items() if name in table}
    assert listed == {name: table[name] for name in listed}
    # Only calls an architecture lacks are missing from its table.
    assert set(ours) - set(table) <= {"_sysctl", "create_module", "get_kernel_syms"}
    assert len(seccomp.build(machine)) % 8 == 0


# Calls made with arguments the kernel rejects harmlessly, even from root: without the
# filter they fail with ENOENT, ESRCH, EINVAL, EFAULT, EBADF, ENOSYS..., not EPERM.
HARMLESS_CALLS = (
    "mount",
    "umount2",
    "pivot_root",
    "ptrace",
    "reboot",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "finit_module",
    "delete_module",
    "swapon",
    "setns",
    "open_by_handle_at",
    "userfaultfd",
    "acct",
    "clock_settime",
    "adjtimex",
    "syslog",
    "kexec_file_load",
)


def _filtered_calls(child: int) -> dict[str, str]:
    """Every call of HARMLESS_CALLS and the clone, socket and x32 cases (in a child)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    missing = b"/nonexistent-lambdalet-seccomp-test"
    long = ctypes.c_long

    def call(name: str, *args: Any) -> str:
        converted = [a if isinstance(a, bytes) or a is None else long(a) for a in args]
        return _errno_name(libc.syscall(long(NR[name]), *converted))

    answers = {
        "mount": call("mount", None, missing, None, 0x1000, None),
        "umount2": call("umount2", missing, 0),
        "pivot_root": call("pivot_root", missing, missing),
        "ptrace": call("ptrace", 2, child, None, None),  # PEEKDATA, not tracing it
        "reboot": call("reboot", 0xFEE1DEAD, 0, 0x01234567, None),  # wrong second magic
        "bpf": call("bpf", 9999, None, 0),
        "perf_event_open": call("perf_event_open", None, 0, -1, -1, 0),
        "keyctl": call("keyctl", 9999, 0, 0, 0, 0),
        "add_key": call("add_key", None, None, None, 0, -2),
        "finit_module": call("finit_module", -1, b"", 0),
        "delete_module": call("delete_module", None, 0),
        "swapon": call("swapon", None, 0),
        "setns": call("setns", -1, 0),
        "open_by_handle_at": call("open_by_handle_at", -1, None, 0),
        "userfaultfd": call("userfaultfd", 0x7FFF0000),
        "acct": call("acct", missing),
        "clock_settime": call("clock_settime", 0, None),
        "adjtimex": call("adjtimex", None),
        "syslog": call("syslog", 9999, None, 0),
        "kexec_file_load": call("kexec_file_load", -1, -1, 0, None, 0),
        "clone3": call("clone3", None, 0),
        "getpid": call("getpid") if "getpid" in NR else "ok",
    }
    forked = libc.syscall(long(NR["clone"]), long(CLONE_NEWUSER | SIGCHLD), None, None, None, None)
    if forked == 0:
        os._exit(0)  # the filter failed and this is a child in a user namespace of its own
    answers["clone_newuser"] = _errno_name(forked)
    if forked > 0:
        os.waitpid(forked, 0)
    pid = os.fork()  # a plain fork still works
    if pid == 0:
        os._exit(7)
    answers["fork"] = "ok" if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7 else "bad"
    for name, family, kind, protocol in (
        ("packet", socket.AF_PACKET, socket.SOCK_DGRAM, 0),
        ("raw", socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_ICMP),
        ("raw6", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
        ("tcp", socket.AF_INET, socket.SOCK_STREAM, 0),
        ("unix", socket.AF_UNIX, socket.SOCK_STREAM, 0),
    ):
        try:
            socket.socket(family, kind, protocol).close()
            answers[f"socket_{name}"] = "ok"
        except OSError as error:
            answers[f"socket_{name}"] = errno.errorcode.get(error.errno or 0, "?")
    if MACHINE == "x86_64":
        answers["x32_getpid"] = _errno_name(libc.syscall(long(seccomp.X32_SYSCALL_BIT | 39)))
    return answers


def _in_filtered_child(work: Any, *, install: bool = True) -> tuple[int, Any]:
    """Run ``work(sleeper_pid)`` in a forked child under the filter; its exit status, answer."""
    sleeper = os.fork()
    if sleeper == 0:
        time.sleep(30)
        os._exit(0)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        status = 0
        try:
            os.close(read_end)
            if install:
                prctl(PR_SET_NO_NEW_PRIVS, 1)
                install_seccomp(seccomp.build())
            os.write(write_end, json.dumps(work(sleeper)).encode())
        except BaseException as error:
            os.write(write_end, json.dumps({"error": repr(error)}).encode())
            status = 1
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    _, status = os.waitpid(child, 0)
    os.kill(sleeper, 9)
    os.waitpid(sleeper, 0)
    return status, json.loads(data) if data else None


def test_filter_denies_in_a_forked_child() -> None:
    status, answers = _in_filtered_child(_filtered_calls)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, answers
    for name in HARMLESS_CALLS:
        assert answers[name] == "EPERM", (name, answers)
    assert answers["clone3"] == "ENOSYS"  # glibc falls back to clone
    assert answers["clone_newuser"] == "EPERM"
    assert answers["fork"] == answers["getpid"] == "ok"
    assert answers["socket_packet"] == answers["socket_raw"] == answers["socket_raw6"] == "EPERM"
    assert answers["socket_tcp"] == answers["socket_unix"] == "ok"
    if MACHINE == "x86_64":
        assert answers["x32_getpid"] == "EPERM"


def test_without_the_filter_root_gets_other_answers() -> None:
    # The same harmless calls, unfiltered: proof that EPERM above came from the filter.
    status, answers = _in_filtered_child(_filtered_calls, install=False)
    assert os.WIFEXITED(status), answers
    # Kernel configurations vary (lockdown, modules disabled): a few may say EPERM anyway.
    denied = [name for name in HARMLESS_CALLS if answers[name] == "EPERM"]
    assert len(denied) <= 2, answers
    assert answers["clone3"] != "ENOSYS"


def test_a_call_of_another_architecture_kills_the_process() -> None:
    if MACHINE != "x86_64":
        pytest.skip("int 0x80 is x86's")
    # mov eax, 20 (getpid on i386); int 0x80; ret
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"

    def legacy_getpid(_: int) -> int:
        memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | 4)
        memory.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        result: int = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
        return result

    status, _ = _in_filtered_child(legacy_getpid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 31  # SIGSYS
    status, answer = _in_filtered_child(legacy_getpid, install=False)
    assert os.WIFEXITED(status) and isinstance(answer, int)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A node of its own whose sandboxes are namespaces sandboxes."""
    data_dir = tmp_path_factory.mktemp("lambdalet-hostile")
    with ServerThread(sandbox_backend="namespaces", data_dir=data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def lambda_client(server: ServerThread) -> Any:
    """boto3's Lambda client of this module's node (``deploy`` uses it)."""
    return boto_client(server.url)


HOSTILE = """
import ctypes, errno, os, socket, subprocess, threading, time

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {nr!r}

def code(result):
    if result >= 0:
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))

def call(name, *args):
    args = [a if isinstance(a, bytes) or a is None else ctypes.c_long(a) for a in args]
    return code(libc.syscall(ctypes.c_long(NR[name]), *args))

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))

def ptrace(event):
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    found = {{}}
    for name, pid in (("child", child), ("init", 1)):
        found[name] = call("ptrace", 16, pid, None, None)  # PTRACE_ATTACH
        if found[name] == "ok":
            call("ptrace", 17, pid, None, None)  # PTRACE_DETACH
    os.kill(child, 9)
    os.waitpid(child, 0)
    return found

def mount(event):
    scratch = "/tmp/scratch-mount"
    os.makedirs(scratch, exist_ok=True)
    found = {{"mount": call("mount", b"none", scratch.encode(), b"tmpfs", 0, None)}}
    if found["mount"] == "ok":
        call("umount2", scratch.encode(), 2)
    found["umount2"] = call("umount2", b"/var/task", 2)
    found["fsopen"] = call("fsopen", b"tmpfs", 0)
    found["open_tree"] = call("open_tree", -100, b"/var/task", 1)  # OPEN_TREE_CLONE
    found["remount_task"] = call("mount", None, b"/var/task", None, 0x20 | 0x1000, None)
    return found

def namespaces(event):
    found = {{
        "unshare_user": call("unshare", 0x10000000),
        "unshare_net": call("unshare", 0x40000000),
        "unshare_mount": call("unshare", 0x00020000),
        "setns": call("setns", os.open("/proc/self/ns/net", os.O_RDONLY), 0),
        "clone3": call("clone3", None, 0),
    }}
    child = libc.syscall(ctypes.c_long(NR["clone"]), ctypes.c_long(0x10000000 | 17),
                         None, None, None, None)
    if child == 0:
        os._exit(0)
    found["clone_newuser"] = code(child)
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    found["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    box = []
    worker = threading.Thread(target=lambda: box.append(threading.get_native_id()))
    worker.start()
    worker.join()
    found["thread"] = len(box)
    found["spawn"] = subprocess.run(["/bin/sh", "-c", "exit 4"]).returncode  # clone3, then clone
    status = open("/proc/self/status").read()
    found["seccomp"] = status.split("Seccomp:")[1].split()[0]
    return found

def task(event):
    def write():
        with open("/var/task/app.py", "a") as out:
            out.write("x")
    return {{
        "append": attempt(write),
        "create": attempt(lambda: open("/var/task/new.py", "w").close()),
        "mkdir": attempt(lambda: os.mkdir("/var/task/pkg")),
        "chmod": attempt(lambda: os.chmod("/var/task/app.py", 0o777)),
        "rename": attempt(lambda: os.rename("/var/task/app.py", "/var/task/b.py")),
        "unlink": attempt(lambda: os.unlink("/var/task/app.py")),
        "utime": attempt(lambda: os.utime("/var/task/app.py")),
    }}

def sockets(event):
    found = {{}}
    for name, family, kind, protocol in (
        ("packet_raw", socket.AF_PACKET, socket.SOCK_RAW, 0x0300),
        ("packet_dgram", socket.AF_PACKET, socket.SOCK_DGRAM, 0),
        ("inet_raw", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        ("inet_raw_tcp", socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 6),
        ("inet6_raw", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6),
        ("tcp", socket.AF_INET, socket.SOCK_STREAM, 0),
        ("udp", socket.AF_INET, socket.SOCK_DGRAM, 0),
    ):
        found[name] = attempt(lambda: socket.socket(family, kind, protocol).close())
    return found

def modules(event):
    null = os.open("/dev/null", os.O_RDONLY)
    return {{
        "finit_module": call("finit_module", null, b"", 0),
        "init_module": call("init_module", b"", 0, b""),
        "delete_module": call("delete_module", b"lambdalet_no_such_module", 0o4000),
    }}

def keys_and_bpf(event):
    return {{
        "keyctl": call("keyctl", 0, -3, 0, 0, 0),  # KEYCTL_GET_KEYRING_ID, session, no create
        "add_key": call("add_key", b"user", b"lambdalet", b"x", 1, -2),
        "request_key": call("request_key", b"user", b"lambdalet", None, 0),
        "bpf_prog": call("bpf", 5, None, 0),  # BPF_PROG_LOAD with no program
        "bpf_map": call("bpf", 0, None, 0),
        "perf_event_open": call("perf_event_open", None, 0, -1, -1, 0),
        "userfaultfd": call("userfaultfd", 0),
    }}

def boot(event):
    return {{
        "reboot": call("reboot", 0xFEE1DEAD, 0, 0x01234567, None),  # wrong second magic
        "kexec_load": call("kexec_load", 0, 0, None, 0x7FFF0000),  # no such architecture
        "kexec_file_load": call("kexec_file_load", -1, -1, 0, None, 0),
        "swapon": call("swapon", b"/nonexistent", 0),
        "settimeofday": call("settimeofday", None, None),
        "clock_settime": call("clock_settime", 0, None),
        "acct": call("acct", None),
        "syslog": call("syslog", 3, None, 0),  # SYSLOG_ACTION_READ_ALL into no buffer
    }}

def escape(event):
    handle = ctypes.create_string_buffer(128)
    mount_id = ctypes.c_int()
    return {{
        "name_to_handle_at": call("name_to_handle_at", -100, b"/var/task",
                                  ctypes.addressof(handle), ctypes.addressof(mount_id), 0),
        "open_by_handle_at": call("open_by_handle_at", os.open("/", os.O_RDONLY),
                                  ctypes.addressof(handle), 0),
        "via_proc_root": {{p: os.path.exists("/proc/1/root" + p) for p in event["paths"]}},
        "via_cwd_of_init": {{p: os.path.exists("/proc/1/cwd" + p) for p in event["paths"]}},
    }}

ACTIONS = {{f.__name__: f for f in (ptrace, mount, namespaces, task, sockets, modules,
                                   keys_and_bpf, boot, escape)}}

def handler(event, context):
    return ACTIONS[event["action"]](event)
"""


def hostile(deploy: Deploy) -> str:
    name: str = deploy(HOSTILE.format(nr=NR), MemorySize=256)["FunctionName"]
    return name


def act(client: Any, name: str, action: str, **event: Any) -> Any:
    response = client.invoke(
        FunctionName=name, Payload=json.dumps({"action": action, **event}), LogType="Tail"
    )
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, (result, tail(response))
    return result


def assert_still_serving(deploy: Deploy, client: Any) -> None:
    """An innocent function starts and runs: the node survived whatever came before."""
    name = deploy(HELLO)["FunctionName"]
    response = client.invoke(FunctionName=name, Payload=b'{"after": true}')
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    assert result["event"] == {"after": True}


def test_ptrace_of_its_own_child_and_of_init_is_denied(deploy: Deploy, lambda_client: Any) -> None:
    found = act(lambda_client, hostile(deploy), "ptrace")
    assert found == {"child": "EPERM", "init": "EPERM"}
    assert_still_serving(deploy, lambda_client)


def test_mounting_is_denied(deploy: Deploy, lambda_client: Any) -> None:
    found = act(lambda_client, hostile(deploy), "mount")
    assert set(found.values()) == {"EPERM"}, found
    assert_still_serving(deploy, lambda_client)


def test_namespaces_cannot_be_made_but_forks_and_threads_can(
    deploy: Deploy, lambda_client: Any
) -> None:
    found = act(lambda_client, hostile(deploy), "namespaces")
    assert found["seccomp"] == "2"  # SECCOMP_MODE_FILTER
    for name in ("unshare_user", "unshare_net", "unshare_mount", "setns", "clone_newuser"):
        assert found[name] == "EPERM", found
    assert found["clone3"] == "ENOSYS"
    assert found["fork"] == 3 and found["thread"] == 1 and found["spawn"] == 4
    assert_still_serving(deploy, lambda_client)


def test_var_task_cannot_be_changed(deploy: Deploy, lambda_client: Any) -> None:
    name = hostile(deploy)
    found = act(lambda_client, name, "task")
    assert set(found.values()) <= {"EROFS", "EACCES", "EPERM"}, found
    # The code is intact: the function still runs as deployed.
    assert act(lambda_client, name, "modules")["finit_module"] == "EPERM"
    assert_still_serving(deploy, lambda_client)


def test_raw_and_packet_sockets_are_denied(deploy: Deploy, lambda_client: Any) -> None:
    found = act(lambda_client, hostile(deploy), "sockets")
    assert found.pop("tcp") == found.pop("udp") == "ok"
    assert set(found.values()) == {"EPERM"}, found
    assert_still_serving(deploy, lambda_client)


def test_kernel_modules_cannot_be_loaded_or_removed(deploy: Deploy, lambda_client: Any) -> None:
    found = act(lambda_client, hostile(deploy), "modules")
    assert found == dict.fromkeys(("finit_module", "init_module", "delete_module"), "EPERM")
    assert_still_serving(deploy, lambda_client)


def test_keyring_bpf_and_perf_are_denied(deploy: Deploy, lambda_client: Any) -> None:
    found = act(lambda_client, hostile(deploy), "keys_and_bpf")
    assert set(found.values()) == {"EPERM"}, found
    assert_still_serving(deploy, lambda_client)


def test_reboot_kexec_swap_and_clock_are_denied(deploy: Deploy, lambda_client: Any) -> None:
    booted = Path("/proc/sys/kernel/random/boot_id").read_text()
    found = act(lambda_client, hostile(deploy), "boot")
    assert set(found.values()) == {"EPERM"}, found
    assert Path("/proc/sys/kernel/random/boot_id").read_text() == booted
    assert_still_serving(deploy, lambda_client)


def test_host_files_stay_out_of_reach_through_handles_and_proc(
    deploy: Deploy, lambda_client: Any, server: ServerThread
) -> None:
    other = deploy("def handler(event, context):\n    return 'other'\n")["FunctionName"]
    assert json.loads(lambda_client.invoke(FunctionName=other)["Payload"].read()) == "other"
    data_dir = server.settings.data_dir.resolve()
    paths = [str(data_dir), *(str(tree) for tree in code_trees(data_dir)), "/work", "/root"]
    found = act(lambda_client, hostile(deploy), "escape", paths=paths)
    assert found["name_to_handle_at"] == found["open_by_handle_at"] == "EPERM"
    assert not any(found["via_proc_root"].values()), found
    assert not any(found["via_cwd_of_init"].values()), found
    assert_still_serving(deploy, lambda_client)


def test_idle_sandbox_is_frozen_and_thawed_for_the_next_invoke(tmp_path: Path) -> None:
    source = "import os\ndef handler(event, context):\n    return [os.getpid(), event]\n"
    spec = direct_spec(tmp_path, source)
    backend = NamespacesBackend()
    if not backend.isolation.cgroups.controllers.get("freezer"):
        pytest.skip("no cgroup freezer on this host")

    async def lifecycle() -> tuple[list[Any], list[str], int]:
        sandbox = backend.create(spec)
        await sandbox.start()
        cgroup = sandbox._cgroup
        assert cgroup is not None and sandbox._process is not None
        host_pid = sandbox._process.pid
        answers, states = [], []
        for number in range(3):
            invocation = Invocation(f"req-{number}", json.dumps(number).encode(), "arn", 2**62)
            answers.append(json.loads((await sandbox.invoke(invocation, 5000)).payload))
            for _ in range(200):  # the kernel freezes in the background
                if cgroup.freezer_state() == "FROZEN":
                    break
                await asyncio.sleep(0.005)
            states.append(cgroup.freezer_state())
            assert sandbox._process.pid == host_pid  # the same sandbox, reused
        started = time.monotonic()
        await sandbox.stop()  # frozen: thawed, then killed
        assert time.monotonic() - started < 5
        return answers, states, host_pid

    answers, states, host_pid = asyncio.run(lifecycle())
    assert [event for _, event in answers] == [0, 1, 2]
    assert len({pid for pid, _ in answers}) == 1
    assert states == ["FROZEN"] * 3
    assert not os.path.exists(f"/proc/{host_pid}")


def test_freezing_can_be_turned_off(tmp_path: Path) -> None:
    spec = direct_spec(tmp_path, "def handler(event, context):\n    return event\n")
    backend = NamespacesBackend(freeze_idle=False)

    async def run() -> str:
        sandbox = backend.create(spec)
        await sandbox.start()
        try:
            await sandbox.invoke(Invocation("req-1", b"1", "arn", 2**62), 5000)
            await asyncio.sleep(0.05)
            assert sandbox._cgroup is not None
            return sandbox._cgroup.freezer_state()
        finally:
            await sandbox.stop()

    assert asyncio.run(run()) in ("THAWED", "")


def test_cgroup_v2_freezer_freezes_and_thaws(tmp_path: Path) -> None:
    # Detection from the cgroup2 mount alone, as on a host with no v1 freezer.
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    v2 = [line for line in mounts if " - cgroup2 " in line]
    if not v2:
        pytest.skip("no cgroup v2 mounted")
    (tmp_path / "mountinfo").write_text(v2[0] + "\n")
    own = Path("/proc/self/cgroup").read_text().splitlines()
    (tmp_path / "cgroup").write_text("\n".join(line for line in own if line.startswith("0::")))
    system = cgroups.detect(tmp_path / "mountinfo", tmp_path / "cgroup")
    freezer = system.controllers.get(cgroups.FREEZER)
    if freezer is None:
        pytest.skip(f"no v2 freezer: {system.missing.get(cgroups.FREEZER)}")
    assert freezer.version == 2
    name = f"test-freeze-{os.getpid()}"
    cgroup = cgroups.SandboxCgroup.create(system, name, memory_mb=64, pids_max=8)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        cgroup.add_process(sleeper.pid)
        states = []
        for freeze in (True, False, True):
            if freeze:
                cgroup.freeze()
            else:
                cgroup.thaw()
            wanted = "FROZEN" if freeze else "THAWED"
            for _ in range(200):
                if cgroup.freezer_state() == wanted:
                    break
                time.sleep(0.005)
            states.append(cgroup.freezer_state())
        assert states == ["FROZEN", "THAWED", "FROZEN"]
        cgroup.remove()  # frozen: thawed, then its processes killed
        assert sleeper.wait(10) == -9
        assert not (freezer.parent / name).exists()
    finally:
        sleeper.kill()
        sleeper.wait()
        cgroup.remove()
