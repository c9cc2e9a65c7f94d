"""lambdalet's Python runtime: a Lambda Runtime API client that runs inside the sandbox.

Standard library only: it is started as a script by the sandbox's interpreter and must not
import lambdalet or anything installed. It behaves like AWS's Python runtime: it imports the
handler once (module-level state survives between invocations), builds the context object,
and reports errors with AWS's ``errorType`` names (``Runtime.ImportModuleError``,
``Runtime.HandlerNotFound``, ``Runtime.UserCodeSyntaxError``, ``Runtime.MalformedHandlerName``,
``Runtime.MarshalError``).

Two modes the host may ask for through the environment, on its private channel only:

- pooled (``_LAMBDALET_POOLED``): started blank in a prewarmed sandbox, it says ``parked``
  and waits for the function's environment (``bind``), takes it on (``os.environ``, the
  time zone, ``/var/task``) and only then imports the handler (``sandbox/pool.py``);
- zygote (``_LAMBDALET_ZYGOTE_FD``): once the handler is imported it serves no invocation
  but forks an instance per request, each with its own channel and log pipe
  (``sandbox/snapshot.py``).

A pooled runtime may also be forked, already isolated, from a blank zygote that imported this
module once (``runtime/isolate.py``, ``sandbox/blank_zygote.py``): :func:`run_forked` then
stands for the interpreter's start.

Both do ahead, off the cold start's path, what the first handler import or invocation would
otherwise do first (:func:`_warm_up`). A blank runtime has only ever run cached bytecode:
its first ``compile()`` faults in the parser's code and memory, which on a VM costs about
2 ms, more than the rest of the import (``/var/task`` is read-only: no bytecode is cached
for the handler's modules, they are compiled at every cold start).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import socket
import struct
import sys
import time

# typing, traceback and decimal are not imported up front: each would cost every idle
# sandbox its share of a megabyte or more (they are imported when needed).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

API_PREFIX = "/2018-06-01/runtime"


class CognitoIdentity:
    """``context.identity``: the Cognito identity of a mobile caller, when there is one."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.cognito_identity_id = raw.get("cognitoIdentityId")
        self.cognito_identity_pool_id = raw.get("cognitoIdentityPoolId")


class Client:
    """``context.client_context.client``: the calling mobile app."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.installation_id = raw.get("installation_id")
        self.app_title = raw.get("app_title")
        self.app_version_name = raw.get("app_version_name")
        self.app_version_code = raw.get("app_version_code")
        self.app_package_name = raw.get("app_package_name")


class ClientContext:
    """``context.client_context``: what the caller passed as ClientContext."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.client = Client(raw["client"]) if raw.get("client") else None
        self.custom = raw.get("custom")
        self.env = raw.get("env")


# What a context says of its function, from the environment the platform set (once).
_CONTEXT_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
)


class LambdaContext:
    """The second argument of every handler, with the fields and method AWS provides."""

    _from_environment: tuple[str | None, ...] | None = None  # read at the first invocation

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        if LambdaContext._from_environment is None:
            LambdaContext._from_environment = tuple(map(os.environ.get, _CONTEXT_VARIABLES))
        (
            self.function_name,
            self.function_version,
            self.memory_limit_in_mb,
            self.log_group_name,
            self.log_stream_name,
        ) = LambdaContext._from_environment
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        identity = _json_header(headers, "Lambda-Runtime-Cognito-Identity")
        self.identity = CognitoIdentity(identity) if identity else None
        client_context = _json_header(headers, "Lambda-Runtime-Client-Context")
        self.client_context = ClientContext(client_context) if client_context else None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        return max(self._deadline_ms - time.time_ns() // 1_000_000, 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"function_name={self.function_name},function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


def _json_header(headers: Mapping[str, str], name: str) -> dict[str, Any] | None:
    value = headers.get(name)
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class HandlerError(Exception):
    """Raised when the handler cannot be loaded; carries AWS's error type."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def _encode_decimal(value: object) -> object:
    decimal = sys.modules.get("decimal")  # a Decimal exists only once its module is imported
    if decimal is not None and isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stack(error: BaseException) -> list[str]:
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    # Drop this runtime's own frames: the user sees only their code, as on AWS.
    frames = traceback.StackSummary.from_list(
        [frame for frame in frames if frame.filename != __file__]
    )
    return frames.format()


def load_handler(spec: str) -> Any:
    """Import ``module.function`` from the task root; raise HandlerError as AWS names it."""
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as error:
        raise HandlerError(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': {error}"
        ) from None
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise HandlerError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}"
        ) from None
    except SyntaxError as error:
        raise HandlerError(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {error}",
            _stack(error),
        ) from None
    except Exception as error:
        raise HandlerError(type(error).__name__, str(error), _stack(error)) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise HandlerError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


class RuntimeApi:
    """A keep-alive HTTP client of the Runtime API."""

    def __init__(self, address: str) -> None:
        # Imported here: http.client pulls in email and ssl, tens of ms of cold start that the
        # framed channel does not need.
        import http.client

        host, _, port = address.rpartition(":")
        self._connection = http.client.HTTPConnection(host, int(port))

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, str], bytes]:
        if method == "POST":
            # Everything the handler printed must be in the pipe before the host sees the reply.
            sys.stdout.flush()
            sys.stderr.flush()
        self._connection.request(method, API_PREFIX + path, body=body, headers=headers or {})
        response = self._connection.getresponse()
        return dict(response.headers.items()), response.read()

    def next(self) -> tuple[dict[str, str], bytes]:
        """Wait for the next invocation."""
        return self._request("GET", "/invocation/next")

    def respond(self, request_id: str, body: bytes) -> None:
        """Post a handler's result."""
        headers = {"Content-Type": "application/json"}
        self._request("POST", f"/invocation/{request_id}/response", body, headers)

    def fail(self, path: str, error_type: str, message: str, stack: list[str]) -> None:
        """Post an invocation or init error in AWS's shape."""
        body = json.dumps(
            {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": stack}
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": error_type,
        }
        self._request("POST", path, body, headers)


_PREFIX = struct.Struct(">II")


class FramedRuntimeApi:
    """The Runtime API over lambdalet's private channel: frames on an inherited Unix socket.

    The same calls as :class:`RuntimeApi`; posts need no answer, so an invocation costs one
    frame each way instead of two HTTP exchanges.
    """

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._input = self._socket.makefile("rb")
        self._ready_sent = False

    def _send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        # Everything the handler printed must be in the pipe before the host sees the reply.
        sys.stdout.flush()
        sys.stderr.flush()
        head = json.dumps(header).encode()
        frame = _PREFIX.pack(len(head) + len(payload), len(head)) + head + payload
        self._socket.sendall(frame)

    def next(self) -> tuple[dict[str, str], bytes]:
        """Wait for the next invocation (the first call also tells the host init is done)."""
        if not self._ready_sent:
            self._send({"op": "ready"})
            self._ready_sent = True
        return self._read_frame()

    def _read_frame(self) -> tuple[dict[str, Any], bytes]:
        prefix = self._input.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            sys.exit(0)  # the host closed the channel: the sandbox is being stopped
        total, head_length = _PREFIX.unpack(prefix)
        body = self._input.read(total)
        return json.loads(body[:head_length].decode()), body[head_length:]

    def wait_for_function(self) -> dict[str, str]:
        """In a pooled (blank) sandbox: say so, then wait for the function's environment."""
        self._send({"op": "parked"})
        header, _ = self._read_frame()
        env: dict[str, str] = header["env"]
        return env

    def send_credentials(self, credentials: bytes) -> None:
        """One byte with this process's pid, uid and gid attached, for the host to read."""
        ancillary = [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)]
        self._socket.sendmsg([b"P"], ancillary)

    def close(self) -> None:
        """Drop the channel (in a forked instance: the zygote's)."""
        self._input.close()
        self._socket.close()

    def respond(self, request_id: str, body: bytes) -> None:
        """Send a handler's result, with this process's peak memory (the host would read it
        from /proc otherwise)."""
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self._send({"op": "response", "id": request_id, "rss_kb": rss_kb}, body)

    def fail(self, path: str, error_type: str, message: str, stack: list[str]) -> None:
        """Send an invocation or init error in AWS's shape (``path`` as for RuntimeApi)."""
        body = json.dumps(
            {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": stack}
        ).encode()
        if path == "/init/error":
            self._send({"op": "init_error", "type": error_type}, body)
        else:
            request_id = path.split("/")[2]
            rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            header = {"op": "error", "id": request_id, "type": error_type, "rss_kb": rss_kb}
            self._send(header, body)


TRACE_VARIABLE = "_X_AMZN_TRACE_ID"
# What os.environ keeps its items in (CPython), to be set without the C library's setenv.
_ENVIRON_DATA: Any = getattr(os.environ, "_data", None)


def set_trace_id(trace_id: str | None) -> None:
    """``_X_AMZN_TRACE_ID`` for this invocation, in os.environ: what handlers, the X-Ray SDK
    and botocore read.

    Not with ``os.environ[name] = value``: that calls the C library's setenv, which keeps a
    copy of every value it is given and never frees one. Every invocation has a trace id of its
    own, so a busy sandbox would grow by about 150 bytes an invocation (70 MB an hour at 140
    invocations a second) until its memory limit killed it. So the C environment, which a
    process the handler starts inherits unless given ``env=os.environ``, does not carry it.
    """
    if not trace_id:
        os.environ.pop(TRACE_VARIABLE, None)  # unsetenv copies nothing
    elif _ENVIRON_DATA is None:  # not CPython: as AWS's own runtime does
        os.environ[TRACE_VARIABLE] = trace_id
    else:
        _ENVIRON_DATA[os.environ.encodekey(TRACE_VARIABLE)] = os.environ.encodevalue(trace_id)


def _log_error(error_type: str, message: str, stack: list[str]) -> None:
    text = f"[ERROR] {error_type}: {message}"
    if stack:
        text += "\nTraceback (most recent call last):\n" + "".join(stack).rstrip("\n")
    print(text, file=sys.stderr, flush=True)


def _prepare_process() -> None:
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    # The script's own directory must not shadow user modules; the task root comes first.
    if sys.path and os.path.dirname(os.path.abspath(__file__)) == os.path.abspath(sys.path[0]):
        sys.path.pop(0)
    # Layers come in through PYTHONPATH (``/opt/python``...), set by the host.
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


def _become_function(env: dict[str, str]) -> None:
    """In a pooled sandbox, once bound: take on the function's environment, as if this
    process had been started with it."""
    started_path = os.environ.get("PYTHONPATH", "")
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    LambdaContext._from_environment = None  # the warm-up's contexts saw the blank one
    task_root = env.get("LAMBDA_TASK_ROOT", "/var/task")
    os.chdir(task_root)
    added = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if env.get("PYTHONPATH", "") != started_path:
        sys.path[1:1] = [p for p in added if p not in sys.path]
    # /var/task and /opt were empty when the interpreter looked at them: forget what it saw
    # there (and wherever it found nothing). The standard library's finders stay: listing
    # its directories again would cost the handler's first imports.
    for path, finder in list(sys.path_importer_cache.items()):
        if finder is None or not path.startswith("/") or path.startswith((task_root, "/opt")):
            del sys.path_importer_cache[path]


def _warm_up(compile_source: bool, handler: Any = None) -> None:
    """Run once, off the cold start's path, what a cold start runs first.

    In a blank runtime (``compile_source``), which has not compiled anything yet: the parser.
    In a snapshot's instance, whose pages are the zygote's until written (a reference count
    is a write): the invocation's decoding, context, output and encoding, and the handler's
    module and the builtins it looks up, so that their copy-on-write faults happen here, not
    in the first invocation. The handler itself is not run.
    """
    if compile_source:
        with open(__file__, "rb") as source:
            compile(source.read(), __file__, "exec")
    headers = {
        "Lambda-Runtime-Aws-Request-Id": "warm-up",
        "Lambda-Runtime-Deadline-Ms": "0",
        "Lambda-Runtime-Client-Context": "{}",
    }
    LambdaContext(headers).get_remaining_time_in_millis()
    result = json.dumps(
        json.loads(b'{"warm": [1, 2.5, null, true, "up"]}'), default=_encode_decimal
    )
    head = json.dumps({"op": "response", "id": "warm-up"}).encode()
    _PREFIX.pack(len(head) + len(result), len(head))
    set_trace_id("warm-up")
    set_trace_id(None)
    print(end="", flush=True)  # writes nothing
    print(end="", file=sys.stderr, flush=True)
    if handler is not None:
        import builtins

        for namespace in (getattr(handler, "__globals__", {}), vars(builtins)):
            list(namespace.values())  # each value's reference count is written
        # A block of each small size (the allocator's pool the next one comes from) and a
        # few larger ones (malloc's heap): written, so the invocation's allocations are not
        # the first writes to these pages.
        sizes = [*range(1, 520, 8), *(1 << shift for shift in range(10, 17))]
        blocks = [bytes(size) for size in sizes]
        del blocks


def reaped_children() -> Iterator[tuple[int, int]]:
    """Reap the children that have ended, without waiting: (pid, exit status), a negative
    status being the signal that killed it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def _serve_forks(api: FramedRuntimeApi, control_fd: int) -> FramedRuntimeApi:
    """As a snapshot's zygote, once the handler is loaded: fork an instance for each request
    on ``control_fd`` and return, in that instance, its own channel.

    A request is one byte carrying two file descriptors (SCM_RIGHTS): the instance's channel
    and its log pipe. The zygote answers ``f <pid>`` once forked and ``x <pid> <status>`` when
    an instance ends (a negative status is a signal). The instance's first byte on its channel
    carries its credentials (SCM_CREDENTIALS), which tell the host its pid as the host sees it.
    """
    import gc
    import signal

    control = socket.socket(fileno=control_fd)

    def reap(signum: int, frame: object) -> None:
        for pid, code in reaped_children():
            control.sendall(f"x {pid} {code}\n".encode())

    signal.signal(signal.SIGCHLD, reap)
    # What the init made stays where it is: no collection in an instance writes to it (and
    # copies its pages).
    gc.freeze()
    api._send({"op": "ready"})
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1, 2)
        if not message:
            os._exit(0)  # the host closed the control socket: the zygote is being stopped
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            channel_fd, output_fd = fds
            os.dup2(output_fd, 1)
            os.dup2(output_fd, 2)
            os.close(output_fd)
            control.close()
            api.close()
            instance = FramedRuntimeApi(channel_fd)
            credentials = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
            instance.send_credentials(credentials)
            return instance
        for fd in fds:
            os.close(fd)
        control.sendall(f"f {pid}\n".encode())


def warm_blank() -> None:
    """In a blank zygote (``runtime/isolate.py``), once: the warm-up each blank runtime it
    forks would otherwise do."""
    _warm_up(compile_source=True)


def run_forked(env: dict[str, str], script: str) -> None:
    """In a blank zygote's fork, once it is isolated: be the blank runtime that
    ``python -X utf8 SCRIPT`` started with ``env`` would be, in the interpreter inherited
    from the zygote (``runtime/isolate.py``)."""
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    sys.argv[:] = [script]
    site = sys.modules.get("site")
    if site is not None:  # the zygote's user site, which it had not: found again on demand
        site.__dict__.update(USER_BASE=None, USER_SITE=None)
    # What site.py added on the host that is not here (as it adds only what exists).
    prefixes = (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
    sys.path[:] = [p for p in sys.path if p.startswith(prefixes) or os.path.exists(p)]
    # Where the interpreter puts PYTHONPATH: after the script's directory, before the rest.
    sys.path[0:0] = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    # Its pages are the zygote's until written: the first writes (their copies) of the
    # handler's import and of an invocation happen here, before it is parked, not on the
    # cold start's path.
    _warm_up(compile_source=False)
    compile("def handler(event, context):\n    return event\n", "<warm-up>", "exec")
    try:  # noqa: SIM105  (contextlib would be one more import in every sandbox)
        importlib.import_module("_lambdalet_warm_up")  # the import system's search
    except ImportError:
        pass
    main(warmed=True)


def main(warmed: bool = False) -> None:
    """Load the handler, then serve invocations until the sandbox is stopped (``warmed``: a
    blank runtime forked from a zygote that did the warm-up already)."""
    channel_fd = os.environ.pop("_LAMBDALET_RUNTIME_FD", None)
    pooled = os.environ.pop("_LAMBDALET_POOLED", None)
    zygote_fd = os.environ.pop("_LAMBDALET_ZYGOTE_FD", None)
    api: RuntimeApi | FramedRuntimeApi
    if channel_fd is not None:
        api = FramedRuntimeApi(int(channel_fd))
        if pooled:
            if not warmed:
                _warm_up(compile_source=True)
            _become_function(api.wait_for_function())
    else:
        api = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    _prepare_process()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except HandlerError as error:
        _log_error(error.error_type, error.message, error.stack)
        api.fail("/init/error", error.error_type, error.message, error.stack)
        sys.exit(1)
    if zygote_fd is not None and isinstance(api, FramedRuntimeApi):
        api = _serve_forks(api, int(zygote_fd))
        # Called from here, as the handler will be: its frame is where the handler's will be.
        _warm_up(compile_source=False, handler=handler)
    while True:
        headers, body = api.next()
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        set_trace_id(headers.get("Lambda-Runtime-Trace-Id"))
        try:
            event = json.loads(body) if body else {}
            result = handler(event, LambdaContext(headers))
        except Exception as error:
            error_type, message, stack = type(error).__name__, str(error), _stack(error)
            _log_error(error_type, message, stack)
            api.fail(f"/invocation/{request_id}/error", error_type, message, stack)
            continue
        try:
            encoded = json.dumps(result, default=_encode_decimal).encode()
        except (TypeError, ValueError) as error:
            message = f"Unable to marshal response: {error}"
            _log_error("Runtime.MarshalError", message, [])
            api.fail(f"/invocation/{request_id}/error", "Runtime.MarshalError", message, [])
            continue
        api.respond(request_id, encoded)


if __name__ == "__main__":
    main()
