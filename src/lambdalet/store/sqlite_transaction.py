"""One SQLite transaction, for the connections the SQL stores open in autocommit mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def transaction(db: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    """Commit what the block did, or roll it all back if it raised.

    ``IMMEDIATE`` takes the write lock at the start, so a read-then-write cannot be overtaken.
    """
    db.execute(f"BEGIN {mode}")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
