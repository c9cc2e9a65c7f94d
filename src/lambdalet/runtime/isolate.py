"""Enters a sandbox, then execs the function's runtime inside it.

The ``namespaces`` backend starts this module as root with the host's interpreter (``python
-I -S``, see ``lambdalet.sandbox.namespaces.launcher_command``), with its stdout and stderr and
the Runtime API channel's fd, and one argument: PLAN_FD. Standard library only, and as few
imports as will do: this is on every cold start's path. The host first moves this process
into the sandbox's cgroups (while the interpreter starts), then writes the plan to PLAN_FD: a
``marshal``-ed dict with ``root`` (an empty host directory to build the root on), ``steps``
(what to mount and create there, in order, from ``lambdalet.sandbox.rootfs``), ``hostname``,
``namespaces`` (which optional ones to unshare), ``uid``/``gid`` (inside),
``host_uid``/``host_gid``, ``nofile``, ``cwd``, ``argv`` and ``env`` (the runtime's); optionally
``seccomp`` (a system call filter, ``lambdalet.sandbox.seccomp``, installed right before
exec) and ``network_none`` with ``relay`` (an empty network namespace, ``runtime/netns.py``).

Three processes take part, all in the sandbox's cgroups:

launcher
    this process, in the host's pid namespace. It unshares a pid namespace, forks the init,
    writes the init's uid and gid maps when asked (only a process outside a user namespace may
    map a host id other than its own) and ends as the runtime ended: with the same exit
    status, or killed by the same signal. That is what the host sees and reports. Once the
    ids are mapped it has only that left to do, for as long as the sandbox lives, so it execs
    ``/bin/sh`` (:data:`REPORTER`): about 0.1 MB instead of an interpreter's 2 MB. Exec
    keeps its pid, its process group and its child: the init's parent-death signal stays
    armed (it fires when the parent thread ends, and exec does not end it).
init
    pid 1 of the new pid namespace. As the host's root it unshares the mount, ipc and uts
    namespaces, builds the root on a tmpfs, pivots into it and mounts a /proc of its own: those
    namespaces stay owned by the host's user namespace, so nothing inside can remount them.
    Only then does it unshare the user namespace. It forks the runtime and reaps every orphan
    until the runtime exits; its own exit kills whatever is left in the pid namespace. With
    ``init_program`` in the plan (``runtime/init.c``, compiled on the host) it execs that
    from a memfd once the runtime is forked, to do the reaping and reporting in a few pages
    instead of an interpreter's 3 MB.
runtime
    drops to the unprivileged user with no_new_privs set, and execs the runtime's command line.

A setup failure is written to stderr (the function's log) and ends the launcher with exit
status 125: the init reports its own failure the way it reports the runtime's end. With
``--probe`` the script prints, as JSON, which namespaces the kernel lets it create (an empty
string for those it does, the error for the others).
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import sys

TYPE_CHECKING = False  # typing itself costs milliseconds to import
if TYPE_CHECKING:
    from typing import Any

SETUP_FAILED = 125
EXEC_FAILED = 127

SHELL = "/bin/sh"
# What the launcher becomes once the sandbox is set up, reading the init's report on stdin:
# ``exit N`` or ``signal N``. It ends the same way, re-raising the signal with its default
# action (one ignored by default, as SIGCHLD, gives 128 + N, as from a shell). Only builtins:
# a fork would land in the sandbox's pid namespace. A shell cannot wait for a child it did
# not start, so the init's own status is out of reach. The init reports every failure it can
# catch; if no report comes, it was killed, and that ends the sandbox as killed (SIGKILL):
# pid 1 of a pid namespace gets no signal it does not handle but SIGKILL (the OOM killer's
# or the host's), so only a fault of the init itself (SIGSEGV, SIGBUS) would be misreported.
REPORTER = """read -r word value
case $value in ''|*[!0-9]*) word=killed ;; esac
case $word in
exit) exit "$value" ;;
signal) kill -"$value" $$; exit $((128 + value)) ;;
esac
kill -KILL $$
"""

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "pid": CLONE_NEWPID,
    "user": CLONE_NEWUSER,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "cgroup": CLONE_NEWCGROUP,
    "network": CLONE_NEWNET,
}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
# statvfs flags a read-only remount must keep, with the mount flags they stand for.
KEPT_FLAGS = (
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# Linux's numbers on x86, Arm and RISC-V; the signal module would cost an import of enum.
SIGKILL, SIGPIPE, SIGXFSZ = 9, 13, 25
SIG_DFL = 0
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2)."""
    result = _libc.mount(
        _bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data) if data else None
    )
    _check(result, f"mount {source or fstype or ''} on {target}")


def prctl(option: int, value: int) -> None:
    """prctl(2) with one argument."""
    _check(_libc.prctl(option, value, 0, 0, 0), f"prctl({option})")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp(program: bytes) -> None:
    """Install a classic-BPF system call filter (``lambdalet.sandbox.seccomp``), for good:
    it holds for this process and whatever it execs or starts. Needs no_new_privs."""
    fprog = _SockFprog(len(program) // 8, program)
    result = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0)
    _check(result, "prctl(PR_SET_SECCOMP)")


def _confine_relay(plan: dict[str, Any]) -> None:
    import netns  # type: ignore[import-not-found]  # imported already, by run_init

    netns.drop_to_nobody()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if plan.get("seccomp"):
        install_seccomp(plan["seccomp"])


def pivot_root_here() -> None:
    """Make the current directory the root, and detach the old root stacked beneath it."""
    machine = os.uname().machine
    number = SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise OSError(0, f"pivot_root: unknown syscall number on {machine}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    encoded = name.encode()
    _check(_libc.sethostname(encoded, len(encoded)), "sethostname")


def default_signal(number: int) -> None:
    """Give a signal its default action back: one ignored here would stay ignored past exec."""
    _libc.signal(number, SIG_DFL)


def _prepare_target(path: str, directory: bool) -> None:
    if directory:
        os.makedirs(path, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _bind(source: str, path: str, flags: int) -> None:
    _prepare_target(path, os.path.isdir(source))
    mount(source, path, None, MS_BIND)
    kept = os.statvfs(path).f_flag
    for statvfs_flag, mount_flag in KEPT_FLAGS:
        if kept & statvfs_flag:
            flags |= mount_flag
    mount(None, path, None, MS_REMOUNT | MS_BIND | flags)


def run_step(root: str, step: list[Any]) -> None:
    """Carry out one step of the plan under ``root`` (the future ``/``)."""
    kind, source, target, options = step
    path = root + target
    if kind == "tmpfs":
        _prepare_target(path, True)
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)
    elif kind == "proc":
        _prepare_target(path, True)
        mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif kind == "bind-ro":
        _bind(source, path, MS_RDONLY | MS_NOSUID | MS_NODEV)
    elif kind == "bind-dev":
        _bind(source, path, MS_NOSUID | MS_NOEXEC)
    elif kind == "symlink":
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        os.symlink(source, path)
    elif kind == "file":
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, source.encode())
        finally:
            os.close(fd)
    else:
        raise ValueError(f"unknown step {kind!r}")


def _fail(message: str, report_fd: int | None = None) -> None:
    os.write(2, f"[lambdalet] sandbox setup failed: {message}\n".encode())
    if report_fd is not None:  # in the init: to the launcher, which may no longer wait for it
        try:  # noqa: SIM105  (contextlib is one more import on every cold start)
            os.write(report_fd, f"exit {SETUP_FAILED}\n".encode())
        except OSError:
            pass
    os._exit(SETUP_FAILED)


def _exit_as(kind: str, value: int) -> None:
    """End this process the way the runtime ended."""
    if kind == "signal":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if value != SIGKILL:
            default_signal(value)
        os.kill(os.getpid(), value)
        value = 128 + value  # a signal whose default is to be ignored
    os._exit(value)


def run_runtime(plan: dict[str, Any]) -> None:
    """In the runtime's process: become the sandbox's user, exec."""
    namespaces = plan["namespaces"]
    if namespaces.get("cgroup"):
        unshare(CLONE_NEWCGROUP)  # /proc/self/cgroup shows "/", not the host's tree
    user = namespaces.get("user")
    uid, gid = (plan["uid"], plan["gid"]) if user else (plan["host_uid"], plan["host_gid"])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (plan["nofile"], plan["nofile"]))
    default_signal(SIGPIPE)  # both ignored by the interpreter running this script
    default_signal(SIGXFSZ)
    os.chdir(plan["cwd"])
    if plan.get("seccomp"):
        install_seccomp(plan["seccomp"])  # last: execve must still be allowed
    argv = plan["argv"]
    try:
        os.execve(argv[0], argv, plan["env"])
    except OSError as error:
        os.write(2, f"[lambdalet] fork/exec {argv[0]}: {error.strerror}\n".encode())
        os._exit(EXEC_FAILED)


def run_init(plan: dict[str, Any], to_launcher: int, from_launcher: int) -> None:
    """As pid 1 of the new pid namespace: build the sandbox, start the runtime, reap."""
    prctl(PR_SET_PDEATHSIG, SIGKILL)
    if plan.get("network_none"):
        # Now: neither this directory nor the stdlib may be in the sandbox's root.
        import netns  # runtime/netns.py: an empty network namespace, a relay
    namespaces = plan["namespaces"]
    flags = CLONE_NEWNS
    if namespaces.get("ipc"):
        flags |= CLONE_NEWIPC
    if namespaces.get("uts"):
        flags |= CLONE_NEWUTS
    unshare(flags)
    # Nothing done from here on may propagate back to the host's mounts.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = plan["root"]
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for step in plan["steps"]:
        run_step(root, step)
    os.chdir(root)
    pivot_root_here()
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if namespaces.get("uts"):
        sethostname(plan["hostname"])
    if plan.get("network_none"):
        netns.isolate_network(plan.get("relay"), lambda: _confine_relay(plan))
    if namespaces.get("user"):
        unshare(CLONE_NEWUSER)
        os.write(to_launcher, b"map\n")
        if os.read(from_launcher, 3) != b"go\n":
            raise OSError(0, "the launcher did not map the user namespace's ids")
    os.close(from_launcher)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    runtime = os.fork()
    if runtime == 0:
        try:
            run_runtime(plan)
        except BaseException as error:  # reported in the function's log
            _fail(str(error))
    if plan.get("init_program"):
        _become_native_init(plan["init_program"], runtime, to_launcher)
    while True:
        pid, status = os.wait()
        if pid == runtime:
            break
    if os.WIFSIGNALED(status):
        report = f"signal {os.WTERMSIG(status)}\n"
    else:
        report = f"exit {os.waitstatus_to_exitcode(status)}\n"
    os.write(to_launcher, report.encode())
    os._exit(0)


def _become_native_init(program: bytes, runtime: int, to_launcher: int) -> None:
    """Exec ``runtime/init.c``'s program from a memfd: it reaps and reports as the loop in
    :func:`run_init` would, and keeps this process's children. Returns if it cannot."""
    try:
        writable = os.memfd_create("lambdalet-init")
        try:
            os.write(writable, program)
            # Read-only, and the writable one closed: kernels before 6.11 refuse to exec a
            # file open for writing (ETXTBSY).
            executable = os.open(f"/proc/self/fd/{writable}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(writable)
        try:
            os.set_inheritable(to_launcher, True)
            os.execve(executable, ["lambdalet-init", str(runtime), str(to_launcher)], {})
        finally:
            os.close(executable)
    except OSError as error:
        os.write(2, f"[lambdalet] sandbox init stays a Python process: {error}\n".encode())


def write_id_maps(pid: int, plan: dict[str, Any]) -> None:
    """Map the sandbox's uid and gid to the unprivileged host ids, and nothing else."""
    with open(f"/proc/{pid}/uid_map", "w") as uid_map:
        uid_map.write(f"{plan['uid']} {plan['host_uid']} 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as gid_map:
        gid_map.write(f"{plan['gid']} {plan['host_gid']} 1\n")


def _read_line(fd: int) -> str:
    """One line from a pipe, a byte at a time: what follows it is left for the next reader."""
    line = b""
    while (byte := os.read(fd, 1)) and byte != b"\n":
        line += byte
    return line.decode()


def _parse_report(line: str) -> tuple[str, int] | None:
    """``exit N`` or ``signal N`` as (kind, N); None for anything else (no report)."""
    word, _, value = line.strip().partition(" ")
    if word in ("exit", "signal") and value.isdigit():
        return word, int(value)
    return None


def _end_with_init(init: int, report: tuple[str, int] | None) -> None:
    """Reap the init and end as its report says, or as the init itself ended without one."""
    _, status = os.waitpid(init, 0)
    if report is None:  # the init itself failed or was killed
        if os.WIFSIGNALED(status):
            report = ("signal", os.WTERMSIG(status))
        else:
            report = ("exit", os.waitstatus_to_exitcode(status))
    _exit_as(*report)


def _become_reporter(init: int, reports: int) -> None:
    """Exec :data:`REPORTER` with the init's report pipe as its stdin; if no shell can be
    exec'd, wait for the report here, as this interpreter."""
    os.dup2(reports, 0)
    os.close(reports)
    default_signal(SIGPIPE)  # ignored by this interpreter: it would stay ignored in the shell
    default_signal(SIGXFSZ)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # as _exit_as: no core of a re-raise
    try:
        os.execve(SHELL, ["sh", "-c", REPORTER], {})
    except OSError:
        _end_with_init(init, _parse_report(_read_line(0)))


def launch(plan: dict[str, Any]) -> None:
    """As the launcher: start the init in a new pid namespace and end as the runtime did."""
    os.umask(0o022)
    up_read, up_write = os.pipe()
    down_read, down_write = os.pipe()
    unshare(CLONE_NEWPID)
    init = os.fork()
    if init == 0:
        os.close(up_read)
        os.close(down_write)
        try:
            run_init(plan, up_write, down_read)
        except BaseException as error:  # reported in the function's log
            _fail(str(error), up_write)
    os.close(up_write)
    os.close(down_read)
    if plan["namespaces"].get("user"):
        line = _read_line(up_read)
        if line != "map":  # the init failed before it unshared its user namespace
            _end_with_init(init, _parse_report(line))
        write_id_maps(init, plan)
        os.write(down_write, b"go\n")
    os.close(down_write)
    _become_reporter(init, up_read)


def probe() -> dict[str, str]:
    """Which namespaces can be created here: an empty string, or why not."""
    found: dict[str, str] = {}
    for name, flag in NAMESPACE_FLAGS.items():
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                unshare(flag)
                os.write(write_end, b"")
            except OSError as error:
                os.write(write_end, str(error).encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            found[name] = answer.read().decode()
        os.waitpid(child, 0)
    return found


def read_plan(fd: int) -> dict[str, Any]:
    """The plan the host writes to ``fd`` once this process is in the sandbox's cgroups."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    plan: dict[str, Any] = marshal.loads(b"".join(chunks))
    return plan


def main() -> None:
    """Entry point: arguments ``PLAN_FD`` or ``--probe``."""
    if sys.argv[1:] == ["--probe"]:
        import json

        print(json.dumps(probe()))
        return
    try:
        launch(read_plan(int(sys.argv[1])))
    except Exception as error:  # reported in the function's log
        _fail(str(error))


if __name__ == "__main__":
    main()
