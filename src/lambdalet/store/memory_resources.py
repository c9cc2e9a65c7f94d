"""The resource half of the in-memory store: JSON documents by kind and key.

Values are copied through JSON on the way in and out, as the SQLite store does, so callers
never share a dict with the store.
"""

from __future__ import annotations

import json
from typing import Any


class MemoryResources:
    """Store methods for resources, on this process's memory."""

    def __init__(self) -> None:
        super().__init__()
        self._resources: dict[tuple[str, str], str] = {}

    async def insert_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        if (kind, key) in self._resources:
            return False
        self._resources[(kind, key)] = json.dumps(value)
        return True

    async def replace_resource(self, kind: str, key: str, value: dict[str, Any]) -> bool:
        if (kind, key) not in self._resources:
            return False
        self._resources[(kind, key)] = json.dumps(value)
        return True

    async def get_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        text = self._resources.get((kind, key))
        return None if text is None else dict(json.loads(text))

    async def list_resources(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        return sorted(
            (key, dict(json.loads(text)))
            for (k, key), text in self._resources.items()
            if k == kind and key.startswith(prefix)
        )

    async def delete_resource(self, kind: str, key: str) -> dict[str, Any] | None:
        text = self._resources.pop((kind, key), None)
        return None if text is None else dict(json.loads(text))

    async def delete_resources(self, kind: str, prefix: str) -> int:
        doomed = [k for k in self._resources if k[0] == kind and k[1].startswith(prefix)]
        for k in doomed:
            del self._resources[k]
        return len(doomed)
