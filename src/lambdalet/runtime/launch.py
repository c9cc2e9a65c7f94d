"""How a function's runtime is started: its command line and its standard environment.

Python, Node.js and Java runtimes run lambdalet's own bootstrap (standard library only) under
the interpreter the runtime id maps to in ``Settings.runtimes``; custom runtimes (``provided*``)
run the zip's ``bootstrap``. Layers are merged into one directory, ``opt_dir``, which stands
for ``/opt``: its ``bin``, ``lib``, ``python``, ``nodejs/node_modules`` and ``java/lib`` go on
the search paths AWS puts them on.
"""

from __future__ import annotations

import functools
import logging
import py_compile
from pathlib import Path

from lambdalet.models import FunctionConfig

log = logging.getLogger(__name__)

PYTHON_BOOTSTRAP = Path(__file__).with_name("python_bootstrap.py")
# What the interpreter runs: it imports PYTHON_BOOTSTRAP, from its cached bytecode.
PYTHON_MAIN = Path(__file__).with_name("python_main.py")
NODE_BOOTSTRAP = Path(__file__).with_name("node_bootstrap.js")

# Keys the user may not set: AWS refuses them with InvalidParameterValueException.
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def family(runtime: str) -> str:
    """The runtime family of a runtime id: python, node, java or custom."""
    if runtime.startswith("python"):
        return "python"
    if runtime.startswith("nodejs"):
        return "node"
    if runtime.startswith("java"):
        return "java"
    return "custom"


def is_custom(runtime: str) -> bool:
    """Whether the runtime id runs the zip's own ``bootstrap``."""
    return family(runtime) == "custom"


def entry_files(function: FunctionConfig) -> tuple[str, ...] | None:
    """Files of the zip one of which must exist for the handler to load, if the runtime knows."""
    kind = family(function.runtime)
    if kind == "custom":
        return ("bootstrap",)
    if kind == "python" and "." in function.handler:
        module = function.handler.rsplit(".", 1)[0]
        return (module.replace(".", "/") + ".py",)
    if kind == "node":
        # AWS's Node runtime splits at the first dot of the last path part: "src/app.a.b" is
        # export "a.b" of module "src/app", which may also be a package in node_modules.
        directory, _, base = function.handler.rpartition("/")
        if "." not in base:
            return None
        module = base.split(".", 1)[0]
        prefix = f"{directory}/{module}" if directory else module
        package = (f"node_modules/{module}/package.json",) if not directory else ()
        return tuple(prefix + suffix for suffix in ("", ".js", ".mjs", ".cjs")) + package
    return None


def command(
    function: FunctionConfig,
    runtimes: dict[str, str],
    code_dir: Path,
    cache_dir: Path,
    opt_dir: Path,
) -> list[str]:
    """The command line that starts the function's runtime.

    Blocking: the Java runtime compiles its bootstrap into ``cache_dir`` the first time.
    """
    kind = family(function.runtime)
    if kind == "custom":
        return [str(code_dir / "bootstrap")]
    if kind == "node":
        return [runtimes[function.runtime], str(NODE_BOOTSTRAP)]
    if kind == "java":
        from lambdalet.runtime import java

        argv = java.command(runtimes[function.runtime], code_dir, cache_dir, opt_dir=opt_dir)
        # Size the heap from the function's memory, not the host's, as AWS's launcher does.
        return [argv[0], f"-XX:MaxRAM={function.memory_mb}m", *argv[1:]]
    cache_bootstrap_bytecode()
    return [runtimes[function.runtime], "-X", "utf8", str(PYTHON_MAIN)]


@functools.cache
def cache_bootstrap_bytecode() -> None:
    """Compile the runtime client's bytecode into its ``__pycache__`` once (for this host's
    Python version, the usual runtime's): sandboxes see that directory read-only, and would
    otherwise compile it at every start. Where it cannot be written, they still do."""
    try:
        py_compile.compile(str(PYTHON_BOOTSTRAP), doraise=True)
    except (OSError, py_compile.PyCompileError) as error:
        log.warning("cannot cache the Python runtime's bytecode: %s", error)


def environment(
    function: FunctionConfig,
    *,
    code_dir: Path,
    opt_dir: Path,
    tmp_dir: Path,
    runtime_api: str,
    region: str,
    log_stream_name: str,
) -> dict[str, str]:
    """The environment AWS gives a function, with the user's variables beneath its own."""
    opt = str(opt_dir)
    env = {
        "PATH": f"/usr/local/bin:/usr/bin:/bin:{opt}/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": f"/lib64:/usr/lib64:{opt}/lib",
        "TMPDIR": str(tmp_dir),
    }
    kind = family(function.runtime)
    if kind == "python":
        version = function.runtime
        env["PYTHONPATH"] = f"{opt}/python/lib/{version}/site-packages:{opt}/python"
    elif kind == "node":
        major = function.runtime.removeprefix("nodejs").split(".")[0]
        env["NODE_PATH"] = (
            f"{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:{code_dir}"
        )
    env.update(function.environment)
    env.update(
        {
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(PYTHON_BOOTSTRAP.parent),
            "_HANDLER": function.handler,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
        }
    )
    return env
