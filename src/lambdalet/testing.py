"""Helpers for testing against a real lambdalet node on a loopback port.

:class:`ServerThread` runs a node's HTTP server on a free port in a background thread with its
own event loop, exactly as ``lambdalet serve`` runs it, so tests talk to it through real
sockets with boto3, the AWS CLI or httpx.
"""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import zipfile
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from lambdalet.api.serving import Server, make_server
from lambdalet.config import Settings
from lambdalet.node import Node

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


def code_trees(data_dir: Path) -> set[Path]:
    """The extracted code trees a node keeps under ``data_dir``."""
    return set((data_dir / "code" / "trees").iterdir())


class ServerThread:
    """A lambdalet node served on 127.0.0.1:<free port> from a background thread."""

    def __init__(self, **settings: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.settings = Settings(host="127.0.0.1", port=port, **settings)
        self.node = Node(self.settings)
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
