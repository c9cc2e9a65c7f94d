"""Writes invocation records and log lines to the store in batches, off the hot path.

An invocation only appends to a list; a background task commits whatever has gathered every
``flush_interval_ms`` in one transaction. On shutdown the rest is flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lambdalet.models import InvocationRecord, LogEvent
from lambdalet.store.base import Store

log = logging.getLogger(__name__)


class Recorder:
    """Batches usage records and log lines for the store."""

    def __init__(self, store: Store, flush_interval_ms: int = 50) -> None:
        self._store = store
        self._flush_interval_ms = flush_interval_ms
        self._invocations: list[InvocationRecord] = []
        self._logs: list[LogEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()

    def add(self, record: InvocationRecord | None, logs: list[LogEvent]) -> None:
        """Queue one invocation's record and log lines for the next batch."""
        if record is not None:
            self._invocations.append(record)
        self._logs.extend(logs)
        self._wakeup.set()

    def start(self) -> None:
        """Begin flushing in the background."""
        self._task = asyncio.create_task(self._run(), name="recorder")

    async def stop(self) -> None:
        """Flush what is left and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Commit everything gathered so far."""
        invocations, self._invocations = self._invocations, []
        logs, self._logs = self._logs, []
        if not (invocations or logs):
            return
        try:
            await self._store.record(invocations, logs)
        except BaseException:
            # Put the batch back in front so nothing is lost; the next flush tries again.
            self._invocations[:0] = invocations
            self._logs[:0] = logs
            raise

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._flush_interval_ms / 1000)
            try:
                await self.flush()
            except Exception:
                log.exception("could not write usage records; retrying in 1 s")
                await asyncio.sleep(1)
