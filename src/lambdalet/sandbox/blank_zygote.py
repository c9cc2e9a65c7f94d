"""Blank zygotes: per Python runtime, one root process that forks blank pooled sandboxes.

A blank sandbox started from scratch costs two interpreter starts, the launcher's (``python
-I -S runtime/isolate.py``) and the runtime's (``python -X utf8 python_bootstrap.py``, with
its imports and warm-up): about two thirds of the CPU time a start costs, and what bounds how
fast the pool refills. A :class:`BlankZygote` is the runtime's own interpreter, started once
as root on the host (in no sandbox) with ``isolate.py`` and ``python_bootstrap.py`` imported
and warmed up. For each blank sandbox it forks the sandbox's init straight into a new pid
namespace, and the init takes the very steps a started one takes (``runtime/isolate.py``):
its own mount, ipc, uts and user namespaces, its own root and cgroups (the host moves it into
them before it reads its plan), rlimits, no_new_privs and the system call filter; only where
the runtime would exec its interpreter does it go on in the one it inherited. The host plays
the launcher's part: it maps the user namespace's ids when the init asks, and reads the
init's report of how the runtime ended. The zygote never runs function code: the runtime is
forked blank and bound to its function later (``sandbox/pool.py``).

What an exec would have drawn anew and forked runtimes share with their zygote and with each
other: the address-space layout and the ``str`` hash seed. A zygote is retired after
:data:`FORKS_PER_ZYGOTE` forks, so that no more than that many sandboxes share them; it ends
once the last of its forks has ended (each fork dies with its zygote).

The zygote's forks are its children, not the host's: it reports each one's pid and exit
status on a status pipe of that fork's own, and the host signals it through a pidfd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalet.runtime import launch

log = logging.getLogger(__name__)

ISOLATE_DIR = launch.PYTHON_BOOTSTRAP.parent
FORKS_PER_ZYGOTE = 64
START_TIMEOUT_S = 10.0
FORK_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# What the zygote's interpreter reads as it starts, of the environment a blank runtime gets:
# not PYTHONPATH, which names the sandbox's /opt (the fork sets it up inside).
ENVIRONMENT_KEYS = ("PATH", "LANG", "TZ", "LD_LIBRARY_PATH", "TMPDIR")
# A directory nobody can make: root's user site stays out of the zygote's sys.path.
NO_USER_BASE = "/proc/lambdalet-no-user-site"


@dataclass
class ForkedInit:
    """A sandbox's init the zygote forked: blocked on its plan pipe until the host writes it."""

    pid: int
    pidfd: int
    status_fd: int  # the zygote writes the init's exit status here once it reaped it
    plan_fd: int  # the write end of the plan pipe
    report_fd: int  # the init asks for its id maps here, and reports the runtime's end
    go_fd: int  # where the host answers, once the ids are mapped
    zygote: BlankZygote
    pending: bytes = b""  # what was read of the status pipe beyond the pid
    exited: asyncio.Future[int] | None = field(default=None, repr=False)

    def map_ids(self, plan: dict[str, Any]) -> None:
        """What the launcher does for the init (blocking): when the init has unshared its user
        namespace, map the sandbox's uid and gid there to the unprivileged host ids."""
        try:
            if plan["namespaces"].get("user"):
                if self._read_report_line() != b"map":
                    return  # the init failed before; its report and its end say how
                with open(f"/proc/{self.pid}/uid_map", "w") as uid_map:
                    uid_map.write(f"{plan['uid']} {plan['host_uid']} 1\n")
                with open(f"/proc/{self.pid}/gid_map", "w") as gid_map:
                    gid_map.write(f"{plan['gid']} {plan['host_gid']} 1\n")
                os.write(self.go_fd, b"go\n")
        finally:
            os.close(self.go_fd)
            self.go_fd = -1

    def _read_report_line(self) -> bytes:
        line = b""
        while not line.endswith(b"\n"):
            readable, _, _ = select.select([self.report_fd], [], [], FORK_TIMEOUT_S)
            byte = os.read(self.report_fd, 1) if readable else b""
            if not byte:
                break
            line += byte
        return line.strip()

    def watch_exit(self) -> asyncio.Future[int]:
        """A future of the runtime's exit status as Popen gives a launcher's (-N: killed by
        signal N), resolved by the event loop once the zygote has reaped the init: the init's
        report if it made one, else the init's own end."""
        loop = asyncio.get_running_loop()
        self.exited = loop.create_future()
        if not self._settle(self.pending, final=False):
            loop.add_reader(self.status_fd, self._read_status)
        return self.exited

    def _read_status(self) -> None:
        try:
            data = os.read(self.status_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.pending += data
        if self._settle(self.pending, final=not data):
            asyncio.get_running_loop().remove_reader(self.status_fd)

    def _settle(self, data: bytes, *, final: bool) -> bool:
        """Resolve the exit future from a complete status line (or the pipe's end)."""
        assert self.exited is not None
        if b"\n" in data:
            status = int(data.split(b"\n", 1)[0])
        elif final:
            status = -signal.SIGKILL  # the zygote ended: so did its forks
        else:
            return False
        report = self._report()
        if not self.exited.done():
            self.exited.set_result(report if report is not None else status)
            self.zygote.fork_ended()
        return True

    def _report(self) -> int | None:
        """The init's report, written before it ended: ``exit N`` or ``signal N``."""
        try:
            os.set_blocking(self.report_fd, False)
            text = os.read(self.report_fd, 256).decode(errors="replace")
        except OSError:
            return None
        word, _, value = text.strip().rpartition("\n")[2].partition(" ")
        if not value.isdigit():
            return None
        if word == "exit":
            return int(value)
        return -int(value) if word == "signal" else None

    def kill(self) -> None:
        """SIGKILL the init: its pid namespace ends with it."""
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)

    def close(self) -> None:
        """Release the pidfd and the pipes (its end taken as a kill if not seen yet)."""
        if self.exited is not None and not self.exited.done():
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.status_fd)
            self.exited.set_result(-signal.SIGKILL)
            self.zygote.fork_ended()
        for fd in (self.pidfd, self.status_fd, self.plan_fd, self.report_fd, self.go_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = self.status_fd = self.plan_fd = self.report_fd = self.go_fd = -1


def why_not(paths: list[Path]) -> str:
    """Why no zygote can build sandboxes from ``paths`` on this host, or "" if one can: where
    the host has no ``/opt/lib``, a zygote sees an empty ``/opt`` (``runtime/isolate.py``),
    so nothing a sandbox is built from may lie under /opt."""
    if Path("/opt/lib").is_dir():
        return ""
    under = [str(path) for path in paths if path.resolve().is_relative_to("/opt")]
    return f"{', '.join(under)} lie under /opt, which a zygote cannot see" if under else ""


class BlankZygote:
    """One Python runtime's blank zygote: started once, forks an init per blank sandbox."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        self.python = python
        self._env = {key: env[key] for key in ENVIRONMENT_KEYS if key in env}
        self._env["PYTHONUSERBASE"] = NO_USER_BASE
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self.forks = 0  # forks asked for so far
        # Sandboxes that have a fork of it, or will: reserved and released on the event loop.
        self.live = 0
        self.retiring = False

    @property
    def usable(self) -> bool:
        """Started, not retired and still running."""
        return (
            self._process is not None
            and self._process.poll() is None
            and not self.retiring
            and self.forks < FORKS_PER_ZYGOTE
        )

    def start(self) -> None:
        """Start the zygote and wait until it has imported and warmed up (blocking); OSError
        if it cannot."""
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        where = str(ISOLATE_DIR)
        program = f"import sys; sys.path.insert(0, {where!r}); import isolate; isolate.main()"
        # Not -I -S: the interpreter starts as the runtime's would, with its site-packages
        # (its flags are the forked runtimes' flags); without root's user site.
        argv = [self.python, "-X", "utf8", "-c", program]
        argv += ["--blank-zygote", str(zygote_end.fileno())]
        try:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=self._env,
                cwd="/",
                pass_fds=(zygote_end.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            host_end.close()
            raise
        finally:
            zygote_end.close()
        self._control = host_end
        try:
            host_end.settimeout(START_TIMEOUT_S)
            ready = host_end.recv(1)
            host_end.settimeout(None)
        except OSError:
            ready = b""
        if ready != b"R":
            self.stop()
            raise OSError(f"the blank zygote of {self.python} did not start")

    def fork(self, output_fd: int, channel_fd: int) -> ForkedInit:
        """A new sandbox init whose output is ``output_fd`` and whose runtime will talk on
        ``channel_fd`` (blocking); OSError if the zygote cannot fork one."""
        if self._control is None:
            raise OSError("the blank zygote is not running")
        status_read, status_write = os.pipe()
        plan_read, plan_write = os.pipe()
        report_read, report_write = os.pipe()
        go_read, go_write = os.pipe()
        kept = (status_read, plan_write, report_read, go_write)
        given = [status_write, plan_read, output_fd, channel_fd, report_write, go_read]
        try:
            socket.send_fds(self._control, [b"F"], given)
        except BaseException:
            for fd in kept:
                os.close(fd)
            raise
        finally:
            for fd in (status_write, plan_read, report_write, go_read):
                os.close(fd)
        try:
            line, rest = self._read_pid(status_read)
            pidfd = os.pidfd_open(int(line))
        except (OSError, ValueError) as error:
            for fd in kept:
                os.close(fd)
            raise OSError(f"the blank zygote did not fork: {error}") from None
        return ForkedInit(
            int(line), pidfd, status_read, plan_write, report_read, go_write, self, pending=rest
        )

    @staticmethod
    def _read_pid(status_fd: int) -> tuple[bytes, bytes]:
        data = b""
        while b"\n" not in data:
            readable, _, _ = select.select([status_fd], [], [], FORK_TIMEOUT_S)
            chunk = os.read(status_fd, 64) if readable else b""
            if not chunk:
                raise OSError("no pid")
            data += chunk
        line, _, rest = data.partition(b"\n")
        return line, rest

    def reserve(self) -> None:
        """A sandbox will have a fork of it (on the event loop): it is not ended before
        :meth:`fork_ended` says so, even when retired meanwhile."""
        self.live += 1
        self.forks += 1

    def fork_ended(self) -> None:
        """A fork reserved ended, or will not be made (on the event loop): a retired zygote with
        none left ends too."""
        self.live -= 1
        if self.retiring and self.live <= 0:
            self.stop()

    def retire(self) -> None:
        """Fork no more; end once the last fork has ended."""
        self.retiring = True
        if self.live <= 0:
            self.stop()

    def stop(self) -> None:
        """End the zygote now (its forks die with it); it is reaped in a thread when an event
        loop runs, else here."""
        control, self._control = self._control, None
        if control is not None:
            control.close()  # the zygote ends when its control socket does
        process = self._process
        if process is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _reap(process)
        else:
            loop.run_in_executor(None, _reap, process)


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
