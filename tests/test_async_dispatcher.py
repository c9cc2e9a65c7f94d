"""The async dispatcher on each real store: every event runs, outcomes are settled in batches
with the claims, never more events are 'running' in the store than the dispatcher runs at
once, and stopping records what already ran."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from conftest import StoreFactory

from lambdalet.models import AsyncEvent, EventRetry, now_ms
from lambdalet.scheduler.async_queue import AsyncDispatcher
from lambdalet.store.base import Store
from lambdalet.store.sqlite import SqliteStore

CONCURRENCY = 4
EVENTS = 300


async def dispatching(
    store: Store, run_event: Callable[[AsyncEvent], Awaitable[EventRetry | None]]
) -> AsyncDispatcher:
    """A started dispatcher of ``run_event``, with EVENTS events enqueued one by one."""
    dispatcher = AsyncDispatcher(store, run_event, CONCURRENCY)
    await dispatcher.start()
    for i in range(EVENTS):
        await store.enqueue_event("f", "$LATEST", b"{}", f"r{i}")
        dispatcher.notify()
    return dispatcher


def test_every_event_runs_and_is_settled(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        runs: Counter[str] = Counter()
        in_flight = 0
        most_in_flight = 0

        async def run_event(event: AsyncEvent) -> EventRetry | None:
            nonlocal in_flight, most_in_flight
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1
            runs[event.request_id] += 1
            if event.request_id.endswith("7") and event.attempts == 1:
                return EventRetry(event.event_id, now_ms())  # a function error: once more
            return None

        dispatcher = await dispatching(store, run_event)
        retried = {f"r{i}" for i in range(EVENTS) if str(i).endswith("7")}
        deadline = asyncio.get_running_loop().time() + 60
        while sum(runs.values()) < EVENTS + len(retried):
            assert asyncio.get_running_loop().time() < deadline, runs
            await asyncio.sleep(0.01)
        await dispatcher.stop()
        assert most_in_flight <= CONCURRENCY
        assert {r: n for r, n in runs.items() if n != 1} == dict.fromkeys(retried, 2)
        assert await store.claim_events(EVENTS) == []  # nothing left, nothing running
        assert await store.release_running_events() == 0
        await store.close()

    asyncio.run(scenario())


def test_running_rows_never_exceed_the_concurrency(tmp_path: Path) -> None:
    """What bounds the duplicates after a crash: a finished event still 'running' in the
    store always stands for a slot that no claim has taken since."""
    db_path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(db_path)
        await store.open()
        outside = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        seen: list[int] = []

        async def run_event(event: AsyncEvent) -> EventRetry | None:
            await asyncio.sleep(0)
            query = "SELECT COUNT(*) FROM async_events WHERE state = 'running'"
            seen.append(outside.execute(query).fetchone()[0])
            return None

        dispatcher = await dispatching(store, run_event)
        deadline = asyncio.get_running_loop().time() + 60
        while len(seen) < EVENTS:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        await dispatcher.stop()
        outside.close()
        await store.close()
        assert 0 < max(seen) <= CONCURRENCY

    asyncio.run(scenario())


def test_stop_records_the_outcomes_of_events_that_ran(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        started, gate = asyncio.Event(), asyncio.Event()

        async def run_event(event: AsyncEvent) -> EventRetry | None:
            started.set()
            await gate.wait()
            return None

        dispatcher = AsyncDispatcher(store, run_event, CONCURRENCY)
        await dispatcher.start()
        await store.enqueue_event("f", "$LATEST", b"{}", "r1")
        dispatcher.notify()
        await asyncio.wait_for(started.wait(), 30)
        # The event finishes only once the dispatcher has stopped claiming: stop() itself
        # must record its outcome.
        stopping = asyncio.create_task(dispatcher.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        gate.set()
        await stopping
        await store.close()
        reopened = SqliteStore(tmp_path / "state.db")
        await reopened.open()
        assert await reopened.release_running_events() == 0  # it will not run again
        assert await reopened.claim_events(10) == []
        await reopened.close()

    asyncio.run(scenario())
