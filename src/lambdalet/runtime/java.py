"""The Java runtime: lambdalet's stdlib-only bootstrap, compiled once per JDK into a cache.

The bootstrap's source ships with lambdalet (``runtime/java/``); the first Java sandbox compiles
it with the JDK's ``javac`` into ``cache_dir`` (keyed by the source's digest and the JDK) as
``bootstrap.jar``, so later starts only launch the JVM. Blocking: call from a thread.

Cold start is kept short the ways AWS's own Java runtimes use (C1 only, the serial collector, no
perf-data file) plus Class Data Sharing: right after compiling, a training run of the bootstrap
(``--train-cds``: a few scripted invocations against an in-process Runtime API) is recorded with
``-XX:ArchiveClassesAtExit`` into ``bootstrap.jsa``, a dynamic archive over the JDK's own, which
every sandbox then maps instead of loading, verifying and linking those classes again. The
archive needs the jar at the path it was recorded with, so it is made after the build directory
has moved into place. If the JDK cannot make one (no base archive, say), sandboxes start
without it; ``bootstrap.jsa.log`` says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from lambdalet.errors import SandboxError

SOURCE_DIR = Path(__file__).with_name("java")
MAIN_CLASS = "lambdalet.runtime.Bootstrap"
BOOTSTRAP_JAR = "bootstrap.jar"
CDS_ARCHIVE = "bootstrap.jsa"
TRAIN_FLAG = "--train-cds"
# Flags that shorten JVM start for short-lived functions, as AWS's own Java runtimes do.
# -UsePerfData also spares each sandbox an mmap'ed hsperfdata file in its /tmp. UTF-8 is the
# default charset on AWS whatever the locale (and on every JDK from 18); JDK 17 would otherwise
# fall back to ASCII where the locale named by LANG is not installed.
JVM_FLAGS = [
    "-XX:+TieredCompilation",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Xshare:auto",
    "-Dfile.encoding=UTF-8",
]
# An archive the JVM refuses (another JDK build, say) must not print warnings into the
# function's log: the JVM then just starts without it.
CDS_QUIET_FLAGS = ["-Xlog:cds*=off", "-Xlog:class+path=off"]
JAVAC_FLAGS = [
    # Plain StringBuilder code instead of invokedynamic: the first indy string concatenation
    # spins method handles for about 10 ms, on every cold start (measured on JDK 17).
    "-XDstringConcat=inline",
    "-encoding",
    "UTF-8",
]
COMPILE_TIMEOUT_S = 300
TRAINING_TIMEOUT_S = 120


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.rglob("*.java"))


def compiled_classes(java_executable: str, cache_dir: Path) -> Path:
    """The directory of the compiled bootstrap for this JDK, compiling it if needed.

    It holds ``bootstrap.jar`` and, once the training run has recorded it, ``bootstrap.jsa``.
    """
    digest = hashlib.sha256(os.path.realpath(java_executable).encode())
    # The archive is recorded under JVM_FLAGS: other flags, another archive.
    for flag in [*JAVAC_FLAGS, *JVM_FLAGS]:
        digest.update(flag.encode())
    for source in _sources():
        digest.update(source.read_bytes())
    target = cache_dir / "java" / digest.hexdigest()[:16]
    if (target / ".complete").exists():
        return target
    javac = Path(os.path.realpath(java_executable)).with_name("javac")
    if not javac.exists():
        raise SandboxError(f"no javac beside {java_executable}: install a JDK, not only a JRE")
    cache_dir.joinpath("java").mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir / "java"))
    build.chmod(0o755)  # sandboxes may run as another user: they must read the jar
    try:
        _compile(javac, build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    (build / ".complete").touch()
    try:
        os.rename(build, target)
    except OSError:
        # Another sandbox compiled it first; theirs is identical, and it records the archive.
        shutil.rmtree(build, ignore_errors=True)
        return target
    record_class_archive(java_executable, target)
    return target


def _compile(javac: Path, build: Path) -> None:
    classes = build / "classes"
    try:
        result = subprocess.run(
            [str(javac), *JAVAC_FLAGS, "-d", str(classes), *map(str, _sources())],
            capture_output=True,
            text=True,
            check=False,
            timeout=COMPILE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise SandboxError(
            f"compiling the Java bootstrap took over {COMPILE_TIMEOUT_S} s"
        ) from None
    if result.returncode != 0:
        raise SandboxError(f"compiling the Java bootstrap failed: {result.stderr[-2000:]}")
    # CDS archives classes from jars only, never from a directory on the classpath.
    with zipfile.ZipFile(build / BOOTSTRAP_JAR, "w", zipfile.ZIP_STORED) as jar:
        for path in sorted(classes.rglob("*.class")):
            info = zipfile.ZipInfo(path.relative_to(classes).as_posix(), (1980, 1, 1, 0, 0, 0))
            jar.writestr(info, path.read_bytes())
    shutil.rmtree(classes)


def record_class_archive(java_executable: str, target: Path) -> Path | None:
    """Record ``bootstrap.jsa`` in ``target`` with a training run; None if the JDK cannot."""
    archive = target / CDS_ARCHIVE
    partial = target / f".{CDS_ARCHIVE}.{os.getpid()}.partial"
    argv = [
        java_executable,
        *JVM_FLAGS,
        f"-XX:ArchiveClassesAtExit={partial}",
        "-cp",
        str(target / BOOTSTRAP_JAR),
        MAIN_CLASS,
        TRAIN_FLAG,
    ]
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=target,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            timeout=TRAINING_TIMEOUT_S,
        )
        output = result.stdout + result.stderr
        recorded = result.returncode == 0 and partial.exists()
    except (OSError, subprocess.TimeoutExpired) as error:
        output, recorded = str(error), False
    (target / f"{CDS_ARCHIVE}.log").write_text(f"$ {' '.join(argv)}\n{output[-20000:]}")
    if not recorded:
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, archive)
    return archive


def command(
    java_executable: str, code_dir: Path, cache_dir: Path, *, opt_dir: Path | None = None
) -> list[str]:
    """The JVM command line for a function whose code (classes and ``lib/*.jar``) is code_dir.

    With ``opt_dir`` (the merged layers, ``/opt``), its ``java/lib/*.jar`` come last on the
    classpath, as on AWS.
    """
    compiled = compiled_classes(java_executable, cache_dir)
    entries = [compiled / BOOTSTRAP_JAR, code_dir, code_dir / "lib" / "*"]
    if opt_dir is not None:
        entries.append(opt_dir / "java" / "lib" / "*")
    classpath = os.pathsep.join(map(str, entries))
    flags = list(JVM_FLAGS)
    archive = compiled / CDS_ARCHIVE
    if archive.exists():
        flags += [f"-XX:SharedArchiveFile={archive}", *CDS_QUIET_FLAGS]
    return [java_executable, *flags, "-cp", classpath, MAIN_CLASS]
