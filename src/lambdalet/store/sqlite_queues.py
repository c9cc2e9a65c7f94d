"""The queue half of the SQLite store (tables ``sqs_queues`` and ``sqs_messages``).

A mixin of :class:`~lambdalet.store.sqlite.SqliteStore`: every call runs on the store's one
worker thread, and every change that touches more than one row is one transaction, so a
message is committed before SendMessage answers and a receive hides exactly what it returns.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from lambdalet.errors import QueueDoesNotExist
from lambdalet.queues.models import (
    VISIBILITY_CHANGED,
    VISIBILITY_GONE,
    VISIBILITY_NOT_IN_FLIGHT,
    Queue,
    QueueCounts,
    QueueMessage,
    Receipt,
    Received,
)
from lambdalet.store.sqlite_transaction import transaction

T = TypeVar("T")

_COLUMNS = (
    "seq, queue_name, message_id, body, message_attributes, sent_unix_ms, visible_at_unix_ms,"
    " receive_count, first_receive_unix_ms, receipt_token, dead_letter_source_queue"
)


def _queue(row: tuple[Any, ...]) -> Queue:
    return Queue(row[0], json.loads(row[1]), row[2], row[3])


def _message(row: tuple[Any, ...]) -> QueueMessage:
    return QueueMessage(
        seq=row[0],
        queue_name=row[1],
        message_id=row[2],
        body=row[3],
        message_attributes=json.loads(row[4]),
        sent_unix_ms=row[5],
        visible_at_unix_ms=row[6],
        receive_count=row[7],
        first_receive_unix_ms=row[8],
        receipt_token=row[9],
        dead_letter_source_queue=row[10],
    )


def _in_transaction(db: sqlite3.Connection, work: Callable[[], T]) -> T:
    with transaction(db):
        return work()


class SqliteQueues:
    """Store methods for queues, on the SQLite connection of the store they are mixed into."""

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's runs ``work`` on its worker thread

    async def create_queue(self, queue: Queue) -> Queue:
        def insert(db: sqlite3.Connection) -> Queue:
            db.execute(
                "INSERT INTO sqs_queues VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (
                    queue.name,
                    json.dumps(queue.attributes),
                    queue.created_unix_ms,
                    queue.last_modified_unix_ms,
                ),
            )
            row = db.execute("SELECT * FROM sqs_queues WHERE name = ?", (queue.name,)).fetchone()
            return _queue(row)

        return await self._run(insert)

    async def get_queue(self, name: str) -> Queue | None:
        def select(db: sqlite3.Connection) -> Queue | None:
            row = db.execute("SELECT * FROM sqs_queues WHERE name = ?", (name,)).fetchone()
            return _queue(row) if row else None

        return await self._run(select)

    async def list_queues(self, prefix: str, after_name: str | None, limit: int) -> list[Queue]:
        def select(db: sqlite3.Connection) -> list[Queue]:
            # Not LIKE: it is case-insensitive and '_' (allowed in names) is its wildcard.
            rows = db.execute(
                "SELECT * FROM sqs_queues WHERE substr(name, 1, ?) = ? AND name > ?"
                " ORDER BY name LIMIT ?",
                (len(prefix), prefix, after_name or "", limit),
            ).fetchall()
            return [_queue(row) for row in rows]

        return await self._run(select)

    async def set_queue_attributes(
        self, name: str, changes: dict[str, str | None], at_unix_ms: int
    ) -> Queue:
        def update(db: sqlite3.Connection) -> Queue:
            row = db.execute("SELECT * FROM sqs_queues WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise QueueDoesNotExist.missing()
            queue = _queue(row)
            attributes = dict(queue.attributes)
            for key, value in changes.items():
                if value is None:
                    attributes.pop(key, None)
                else:
                    attributes[key] = value
            db.execute(
                "UPDATE sqs_queues SET attributes = ?, last_modified_unix_ms = ? WHERE name = ?",
                (json.dumps(attributes), at_unix_ms, name),
            )
            return replace(queue, attributes=attributes, last_modified_unix_ms=at_unix_ms)

        return await self._run(lambda db: _in_transaction(db, lambda: update(db)))

    async def delete_queue(self, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            existed = db.execute("DELETE FROM sqs_queues WHERE name = ?", (name,)).rowcount
            db.execute("DELETE FROM sqs_messages WHERE queue_name = ?", (name,))
            return existed == 1

        return await self._run(lambda db: _in_transaction(db, lambda: delete(db)))

    async def send_queue_messages(self, messages: list[QueueMessage]) -> list[QueueMessage]:
        def insert(db: sqlite3.Connection) -> list[QueueMessage]:
            sent = []
            for message in messages:
                exists = db.execute(
                    "SELECT 1 FROM sqs_queues WHERE name = ?", (message.queue_name,)
                ).fetchone()
                if exists is None:
                    raise QueueDoesNotExist.missing()
                cursor = db.execute(
                    f"INSERT INTO sqs_messages ({_COLUMNS}) VALUES"
                    " (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        message.queue_name,
                        message.message_id,
                        message.body,
                        json.dumps(message.message_attributes),
                        message.sent_unix_ms,
                        message.visible_at_unix_ms,
                        message.receive_count,
                        message.first_receive_unix_ms,
                        message.receipt_token,
                        message.dead_letter_source_queue,
                    ),
                )
                assert cursor.lastrowid is not None
                sent.append(replace(message, seq=cursor.lastrowid))
            return sent

        return await self._run(lambda db: _in_transaction(db, lambda: insert(db)))

    async def receive_queue_messages(
        self, queue: Queue, max_count: int, visibility_timeout_ms: int, at_unix_ms: int
    ) -> Received:
        def receive(db: sqlite3.Connection) -> Received:
            db.execute(
                "DELETE FROM sqs_messages WHERE queue_name = ? AND sent_unix_ms <= ?",
                (queue.name, at_unix_ms - queue.retention_s * 1000),
            )
            redrive = queue.redrive
            dead_letter = None
            if redrive is not None and redrive.dead_letter_queue_name != queue.name:
                dead_letter = redrive.dead_letter_queue_name
                found = db.execute("SELECT 1 FROM sqs_queues WHERE name = ?", (dead_letter,))
                if found.fetchone() is None:
                    dead_letter = None  # as on AWS: no dead-letter queue, no redrive
            taken: list[QueueMessage] = []
            moved, after_seq = 0, 0
            while len(taken) < max_count:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM sqs_messages WHERE queue_name = ?"
                    " AND visible_at_unix_ms <= ? AND seq > ? ORDER BY seq LIMIT ?",
                    (queue.name, at_unix_ms, after_seq, max_count - len(taken)),
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    message = _message(row)
                    after_seq = message.seq
                    if (
                        dead_letter is not None
                        and redrive is not None
                        and message.receive_count >= redrive.max_receive_count
                    ):
                        db.execute(
                            "UPDATE sqs_messages SET queue_name = ?, visible_at_unix_ms = ?,"
                            " receive_count = 0, first_receive_unix_ms = NULL,"
                            " receipt_token = NULL, dead_letter_source_queue = ? WHERE seq = ?",
                            (dead_letter, at_unix_ms, queue.name, message.seq),
                        )
                        moved += 1
                        continue
                    received = replace(
                        message,
                        receive_count=message.receive_count + 1,
                        first_receive_unix_ms=message.first_receive_unix_ms or at_unix_ms,
                        receipt_token=secrets.token_hex(16),
                        visible_at_unix_ms=at_unix_ms + visibility_timeout_ms,
                    )
                    db.execute(
                        "UPDATE sqs_messages SET receive_count = ?, first_receive_unix_ms = ?,"
                        " receipt_token = ?, visible_at_unix_ms = ? WHERE seq = ?",
                        (
                            received.receive_count,
                            received.first_receive_unix_ms,
                            received.receipt_token,
                            received.visible_at_unix_ms,
                            message.seq,
                        ),
                    )
                    taken.append(received)
            return Received(taken, moved)

        return await self._run(lambda db: _in_transaction(db, lambda: receive(db)))

    async def delete_queue_messages(self, queue_name: str, receipts: list[Receipt]) -> list[bool]:
        def delete(db: sqlite3.Connection) -> list[bool]:
            return [
                db.execute(
                    "DELETE FROM sqs_messages WHERE seq = ? AND queue_name = ?"
                    " AND receipt_token = ?",
                    (receipt.seq, queue_name, receipt.token),
                ).rowcount
                == 1
                for receipt in receipts
            ]

        return await self._run(lambda db: _in_transaction(db, lambda: delete(db)))

    async def change_queue_message_visibility(
        self, queue_name: str, changes: list[tuple[Receipt, int]], at_unix_ms: int
    ) -> list[str]:
        def change(db: sqlite3.Connection) -> list[str]:
            outcomes = []
            for receipt, visible_at_unix_ms in changes:
                row = db.execute(
                    "SELECT visible_at_unix_ms, receipt_token FROM sqs_messages"
                    " WHERE seq = ? AND queue_name = ?",
                    (receipt.seq, queue_name),
                ).fetchone()
                if row is None or row[1] != receipt.token:
                    outcomes.append(VISIBILITY_GONE)
                elif row[0] <= at_unix_ms:
                    outcomes.append(VISIBILITY_NOT_IN_FLIGHT)
                else:
                    db.execute(
                        "UPDATE sqs_messages SET visible_at_unix_ms = ? WHERE seq = ?",
                        (visible_at_unix_ms, receipt.seq),
                    )
                    outcomes.append(VISIBILITY_CHANGED)
            return outcomes

        return await self._run(lambda db: _in_transaction(db, lambda: change(db)))

    async def purge_queue(self, name: str) -> int:
        def purge(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM sqs_messages WHERE queue_name = ?", (name,)).rowcount

        return await self._run(purge)

    async def count_queue_messages(self, queue: Queue, at_unix_ms: int) -> QueueCounts:
        def count(db: sqlite3.Connection) -> QueueCounts:
            row = db.execute(
                "SELECT COALESCE(SUM(visible_at_unix_ms <= :at), 0),"
                " COALESCE(SUM(visible_at_unix_ms > :at AND receipt_token IS NOT NULL), 0),"
                " COALESCE(SUM(visible_at_unix_ms > :at AND receipt_token IS NULL), 0)"
                " FROM sqs_messages WHERE queue_name = :name AND sent_unix_ms > :cutoff",
                {
                    "at": at_unix_ms,
                    "name": queue.name,
                    "cutoff": at_unix_ms - queue.retention_s * 1000,
                },
            ).fetchone()
            return QueueCounts(int(row[0]), int(row[1]), int(row[2]))

        return await self._run(count)

    async def next_queue_message_visible_at(self, name: str, at_unix_ms: int) -> int | None:
        def select(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT MIN(visible_at_unix_ms) FROM sqs_messages"
                " WHERE queue_name = ? AND visible_at_unix_ms > ?",
                (name, at_unix_ms),
            ).fetchone()
            return None if row[0] is None else int(row[0])

        return await self._run(select)
