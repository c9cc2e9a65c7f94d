"""The Store contract, run against every implementation: sqlite (on disk) and memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import StoreFactory

from lambdalet.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.models import EventRetry, FunctionConfig, InvocationRecord, LogEvent, now_ms
from lambdalet.store.sqlite import SqliteStore

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def function(name: str, sha: str = "ab" * 32, size: int = 10) -> FunctionConfig:
    return FunctionConfig(
        name=name,
        runtime="python3.11",
        handler="app.handler",
        role="r",
        code_sha256_hex=sha,
        code_size_bytes=size,
        revision_id=str(uuid.uuid4()),
        last_modified_ms=now_ms(),
        environment={"A": "1"},
        tags={"team": "x"},
    )


def test_function_lifecycle(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        config = function("alpha")
        await store.create_function(config)
        assert await store.get_function("alpha") == config
        with pytest.raises(ResourceConflictException, match="Function already exist: alpha"):
            await store.create_function(function("alpha"))
        updated = config.evolve(memory_mb=512, revision_id="r2")
        with pytest.raises(PreconditionFailedException, match="Revision Id"):
            await store.update_function(updated, "stale")
        await store.update_function(updated, config.revision_id)
        assert (await store.get_function("alpha")) == updated
        with pytest.raises(ResourceNotFoundException):
            await store.update_function(function("ghost"), "x")
        assert await store.code_in_use(config.code_sha256_hex)
        assert await store.total_code_size_bytes() == (10, 1)
        assert await store.delete_function("alpha") == updated
        assert await store.delete_function("alpha") is None
        assert not await store.code_in_use(config.code_sha256_hex)
        await store.close()

    run(scenario())


def test_list_functions_pages_by_name(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        for name in ["c", "a", "e", "b", "d"]:
            await store.create_function(function(name))
        first = await store.list_functions(None, 2)
        assert [f.name for f in first] == ["a", "b"]
        rest = await store.list_functions("b", 10)
        assert [f.name for f in rest] == ["c", "d", "e"]
        await store.close()

    run(scenario())


def test_records_and_logs(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        record = InvocationRecord("r1", "f", "$LATEST", 5, 1.5, 2, 128, 20, None, None)
        logs = [LogEvent("f", "r1", 5, f"line {i}") for i in range(5)]
        await store.record([record], logs)
        assert await store.list_invocations("f", 10) == [record]
        found = await store.read_logs("f", 0, 3)
        assert [e.message for _, e in found] == ["line 0", "line 1", "line 2"]
        after = await store.read_logs("f", found[-1][0], 10)
        assert [e.message for _, e in after] == ["line 3", "line 4"]
        assert await store.read_logs("other", 0, 10) == []
        # More than one INSERT statement holds (ROWS_PER_STATEMENT rows each), in order.
        many = [replace(record, request_id=f"m{i}", started_unix_ms=10 + i) for i in range(1201)]
        await store.record(many, [LogEvent("g", f"m{i}", 10 + i, f"m{i}") for i in range(1201)])
        assert await store.list_invocations("f", 2000) == [*reversed(many), record]
        lines = await store.read_logs("g", 0, 2000)
        assert [e.message for _, e in lines] == [f"m{i}" for i in range(1201)]
        await store.close()

    run(scenario())


def test_async_queue_claims_each_event_once(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        ids = [
            await store.enqueue_event("f", "$LATEST", f"{i}".encode(), f"r{i}") for i in range(5)
        ]
        first = await store.claim_events(3)
        second = await store.claim_events(3)
        assert [e.event_id for e in first + second] == ids
        assert all(e.attempts == 1 and e.throttles == 0 for e in first + second)
        assert await store.claim_events(3) == []
        assert await store.claim_events(3, finished=[ids[0]]) == []
        assert await store.release_running_events() == 4
        again = await store.claim_events(10)
        assert [e.event_id for e in again] == ids[1:]
        assert all(e.attempts == 2 for e in again)
        assert again[0].payload == b"1"
        await store.close()

    run(scenario())


def test_concurrent_enqueues_are_all_committed_in_order(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        ids = await asyncio.gather(
            *(store.enqueue_event("f", "$LATEST", b"%d" % i, f"r{i}") for i in range(1201))
        )
        assert len(set(ids)) == 1201
        assert ids == sorted(ids)  # the order they were handed in
        claimed = await store.claim_events(2000)
        assert [(e.event_id, e.request_id, e.payload) for e in claimed] == [
            (event_id, f"r{i}", b"%d" % i) for i, event_id in enumerate(ids)
        ]
        assert await store.claim_events(2000, finished=ids[1:]) == []
        assert await store.release_running_events() == 1  # all the others are gone
        assert [e.event_id for e in await store.claim_events(2000)] == ids[:1]
        await store.close()

    run(scenario())


def test_enqueue_returns_only_once_committed(tmp_path: Path) -> None:
    """Every enqueue that returned is in the database file, seen from another connection."""
    import sqlite3

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "q.db")
        await store.open()
        outside = sqlite3.connect(tmp_path / "q.db")
        seen_at_return: list[bool] = []

        async def enqueue(i: int) -> None:
            event_id = await store.enqueue_event("f", "$LATEST", b"{}", f"r{i}")
            query = "SELECT COUNT(*) FROM async_events WHERE id = ?"
            seen_at_return.append(outside.execute(query, (event_id,)).fetchone()[0] == 1)

        await asyncio.gather(*(enqueue(i) for i in range(200)))
        outside.close()
        await store.close()
        assert seen_at_return == [True] * 200

    run(scenario())


def test_claim_settles_outcomes_in_the_same_transaction(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        ids = [await store.enqueue_event("f", "$LATEST", b"{}", f"r{i}") for i in range(4)]
        claimed = await store.claim_events(4)
        assert [e.event_id for e in claimed] == ids
        future_ms = now_ms() + 60_000
        retries = [
            EventRetry(ids[1], now_ms() - 1),  # a function error, due now
            EventRetry(ids[2], now_ms() - 1, throttled=True),  # throttled, due now
            EventRetry(ids[3], future_ms, throttled=True),  # throttled, due later
        ]
        again = await store.claim_events(10, finished=[ids[0]], retries=retries)
        assert [(e.event_id, e.attempts, e.throttles) for e in again] == [
            (ids[1], 2, 0),
            (ids[2], 1, 1),  # the throttled try gave its attempt back
        ]
        # Settling without claiming: what a stopping dispatcher does.
        assert await store.claim_events(0, finished=[ids[1], ids[2]]) == []
        assert await store.claim_events(10) == []  # ids[3] is not due yet
        assert await store.release_running_events() == 0  # none is left running
        await store.close()

    run(scenario())


def test_sqlite_keeps_everything_across_reopen(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "state.db"
        store = SqliteStore(path)
        await store.open()
        await store.create_function(function("kept"))
        await store.enqueue_event("kept", "$LATEST", b"{}", "r1")
        await store.claim_events(1)  # running when the node "dies"
        await store.close()
        reopened = SqliteStore(path)
        await reopened.open()
        assert (await reopened.get_function("kept")) is not None
        assert await reopened.release_running_events() == 1
        assert [e.request_id for e in await reopened.claim_events(5)] == ["r1"]
        await reopened.close()

    run(scenario())


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    import sqlite3

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "wal.db")
        await store.open()
        await store.close()

    run(scenario())
    mode = sqlite3.connect(tmp_path / "wal.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_resources(make_store: StoreFactory, tmp_path: Path) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        assert await store.insert_resource("api", "a1", {"name": "one"})
        assert not await store.insert_resource("api", "a1", {"name": "other"})
        assert await store.insert_resource("route", "a1/r1", {"key": "GET /"})
        assert await store.insert_resource("route", "a1/r2", {"key": "POST /"})
        assert await store.insert_resource("route", "a10/r1", {"key": "ANY /"})
        assert await store.get_resource("api", "a1") == {"name": "one"}
        assert await store.get_resource("api", "nope") is None
        assert await store.get_resource("route", "a1") is None  # kinds are separate
        listed = await store.list_resources("route", "a1/")
        assert listed == [("a1/r1", {"key": "GET /"}), ("a1/r2", {"key": "POST /"})]
        assert len(await store.list_resources("route")) == 3
        assert await store.replace_resource("api", "a1", {"name": "renamed"})
        assert not await store.replace_resource("api", "ghost", {"name": "x"})
        assert await store.get_resource("api", "ghost") is None
        value = await store.get_resource("api", "a1")
        assert value == {"name": "renamed"}
        value["name"] = "mutated"  # a copy: the store is not changed through it
        assert await store.get_resource("api", "a1") == {"name": "renamed"}
        assert await store.delete_resources("route", "a1/") == 2
        assert await store.list_resources("route") == [("a10/r1", {"key": "ANY /"})]
        assert await store.delete_resource("api", "a1") == {"name": "renamed"}
        assert await store.delete_resource("api", "a1") is None
        await store.close()
        if isinstance(store, SqliteStore):  # durable across a reopen
            reopened = SqliteStore(store.path)
            await reopened.open()
            assert await reopened.list_resources("route") == [("a10/r1", {"key": "ANY /"})]
            await reopened.close()

    run(scenario())


def test_a_resource_read_again_after_each_kind_of_write_is_the_new_one(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        assert await store.get_resource("url", "u1") is None  # known to be missing
        assert await store.insert_resource("url", "u1", {"auth": "NONE"})
        assert await store.get_resource("url", "u1") == {"auth": "NONE"}
        assert await store.replace_resource("url", "u1", {"auth": "AWS_IAM"})
        assert await store.get_resource("url", "u1") == {"auth": "AWS_IAM"}
        assert await store.delete_resource("url", "u1") == {"auth": "AWS_IAM"}
        assert await store.get_resource("url", "u1") is None
        assert await store.insert_resource("route", "a1/r1", {"key": "GET /"})
        assert await store.get_resource("route", "a1/r1") == {"key": "GET /"}
        assert await store.delete_resources("route", "a1/") == 1
        assert await store.get_resource("route", "a1/r1") is None
        # A read queued before a write, and finished after the write began, is not kept.
        assert await store.insert_resource("url", "u2", {"v": 1})
        stale = asyncio.ensure_future(store.get_resource("url", "u2"))
        await asyncio.sleep(0)  # the read is queued first
        assert await store.replace_resource("url", "u2", {"v": 2})
        assert await stale in ({"v": 1}, {"v": 2})
        assert await store.get_resource("url", "u2") == {"v": 2}
        await store.close()

    run(scenario())


def test_sqlite_reads_a_resource_from_the_database_once(tmp_path: Path) -> None:
    # The node is its store's one writer: a row changed behind its back is not seen again.
    import sqlite3

    async def scenario() -> tuple[Any, Any]:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        await store.insert_resource("url", "u1", {"auth": "NONE"})
        first = await store.get_resource("url", "u1")
        with sqlite3.connect(tmp_path / "state.db") as other:
            other.execute("UPDATE resources SET value = '{\"auth\": \"X\"}' WHERE key = 'u1'")
        again = await store.get_resource("url", "u1")
        await store.close()
        return first, again

    assert run(scenario()) == ({"auth": "NONE"}, {"auth": "NONE"})
