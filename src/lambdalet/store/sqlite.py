"""The embedded store: one SQLite file in WAL mode, used from one dedicated thread.

SQLite calls block, so every call runs on a single worker thread that owns the connection;
the event loop only awaits. Writes are few and batched (see ``metering.recorder``), so one
thread is enough and it serialises writers the way SQLite wants anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from lambdalet.errors import (
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)
from lambdalet.models import (
    Alias,
    FunctionConfig,
    FunctionUsage,
    InvocationRecord,
    LayerVersion,
    LogEvent,
    now_ms,
    same_code_and_settings,
)
from lambdalet.store.codec import (
    alias_from_json,
    alias_to_json,
    code_shas,
    function_from_json,
    function_to_json,
    invocation_from_row,
    invocation_row,
    layer_from_json,
    layer_to_json,
)
from lambdalet.store.resource_cache import ResourceCache
from lambdalet.store.sqlite_events import SqliteEvents
from lambdalet.store.sqlite_queues import SqliteQueues
from lambdalet.store.sqlite_resources import SqliteResources
from lambdalet.store.sqlite_schedules import SqliteSchedules
from lambdalet.store.sqlite_transaction import insert_rows, transaction

T = TypeVar("T")


def migrations() -> list[tuple[int, str]]:
    """The schema migrations shipped with lambdalet, as (number, SQL), in order."""
    found = []
    for entry in resources.files("lambdalet.store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel too (``top -H``, /proc/PID/task/*/comm),
    so the store thread's CPU can be told from the event loop's; best effort."""
    with contextlib.suppress(OSError):
        Path("/proc/thread-self/comm").write_text(name[:15])


class SqliteStore(SqliteEvents, SqliteQueues, SqliteSchedules, SqliteResources):
    """The Store interface on a SQLite database file (async events: see ``sqlite_events``,
    queues: ``sqlite_queues``, schedules: ``sqlite_schedules``, resources:
    ``sqlite_resources``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="sqlite-store",
            initializer=name_os_thread,
            initargs=("sqlite-store",),
        )
        self._db: sqlite3.Connection | None = None
        self._resource_cache = ResourceCache()

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "store is not open"
            return work(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA foreign_keys=ON")
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for number, sql in migrations():
                if number > current:
                    with transaction(db):
                        for statement in filter(str.strip, sql.split(";")):
                            db.execute(statement)
                        db.execute(f"PRAGMA user_version={number}")
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        await self._drain_events()

        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=True)

    async def create_function(self, config: FunctionConfig) -> None:
        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO functions (name, revision_id, code_sha256, code_size_bytes,"
                    " config, code_shas) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        config.name,
                        config.revision_id,
                        config.code_sha256_hex,
                        config.code_size_bytes,
                        function_to_json(config),
                        code_shas(config),
                    ),
                )
            except sqlite3.IntegrityError:
                raise ResourceConflictException(f"Function already exist: {config.name}") from None

        await self._run(insert)

    async def get_function(self, name: str) -> FunctionConfig | None:
        def select(db: sqlite3.Connection) -> FunctionConfig | None:
            row = db.execute("SELECT config FROM functions WHERE name = ?", (name,)).fetchone()
            return function_from_json(row[0]) if row else None

        return await self._run(select)

    async def list_functions(self, marker: str | None, max_items: int) -> list[FunctionConfig]:
        def select(db: sqlite3.Connection) -> list[FunctionConfig]:
            rows = db.execute(
                "SELECT config FROM functions WHERE name > ? ORDER BY name LIMIT ?",
                (marker or "", max_items),
            ).fetchall()
            return [function_from_json(row[0]) for row in rows]

        return await self._run(select)

    async def update_function(self, config: FunctionConfig, expected_revision_id: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE functions SET revision_id = ?, code_sha256 = ?, code_size_bytes = ?,"
                " config = ?, code_shas = ? WHERE name = ? AND revision_id = ?",
                (
                    config.revision_id,
                    config.code_sha256_hex,
                    config.code_size_bytes,
                    function_to_json(config),
                    code_shas(config),
                    config.name,
                    expected_revision_id,
                ),
            )
            if cursor.rowcount == 1:
                return
            exists = db.execute("SELECT 1 FROM functions WHERE name = ?", (config.name,))
            if exists.fetchone() is None:
                raise ResourceNotFoundException(f"Function not found: {config.name}")
            raise PreconditionFailedException.stale_revision("GetFunction/GetAlias")

        await self._run(update)

    async def delete_function(self, name: str) -> FunctionConfig | None:
        def delete(db: sqlite3.Connection) -> FunctionConfig | None:
            with transaction(db):
                row = db.execute("SELECT config FROM functions WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    for table, column in (
                        ("functions", "name"),
                        ("function_versions", "name"),
                        ("version_counters", "name"),
                        ("aliases", "function_name"),
                        ("function_settings", "function_name"),
                        ("async_events", "function_name"),
                    ):
                        db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
            return function_from_json(row[0]) if row else None

        return await self._run(delete)

    async def publish_version(self, name: str, description: str | None) -> FunctionConfig:
        def publish(db: sqlite3.Connection) -> FunctionConfig:
            with transaction(db):
                published = self._publish(db, name, description)
            return published

        return await self._run(publish)

    @staticmethod
    def _publish(db: sqlite3.Connection, name: str, description: str | None) -> FunctionConfig:
        row = db.execute("SELECT config FROM functions WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise ResourceNotFoundException(f"Function not found: {name}")
        latest = function_from_json(row[0])
        newest = db.execute(
            "SELECT config FROM function_versions WHERE name = ? ORDER BY version DESC LIMIT 1",
            (name,),
        ).fetchone()
        if newest is not None and same_code_and_settings(function_from_json(newest[0]), latest):
            return function_from_json(newest[0])
        db.execute(
            "INSERT INTO version_counters VALUES (?, 1) ON CONFLICT (name)"
            " DO UPDATE SET last_version = last_version + 1",
            (name,),
        )
        number = db.execute(
            "SELECT last_version FROM version_counters WHERE name = ?", (name,)
        ).fetchone()[0]
        published = latest.evolve(
            version=str(number),
            revision_id=str(uuid.uuid4()),
            last_modified_ms=now_ms(),
            description=latest.description if description is None else description,
        )
        db.execute(
            "INSERT INTO function_versions VALUES (?, ?, ?, ?)",
            (name, number, code_shas(published), function_to_json(published)),
        )
        return published

    async def get_version(self, name: str, version: int) -> FunctionConfig | None:
        def select(db: sqlite3.Connection) -> FunctionConfig | None:
            row = db.execute(
                "SELECT config FROM function_versions WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
            return function_from_json(row[0]) if row else None

        return await self._run(select)

    async def list_versions(self, name: str) -> list[FunctionConfig]:
        def select(db: sqlite3.Connection) -> list[FunctionConfig]:
            rows = db.execute(
                "SELECT config FROM function_versions WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
            return [function_from_json(row[0]) for row in rows]

        return await self._run(select)

    async def delete_version(self, name: str, version: int) -> FunctionConfig | None:
        def delete(db: sqlite3.Connection) -> FunctionConfig | None:
            with transaction(db):
                for (text,) in db.execute(
                    "SELECT config FROM aliases WHERE function_name = ?", (name,)
                ).fetchall():
                    alias = alias_from_json(text)
                    if str(version) in (alias.function_version, *alias.additional_version_weights):
                        raise ResourceConflictException(
                            f"Unable to delete version because the following aliases reference"
                            f" it: [{alias.name}]"
                        )
                row = db.execute(
                    "DELETE FROM function_versions WHERE name = ? AND version = ? RETURNING config",
                    (name, version),
                ).fetchone()
            return function_from_json(row[0]) if row else None

        return await self._run(delete)

    async def put_alias(self, alias: Alias, expected_revision_id: str | None) -> None:
        def put(db: sqlite3.Connection) -> None:
            with transaction(db):
                row = db.execute(
                    "SELECT config FROM aliases WHERE function_name = ? AND name = ?",
                    (alias.function_name, alias.name),
                ).fetchone()
                if expected_revision_id is None and row is not None:
                    raise ResourceConflictException(f"Alias already exists: {alias.name}")
                if expected_revision_id is not None:
                    if row is None:
                        raise ResourceNotFoundException(f"Alias not found: {alias.name}")
                    if alias_from_json(row[0]).revision_id != expected_revision_id:
                        raise PreconditionFailedException.stale_revision("GetAlias")
                db.execute(
                    "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                    (alias.function_name, alias.name, alias_to_json(alias)),
                )

        await self._run(put)

    async def get_alias(self, function_name: str, name: str) -> Alias | None:
        def select(db: sqlite3.Connection) -> Alias | None:
            row = db.execute(
                "SELECT config FROM aliases WHERE function_name = ? AND name = ?",
                (function_name, name),
            ).fetchone()
            return alias_from_json(row[0]) if row else None

        return await self._run(select)

    async def list_aliases(self, function_name: str) -> list[Alias]:
        def select(db: sqlite3.Connection) -> list[Alias]:
            rows = db.execute(
                "SELECT config FROM aliases WHERE function_name = ? ORDER BY name",
                (function_name,),
            ).fetchall()
            return [alias_from_json(row[0]) for row in rows]

        return await self._run(select)

    async def delete_alias(self, function_name: str, name: str) -> Alias | None:
        def delete(db: sqlite3.Connection) -> Alias | None:
            row = db.execute(
                "DELETE FROM aliases WHERE function_name = ? AND name = ? RETURNING config",
                (function_name, name),
            ).fetchone()
            return alias_from_json(row[0]) if row else None

        return await self._run(delete)

    async def put_setting(self, function_name: str, key: str, value: Any) -> None:
        def put(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute(
                    "DELETE FROM function_settings WHERE function_name = ? AND key = ?",
                    (function_name, key),
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO function_settings VALUES (?, ?, ?)",
                    (function_name, key, json.dumps(value)),
                )

        await self._run(put)

    async def list_settings(self, function_name: str | None) -> dict[tuple[str, str], Any]:
        def select(db: sqlite3.Connection) -> dict[tuple[str, str], Any]:
            if function_name is None:
                rows = db.execute("SELECT * FROM function_settings").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM function_settings WHERE function_name = ?", (function_name,)
                ).fetchall()
            return {(row[0], row[1]): json.loads(row[2]) for row in rows}

        return await self._run(select)

    async def code_in_use(self, sha256_hex: str) -> bool:
        def select(db: sqlite3.Connection) -> bool:
            pattern = f"%{sha256_hex}%"
            query = (
                "SELECT 1 FROM functions WHERE code_shas LIKE ?"
                " UNION ALL SELECT 1 FROM function_versions WHERE code_shas LIKE ?"
                " UNION ALL SELECT 1 FROM layer_versions WHERE code_sha256 = ? LIMIT 1"
            )
            found = db.execute(query, (pattern, pattern, sha256_hex)).fetchone()
            return found is not None

        return await self._run(select)

    async def publish_layer_version(self, layer: LayerVersion) -> LayerVersion:
        def insert(db: sqlite3.Connection) -> LayerVersion:
            with transaction(db):
                db.execute(
                    "INSERT INTO layers VALUES (?, 1) ON CONFLICT (name)"
                    " DO UPDATE SET latest_version = latest_version + 1",
                    (layer.name,),
                )
                row = db.execute(
                    "SELECT latest_version FROM layers WHERE name = ?", (layer.name,)
                ).fetchone()
                published = replace(layer, version=int(row[0]))
                db.execute(
                    "INSERT INTO layer_versions VALUES (?, ?, ?, ?)",
                    (
                        layer.name,
                        published.version,
                        layer.code_sha256_hex,
                        layer_to_json(published),
                    ),
                )
            return published

        return await self._run(insert)

    async def get_layer_version(self, name: str, version: int) -> LayerVersion | None:
        def select(db: sqlite3.Connection) -> LayerVersion | None:
            row = db.execute(
                "SELECT config FROM layer_versions WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
            return layer_from_json(row[0]) if row else None

        return await self._run(select)

    async def list_layer_versions(self, name: str) -> list[LayerVersion]:
        def select(db: sqlite3.Connection) -> list[LayerVersion]:
            rows = db.execute(
                "SELECT config FROM layer_versions WHERE name = ? ORDER BY version DESC", (name,)
            ).fetchall()
            return [layer_from_json(row[0]) for row in rows]

        return await self._run(select)

    async def list_layers(self) -> list[LayerVersion]:
        def select(db: sqlite3.Connection) -> list[LayerVersion]:
            rows = db.execute(
                "SELECT config FROM layer_versions AS v WHERE version ="
                " (SELECT MAX(version) FROM layer_versions WHERE name = v.name) ORDER BY name"
            ).fetchall()
            return [layer_from_json(row[0]) for row in rows]

        return await self._run(select)

    async def update_layer_version(self, layer: LayerVersion, expected_revision_id: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            with transaction(db):
                row = db.execute(
                    "SELECT config FROM layer_versions WHERE name = ? AND version = ?",
                    (layer.name, layer.version),
                ).fetchone()
                if row is None:
                    raise ResourceNotFoundException(
                        f"Layer version {layer.name}:{layer.version} does not exist."
                    )
                if layer_from_json(row[0]).policy_revision_id != expected_revision_id:
                    raise PreconditionFailedException.stale_revision("GetLayerVersionPolicy")
                db.execute(
                    "UPDATE layer_versions SET config = ? WHERE name = ? AND version = ?",
                    (layer_to_json(layer), layer.name, layer.version),
                )

        await self._run(update)

    async def delete_layer_version(self, name: str, version: int) -> LayerVersion | None:
        def delete(db: sqlite3.Connection) -> LayerVersion | None:
            row = db.execute(
                "DELETE FROM layer_versions WHERE name = ? AND version = ? RETURNING config",
                (name, version),
            ).fetchone()
            return layer_from_json(row[0]) if row else None

        return await self._run(delete)

    async def total_code_size_bytes(self) -> tuple[int, int]:
        def select(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute("SELECT COALESCE(SUM(code_size_bytes), 0), COUNT(*) FROM functions")
            total, count = row.fetchone()
            return int(total), int(count)

        return await self._run(select)

    async def record(self, invocations: list[InvocationRecord], logs: list[LogEvent]) -> None:
        def insert(db: sqlite3.Connection) -> None:
            with transaction(db, "DEFERRED"):
                insert_rows(db, "invocations", [invocation_row(r) for r in invocations])
                insert_rows(
                    db,
                    "log_events (function_name, request_id, at_unix_ms, message)",
                    [(e.function_name, e.request_id, e.at_unix_ms, e.message) for e in logs],
                )

        await self._run(insert)

    async def read_logs(
        self, function_name: str, after_id: int, limit: int
    ) -> list[tuple[int, LogEvent]]:
        def select(db: sqlite3.Connection) -> list[tuple[int, LogEvent]]:
            rows = db.execute(
                "SELECT id, function_name, request_id, at_unix_ms, message FROM log_events"
                " WHERE function_name = ? AND id > ? ORDER BY id LIMIT ?",
                (function_name, after_id, limit),
            ).fetchall()
            return [(row[0], LogEvent(*row[1:])) for row in rows]

        return await self._run(select)

    async def usage(self, since_unix_ms: int, until_unix_ms: int) -> list[FunctionUsage]:
        def select(db: sqlite3.Connection) -> list[FunctionUsage]:
            rows = db.execute(
                "SELECT function_name, COUNT(*), COUNT(error_type),"
                " SUM(billed_duration_ms), SUM(billed_duration_ms * memory_mb) FROM invocations"
                " WHERE started_unix_ms >= ? AND started_unix_ms < ?"
                " GROUP BY function_name ORDER BY function_name",
                (since_unix_ms, until_unix_ms),
            ).fetchall()
            return [FunctionUsage(*row) for row in rows]

        return await self._run(select)

    async def list_invocations(self, function_name: str, limit: int) -> list[InvocationRecord]:
        def select(db: sqlite3.Connection) -> list[InvocationRecord]:
            rows = db.execute(
                "SELECT * FROM invocations WHERE function_name = ?"
                " ORDER BY started_unix_ms DESC LIMIT ?",
                (function_name, limit),
            ).fetchall()
            return [invocation_from_row(tuple(row)) for row in rows]

        return await self._run(select)
