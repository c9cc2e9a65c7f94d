"""The Store's queue methods, run against every implementation: sqlite (on disk) and memory.

Times are passed in explicitly, so visibility, delays and retention are tested without waiting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import StoreFactory

from lambdalet.errors import QueueDoesNotExist
from lambdalet.queues.messages import md5_of_attributes
from lambdalet.queues.models import (
    VISIBILITY_CHANGED,
    VISIBILITY_GONE,
    VISIBILITY_NOT_IN_FLIGHT,
    Queue,
    QueueCounts,
    QueueMessage,
    Receipt,
    RedrivePolicy,
    parse_receipt_handle,
)
from lambdalet.store.sqlite import SqliteStore

T = TypeVar("T")
T0 = 1_800_000_000_000  # a fixed "now", in Unix ms


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def message(queue: str, body: str, *, at: int = T0, delay_ms: int = 0) -> QueueMessage:
    return QueueMessage(
        queue_name=queue,
        message_id=str(uuid.uuid4()),
        body=body,
        sent_unix_ms=at,
        visible_at_unix_ms=at + delay_ms,
        message_attributes={"k": {"DataType": "String", "StringValue": "v"}},
    )


def receipt(received: QueueMessage) -> Receipt:
    parsed = parse_receipt_handle(received.receipt_handle)
    assert parsed is not None
    return parsed


def test_queue_records(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        queue = Queue("alpha", created_unix_ms=T0, last_modified_unix_ms=T0)
        assert await store.create_queue(queue) == queue
        # Creating again returns the existing queue, unchanged.
        other = Queue("alpha", {"VisibilityTimeout": "5"}, T0 + 1, T0 + 1)
        assert await store.create_queue(other) == queue
        assert await store.get_queue("alpha") == queue
        assert await store.get_queue("beta") is None
        for name in ("a_b", "aXb", "a_c", "b"):
            await store.create_queue(Queue(name, created_unix_ms=T0, last_modified_unix_ms=T0))
        # '_' is a character, not a wildcard; the prefix is case-sensitive.
        assert [q.name for q in await store.list_queues("a_", None, 10)] == ["a_b", "a_c"]
        assert [q.name for q in await store.list_queues("A", None, 10)] == []
        assert [q.name for q in await store.list_queues("", "a_b", 2)] == ["a_c", "alpha"]

        changed = await store.set_queue_attributes(
            "alpha", {"VisibilityTimeout": "5", "Policy": "{}"}, T0 + 10
        )
        assert changed.visibility_timeout_s == 5
        assert changed.attributes["Policy"] == "{}"
        assert changed.last_modified_unix_ms == T0 + 10
        removed = await store.set_queue_attributes("alpha", {"Policy": None}, T0 + 20)
        assert "Policy" not in removed.attributes
        assert await store.get_queue("alpha") == removed
        with pytest.raises(QueueDoesNotExist):
            await store.set_queue_attributes("ghost", {"Policy": None}, T0)

        await store.send_queue_messages([message("alpha", "m")])
        assert await store.delete_queue("alpha")
        assert not await store.delete_queue("alpha")
        await store.create_queue(Queue("alpha"))
        assert await store.count_queue_messages(Queue("alpha"), T0) == QueueCounts(0, 0, 0)
        await store.close()

    run(scenario())


def test_send_receive_delete(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        queue = await store.create_queue(Queue("q"))
        with pytest.raises(QueueDoesNotExist):
            await store.send_queue_messages([message("missing", "x")])
        sent = await store.send_queue_messages([message("q", f"m{i}") for i in range(3)])
        assert [m.seq for m in sent] == sorted({m.seq for m in sent})
        assert all(m.seq > 0 for m in sent)

        first = await store.receive_queue_messages(queue, 2, 30_000, T0)
        assert [m.body for m in first.messages] == ["m0", "m1"]
        assert first.moved_to_dead_letter == 0
        taken = first.messages[0]
        assert taken.receive_count == 1
        assert taken.first_receive_unix_ms == T0
        assert taken.visible_at_unix_ms == T0 + 30_000
        assert taken.message_attributes == sent[0].message_attributes
        assert await store.count_queue_messages(queue, T0) == QueueCounts(1, 2, 0)

        rest = await store.receive_queue_messages(queue, 10, 30_000, T0)
        assert [m.body for m in rest.messages] == ["m2"]
        assert (await store.receive_queue_messages(queue, 10, 30_000, T0)).messages == []
        assert await store.next_queue_message_visible_at("q", T0) == T0 + 30_000

        # After the visibility timeout the message is received again, under a new token.
        again = await store.receive_queue_messages(queue, 1, 30_000, T0 + 30_000)
        (redelivered,) = again.messages
        assert redelivered.message_id == taken.message_id
        assert redelivered.receive_count == 2
        assert redelivered.first_receive_unix_ms == T0
        assert redelivered.receipt_token != taken.receipt_token

        stale, current = receipt(taken), receipt(redelivered)
        assert await store.delete_queue_messages("q", [stale]) == [False]
        assert await store.delete_queue_messages("other", [current]) == [False]
        assert await store.delete_queue_messages("q", [current, current]) == [True, False]
        assert await store.count_queue_messages(queue, T0 + 30_000) == QueueCounts(2, 0, 0)
        await store.close()

    run(scenario())


def test_zero_visibility_timeout_and_delays(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        queue = await store.create_queue(Queue("q"))
        await store.send_queue_messages(
            [message("q", "now"), message("q", "later", delay_ms=5_000)]
        )
        assert await store.count_queue_messages(queue, T0) == QueueCounts(1, 0, 1)
        # With a zero visibility timeout the same message can be taken again at once.
        for count in (1, 2, 3):
            (taken,) = (await store.receive_queue_messages(queue, 10, 0, T0)).messages
            assert (taken.body, taken.receive_count) == ("now", count)
        assert await store.next_queue_message_visible_at("q", T0) == T0 + 5_000
        later = await store.receive_queue_messages(queue, 10, 1_000, T0 + 5_000)
        assert [m.body for m in later.messages] == ["now", "later"]
        await store.close()

    run(scenario())


def test_change_visibility(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        queue = await store.create_queue(Queue("q"))
        await store.send_queue_messages([message("q", "a"), message("q", "b")])
        a, b = (await store.receive_queue_messages(queue, 2, 60_000, T0)).messages
        outcomes = await store.change_queue_message_visibility(
            "q", [(receipt(a), T0), (receipt(b), T0 + 120_000)], T0 + 1
        )
        assert outcomes == [VISIBILITY_CHANGED, VISIBILITY_CHANGED]
        assert await store.count_queue_messages(queue, T0 + 1) == QueueCounts(1, 1, 0)
        # ``a`` is visible again: not in flight; once received again, its old token is gone.
        assert await store.change_queue_message_visibility("q", [(receipt(a), T0)], T0 + 2) == [
            VISIBILITY_NOT_IN_FLIGHT
        ]
        (a_again,) = (await store.receive_queue_messages(queue, 1, 60_000, T0 + 2)).messages
        assert a_again.message_id == a.message_id
        assert await store.change_queue_message_visibility("q", [(receipt(a), T0)], T0 + 3) == [
            VISIBILITY_GONE
        ]
        assert await store.delete_queue_messages("q", [receipt(b)]) == [True]
        assert await store.change_queue_message_visibility("q", [(receipt(b), T0)], T0 + 3) == [
            VISIBILITY_GONE
        ]
        await store.close()

    run(scenario())


def test_redrive_to_the_dead_letter_queue(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        await store.create_queue(Queue("dlq"))
        policy = RedrivePolicy("arn:aws:sqs:us-east-1:000000000000:dlq", 2)
        source = await store.create_queue(
            Queue("source", {"RedrivePolicy": policy.to_json()}, T0, T0)
        )
        assert source.redrive == policy
        (sent,) = await store.send_queue_messages([message("source", "poison")])
        await store.send_queue_messages([message("source", "fine")])
        for count in (1, 2):
            received = await store.receive_queue_messages(source, 1, 0, T0)
            assert [(m.body, m.receive_count) for m in received.messages] == [("poison", count)]
        # The third receive moves "poison" and goes on to the next message.
        third = await store.receive_queue_messages(source, 1, 0, T0)
        assert [m.body for m in third.messages] == ["fine"]
        assert third.moved_to_dead_letter == 1
        (moved,) = (await store.receive_queue_messages(Queue("dlq"), 10, 0, T0)).messages
        assert moved.message_id == sent.message_id
        assert moved.receive_count == 1
        assert moved.dead_letter_source_queue == "source"
        assert moved.queue_name == "dlq"

        # Without its dead-letter queue, a policy moves nothing.
        assert await store.delete_queue("dlq")
        for _ in range(3):
            kept = await store.receive_queue_messages(source, 1, 0, T0)
            assert [m.body for m in kept.messages] == ["fine"]
            assert kept.moved_to_dead_letter == 0
        await store.close()

    run(scenario())


def test_retention_and_purge(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        await store.open()
        queue = await store.create_queue(Queue("q", {"MessageRetentionPeriod": "60"}, T0, T0))
        await store.send_queue_messages(
            [message("q", "old", at=T0 - 61_000), message("q", "new", at=T0)]
        )
        assert await store.count_queue_messages(queue, T0) == QueueCounts(1, 0, 0)
        received = await store.receive_queue_messages(queue, 10, 1_000, T0)
        assert [m.body for m in received.messages] == ["new"]
        await store.send_queue_messages([message("q", "x"), message("q", "y")])
        assert await store.purge_queue("q") == 3
        assert await store.count_queue_messages(queue, T0) == QueueCounts(0, 0, 0)
        await store.close()

    run(scenario())


def test_sqlite_keeps_queues_and_messages_across_reopening(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = SqliteStore(tmp_path / "state.db")
        await first.open()
        queue = await first.create_queue(Queue("q", {"VisibilityTimeout": "9"}, T0, T0))
        (sent,) = await first.send_queue_messages([message("q", "kept")])
        await first.close()
        second = SqliteStore(tmp_path / "state.db")
        await second.open()
        assert await second.get_queue("q") == queue
        (received,) = (await second.receive_queue_messages(queue, 1, 0, T0)).messages
        assert received.message_id == sent.message_id
        assert received.message_attributes == sent.message_attributes
        await second.close()

    run(scenario())


def test_receipt_handles() -> None:
    received = QueueMessage("q-1", "id", "b", T0, T0, seq=42, receipt_token="ab" * 16)
    assert parse_receipt_handle(received.receipt_handle) == Receipt("q-1", 42, "ab" * 16)
    for bad in ("", "garbage", "!!!", received.receipt_handle[:-4]):
        assert parse_receipt_handle(bad) is None
    with pytest.raises(ValueError, match="not been received"):
        _ = QueueMessage("q", "id", "b", T0, T0).receipt_handle


def test_md5_of_message_attributes_matches_published_vectors() -> None:
    assert (
        md5_of_attributes(
            {
                "ordinal": {"DataType": "Number", "StringValue": "1"},
                "category": {"DataType": "String", "StringValue": "test"},
            }
        )
        == "d21ae90c49061e927f57df5f5d72be1f"
    )
    assert (
        md5_of_attributes({"SellerName": {"DataType": "String", "StringValue": "Example Store"}})
        == "cd28f3b68aeee4b2eac9c66f2f694b58"
    )
