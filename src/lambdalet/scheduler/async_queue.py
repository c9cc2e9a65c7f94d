"""Runs events accepted with InvocationType=Event, from the store's durable queue.

Each event is committed before the caller gets its 202; the dispatcher claims pending events,
runs them through the same path as synchronous invocations, and deletes each only after it
ran or, when ``run_event`` asks for a retry, makes it pending again with the time it is due.
Events left running by a node that stopped are made pending again at start, so every
accepted event runs at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from lambdalet.models import AsyncEvent, now_ms
from lambdalet.store.base import Store

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25


class AsyncDispatcher:
    """Claims queued async events and runs at most ``concurrency`` of them at once."""

    def __init__(
        self,
        store: Store,
        run_event: Callable[[AsyncEvent], Awaitable[int | None]],
        concurrency: int,
    ) -> None:
        self._store = store
        self._run_event = run_event
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def notify(self) -> None:
        """Tell the dispatcher a new event was committed."""
        self._wakeup.set()

    async def start(self) -> None:
        """Requeue events a stopped node left running, then start dispatching."""
        released = await self._store.release_running_events()
        if released:
            log.info("requeued %d async events left running by a previous run", released)
        self._loop_task = asyncio.create_task(self._dispatch_forever(), name="async-dispatcher")

    async def stop(self) -> None:
        """Stop claiming; let events already running finish."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _dispatch_forever(self) -> None:
        while True:
            try:
                claimed = await self._claim_some()
            except Exception:
                log.exception("claiming async events failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), POLL_INTERVAL_S)
                self._wakeup.clear()

    async def _claim_some(self) -> int:
        await self._slots.acquire()
        free = 1
        while free < self._concurrency and not self._slots.locked():
            await self._slots.acquire()
            free += 1
        events = await self._store.claim_events(free)
        for _ in range(free - len(events)):
            self._slots.release()
        for event in events:
            task = asyncio.create_task(self._run_one(event))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(events)

    async def _run_one(self, event: AsyncEvent) -> None:
        retry_at_ms: int | None
        try:
            retry_at_ms = await self._run_event(event)
        except Exception:
            log.exception(
                "async event %s (request %s) failed; retrying in 1 s",
                event.event_id,
                event.request_id,
            )
            retry_at_ms = now_ms() + 1000
        finally:
            self._slots.release()
        try:
            if retry_at_ms is None:
                await self._store.finish_event(event.event_id)
            else:
                await self._store.retry_event(event.event_id, retry_at_ms)
        except Exception:
            log.exception(
                "could not record the outcome of async event %s; it may run again", event.event_id
            )
