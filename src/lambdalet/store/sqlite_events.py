"""The async-event half of the SQLite store (table ``async_events``).

A mixin of :class:`~lambdalet.store.sqlite.SqliteStore`; every call runs on the store's one
worker thread. The queue is where the async path spends its store time, so it is written in
as few transactions as possible:

- events accepted at the same time are committed together (:mod:`group_commit`), each
  caller still returning only after its own row is committed;
- a claim is one transaction that first settles the outcomes of events that ran (deleting
  the finished ones, making the ones to retry pending again) and then marks the next due
  events running, with a single ``UPDATE ... RETURNING``. That is PostgreSQL's
  ``SELECT ... FOR UPDATE SKIP LOCKED`` claim in SQLite, where the one writer makes the
  locking moot.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from lambdalet.models import AsyncEvent, EventRetry, now_ms
from lambdalet.store.group_commit import GroupCommit
from lambdalet.store.sqlite_transaction import ROWS_PER_STATEMENT, insert_rows, transaction

T = TypeVar("T")

# function_name, qualifier, payload, request_id, accepted_unix_ms
EventRow = tuple[str, str, bytes, str, int]

_INSERT_INTO = "async_events (function_name, qualifier, payload, request_id, accepted_unix_ms)"
_CLAIM = (
    "UPDATE async_events SET state = 'running', attempts = attempts + 1 WHERE id IN"
    " (SELECT id FROM async_events WHERE state = 'pending' AND not_before_ms <= ?"
    " ORDER BY id LIMIT ?)"
    " RETURNING id, function_name, qualifier, payload, request_id, accepted_unix_ms,"
    " attempts, throttles"
)
# A throttled try did not run the function: it gives back the attempt its claim counted.
_RETRY = (
    "UPDATE async_events SET state = 'pending', not_before_ms = ?, attempts = attempts - ?,"
    " throttles = throttles + ? WHERE id = ?"
)


class SqliteEvents:
    """Store methods for the async event queue, on the SQLite connection of the store they
    are mixed into."""

    _event_writer: GroupCommit[EventRow, int] | None = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's runs ``work`` on its worker thread

    async def enqueue_event(
        self, function_name: str, qualifier: str, payload: bytes, request_id: str
    ) -> int:
        if self._event_writer is None:
            self._event_writer = GroupCommit(self._insert_events)
        row = (function_name, qualifier, payload, request_id, now_ms())
        return await self._event_writer.write(row)

    async def _insert_events(self, rows: list[EventRow]) -> list[int]:
        def insert(db: sqlite3.Connection) -> list[int]:
            with transaction(db):
                return insert_rows(db, _INSERT_INTO, rows)

        return await self._run(insert)

    async def _drain_events(self) -> None:
        """Wait for events handed to the group commit (the store is about to close)."""
        if self._event_writer is not None:
            await self._event_writer.drain()

    async def claim_events(
        self,
        limit: int,
        *,
        finished: Sequence[int] = (),
        retries: Sequence[EventRetry] = (),
    ) -> list[AsyncEvent]:
        def claim(db: sqlite3.Connection) -> list[AsyncEvent]:
            with transaction(db):
                for start in range(0, len(finished), ROWS_PER_STATEMENT):
                    chunk = finished[start : start + ROWS_PER_STATEMENT]
                    marks = ",".join("?" * len(chunk))
                    db.execute(f"DELETE FROM async_events WHERE id IN ({marks})", chunk)
                if retries:
                    db.executemany(
                        _RETRY,
                        [
                            (r.not_before_ms, int(r.throttled), int(r.throttled), r.event_id)
                            for r in retries
                        ],
                    )
                rows = db.execute(_CLAIM, (now_ms(), limit)).fetchall() if limit > 0 else []
            events = [
                AsyncEvent(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], row[6], row[7])
                for row in rows
            ]
            events.sort(key=lambda event: event.event_id)  # RETURNING promises no order
            return events

        return await self._run(claim)

    async def release_running_events(self) -> int:
        def release(db: sqlite3.Connection) -> int:
            query = "UPDATE async_events SET state = 'pending' WHERE state = 'running'"
            return db.execute(query).rowcount

        return await self._run(release)
