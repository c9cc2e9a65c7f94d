"""Runs events accepted with InvocationType=Event, from the store's durable queue.

Each event is committed before the caller gets its 202; the dispatcher claims pending events,
runs them through the same path as synchronous invocations, and deletes each only after it
ran or, when ``run_event`` asks for a retry, makes it pending again with the time it is due.
Events left running by a node that stopped are made pending again at start, so every
accepted event runs at least once.

The outcomes of events that ran are not written one by one: they are kept until the next
claim, which settles them and claims the next events in one store transaction. A claim comes
as soon as a slot frees, so an outcome waits at most one store round trip. An event that ran
but whose outcome was not yet written when the node died runs again after the restart; that
can only be an event that freed a slot no claim has taken yet, so the events 'running' in the
store never number more than ``concurrency``, and neither do the duplicates of a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from lambdalet.models import AsyncEvent, EventRetry, now_ms
from lambdalet.store.base import Store

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25  # how often an idle dispatcher looks for retries that became due
CLAIM_ERROR_BACKOFF_S = 1.0
# AWS retries a throttled event after 1 s, then ever longer, up to 5 minutes between tries.
THROTTLE_FIRST_DELAY_MS = 1000
THROTTLE_MAX_DELAY_MS = 300_000


def throttle_delay_ms(throttles: int) -> int:
    """How long an event throttled ``throttles`` times before waits after this throttle:
    1 s, 2 s, 4 s ... doubling up to 5 minutes."""
    doublings = min(max(throttles, 0), 20)  # 2**20 s is past the cap anyway
    return min(THROTTLE_FIRST_DELAY_MS << doublings, THROTTLE_MAX_DELAY_MS)


class AsyncDispatcher:
    """Claims queued async events and runs at most ``concurrency`` of them at once."""

    def __init__(
        self,
        store: Store,
        run_event: Callable[[AsyncEvent], Awaitable[EventRetry | None]],
        concurrency: int,
    ) -> None:
        self._store = store
        self._run_event = run_event
        self._free_slots = concurrency
        self._finished: list[int] = []
        self._retries: list[EventRetry] = []
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
        """Stop claiming; let events already running finish and record their outcomes."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if self._finished or self._retries:
            try:
                await self._claim(0)
            except Exception:
                log.exception(
                    "could not record the outcome of %d async events; they will run again",
                    len(self._finished) + len(self._retries),
                )

    async def _dispatch_forever(self) -> None:
        idle = False  # the last claim found fewer due events than it asked for
        while True:
            if idle or self._free_slots == 0:
                # Until an event is accepted or one finishes; poll for retries when idle.
                timeout_s = POLL_INTERVAL_S if self._free_slots else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout_s)
                self._wakeup.clear()
                if self._free_slots == 0:
                    continue
            asked = self._free_slots
            try:
                claimed = await self._claim(asked)
            except Exception:
                log.exception("claiming async events failed; retrying in 1 s")
                await asyncio.sleep(CLAIM_ERROR_BACKOFF_S)
                continue
            idle = claimed < asked

    async def _claim(self, limit: int) -> int:
        """Settle the outcomes gathered so far and claim up to ``limit`` events; start them."""
        finished, self._finished = self._finished, []
        retries, self._retries = self._retries, []
        try:
            events = await self._store.claim_events(limit, finished=finished, retries=retries)
        except BaseException:
            # Nothing of that transaction was kept: the outcomes go with the next claim.
            self._finished[:0] = finished
            self._retries[:0] = retries
            raise
        self._free_slots -= len(events)
        for event in events:
            task = asyncio.create_task(self._run_one(event))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(events)

    async def _run_one(self, event: AsyncEvent) -> None:
        retry: EventRetry | None
        try:
            retry = await self._run_event(event)
        except Exception:
            log.exception(
                "async event %s (request %s) failed; retrying in 1 s",
                event.event_id,
                event.request_id,
            )
            retry = EventRetry(event.event_id, now_ms() + 1000)
        # The outcome is recorded in the same step that frees the slot (see the docstring).
        if retry is None:
            self._finished.append(event.event_id)
        else:
            self._retries.append(retry)
        self._free_slots += 1
        self._wakeup.set()
