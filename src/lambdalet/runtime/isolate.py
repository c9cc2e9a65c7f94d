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

With ``--blank-zygote CONTROL_FD`` (run by the runtime's own interpreter, not ``-I -S``;
``lambdalet.sandbox.blank_zygote``) this module is a blank zygote: a root process on the host,
in no sandbox, that has imported this module and ``python_bootstrap.py`` once and, for each
blank (pooled) sandbox the host asks for, forks its init straight into a new pid namespace,
instead of the host starting a launcher and a runtime interpreter. Each request on
CONTROL_FD (a SOCK_SEQPACKET socket) is one byte carrying six file descriptors: a status
pipe, the plan pipe, the sandbox's output, its Runtime API channel, and the init's two pipes
to its launcher, whose part the host plays (it maps the user namespace's ids when the init
asks, and reads the init's report of the runtime's end). The host moves the init into the
sandbox's cgroups, then writes the plan; the zygote writes the init's pid to the status pipe
and, once it has reaped it, its exit status (a negative one is a signal). With ``in_process``
in the plan, the runtime does not exec an interpreter: once it has dropped every privilege
and installed the system call filter, where it would exec, it goes on as
``python_bootstrap.py``'s blank runtime in the interpreter it inherited
(:func:`_continue_in_process`). Every sandbox still gets its own pid, mount, ipc, uts and
user namespaces, root, cgroups and filter: only the two interpreter starts and the launcher
are saved. What forked sandboxes share with the zygote and with each other is its
address-space layout and its ``str`` hash seed (an exec would draw new ones).
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
MS_SLAVE = 0x80000
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
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
# Linux's numbers on x86, Arm and RISC-V; the signal module would cost an import of enum.
SIGKILL, SIGPIPE, SIGXFSZ = 9, 13, 25
SIG_DFL = 0
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}
CAPABILITY_VERSION_3 = 0x20080522
IGNORED_AT_START = (SIGPIPE, SIGXFSZ)  # what an interpreter ignores as it starts
SIG_IGN = 1
# Where a blank zygote's fork (the init) keeps the runtime's channel, the plan pipe until it
# is read, and its two pipes to the host (which plays its launcher).
BLANK_CHANNEL_FD = 3
BLANK_PLAN_FD = 4
BLANK_REPORT_FD = 5
BLANK_GO_FD = 6
MAX_FD = 1 << 20

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
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


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


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Clear this process's effective, permitted and inheritable capabilities (capset(2))."""
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(SYS_CAPSET[os.uname().machine], ctypes.byref(header), data), "capset")


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
    if plan.get("in_process"):
        # A process keeps its capabilities in the user namespace it made (or its parent
        # made) across setresuid, as root there is no mapped id; exec would drop them.
        drop_capabilities()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (plan["nofile"], plan["nofile"]))
    default_signal(SIGPIPE)  # both ignored by the interpreter running this script
    default_signal(SIGXFSZ)
    os.chdir(plan["cwd"])
    if plan.get("seccomp"):
        install_seccomp(plan["seccomp"])  # last: execve must still be allowed
    if plan.get("in_process"):
        _continue_in_process(plan)
    argv = plan["argv"]
    try:
        os.execve(argv[0], argv, plan["env"])
    except OSError as error:
        os.write(2, f"[lambdalet] fork/exec {argv[0]}: {error.strerror}\n".encode())
        os._exit(EXEC_FAILED)


def _show_command_line(argv: list[str]) -> None:
    """Make /proc/PID/cmdline show ``argv`` (the runtime's command line inside the sandbox)
    rather than the zygote's, which names host paths: written over the zygote's in place, as
    setproctitle does (moving it would take CAP_SYS_RESOURCE), cut to its length, the rest
    zeroed."""
    with open("/proc/self/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end, fields 48 and 49
    data = b"\0".join(os.fsencode(argument) for argument in argv)[: end - start - 1]
    ctypes.memmove(start, data, len(data))
    ctypes.memset(start + len(data), 0, end - start - len(data))


def _continue_in_process(plan: dict[str, Any]) -> None:
    """In a blank zygote's fork, where the runtime would exec its interpreter: go on as the
    blank runtime in this one, and end as that interpreter would have ended. Never returns."""
    prctl(PR_SET_DUMPABLE, 1)  # cleared by setresuid; exec would have set it again
    _show_command_line(plan["argv"])
    for number in IGNORED_AT_START:  # given back their default for exec: ignored again
        _libc.signal(number, SIG_IGN)
    # The init's and launcher's pipes: an exec would have closed them (close-on-exec), and
    # the runtime must not be able to write the init's report.
    os.closerange(BLANK_CHANNEL_FD + 1, MAX_FD)
    env = dict(plan["env"])
    env["_LAMBDALET_RUNTIME_FD"] = str(BLANK_CHANNEL_FD)
    code = 0
    try:
        sys.modules["python_bootstrap"].run_forked(env, plan["argv"][-1])
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 0 if ended.code is None else 1
        if not isinstance(ended.code, (int, type(None))):  # noqa: UP038  (3.9 runs this too)
            print(ended.code, file=sys.stderr)
    except BaseException:  # as an interpreter reports an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


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


def _hide_opt() -> None:
    """Give the zygote a mount namespace of its own whose ``/opt`` is an empty tmpfs with an
    empty ``lib``: the dynamic loader remembers, for good, which ``LD_LIBRARY_PATH``
    directories do not exist, and ``/opt/lib`` must still be searched in the sandboxes, where
    it holds the layers' libraries. Host mounts made later still show (a slave mount). The
    host's own /opt is then out of the zygote's sight: the host uses a zygote only when
    nothing a sandbox is built from lies there (``lambdalet.sandbox.blank_zygote``)."""
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_SLAVE)
    mount("tmpfs", "/opt", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    os.mkdir("/opt/lib", 0o755)
    mount(None, "/opt", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _fd_at_least(fd: int, lowest: int) -> int:
    """``fd``, moved to a number of at least ``lowest`` if it is below."""
    if fd >= lowest:
        return fd
    import fcntl

    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return moved


def _blank_init(status_fd: int, fds: list[int]) -> None:
    """In the zygote's fork, pid 1 of a new pid namespace: with the sandbox's output, the
    channel and its pipes where :data:`BLANK_CHANNEL_FD` and the next ones say and nothing
    else of the zygote's open, read the plan and go on as the init. Never returns."""
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    os.setsid()  # out of the zygote's session and process group
    os.close(status_fd)
    output_fd, *kept = fds  # the channel, plan, report and go pipes, in that order
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    lowest = BLANK_GO_FD + 1
    kept = [_fd_at_least(fd, lowest) for fd in kept]
    for offset, fd in enumerate(kept):
        os.dup2(fd, BLANK_CHANNEL_FD + offset, inheritable=offset == 0)
    os.closerange(lowest, MAX_FD)  # the control socket, the originals, whatever else
    try:
        os.umask(0o022)
        run_init(read_plan(BLANK_PLAN_FD), BLANK_REPORT_FD, BLANK_GO_FD)
    except BaseException as error:  # reported in the function's log
        _fail(str(error), BLANK_REPORT_FD)
    os._exit(SETUP_FAILED)


def serve_blank_forks(control_fd: int) -> None:
    """As a blank zygote: fork a sandbox's init into a new pid namespace for each request on
    ``control_fd``; report each one's pid and, once reaped, its exit status on its status
    pipe. Ends when the host closes the control socket."""
    import gc
    import signal
    import socket

    import python_bootstrap  # type: ignore[import-not-found]  # beside this module

    # The runtime's sys.path as its interpreter would make it: not this module's directory
    # (it is /var/runtime inside) nor the current one.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if p not in ("", here)]
    if not os.path.isdir("/opt/lib"):
        _hide_opt()
    python_bootstrap.warm_blank()
    control = socket.socket(fileno=control_fd)
    own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    statuses: dict[int, int] = {}  # init pid → its status pipe

    def reap(signum: int, frame: object) -> None:
        for pid, code in python_bootstrap.reaped_children():
            status_fd = statuses.pop(pid, None)
            if status_fd is not None:
                try:  # noqa: SIM105
                    os.write(status_fd, f"{code}\n".encode())
                except OSError:
                    pass
                os.close(status_fd)

    signal.signal(signal.SIGCHLD, reap)
    gc.freeze()  # what the zygote made stays where it is: no fork's collection writes to it
    control.send(b"R")
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1, 6)
        if not message:
            os._exit(0)
        if len(fds) != 6:
            for fd in fds:
                os.close(fd)
            continue
        status_fd, plan_fd, output_fd, channel_fd, report_fd, go_fd = fds
        given = [output_fd, channel_fd, plan_fd, report_fd, go_fd]
        # Blocked across the fork: the init's end must find its status pipe registered.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            # The next child is pid 1 of a new pid namespace; this process stays in its own.
            unshare(CLONE_NEWPID)
            try:
                pid = os.fork()
            except OSError:
                _check(_libc.setns(own_pid_namespace, CLONE_NEWPID), "setns")
                raise
            if pid != 0:
                _check(_libc.setns(own_pid_namespace, CLONE_NEWPID), "setns")
            else:
                control.detach()
                _blank_init(status_fd, given)
            try:  # noqa: SIM105  (contextlib is one more import on every cold start)
                os.write(status_fd, f"{pid}\n".encode())
            except OSError:
                pass
            statuses[pid] = status_fd
        except OSError as error:  # no fork: the host sees the status pipe close
            os.write(2, f"[lambdalet] blank zygote cannot fork: {error}\n".encode())
            os.close(status_fd)
        finally:
            for fd in given:
                os.close(fd)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def main() -> None:
    """Entry point: arguments ``PLAN_FD``, ``--probe`` or ``--blank-zygote CONTROL_FD``."""
    if sys.argv[1:] == ["--probe"]:
        import json

        print(json.dumps(probe()))
        return
    if sys.argv[1:2] == ["--blank-zygote"]:
        serve_blank_forks(int(sys.argv[2]))
        return
    try:
        launch(read_plan(int(sys.argv[1])))
    except Exception as error:  # reported in the function's log
        _fail(str(error))


if __name__ == "__main__":
    main()
