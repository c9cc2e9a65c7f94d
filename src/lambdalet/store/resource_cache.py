"""Resources as the SQLite store last read them, so that reading one again skips the database.

Function URLs, HTTP APIs, topics and event source mappings read their resources on every
request or poll. The node is its store's one writer (README, Limits), and every write of a
resource goes through the store's own methods, which drop what they change from here first:
what the node has not changed has not changed.

A read and a write of one key are queued for the store's one thread, in order. A read queued
before a write may finish after the write began: what it read is then not kept, as no write
may have begun between a read's start and its keeping (one counter of writes says so).
"""

from __future__ import annotations

import json
from typing import Any

MAX_ENTRIES = 4096  # then everything is dropped: resources are few, unknown keys many


class ResourceCache:
    """The JSON text of resources by (kind, key); None for a key the store does not have."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._texts: dict[tuple[str, str], str | None] = {}
        self._writes = 0
        self._max_entries = max_entries

    def get(self, kind: str, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(whether it is here, the resource as a fresh dict or None)."""
        try:
            text = self._texts[(kind, key)]
        except KeyError:
            return False, None
        return True, None if text is None else dict(json.loads(text))

    def reading(self) -> int:
        """Call before a read: what :meth:`keep` needs to know whether a write came between."""
        return self._writes

    def keep(self, kind: str, key: str, text: str | None, since: int) -> None:
        """Keep what a read that began at ``since`` found, unless a write began after it."""
        if since != self._writes:
            return
        if len(self._texts) >= self._max_entries:
            self._texts.clear()
        self._texts[(kind, key)] = text

    def writing(self, kind: str, key: str) -> None:
        """Call before a write of one resource: forget it."""
        self._writes += 1
        self._texts.pop((kind, key), None)

    def writing_all(self, kind: str, prefix: str) -> None:
        """Call before a write of every resource of ``kind`` whose key starts with ``prefix``."""
        self._writes += 1
        for cached in [k for k in self._texts if k[0] == kind and k[1].startswith(prefix)]:
            del self._texts[cached]
