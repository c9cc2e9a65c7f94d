"""State: the Store interface and its named implementations."""

from __future__ import annotations

from pathlib import Path

from lambdalet.config import Settings
from lambdalet.store.base import Store
from lambdalet.store.blobs import BlobStore
from lambdalet.store.memory import MemoryStore
from lambdalet.store.sqlite import SqliteStore

__all__ = ["BlobStore", "Store", "make_store"]


def make_store(settings: Settings) -> Store:
    """The store named by ``settings.store_url``: 'sqlite', 'sqlite:///path' or 'memory'."""
    url = settings.store_url
    if url == "memory":
        return MemoryStore()
    if url == "sqlite":
        return SqliteStore(settings.data_dir / "lambdalet.db")
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"unknown store_url {url!r}: use 'sqlite', 'sqlite:///path' or 'memory'")
