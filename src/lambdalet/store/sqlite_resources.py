"""The resource half of the SQLite store (table ``resources``): JSON documents by kind and key.

A mixin of :class:`~lambdalet.store.sqlite.SqliteStore`: every call runs on the store's one
worker thread, so a check-then-write inside one call is atomic. What is read is kept in a
:class:`~lambdalet.store.resource_cache.ResourceCache`, which every write here updates first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from lambdalet.store.resource_cache import ResourceCache
from lambdalet.store.sqlite_transaction import transaction

T = TypeVar("T")


def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """Keys ``k`` with ``low <= k < high`` are exactly those that start with ``prefix``."""
    return prefix, prefix + "\U0010ffff"


class SqliteResources:
    """Store methods for resources, on the SQLite connection of the store they are mixed into."""

    _resource_cache: ResourceCache  # made by the store

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore's runs ``work`` on its worker thread

    async def insert_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        text = json.dumps(value)
        self._resource_cache.writing(kind, key)

        def insert(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT OR IGNORE INTO resources (kind, key, value) VALUES (?, ?, ?)",
                (kind, key, text),
            )
            return cursor.rowcount == 1

        return await self._run(insert)

    async def replace_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        text = json.dumps(value)
        self._resource_cache.writing(kind, key)

        def update(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE resources SET value = ? WHERE kind = ? AND key = ?", (text, kind, key)
            )
            return cursor.rowcount == 1

        return await self._run(update)

    async def get_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        cache = self._resource_cache
        found, value = cache.get(kind, key)
        if found:
            return value

        def select(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT value FROM resources WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
            return None if row is None else str(row[0])

        since = cache.reading()
        text = await self._run(select)
        cache.keep(kind, key, text, since)
        return None if text is None else dict(json.loads(text))

    async def list_resources(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        low, high = _prefix_bounds(prefix)

        def select(db: sqlite3.Connection) -> list[tuple[str, dict[str, Any]]]:
            rows = db.execute(
                "SELECT key, value FROM resources WHERE kind = ? AND key >= ? AND key < ?"
                " ORDER BY key",
                (kind, low, high),
            ).fetchall()
            return [(key, dict(json.loads(value))) for key, value in rows]

        return await self._run(select)

    async def delete_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        self._resource_cache.writing(kind, key)

        def delete(db: sqlite3.Connection) -> dict[str, Any] | None:
            with transaction(db):
                row = db.execute(
                    "SELECT value FROM resources WHERE kind = ? AND key = ?", (kind, key)
                ).fetchone()
                if row is None:
                    return None
                db.execute("DELETE FROM resources WHERE kind = ? AND key = ?", (kind, key))
            return dict(json.loads(row[0]))

        return await self._run(delete)

    async def delete_resources(self, kind: str, prefix: str) -> int:
        low, high = _prefix_bounds(prefix)
        self._resource_cache.writing_all(kind, prefix)

        def delete(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM resources WHERE kind = ? AND key >= ? AND key < ?", (kind, low, high)
            )
            return cursor.rowcount

        return await self._run(delete)
