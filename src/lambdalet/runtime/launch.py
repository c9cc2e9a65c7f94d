"""How a function's runtime is started: its command line and its standard environment.

Python runtimes run lambdalet's stdlib-only bootstrap under the interpreter the runtime id maps
to in ``Settings.runtimes``; custom runtimes (``provided*``) run the zip's ``bootstrap``.
"""

from __future__ import annotations

from pathlib import Path

from lambdalet.models import FunctionConfig

PYTHON_BOOTSTRAP = Path(__file__).with_name("python_bootstrap.py")

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


def is_python(runtime: str) -> bool:
    """Whether the runtime id is one of lambdalet's Python runtimes."""
    return runtime.startswith("python")


def is_custom(runtime: str) -> bool:
    """Whether the runtime id runs the zip's own ``bootstrap``."""
    return runtime.startswith("provided")


def entry_file(function: FunctionConfig) -> str | None:
    """The file inside the zip that must exist for the handler to load, if the runtime knows."""
    if is_custom(function.runtime):
        return "bootstrap"
    if is_python(function.runtime) and "." in function.handler:
        module = function.handler.rsplit(".", 1)[0].replace(".", "/")
        return module + ".py"
    return None


def command(function: FunctionConfig, runtimes: dict[str, str], code_dir: Path) -> list[str]:
    """The command line that starts the function's runtime."""
    if is_custom(function.runtime):
        return [str(code_dir / "bootstrap")]
    return [runtimes[function.runtime], "-X", "utf8", str(PYTHON_BOOTSTRAP)]


def environment(
    function: FunctionConfig,
    *,
    code_dir: Path,
    tmp_dir: Path,
    runtime_api: str,
    region: str,
    log_stream_name: str,
) -> dict[str, str]:
    """The environment AWS gives a function, with the user's variables beneath its own."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LD_LIBRARY_PATH": "/lib64:/usr/lib64:/opt/lib",
        "TMPDIR": str(tmp_dir),
    }
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
