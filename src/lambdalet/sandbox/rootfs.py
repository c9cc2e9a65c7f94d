"""The root file system a namespaces sandbox sees, as steps ``runtime/isolate.py`` carries out.

The root is an empty tmpfs (read-only once built) holding only mount points and a few
generated files:

- the host's ``/usr``, ``/bin``, ``/sbin`` and ``/lib*``, read-only (or the same symlinks, on a
  merged-/usr system), and from ``/etc`` only what programs need to resolve names, verify TLS
  certificates and load libraries (``resolv.conf``, ``ssl``, ``ld.so.cache``, ...);
  ``passwd``, ``group`` and ``hosts`` are generated;
- the function's code read-only at ``/var/task``, the merged layers at ``/opt``, lambdalet's
  runtime files at ``/var/runtime``;
- a private ``/tmp`` tmpfs of EphemeralStorage MB, a ``/dev`` with only null, zero, full,
  random and urandom, and a ``/proc`` of the sandbox's own pid namespace;
- the runtime's interpreter where it lives on the host (a virtualenv and the Python it was
  made from, for example), read-only at the same path: interpreters find their libraries
  relative to themselves, so they are not moved.

Command lines are rewritten from host paths to these (``code_dir`` → ``/var/task``, ...).
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalet.errors import SandboxError

TASK_DIR = "/var/task"
OPT_DIR = "/opt"
RUNTIME_DIR = "/var/runtime"
TMP_DIR = "/tmp"
SANDBOX_USER = "sbx_user1051"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "resolv.conf",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "localtime",
    "mime.types",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "pki",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "alternatives",
)
# The JDK's configuration, where Debian-like systems keep it (its conf/ links here).
ETC_PATTERNS = ("java-*", "java")
DEVICES = ("null", "zero", "full", "random", "urandom")
DEV_LINKS = {
    "/dev/fd": "/proc/self/fd",
    "/dev/stdin": "/proc/self/fd/0",
    "/dev/stdout": "/proc/self/fd/1",
    "/dev/stderr": "/proc/self/fd/2",
}
# Mount points of the sandbox's own: a host path bound at its own path may not be one of
# them or lie inside one that is read-only, nor contain any of them.
RESERVED = ("/var/task", "/opt", "/var/runtime", "/proc", "/dev", "/etc")


@dataclass
class RootLayout:
    """The steps that build a sandbox's root, and the runtime's command line inside it."""

    steps: list[list[Any]] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    # The host file behind argv[0], when it is the function's (a custom runtime's bootstrap).
    host_entry: Path | None = None

    def bind(self, source: str, target: str) -> None:
        """Show the host's ``source`` read-only at ``target``."""
        self.steps.append(["bind-ro", source, target, ""])


def _covered(path: Path, bound: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in bound)


def interpreter_roots(executable: str) -> list[Path]:
    """The host directories an interpreter needs: its own prefix and, for a virtualenv, the
    environment and the prefix of the Python it was made from."""
    found = shutil.which(executable)
    if found is None:
        raise SandboxError(f"the runtime's interpreter {executable} is not installed")
    program = Path(found).absolute()
    roots: list[Path] = []
    for config in (program.parent / "pyvenv.cfg", program.parent.parent / "pyvenv.cfg"):
        if config.is_file():
            roots.append(config.parent)
            for line in config.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    roots.append(Path(value.strip()).resolve().parent)
            break
    roots.append(program.resolve().parent.parent)
    return roots


def _host_binds(paths: list[Path], system: list[Path]) -> list[Path]:
    """The directories to bind at their own path: not under the system dirs, outermost only."""
    chosen: list[Path] = []
    for path in sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts)):
        if _covered(path, system) or _covered(path, chosen):
            continue
        text = str(path)
        clashes = [
            reserved
            for reserved in RESERVED
            if text == reserved
            or text.startswith(reserved + "/")
            or reserved.startswith(text.rstrip("/") + "/")
        ]
        if text == TMP_DIR or TMP_DIR.startswith(text.rstrip("/") + "/"):
            clashes.append(TMP_DIR)  # inside /tmp is fine: bound over its tmpfs
        if path == Path("/") or clashes:
            raise SandboxError(
                f"{path} is needed inside the sandbox but clashes with its own {clashes or '/'}:"
                " install the runtime elsewhere"
            )
        chosen.append(path)
    return chosen


def build_layout(
    *,
    host_argv: list[str],
    code_dir: Path,
    opt_dir: Path,
    runtime_dir: Path,
    cache_dir: Path,
    tmp_size_bytes: int,
    uid: int,
    gid: int,
) -> RootLayout:
    """The root of one sandbox and its command line (blocking: it looks at the host's files)."""
    layout = RootLayout()
    host_steps, system = _host_steps(time.monotonic() // HOST_CACHE_S)
    layout.steps += host_steps
    layout.steps += [
        ["file", _passwd(uid, gid), "/etc/passwd", ""],
        ["file", f"root:x:0:\n{SANDBOX_USER}:x:{gid}:\nnogroup:x:65534:\n", "/etc/group", ""],
        ["file", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", "/etc/hosts", ""],
    ]
    layout.steps += _etc_and_dev_steps(time.monotonic() // HOST_CACHE_S)
    layout.steps.append(["proc", None, "/proc", ""])
    layout.steps.append(["tmpfs", None, TMP_DIR, f"size={tmp_size_bytes},mode=1777"])

    translations = sorted(
        [(str(code_dir), TASK_DIR), (str(opt_dir), OPT_DIR), (str(runtime_dir), RUNTIME_DIR)],
        key=lambda pair: -len(pair[0]),
    )

    def translate(text: str) -> str:
        for host, inside in translations:
            text = text.replace(host, inside)
        return text

    layout.argv = [translate(argument) for argument in host_argv]
    needed: list[Path] = []
    program = host_argv[0]
    if program.startswith(str(code_dir) + "/"):
        layout.host_entry = Path(program).absolute()
    else:
        needed += _interpreter_roots(program, time.monotonic() // HOST_CACHE_S)
    # Files the command line names in lambdalet's cache (the Java bootstrap's jar and class
    # archive) stay where they are: the archive records its jar's path.
    for argument in host_argv[1:]:
        for part in argument.replace("=", ":").split(":"):
            if part.startswith(str(cache_dir) + "/") and os.path.exists(part):
                needed.append(Path(part) if os.path.isdir(part) else Path(part).parent)
    for path in _cached_host_binds(tuple(needed), system, time.monotonic() // HOST_CACHE_S):
        layout.bind(str(path), str(path))
    # Absolute: the launcher runs in the code directory, not in the node's.
    layout.bind(os.path.abspath(code_dir), TASK_DIR)
    layout.bind(os.path.abspath(opt_dir), OPT_DIR)
    layout.bind(os.path.abspath(runtime_dir), RUNTIME_DIR)
    # Parents before children: /tmp's tmpfs before an interpreter bound inside it.
    layout.steps.sort(key=_depth)
    return layout


def _depth(step: list[Any]) -> int:
    # Stable sort: steps at one depth keep their order.
    return 99 if step[0] == "file" else _path_depth(step[2])


@functools.lru_cache(maxsize=256)
def _path_depth(target: str) -> int:
    """The number of Path(target).parts."""
    return os.path.normpath(target).rstrip("/").count("/") + 1


# What the host's own files make of every root (its system directories, its /etc and /dev,
# where an interpreter lives) is looked at again every HOST_CACHE_S, not at every start: it
# costs a millisecond of CPU, on the path of every start, and changes when software does.
HOST_CACHE_S = 10.0


@functools.lru_cache(maxsize=2)
def _host_steps(_period: float) -> tuple[tuple[list[Any], ...], tuple[Path, ...]]:
    """The system directories' steps, and those bound (resolved), for one cache period."""
    steps: list[list[Any]] = []
    system: list[Path] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            steps.append(["symlink", os.readlink(path), name, ""])
        elif path.is_dir():
            steps.append(["bind-ro", name, name, ""])
            system.append(path.resolve())
    return tuple(steps), tuple(system)


@functools.lru_cache(maxsize=2)
def _etc_and_dev_steps(_period: float) -> tuple[list[Any], ...]:
    """The /etc entries and devices shown, for one cache period."""
    steps: list[list[Any]] = []
    etc = [Path("/etc", name) for name in ETC_ENTRIES]
    etc += [Path(found) for pattern in ETC_PATTERNS for found in glob.glob(f"/etc/{pattern}")]
    for entry in etc:
        if entry.exists():
            steps.append(["bind-ro", os.path.realpath(entry), str(entry), ""])
    steps.append(["tmpfs", None, "/dev", "size=64k,mode=0755"])
    for device in DEVICES:
        if os.path.exists(f"/dev/{device}"):
            steps.append(["bind-dev", f"/dev/{device}", f"/dev/{device}", ""])
    steps += [["symlink", target, link, ""] for link, target in DEV_LINKS.items()]
    return tuple(steps)


@functools.lru_cache(maxsize=32)
def _interpreter_roots(executable: str, _period: float) -> list[Path]:
    return interpreter_roots(executable)


@functools.lru_cache(maxsize=32)
def _cached_host_binds(
    needed: tuple[Path, ...], system: tuple[Path, ...], _period: float
) -> tuple[Path, ...]:
    return tuple(_host_binds(list(needed), list(system)))


def _passwd(uid: int, gid: int) -> str:
    return (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"{SANDBOX_USER}:x:{uid}:{gid}::/tmp:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    )
