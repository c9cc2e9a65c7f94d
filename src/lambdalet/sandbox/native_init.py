"""The namespaces sandbox's native init (``runtime/init.c``), built once per host process.

Once a sandbox is set up, its init has only to reap and to report the runtime's end. Its
Python interpreter would hold about 3 MB for that (mostly ``libpython``'s data pages, dirtied
by reference counts) for as long as the sandbox lives; the compiled program holds a few
pages. The program's bytes go to the sandbox in its plan: the init writes them to a memfd
and execs that (``runtime/isolate.py``), so no file of the host need be reachable, or
executable, from inside the sandbox.

It is built with the host's C compiler (``cc``, else ``gcc`` or ``clang``) the first time a
sandbox starts, and run once from a memfd as the init will be. Without a compiler, if the
build fails or if this kernel will not run a memfd (``vm.memfd_noexec = 2``), the init stays
a Python process: the sandboxes work the same, with a larger idle footprint (a warning says
so, once).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).resolve().parent.parent / "runtime" / "init.c"
COMPILERS = ("cc", "gcc", "clang")
BUILD_TIMEOUT_S = 60.0
USAGE_STATUS = 125  # the init's exit status when called without its two arguments


@functools.cache
def program() -> bytes | None:
    """The init's executable, or None if this host cannot build it (blocking, once)."""
    compiler = next((found for name in COMPILERS if (found := shutil.which(name))), None)
    if compiler is None:
        log.warning("no C compiler: sandboxes keep a Python init (about 3 MB more each)")
        return None
    with tempfile.TemporaryDirectory(prefix="lambdalet-init-") as work_dir:
        output = Path(work_dir) / "init"
        command = [compiler, "-O2", "-s", "-o", str(output), str(SOURCE)]
        try:
            subprocess.run(command, capture_output=True, check=True, timeout=BUILD_TIMEOUT_S)
            executable = output.read_bytes()
            runs = run_from_memfd(executable)
        except (OSError, subprocess.SubprocessError) as error:
            detail = getattr(error, "stderr", b"") or b""
            log.warning(
                "cannot build the sandbox's native init, sandboxes keep a Python init: %s %s",
                error,
                detail.decode(errors="replace")[:500],
            )
            return None
    if runs != USAGE_STATUS:
        log.warning(
            "the sandbox's native init does not run from a memfd here (status %s),"
            " sandboxes keep a Python init",
            runs,
        )
        return None
    return executable


def run_from_memfd(executable: bytes) -> int:
    """Run ``executable`` without arguments as ``runtime/isolate.py`` runs the init, from a
    read-only memfd; its exit status (:data:`USAGE_STATUS` for the init)."""
    writable = os.memfd_create("lambdalet-init")
    try:
        os.write(writable, executable)
        readable = os.open(f"/proc/self/fd/{writable}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(writable)
    try:
        path = f"/proc/self/fd/{readable}"
        return subprocess.run([path], pass_fds=(readable,), timeout=BUILD_TIMEOUT_S).returncode
    finally:
        os.close(readable)
