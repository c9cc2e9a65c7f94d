"""Helpers for testing against a real lambdalet node on a loopback port.

:class:`ServerThread` runs a node's HTTP server on a free port in a background thread with its
own event loop, exactly as ``lambdalet serve`` runs it, so tests talk to it through real
sockets with boto3, the AWS CLI or httpx.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from lambdalet.api.serving import Server, make_server
from lambdalet.config import Settings
from lambdalet.node import Node
from lambdalet.triggers.schedules import Clock

T = TypeVar("T")

# deploy(source, *, files=..., handler=..., runtime=..., name=..., **CreateFunction settings)
Deploy = Callable[..., dict[str, Any]]


def make_zip(files: dict[str, str | bytes], *, modes: dict[str, int] | None = None) -> bytes:
    """A zip holding ``files`` (path → content), with optional Unix modes per path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            mode = (modes or {}).get(path, 0o100644)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def invoke(client: Any, name: str, payload: Any = None, **kwargs: Any) -> tuple[Any, Any]:
    """Invoke with a boto3 Lambda client; return (decoded payload, whole response)."""
    body = json.dumps(payload if payload is not None else {})
    response = client.invoke(FunctionName=name, Payload=body, **kwargs)
    return json.loads(response["Payload"].read()), response


def tail(response: Any) -> str:
    """The log tail of an Invoke response made with LogType="Tail"."""
    return base64.b64decode(response["LogResult"]).decode()


def wait_for_file(path: Path, lines: int = 1, timeout_s: float = 30) -> str:
    """The text of a file a function writes (a marker, a record), once it holds at least
    ``lines`` lines; AssertionError if it does not in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len((text := path.read_text()).splitlines()) >= lines:
            return text
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written in time")


def process_ended(pid: int) -> bool:
    """Whether a process is gone, or a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def code_trees(data_dir: Path) -> set[Path]:
    """The extracted code trees a node keeps under ``data_dir``."""
    return set((data_dir / "code" / "trees").iterdir())


class FakeClock:
    """A clock for schedules that moves only when :meth:`advance` is called.

    Give it to :class:`ServerThread` (or a Scheduler) and its schedules fire as this clock
    says, so tests move time forward instead of sleeping. Safe to advance from any thread.
    """

    def __init__(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self._lock = threading.Lock()
        self._sleepers: list[tuple[int, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        """This clock's time in Unix milliseconds."""
        with self._lock:
            return self._now_ms

    async def sleep_ms(self, duration_ms: int) -> None:
        """Return once the clock has been advanced by ``duration_ms``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            if duration_ms <= 0:
                return
            sleeper = (self._now_ms + duration_ms, future)
            self._sleepers.append(sleeper)
        try:
            await future
        finally:
            with self._lock:
                if sleeper in self._sleepers:
                    self._sleepers.remove(sleeper)

    def advance(self, duration_ms: int) -> None:
        """Move the clock forward and wake whoever sleeps until then."""
        with self._lock:
            self._now_ms += duration_ms
            woken = [s for s in self._sleepers if s[0] <= self._now_ms]
            for sleeper in woken:
                self._sleepers.remove(sleeper)
        for _, future in woken:
            future.get_loop().call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ServerThread:
    """A lambdalet node served on 127.0.0.1:<free port> from a background thread.

    ``clock`` (a :class:`FakeClock`) drives the node's schedules instead of the real clock.
    Unless told otherwise (an argument or ``LAMBDALET_SANDBOX_BACKEND``) its sandboxes are
    ``process`` ones, not ``auto``'s: tests that want isolation ask for it.
    """

    def __init__(self, *, clock: Clock | None = None, **settings: Any) -> None:
        if "sandbox_backend" not in settings and "LAMBDALET_SANDBOX_BACKEND" not in os.environ:
            settings["sandbox_backend"] = "process"
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.settings = Settings(host="127.0.0.1", port=port, **settings)
        self.node = Node(self.settings, clock=clock)
        self.url = self.settings.base_url
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._run, name="lambdalet-server", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        import uvloop

        self._server = make_server(self.node, log_level="warning")
        self._loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            assert self._server is not None
            watcher = asyncio.create_task(self._signal_started())
            await self._server.serve(sockets=[self._socket])
            watcher.cancel()

        try:
            self._loop.run_until_complete(serve())
        except BaseException as error:  # reported to the test thread by start()
            self._error = error
        finally:
            self._started.set()
            self._loop.close()

    async def _signal_started(self) -> None:
        assert self._server is not None
        await self._server.listening.wait()
        self._started.set()

    def start(self) -> ServerThread:
        """Start serving and wait until the node accepts requests."""
        self._socket.listen(1024)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None or self._server is None or not self._server.started:
            raise RuntimeError(f"lambdalet did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        """Shut the node down (its sandboxes too) and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(60)
        self._socket.close()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop (to look at the node) and return its result."""
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(60)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
