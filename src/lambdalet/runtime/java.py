"""The Java runtime: lambdalet's stdlib-only bootstrap, compiled once per JDK into a cache.

The bootstrap's source ships with lambdalet (``runtime/java/``); the first Java sandbox compiles
it with the JDK's ``javac`` into ``cache_dir`` (keyed by the source's digest and the JDK), so
later starts only launch the JVM. Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lambdalet.errors import SandboxError

SOURCE_DIR = Path(__file__).with_name("java")
MAIN_CLASS = "lambdalet.runtime.Bootstrap"
# Flags that shorten JVM start for short-lived functions, as AWS's own Java runtimes do.
JVM_FLAGS = [
    "-XX:+TieredCompilation",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
]


def _sources() -> list[Path]:
    return sorted(SOURCE_DIR.rglob("*.java"))


def compiled_classes(java_executable: str, cache_dir: Path) -> Path:
    """The directory of compiled bootstrap classes for this JDK, compiling them if needed."""
    digest = hashlib.sha256(os.path.realpath(java_executable).encode())
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
    result = subprocess.run(
        [str(javac), "-d", str(build), *map(str, _sources())],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(f"compiling the Java bootstrap failed: {result.stderr[-2000:]}")
    (build / ".complete").touch()
    try:
        os.rename(build, target)
    except OSError:
        # Another sandbox compiled it first; theirs is identical.
        shutil.rmtree(build, ignore_errors=True)
    return target


def command(java_executable: str, code_dir: Path, cache_dir: Path) -> list[str]:
    """The JVM command line for a function whose code (classes and ``lib/*.jar``) is code_dir."""
    classes = compiled_classes(java_executable, cache_dir)
    classpath = os.pathsep.join([str(classes), str(code_dir), str(code_dir / "lib" / "*")])
    return [java_executable, *JVM_FLAGS, "-cp", classpath, MAIN_CLASS]
