"""The schedule half of the SQLite store (table ``schedules``).

A mixin of :class:`~lambdalet.store.sqlite.SqliteStore`: every call runs on the store's one
worker thread. A tick is claimed with one conditional UPDATE (``next_fire_ms`` from the value
that was read to the next one, at the revision that was read); SQLite serialises writers, so
when several nodes share the database file exactly one of them sees its UPDATE change a row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from lambdalet.errors import ConflictException, ResourceNotFoundException
from lambdalet.store.codec import schedule_from_json, schedule_to_json
from lambdalet.triggers.models import Schedule

T = TypeVar("T")


class SqliteSchedules:
    """Store methods for schedules, on the SQLite connection of the store they are mixed into."""

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's runs ``work`` on its worker thread

    async def put_schedule(self, schedule: Schedule, *, create: bool) -> None:
        row = (
            schedule.state,
            schedule.revision_id,
            schedule.next_fire_ms,
            schedule_to_json(schedule),
            schedule.group_name,
            schedule.name,
        )

        def put(db: sqlite3.Connection) -> None:
            if create:
                try:
                    db.execute(
                        "INSERT INTO schedules (state, revision_id, next_fire_ms, config,"
                        " group_name, name) VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    )
                except sqlite3.IntegrityError:
                    raise ConflictException(
                        f"Schedule {schedule.name} already exists in group {schedule.group_name}."
                    ) from None
                return
            cursor = db.execute(
                "UPDATE schedules SET state = ?, revision_id = ?, next_fire_ms = ?, config = ?"
                " WHERE group_name = ? AND name = ?",
                row,
            )
            if cursor.rowcount != 1:
                raise ResourceNotFoundException(f"Schedule {schedule.name} does not exist.")

        await self._run(put)

    async def get_schedule(self, group_name: str, name: str) -> Schedule | None:
        def select(db: sqlite3.Connection) -> Schedule | None:
            row = db.execute(
                "SELECT config, next_fire_ms FROM schedules WHERE group_name = ? AND name = ?",
                (group_name, name),
            ).fetchone()
            return schedule_from_json(row[0], row[1]) if row else None

        return await self._run(select)

    async def list_schedules(
        self,
        group_name: str,
        name_prefix: str | None,
        state: str | None,
        after_name: str | None,
        limit: int,
    ) -> list[Schedule]:
        def select(db: sqlite3.Connection) -> list[Schedule]:
            query = "SELECT config, next_fire_ms FROM schedules WHERE group_name = ? AND name > ?"
            parameters: list[object] = [group_name, after_name or ""]
            if name_prefix:
                # substr, not LIKE: names may hold '_', which LIKE would take for a wildcard.
                query += " AND substr(name, 1, ?) = ?"
                parameters += [len(name_prefix), name_prefix]
            if state:
                query += " AND state = ?"
                parameters.append(state)
            rows = db.execute(query + " ORDER BY name LIMIT ?", (*parameters, limit)).fetchall()
            return [schedule_from_json(row[0], row[1]) for row in rows]

        return await self._run(select)

    async def delete_schedule(
        self, group_name: str, name: str, revision_id: str | None = None
    ) -> Schedule | None:
        def delete(db: sqlite3.Connection) -> Schedule | None:
            query = "DELETE FROM schedules WHERE group_name = ? AND name = ?"
            parameters: tuple[str, ...] = (group_name, name)
            if revision_id is not None:
                query += " AND revision_id = ?"
                parameters += (revision_id,)
            row = db.execute(query + " RETURNING config, next_fire_ms", parameters).fetchone()
            return schedule_from_json(row[0], row[1]) if row else None

        return await self._run(delete)

    async def due_schedules(self, now_ms: int, limit: int) -> list[Schedule]:
        def select(db: sqlite3.Connection) -> list[Schedule]:
            rows = db.execute(
                "SELECT config, next_fire_ms FROM schedules WHERE next_fire_ms <= ?"
                " ORDER BY next_fire_ms LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            return [schedule_from_json(row[0], row[1]) for row in rows]

        return await self._run(select)

    async def next_schedule_tick_ms(self) -> int | None:
        def select(db: sqlite3.Connection) -> int | None:
            row = db.execute("SELECT MIN(next_fire_ms) FROM schedules").fetchone()
            return None if row[0] is None else int(row[0])

        return await self._run(select)

    async def claim_schedule_tick(self, schedule: Schedule, next_fire_ms: int | None) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE schedules SET next_fire_ms = ? WHERE group_name = ? AND name = ?"
                " AND revision_id = ? AND next_fire_ms IS ?",
                (
                    next_fire_ms,
                    schedule.group_name,
                    schedule.name,
                    schedule.revision_id,
                    schedule.next_fire_ms,
                ),
            )
            return cursor.rowcount == 1

        return await self._run(claim)
