"""Native custom runtimes, compiled from ``examples/`` and run against the real Runtime API.

Each example (Go with only its standard library, C on POSIX sockets, Rust with only ``std``)
is a ``bootstrap`` that speaks HTTP to ``AWS_LAMBDA_RUNTIME_API`` itself, as a Go, C or Rust
function does on AWS. Each test builds its program, deploys it with an executable
``bootstrap`` and invokes it through boto3. A test is skipped only when its compiler
is missing; a program that does not build fails its tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdalet.testing import Deploy, tail

EXECUTABLE = 0o100755
EXAMPLES = Path(__file__).parent.parent / "examples"
BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Language:
    """A native runtime example: where its source is and how to build it."""

    name: str
    source: Path
    compiler: str
    debian_package: str
    build: Callable[[str, Path, Path], list[str]]  # (compiler, source, output) -> argv

    @property
    def error_type(self) -> str:
        """The errorType the program reports for an event ``{"fail": true}``."""
        return f"Custom{self.name.capitalize()}.AskedToFail"


LANGUAGES = {
    "go": Language(
        "go",
        EXAMPLES / "custom-go" / "main.go",
        "go",
        "golang-go",
        lambda go, source, output: [go, "build", "-o", str(output), source.name],
    ),
    "c": Language(
        "c",
        EXAMPLES / "custom-c" / "bootstrap.c",
        "gcc",
        "gcc libc6-dev",
        lambda gcc, source, output: [gcc, "-O2", "-Wall", "-o", str(output), source.name],
    ),
    "rust": Language(
        "rust",
        EXAMPLES / "custom-rust" / "main.rs",
        "rustc",
        "rustc",
        lambda rustc, source, output: [rustc, "-O", source.name, "-o", str(output)],
    ),
}


def find_compiler(language: Language) -> str | None:
    """The compiler's path: on PATH, or rustup's default place for rustc."""
    found = shutil.which(language.compiler)
    if found is None and language.compiler == "rustc":
        rustup = Path.home() / ".cargo" / "bin" / "rustc"
        found = str(rustup) if rustup.exists() else None
    return found


def build(language: Language, work: Path) -> bytes:
    """The compiled program; skips the test if the compiler is missing, fails if it fails."""
    compiler = find_compiler(language)
    if compiler is None:
        pytest.skip(
            f"{language.compiler} is not installed: apt-get install {language.debian_package}"
        )
    output = work / "bootstrap"
    env = dict(os.environ)
    if language.name == "go":
        # No go.mod and no network: build the one file in GOPATH mode, with caches in tmp.
        env.update(
            GO111MODULE="off",
            GOFLAGS="",
            GOPROXY="off",
            GOTOOLCHAIN="local",
            CGO_ENABLED="0",
            GOCACHE=str(work / "gocache"),
            GOPATH=str(work / "gopath"),
        )
    argv = language.build(compiler, language.source, output)
    built = subprocess.run(
        argv,
        cwd=language.source.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert built.returncode == 0, (
        f"{' '.join(argv)} failed ({built.returncode}):\n{built.stdout}{built.stderr}"
    )
    return output.read_bytes()


def check_warm_invocations_and_errors(lambda_client: Any, name: str, language: Language) -> None:
    """Two warm invocations in one process, a reported error, and the process going on."""
    event = {"name": "lambdalet", "nested": {"list": [1, 2.5, None, "é"]}}
    first = lambda_client.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail")
    assert "FunctionError" not in first
    result = json.loads(first["Payload"].read())
    request_id = first["ResponseMetadata"]["RequestId"]
    pid = result["pid"]
    assert result == {
        "greeting": f"hello from {language.name}",
        "runtime": language.name,
        "handler": "echo",
        "request_id": request_id,
        "function_arn": f"arn:aws:lambda:us-east-1:000000000000:function:{name}",
        "deadline_ms": result["deadline_ms"],
        "pid": pid,
        "count": 1,
        "event": event,
    }
    assert isinstance(pid, int) and pid > 0
    assert result["deadline_ms"] > 1_600_000_000_000  # a Unix time in milliseconds
    expected_line = f"{language.name} runtime handling {request_id} (invocation 1 in pid {pid})"
    assert expected_line in tail(first)

    # Warm: the same process serves the next invocation (no payload: AWS sends the event {}).
    second = lambda_client.invoke(FunctionName=name, LogType="Tail")
    assert "FunctionError" not in second
    result = json.loads(second["Payload"].read())
    assert (result["pid"], result["count"], result["event"]) == (pid, 2, {})
    assert result["request_id"] == second["ResponseMetadata"]["RequestId"]
    assert f"(invocation 2 in pid {pid})" in tail(second)

    failed = lambda_client.invoke(FunctionName=name, Payload=b'{"fail": true}', LogType="Tail")
    assert failed["FunctionError"] == "Unhandled"
    failed_id = failed["ResponseMetadata"]["RequestId"]
    assert json.loads(failed["Payload"].read()) == {
        "errorType": language.error_type,
        "errorMessage": f"{language.name} runtime was asked to fail {failed_id}",
    }
    assert f"runtime handling {failed_id} (invocation 3 in pid {pid})" in tail(failed)

    # A reported error does not end the runtime: the same process goes on.
    after = lambda_client.invoke(FunctionName=name, Payload=b'{"fail": false}')
    assert "FunctionError" not in after
    result = json.loads(after["Payload"].read())
    assert (result["pid"], result["count"], result["event"]) == (pid, 4, {"fail": False})


def check_init_error(lambda_client: Any, name: str, language: Language) -> None:
    """An unknown handler, reported by the program through /init/error."""
    response = lambda_client.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    message = f"{language.name} runtime has no handler 'nowhere' (only \"echo\")"
    assert json.loads(response["Payload"].read()) == {
        "errorType": "Runtime.HandlerNotFound",
        "errorMessage": message,
    }
    assert message in tail(response)


# One test per language, so each program is built once; every custom runtime id is covered.
@pytest.mark.parametrize(
    ("language_name", "runtimes"),
    [
        ("go", ("provided.al2023",)),
        ("c", ("provided.al2023", "provided")),
        ("rust", ("provided.al2023", "provided.al2")),
    ],
)
def test_native_custom_runtime(
    deploy: Deploy,
    lambda_client: Any,
    tmp_path: Path,
    language_name: str,
    runtimes: tuple[str, ...],
) -> None:
    language = LANGUAGES[language_name]
    bootstrap = build(language, tmp_path)
    code = {"files": {"bootstrap": bootstrap}, "modes": {"bootstrap": EXECUTABLE}}
    for runtime in runtimes:
        name = deploy(**code, runtime=runtime, handler="echo")["FunctionName"]
        check_warm_invocations_and_errors(lambda_client, name, language)
    name = deploy(**code, runtime="provided.al2023", handler="nowhere")["FunctionName"]
    check_init_error(lambda_client, name, language)
