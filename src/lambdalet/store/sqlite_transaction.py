"""One SQLite transaction, for the connections the SQL stores open in autocommit mode, and
many rows inserted at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

ROWS_PER_STATEMENT = 500


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


def insert_rows(db: sqlite3.Connection, into: str, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """``INSERT INTO {into} VALUES (...), (...), ...`` up to ROWS_PER_STATEMENT rows at a time;
    return the new rows' ids, in order.

    One statement step for many rows, where ``executemany`` steps once a row: the sqlite3
    module lets go of the GIL around every step, and each time it takes it back it waits for
    the event loop's thread to hand it over. The rows of one statement get consecutive ids
    (the next after the largest), so they follow from the last one.
    """
    ids: list[int] = []
    if not rows:
        return ids
    placeholders = "(" + ",".join("?" * len(rows[0])) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = ",".join([placeholders] * len(chunk))
        cursor = db.execute(f"INSERT INTO {into} VALUES {values}", [v for r in chunk for v in r])
        assert cursor.lastrowid is not None
        ids.extend(range(cursor.lastrowid - len(chunk) + 1, cursor.lastrowid + 1))
    return ids
