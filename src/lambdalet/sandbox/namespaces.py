"""The ``namespaces`` sandbox backend: the process backend's runtime, isolated by the kernel.

A :class:`NamespacesSandbox` is a :class:`ProcessSandbox` (same Runtime API, logs, timeouts,
crash and exit reports) whose runtime ``runtime/isolate.py`` starts:

- in new pid, mount, ipc and uts namespaces and, last, a user namespace in which it is uid 993
  (gid 990), mapped to an unprivileged host id; with no_new_privs set and no capabilities;
- in a root of its own (``sandbox/rootfs.py``): the system read-only, the code read-only at
  ``/var/task``, the layers at ``/opt``, a ``/tmp`` of EphemeralStorage MB, a minimal ``/dev``,
  its own ``/proc``;
- in cgroups (``sandbox/cgroups.py``, v1 or v2) limiting memory to MemorySize (the OOM killer
  ends a runtime that goes over: ``Runtime exited with error: signal: killed``), processes and
  threads, and CPU time to MemorySize / 1,769 MB of a vCPU once init is done (init runs
  unthrottled, as AWS boosts it). Max Memory Used is the cgroup's peak.

The host's network namespace is kept (DESIGN: host network by default): the Python runtime
talks over its inherited socketpair, other runtimes over loopback TCP. A function tagged
``lambdalet:network`` = ``none`` gets an empty network namespace instead
(``sandbox/network.py``). The runtime runs under a system call filter (``sandbox/seccomp.py``)
and, between invocations, frozen (``sandbox/cgroups.py``; ``Settings.freeze_idle``).
lambdalet must run as root. Isolation the kernel does not offer is turned off with a warning
at start; see :func:`isolation_report`.

/tmp is a tmpfs: what a function writes there counts towards its memory limit, which keeps
the host's memory bounded by the sum of MemorySize (AWS's /tmp is disk and does not count).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import marshal
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambdalet.errors import SandboxError
from lambdalet.models import Invocation, InvocationResult
from lambdalet.runtime import launch
from lambdalet.sandbox import cgroups, native_init, network, rootfs, seccomp
from lambdalet.sandbox.base import SandboxInitError, SandboxSpec, SandboxState
from lambdalet.sandbox.process import ProcessSandbox, error_payload, log_stream_name

log = logging.getLogger(__name__)

ISOLATE = launch.PYTHON_BOOTSTRAP.with_name("isolate.py")


def launcher_command(*arguments: str) -> list[str]:
    """Run ``runtime/isolate.py`` with the host's interpreter, isolated from its site and
    environment. Imported as a module rather than run as a script: its bytecode is cached."""
    where = str(ISOLATE.parent)
    program = f"import sys; sys.path.insert(0, {where!r}); import isolate; isolate.main()"
    return [sys.executable, "-I", "-S", "-c", program, *arguments]


# An idle sandbox is frozen once it has had no invocation for this long.
FREEZE_AFTER_IDLE_S = 0.1
PEAK_READ_INTERVAL_S = 0.1  # the oldest a sandbox's peak memory may be when reported

SANDBOX_UID = 993
SANDBOX_GID = 990
# An id no account on the host has: the sandbox's files and processes belong to nobody.
DEFAULT_HOST_ID = 100_993
DEFAULT_PIDS_MAX = 256
NOFILE = 1024  # AWS's limit on open files
PROBE_TIMEOUT_S = 10.0
REQUIRED_NAMESPACES = ("mount", "pid")
OPTIONAL_NAMESPACES = ("user", "ipc", "uts", "cgroup")
ALL_NAMESPACES = (*REQUIRED_NAMESPACES, *OPTIONAL_NAMESPACES, "network")
MB = 1024 * 1024


@dataclass(frozen=True)
class Isolation:
    """What this host lets the namespaces backend turn on."""

    is_root: bool
    namespaces: dict[str, str]  # name → "" when it can be created, else why not
    cgroups: cgroups.CgroupSystem
    seccomp: str = ""  # "" when a system call filter can be installed, else why not

    def available(self, namespace: str) -> bool:
        """Whether the namespace can be created here."""
        return self.is_root and self.namespaces.get(namespace) == ""


def probe_namespaces() -> dict[str, str]:
    """Which namespaces this kernel lets lambdalet create: "" or why not (blocking)."""
    try:
        result = subprocess.run(
            launcher_command("--probe"),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=True,
        )
        found: dict[str, str] = json.loads(result.stdout)
        return found
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        return dict.fromkeys(ALL_NAMESPACES, f"the probe failed: {error}")


def detect_isolation() -> Isolation:
    """Probe namespaces and cgroups; make the cgroups' ``lambdalet`` parents (blocking)."""
    is_root = os.geteuid() == 0
    if not is_root:
        reason = "lambdalet does not run as root"
        return Isolation(False, dict.fromkeys(ALL_NAMESPACES, reason), _no_cgroups(reason), reason)
    return Isolation(True, probe_namespaces(), cgroups.detect(), seccomp.unavailable_reason())


def why_not_namespaces(isolation: Isolation) -> str:
    """Why the ``auto`` backend cannot pick this one here, or "" when it can: it needs root,
    user, pid and mount namespaces, and cgroups limiting memory and processes."""
    if not isolation.is_root:
        return "lambdalet does not run as root"
    for name in ("user", "pid", "mount"):
        if not isolation.available(name):
            return f"no {name} namespace: {isolation.namespaces.get(name) or 'not probed'}"
    for name in ("memory", "pids"):
        if name not in isolation.cgroups.controllers:
            return f"no cgroup {name}: {isolation.cgroups.missing.get(name, 'unavailable')}"
    return ""


def _no_cgroups(reason: str) -> cgroups.CgroupSystem:
    return cgroups.CgroupSystem(missing=dict.fromkeys(cgroups.CONTROLLERS, reason))


def describe(
    isolation: Isolation,
    *,
    host_id: int = DEFAULT_HOST_ID,
    pids_max: int = DEFAULT_PIDS_MAX,
) -> list[tuple[str, bool, str]]:
    """Each isolation measure: its name, whether it is on, and what it does or why it is off."""
    report = [
        (
            "root",
            isolation.is_root,
            "lambdalet runs as root, as building sandboxes requires"
            if isolation.is_root
            else "lambdalet does not run as root: the namespaces backend cannot start",
        )
    ]
    effects = {
        "mount": "own root: read-only system and /var/task, private /tmp, own /proc and /dev",
        "pid": "sees only its own processes; its init's exit kills them all",
        "user": f"runs as uid {SANDBOX_UID} inside, unprivileged host uid {host_id}",
        "ipc": "own System V IPC and POSIX message queues",
        "uts": "own hostname",
        "cgroup": "sees its own cgroup as /",
    }
    fallbacks = {"user": f"runs as host uid {host_id} directly (no user namespace)"}
    for name in (*REQUIRED_NAMESPACES, *OPTIONAL_NAMESPACES):
        reason = isolation.namespaces.get(name, "not probed")
        on = isolation.available(name)
        detail = effects[name] if on else f"{reason}; {fallbacks.get(name, 'not isolated')}"
        report.append((f"{name} namespace", on, detail))
    net_on = isolation.available("network")
    report.append(
        (
            "network namespace",
            net_on,
            f"functions tagged {network.TAG}={network.NONE} get an empty network namespace;"
            " others share the host's network (DESIGN: host network by default)"
            if net_on
            else f"{isolation.namespaces.get('network', 'not probed')}; {network.TAG}="
            f"{network.NONE} cannot be honoured: such functions fail to start",
        )
    )
    system = isolation.cgroups
    limits = {
        "memory": "memory limited to MemorySize; OOM kills the runtime",
        "pids": f"at most {pids_max} processes and threads",
        "cpu": "CPU time of MemorySize / 1,769 MB vCPU after init",
    }
    for name, effect in limits.items():
        controller = system.controllers.get(name)
        if controller is None:
            report.append((f"cgroup {name}", False, system.missing.get(name, "unavailable")))
        else:
            detail = f"{effect} (cgroup v{controller.version}, {controller.parent})"
            report.append((f"cgroup {name}", True, detail))
    if "memory" in system.controllers:
        report.append(
            (
                "swap limit",
                system.limits_swap,
                "no swap beyond MemorySize"
                if system.limits_swap
                else "swap is not accounted by this kernel: the limit covers RAM only",
            )
        )
        report.append(
            (
                "memory peak",
                system.reports_peak,
                "Max Memory Used is the cgroup's peak"
                if system.reports_peak
                else "the kernel keeps no peak: Max Memory Used is the runtime's VmHWM",
            )
        )
    report.append(
        ("no_new_privs", isolation.is_root, "set before exec: setuid programs gain nothing")
    )
    report.append(
        (
            "seccomp",
            isolation.seccomp == "",
            "system call filter: no mount, ptrace, modules, bpf, keyring, reboot, namespaces,"
            " raw sockets (sandbox/seccomp.py)"
            if isolation.seccomp == ""
            else f"{isolation.seccomp}: runtimes run with no system call filter",
        )
    )
    freezer = system.controllers.get(cgroups.FREEZER)
    report.append(
        (
            "cgroup freezer",
            freezer is not None,
            f"idle sandboxes are frozen between invocations (cgroup v{freezer.version},"
            f" {freezer.parent})"
            if freezer is not None
            else f"{system.missing.get(cgroups.FREEZER, 'unavailable')}: idle sandboxes keep"
            " running between invocations",
        )
    )
    return report


def isolation_report() -> list[tuple[str, bool, str]]:
    """What the namespaces backend isolates on this host and what it cannot (blocking)."""
    return describe(detect_isolation())


class NamespacesSandbox(ProcessSandbox):
    """A process sandbox whose runtime runs in namespaces, a root of its own and cgroups."""

    def __init__(self, spec: SandboxSpec, backend: NamespacesBackend) -> None:
        super().__init__(spec)
        self._backend = backend
        self._cgroup: cgroups.SandboxCgroup | None = None
        self._layout: rootfs.RootLayout | None = None
        self._host_runtime_api = ""
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._runtime_peak_kb = 0  # the runtime's peak at the last reading of the cgroup's
        self._peak_read_monotonic = -PEAK_READ_INTERVAL_S

    async def start(self) -> None:
        await super().start()
        self._after_init()

    def _after_init(self) -> None:
        """Once init is done: throttle the CPU to the function's share, watch its memory.

        On the loop, not in a thread: two small writes to the cgroup file system (no disk)
        cost less than the thread hop, on the cold start's path."""
        if self._cgroup is not None:
            try:
                self._cgroup.limit_cpu(self.spec.function.memory_mb)
            except OSError as error:
                log.warning("sandbox %s: cannot limit its CPU: %s", self.sandbox_id, error)
        if not self._backend.isolation.cgroups.reports_peak:
            self._watch_runtime_memory()

    def _environment(self, runtime_api: str) -> dict[str, str]:
        function = self.spec.function
        env = launch.environment(
            function,
            code_dir=Path(rootfs.TASK_DIR),
            opt_dir=Path(rootfs.OPT_DIR),
            tmp_dir=Path(rootfs.TMP_DIR),
            runtime_api=network.runtime_api_inside(function, runtime_api),
            region=self.spec.region,
            log_stream_name=log_stream_name(function.version),
        )
        env["LAMBDA_RUNTIME_DIR"] = rootfs.RUNTIME_DIR
        self._host_runtime_api = runtime_api
        return env

    def _command(self) -> list[str]:
        host_argv = super()._command()
        isolation = self._backend.isolation
        if network.wants_no_network(self.spec.function) and not isolation.available("network"):
            raise SandboxError(f"{network.TAG}={network.NONE}: no network namespaces on this host")
        uid, gid = (
            (SANDBOX_UID, SANDBOX_GID)
            if isolation.available("user")
            else (self._backend.host_id, self._backend.host_id)
        )
        try:
            self._layout = rootfs.build_layout(
                host_argv=host_argv,
                code_dir=self.spec.code_dir,
                opt_dir=self.spec.opt_dir,
                runtime_dir=launch.PYTHON_BOOTSTRAP.parent,
                cache_dir=self.spec.cache_dir,
                tmp_size_bytes=self.spec.function.ephemeral_storage_mb * MB,
                uid=uid,
                gid=gid,
            )
            # The code tree's own directory may be private to root (made by mkdtemp).
            for tree in (self.spec.code_dir, self.spec.opt_dir):
                if tree.stat().st_mode & 0o005 != 0o005:
                    tree.chmod(0o755)
            (self._scratch / "root").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SandboxError(f"cannot lay out the sandbox's root: {error}") from None
        try:
            self._cgroup = cgroups.SandboxCgroup.create(
                isolation.cgroups,
                self.sandbox_id,
                memory_mb=self.spec.function.memory_mb,
                pids_max=self._backend.pids_max,
            )
        except OSError as error:
            raise SandboxError(f"cannot create the sandbox's cgroups: {error}") from None
        return self._layout.argv

    def _popen(
        self, argv: list[str], env: dict[str, str], inherited: tuple[int, ...], output_fd: int
    ) -> subprocess.Popen[bytes]:
        assert self._layout is not None
        entry = self._layout.host_entry
        if entry is not None:
            # Checked here, as exec would, so a bad bootstrap is Runtime.InvalidEntrypoint.
            if not entry.exists():
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
            if not os.access(entry, os.X_OK) or entry.is_dir():
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        plan = self._plan(argv, env)
        plan_read, plan_write = os.pipe()
        try:
            launcher = launcher_command(str(plan_read))
            process = super()._popen(launcher, {}, (*inherited, plan_read), output_fd)
        except BaseException:
            os.close(plan_write)
            raise
        finally:
            os.close(plan_read)
        with os.fdopen(plan_write, "wb") as plan_pipe:
            try:
                # While the launcher's interpreter starts; it waits for the plan to go on.
                if self._cgroup is not None:
                    self._cgroup.add_process(process.pid)
            except OSError as error:
                process.kill()
                process.wait()
                message = f"RequestId: Error: cannot move the runtime into its cgroups: {error}"
                payload = error_payload("Runtime.Unknown", message)
                raise SandboxInitError(payload, "Runtime.Unknown", [], 0.0) from None
            plan_pipe.write(marshal.dumps(plan))
        return process

    def _plan(self, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        """What ``runtime/isolate.py`` builds the sandbox from (its module docstring)."""
        assert self._layout is not None
        isolation = self._backend.isolation
        return {
            "root": str((self._scratch / "root").absolute()),
            "steps": self._layout.steps,
            "hostname": "localhost",
            "namespaces": {name: isolation.available(name) for name in OPTIONAL_NAMESPACES},
            "uid": SANDBOX_UID,
            "gid": SANDBOX_GID,
            "host_uid": self._backend.host_id,
            "host_gid": self._backend.host_id,
            "nofile": NOFILE,
            "cwd": rootfs.TASK_DIR,
            "argv": argv,
            # Through the pipe, not the launcher's own environment: LD_LIBRARY_PATH names /opt,
            # which on the host is not the layers.
            "env": env,
            "seccomp": self._backend.seccomp_program,
            "init_program": native_init.program(),
            **network.plan_entries(self.spec.function, self._host_runtime_api),
        }

    def _peak_memory_mb(self, reported_kb: int | None = None) -> int:
        """The cgroup's peak, which counts every process of the sandbox and its /tmp.

        Reading it costs a system call that takes about a tenth of a warm no-op invocation, so
        it is read after an invocation only when the runtime's own peak (``reported_kb``) grew,
        when the runtime reported none, or when the last reading is PEAK_READ_INTERVAL_S old:
        memory that only other processes or files took shows at the latest by then.
        """
        if self._cgroup is None:
            return super()._peak_memory_mb(reported_kb)
        now = time.monotonic()
        if (
            reported_kb is not None
            and reported_kb <= self._runtime_peak_kb
            and now - self._peak_read_monotonic < PEAK_READ_INTERVAL_S
        ):
            return self._stats.max_memory_used_mb
        peak = self._cgroup.peak_memory_bytes()
        if peak is None:
            return super()._peak_memory_mb(reported_kb)
        self._runtime_peak_kb = max(self._runtime_peak_kb, reported_kb or 0)
        self._peak_read_monotonic = now
        peak_mb = -(-peak // MB)
        self._stats.max_memory_used_mb = max(self._stats.max_memory_used_mb, peak_mb)
        return self._stats.max_memory_used_mb

    def _watch_runtime_memory(self) -> None:
        """Point the process backend's VmHWM reading at the runtime, not the launcher: the
        launcher's child is the sandbox's init, whose child is the runtime."""
        if self._process is None:
            return
        pid = self._process.pid
        try:
            for _ in range(2):
                with open(f"/proc/{pid}/task/{pid}/children") as children:
                    pid = int(children.read().split()[0])
            self._status_fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, ValueError, IndexError) as error:
            log.warning("sandbox %s: cannot find its runtime's memory: %s", self.sandbox_id, error)

    async def invoke(self, invocation: Invocation, timeout_ms: int) -> InvocationResult:
        # Frozen while idle: thawed right before the invocation is sent, frozen again once it
        # has had no invocation for FREEZE_AFTER_IDLE_S (not when it died or timed out: it is
        # being stopped). A sandbox under steady load is never frozen: both writes cost about
        # 0.1 ms each, and a v1 freeze can stall while a task is in a system call.
        cgroup = self._cgroup if self._backend.freeze_idle else None
        if cgroup is not None:
            try:
                cgroup.thaw()
            except OSError as error:  # still frozen, it times out and is stopped
                log.warning("sandbox %s: cannot thaw it: %s", self.sandbox_id, error)
        result = await super().invoke(invocation, timeout_ms)
        if cgroup is not None and self._freeze_timer is None and self.state is SandboxState.READY:
            self._arm_freezer(FREEZE_AFTER_IDLE_S)
        return result

    def _arm_freezer(self, delay_s: float) -> None:
        """One timer per sandbox, not one per invocation: when it fires early (the sandbox was
        used meanwhile) it is set again for the rest of the idle time."""
        loop = asyncio.get_running_loop()
        self._freeze_timer = loop.call_later(delay_s, self._freeze_if_idle)

    def _freeze_if_idle(self) -> None:
        """Freeze the sandbox once it has had no invocation for FREEZE_AFTER_IDLE_S."""
        self._freeze_timer = None
        if self._cgroup is None or self.state not in (SandboxState.READY, SandboxState.INVOKING):
            return
        idle_s = time.monotonic() - self.last_used_monotonic
        if self.state is SandboxState.INVOKING:
            self._arm_freezer(FREEZE_AFTER_IDLE_S)
            return
        if idle_s < FREEZE_AFTER_IDLE_S:
            self._arm_freezer(FREEZE_AFTER_IDLE_S - idle_s)
            return
        try:
            self._cgroup.freeze()
        except OSError as error:
            log.warning("sandbox %s: cannot freeze it: %s", self.sandbox_id, error)

    async def stop(self) -> None:
        if self._freeze_timer is not None:
            self._freeze_timer.cancel()
        if self._cgroup is not None:
            with contextlib.suppress(OSError):
                self._cgroup.thaw()  # a frozen task (cgroup v1) would not die of SIGKILL
        await super().stop()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None:
            await asyncio.to_thread(cgroup.remove)


class NamespacesBackend:
    """Makes :class:`NamespacesSandbox` instances; probes the host once, warning of what is
    off, and refuses to start without root or mount and pid namespaces."""

    name = "namespaces"

    def __init__(
        self,
        *,
        host_id: int = DEFAULT_HOST_ID,
        pids_max: int = DEFAULT_PIDS_MAX,
        freeze_idle: bool = True,
        isolation: Isolation | None = None,
    ) -> None:
        self.host_id = host_id
        self.pids_max = pids_max
        self.freeze_idle = freeze_idle
        self.isolation = isolation or detect_isolation()
        report = describe(self.isolation, host_id=host_id, pids_max=pids_max)
        for name, on, detail in report:
            if not on:
                log.warning("namespaces sandboxes: %s is OFF: %s", name, detail)
        missing = [
            f"{name}: {detail}"
            for name, on, detail in report
            if not on and name in ("root", *(f"{ns} namespace" for ns in REQUIRED_NAMESPACES))
        ]
        if missing:
            raise SandboxError("the namespaces sandbox backend cannot run: " + "; ".join(missing))
        reaped = cgroups.reap_orphans(self.isolation.cgroups)
        if reaped:
            log.warning("stopped %d sandboxes left running by nodes that died", reaped)

    @property
    def seccomp_program(self) -> bytes | None:
        """The system call filter the runtimes run under, if this host can install one."""
        return seccomp.build() if self.isolation.seccomp == "" else None

    def create(self, spec: SandboxSpec) -> NamespacesSandbox:
        """A new, not yet started, namespaces sandbox."""
        return NamespacesSandbox(spec, self)
