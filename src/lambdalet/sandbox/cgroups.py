"""Control groups for namespaces sandboxes, on cgroup v1 or v2: whichever the host mounts.

Each sandbox gets a cgroup (one per v1 hierarchy, or one v2 directory) named after it, under
a ``lambdalet`` parent made beneath the node's own cgroup, so limits the node itself runs
under still hold for its sandboxes. On v2, where a cgroup with processes cannot hand
controllers to its children, the parent falls back to the top of the hierarchy. The parent
is made when a sandbox needs it and removed with the last sandbox: an empty directory left
behind would keep whoever manages the node's own cgroup from removing it.

Limits, as AWS sets them: memory = MemorySize with no swap (``memory.limit_in_bytes`` and
``memory.memsw.limit_in_bytes`` on v1, ``memory.max`` and ``memory.swap.max`` on v2), a number
of processes and threads (``pids.max``), and CPU time proportional to memory, 1,769 MB being
one vCPU (``cpu.cfs_quota_us`` on v1, ``cpu.max`` on v2). Everything here is blocking but only
touches the kernel's cgroup file system, never a disk.

Idle sandboxes are frozen between invocations, as AWS freezes an execution environment: the
v1 ``freezer`` controller (``freezer.state`` FROZEN/THAWED) where it is mounted, else v2's
``cgroup.freeze`` (which needs no controller, only a v2 cgroup of the sandbox's own). A frozen
cgroup is thawed before it is killed: on v1 a frozen task does not die until thawed.

A sandbox's cgroup is named ``<node pid>-<sandbox id>``. A node that dies without stopping its
sandboxes (SIGKILL, a crash) leaves them running, or frozen for good; the next node to start
on the host kills them and removes their cgroups (:func:`reap_orphans`): those whose node pid
is no longer alive. This assumes the nodes sharing a ``lambdalet`` parent share a pid
namespace, as nodes in one container or on one host do.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CONTROLLERS = ("memory", "pids", "cpu")
FREEZER = "freezer"  # kept apart: on v2 it is not a controller but a file of every cgroup
FREEZE_VALUES = {1: {True: b"FROZEN", False: b"THAWED"}, 2: {True: b"1", False: b"0"}}
PARENT_NAME = "lambdalet"
MB = 1024 * 1024
ONE_VCPU_MB = 1769
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
REMOVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Controller:
    """One controller the sandboxes can use, and the parent their cgroups are made in."""

    name: str
    version: int
    parent: Path


@dataclass
class CgroupSystem:
    """What this host's cgroups offer the sandboxes."""

    controllers: dict[str, Controller] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # controller → why it is off
    limits_swap: bool = False  # swap can be limited too (v1 needs swap accounting)
    reports_peak: bool = False  # the peak memory is kept (v2 from Linux 5.19)

    def make_parent(self, parent: Path) -> None:
        """Make a ``lambdalet`` parent (again), handing v2 controllers down (blocking)."""
        names = [c.name for c in self.controllers.values() if c.parent == parent]
        if any(c.version == 2 for c in self.controllers.values() if c.parent == parent):
            _enable_v2(parent.parent, [name for name in names if name != FREEZER])
            if FREEZER in names:
                parent.mkdir(exist_ok=True)
        else:
            parent.mkdir(exist_ok=True)


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), text)


def cgroup_mounts(mountinfo: str) -> tuple[dict[str, tuple[Path, str]], tuple[Path, str] | None]:
    """The v1 hierarchy of each controller and the v2 mount, each as (mount point, root)."""
    v1: dict[str, tuple[Path, str]] = {}
    v2: tuple[Path, str] | None = None
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        mount = (Path(_unescape(fields[4])), _unescape(fields[3]))
        if tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in CONTROLLERS or option == FREEZER:
                    v1.setdefault(option, mount)
        elif tail[0] == "cgroup2" and v2 is None:
            v2 = mount
    return v1, v2


def own_cgroups(text: str) -> dict[str, str]:
    """The node's own cgroup per v1 controller, and under "" its v2 cgroup."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            own[name] = parts[2]
    return own


def _beneath(mount: tuple[Path, str], own: str) -> Path:
    """The directory of the node's own cgroup in a mounted hierarchy (its top if unseen)."""
    point, root = mount
    if own == root or own.startswith(root.rstrip("/") + "/"):
        inside = point / own[len(root) :].lstrip("/")
        if inside.is_dir():
            return inside
    return point


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enable_v2(base: Path, names: list[str]) -> list[str]:
    """Make ``base/lambdalet`` hand ``names`` to its children; return those it does.

    A ``base`` that holds processes (other than the root) cannot hand controllers down: the
    parent is then removed again and nothing is returned.
    """
    for name in names:
        with contextlib.suppress(OSError):
            _write(base / "cgroup.subtree_control", f"+{name}")
    offered = (base / "cgroup.subtree_control").read_text().split()
    names = [name for name in names if name in offered]
    if not names:
        return []
    parent = base / PARENT_NAME
    parent.mkdir(exist_ok=True)
    for name in names:
        with contextlib.suppress(OSError):
            _write(parent / "cgroup.subtree_control", f"+{name}")
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    names = [name for name in names if name in enabled]
    if not names:
        _remove_if_empty(parent)
    return names


def detect(
    mountinfo_path: Path = Path("/proc/self/mountinfo"),
    cgroup_path: Path = Path("/proc/self/cgroup"),
) -> CgroupSystem:
    """Find memory, pids and cpu on v1 or v2 and make the ``lambdalet`` parents (blocking)."""
    system = CgroupSystem()
    try:
        v1, v2 = cgroup_mounts(mountinfo_path.read_text())
        own = own_cgroups(cgroup_path.read_text())
    except OSError as error:
        system.missing = dict.fromkeys(CONTROLLERS, f"cannot read the cgroup mounts: {error}")
        return system
    for name, mount in v1.items():
        parent = _beneath(mount, own.get(name, "/")) / PARENT_NAME
        try:
            parent.mkdir(exist_ok=True)
        except OSError as error:
            system.missing[name] = f"cannot create {parent}: {error.strerror}"
            continue
        system.controllers[name] = Controller(name, 1, parent)
        if name == "memory":
            system.limits_swap = (parent / "memory.memsw.limit_in_bytes").exists()
            system.reports_peak = (parent / "memory.max_usage_in_bytes").exists()
    wanted = [name for name in CONTROLLERS if name not in v1]
    if wanted and v2 is not None:
        top = v2[0]
        try:
            offered = (top / "cgroup.controllers").read_text().split()
        except OSError:
            offered = []
        wanted_here = [name for name in wanted if name in offered]
        bases = [_beneath(v2, own.get("", "/")), top]
        for base in dict.fromkeys(bases):  # the node's own cgroup first, then the top
            if not wanted_here:
                break
            try:
                enabled = _enable_v2(base, wanted_here)
            except OSError as error:
                log.debug("cannot use %s for sandbox cgroups: %s", base, error)
                continue
            parent = base / PARENT_NAME
            for name in enabled:
                system.controllers[name] = Controller(name, 2, parent)
            if "memory" in enabled:
                system.limits_swap = (parent / "memory.swap.max").exists() or _swap_off()
                system.reports_peak = (parent / "memory.peak").exists()
            wanted_here = [name for name in wanted_here if name not in enabled]
    if FREEZER not in system.controllers and v2 is not None:
        _find_v2_freezer(system, [_beneath(v2, own.get("", "/")), v2[0]])
    for name in CONTROLLERS:
        if name not in system.controllers and name not in system.missing:
            system.missing[name] = "not mounted (v1) nor delegable (v2) on this host"
    if FREEZER not in system.controllers and FREEZER not in system.missing:
        system.missing[FREEZER] = "no v1 freezer hierarchy nor cgroup v2 mounted on this host"
    for parent in {c.parent for c in system.controllers.values()}:
        _remove_if_empty(parent)  # made again by the first sandbox
    return system


def _find_v2_freezer(system: CgroupSystem, bases: list[Path]) -> None:
    """Freeze through v2's ``cgroup.freeze``: in the v2 parent the controllers use, if any,
    else in a ``lambdalet`` parent of its own."""
    in_use = [c.parent for c in system.controllers.values() if c.version == 2]
    for parent in dict.fromkeys([*in_use, *(base / PARENT_NAME for base in bases)]):
        try:
            parent.mkdir(exist_ok=True)
        except OSError as error:
            system.missing[FREEZER] = f"cannot create {parent}: {error.strerror}"
            continue
        if (parent / "cgroup.freeze").exists():
            system.controllers[FREEZER] = Controller(FREEZER, 2, parent)
            system.missing.pop(FREEZER, None)
            return
        system.missing[FREEZER] = f"{parent} has no cgroup.freeze (Linux before 5.2)"
        if parent not in in_use:
            _remove_if_empty(parent)


def _swap_off() -> bool:
    # memory.swap.max only exists where swap is accounted; with no swap at all, nothing to limit.
    try:
        return len(Path("/proc/swaps").read_text().splitlines()) <= 1
    except OSError:
        return False


def _remove_if_empty(directory: Path) -> None:
    # Fails, harmlessly, while another sandbox's cgroup is in it.
    with contextlib.suppress(OSError):
        directory.rmdir()


class SandboxCgroup:
    """The cgroups of one sandbox: limits, the peak memory it used, and their removal."""

    def __init__(self, system: CgroupSystem, name: str) -> None:
        self._system = system
        self._controllers = {
            controller.name: (controller.version, controller.parent / name)
            for controller in system.controllers.values()
        }
        self._directories = list(dict.fromkeys(path for _, path in self._controllers.values()))
        self._peak_fd: int | None = None
        self._freeze_fd: int | None = None
        self._frozen = False

    @classmethod
    def create(
        cls, system: CgroupSystem, name: str, *, memory_mb: int, pids_max: int
    ) -> SandboxCgroup:
        """Make the sandbox's cgroups with its memory and pids limits (blocking), named
        after this node and ``name``."""
        cgroup = cls(system, f"{os.getpid()}-{name}")
        try:
            for directory in cgroup._directories:
                cgroup._make(directory)
            cgroup.limit_memory(memory_mb)
            if "pids" in cgroup._controllers:
                _write(cgroup._path("pids", "pids.max"), str(pids_max))
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def _make(self, directory: Path) -> None:
        for attempt in range(3):
            try:
                directory.mkdir()
                return
            except FileNotFoundError:
                # No parent: this is the first sandbox, or the last one just removed it.
                if attempt == 2:
                    raise
                self._system.make_parent(directory.parent)

    def _path(self, controller: str, filename: str) -> Path:
        return self._controllers[controller][1] / filename

    def limit_memory(self, memory_mb: int) -> None:
        """Hold the sandbox to ``memory_mb`` with swap included (blocking). With cgroup v1 the
        limit can only be lowered in place: memory.memsw must stay above memory.limit."""
        if "memory" not in self._controllers:
            return
        limit = str(memory_mb * MB)
        if self._controllers["memory"][0] == 1:
            _write(self._path("memory", "memory.limit_in_bytes"), limit)
            memsw = self._path("memory", "memory.memsw.limit_in_bytes")
            if memsw.exists():
                _write(memsw, limit)
            # With no swap accounting, swappiness 0 keeps the limit a limit, not a swap storm.
            with contextlib.suppress(OSError):
                _write(self._path("memory", "memory.swappiness"), "0")
        else:
            _write(self._path("memory", "memory.max"), limit)
            swap = self._path("memory", "memory.swap.max")
            if swap.exists():
                _write(swap, "0")

    def limit_cpu(self, memory_mb: int) -> None:
        """Give the sandbox the CPU time AWS gives this much memory (blocking)."""
        if "cpu" not in self._controllers:
            return
        quota_us = max(MIN_CPU_QUOTA_US, memory_mb * CPU_PERIOD_US // ONE_VCPU_MB)
        if self._controllers["cpu"][0] == 1:
            _write(self._path("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US))
            _write(self._path("cpu", "cpu.cfs_quota_us"), str(quota_us))
        else:
            _write(self._path("cpu", "cpu.max"), f"{quota_us} {CPU_PERIOD_US}")

    def add_process(self, pid: int) -> None:
        """Move a process into the sandbox's cgroups (blocking: on v1 the first move may wait
        for an RCU grace period, some milliseconds; its children are born inside)."""
        for directory in self._directories:
            _write(directory / "cgroup.procs", str(pid))

    def peak_memory_bytes(self) -> int | None:
        """The most memory the sandbox has used, if the kernel keeps count.

        The file stays open and is re-read from offset 0: one syscall per invocation.
        """
        if "memory" not in self._controllers:
            return None
        try:
            if self._peak_fd is None:
                version = self._controllers["memory"][0]
                name = "memory.max_usage_in_bytes" if version == 1 else "memory.peak"
                self._peak_fd = os.open(self._path("memory", name), os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(self._peak_fd, 64, 0))
        except (OSError, ValueError):
            return None

    @property
    def can_freeze(self) -> bool:
        """Whether the sandbox can be frozen on this host."""
        return FREEZER in self._controllers

    def freeze(self) -> None:
        """Stop every process of the sandbox until :meth:`thaw` (blocking, one write; the
        kernel finishes freezing in the background)."""
        if self.can_freeze and not self._frozen:
            self._set_frozen(True)

    def thaw(self) -> None:
        """Let a frozen sandbox's processes run again (blocking, one write)."""
        if self._frozen:
            self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        version = self._controllers[FREEZER][0]
        if self._freeze_fd is None:
            name = "freezer.state" if version == 1 else "cgroup.freeze"
            self._freeze_fd = os.open(self._path(FREEZER, name), os.O_WRONLY | os.O_CLOEXEC)
        value = FREEZE_VALUES[version][frozen]
        os.write(self._freeze_fd, value)
        self._frozen = frozen

    def freezer_state(self) -> str:
        """What the kernel says: ``THAWED``, ``FREEZING`` or ``FROZEN`` (v2: ``THAWED`` or
        ``FROZEN``, from ``cgroup.events``); empty without a freezer."""
        if not self.can_freeze:
            return ""
        if self._controllers[FREEZER][0] == 1:
            return self._path(FREEZER, "freezer.state").read_text().strip()
        events = dict(
            line.split(" ", 1)
            for line in self._path(FREEZER, "cgroup.events").read_text().splitlines()
        )
        return "FROZEN" if events.get("frozen") == "1" else "THAWED"

    def remove(self) -> None:
        """Kill what is left in the cgroups and remove them (blocking; safe to call twice)."""
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None
        if self._frozen:
            with contextlib.suppress(OSError):
                self.thaw()  # a frozen task would not die
        if self._freeze_fd is not None:
            os.close(self._freeze_fd)
            self._freeze_fd = None
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        for directory in self._directories:
            _remove(directory, deadline)
        for parent in {directory.parent for directory in self._directories}:
            _remove_if_empty(parent)


def _remove(directory: Path, deadline: float) -> None:
    """Remove a sandbox's cgroup, killing what is still in it, until ``deadline``."""
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("could not remove cgroup %s: %s", directory, error)
                return
            _kill_members(directory)
            time.sleep(0.01)


def _members(directory: Path) -> set[int]:
    try:
        return {int(pid) for pid in (directory / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _kill_members(directory: Path) -> None:
    """SIGKILL every process still in the cgroup, through pidfds so a reused pid is safe."""
    kill_file = directory / "cgroup.kill"
    if kill_file.exists():
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
            return
    for pid in _members(directory):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # gone already
        try:
            # Still a member once its pidfd is held: the pidfd is this very process (an
            # error means it has exited meanwhile).
            if pid in _members(directory):
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)


_NODE_PREFIX = re.compile(r"(\d+)-")


def reap_orphans(system: CgroupSystem) -> int:
    """Kill the sandboxes of nodes that are gone and remove their cgroups (blocking); return
    how many sandboxes there were. Cgroups named otherwise are left alone."""
    orphans: dict[str, list[tuple[Controller, Path]]] = {}
    for controller in system.controllers.values():
        with contextlib.suppress(OSError):
            for directory in controller.parent.iterdir():
                match = _NODE_PREFIX.match(directory.name)
                if match is None or not directory.is_dir():
                    continue
                if not _alive(int(match[1])):
                    orphans.setdefault(directory.name, []).append((controller, directory))
    for cgroups in orphans.values():
        for controller, directory in cgroups:  # a frozen task does not die until thawed
            with contextlib.suppress(OSError):
                if controller.version == 2:
                    _write(directory / "cgroup.freeze", "0")
                elif controller.name == FREEZER:
                    _write(directory / "freezer.state", "THAWED")
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        for _, directory in cgroups:
            _remove(directory, deadline)
    return len(orphans)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
