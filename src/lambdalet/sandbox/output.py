"""Collects what a runtime writes to its stdout and stderr, line by line.

Both streams share one pipe so their lines keep their order. Reading is non-blocking from the
event loop; :meth:`drain` reads everything already in the pipe at once, which is how the lines
a handler printed before posting its reply are all attributed to that invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

MAX_BUFFERED_BYTES = 1024 * 1024


class OutputCollector:
    """Lines written to a pipe, buffered until taken; bounded so a chatty function cannot
    exhaust the host's memory."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._partial = b""
        self._lines: list[str] = []
        self._buffered_bytes = 0
        self._truncated = False
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._read_available)

    def _read_available(self) -> None:
        while self._fd is not None:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            self._add(data)

    def _add(self, data: bytes) -> None:
        if self._buffered_bytes + len(data) > MAX_BUFFERED_BYTES:
            self._truncated = True
            return
        self._buffered_bytes += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        self._lines.extend(line.decode("utf-8", "replace") for line in complete)

    def drain(self) -> None:
        """Read everything already written to the pipe."""
        self._read_available()

    def take(self, *, with_partial: bool = False) -> list[str]:
        """The lines collected so far (with an unterminated last one if ``with_partial``, as at
        the end of an invocation); the collector starts afresh."""
        if with_partial and self._partial:
            self._lines.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        lines, self._lines = self._lines, []
        if self._truncated:
            lines.append(f"[lambdalet] output over {MAX_BUFFERED_BYTES} bytes was dropped")
            self._truncated = False
        self._buffered_bytes = len(self._partial)
        return lines

    def close(self) -> None:
        """Stop reading; a last unterminated line becomes a line of its own."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if self._partial:
            self._lines.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""
