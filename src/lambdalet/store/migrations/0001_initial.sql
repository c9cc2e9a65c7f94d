CREATE TABLE functions (
    name TEXT PRIMARY KEY,
    revision_id TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size_bytes INTEGER NOT NULL,
    config TEXT NOT NULL
);
CREATE INDEX functions_code ON functions (code_sha256);

CREATE TABLE log_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function_name TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at_unix_ms INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX log_events_function ON log_events (function_name, id);

CREATE TABLE invocations (
    request_id TEXT NOT NULL,
    function_name TEXT NOT NULL,
    version TEXT NOT NULL,
    started_unix_ms INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    billed_duration_ms INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    max_memory_used_mb INTEGER NOT NULL,
    init_duration_ms REAL,
    error_type TEXT
);
CREATE INDEX invocations_function ON invocations (function_name, started_unix_ms);

CREATE TABLE async_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function_name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,
    request_id TEXT NOT NULL,
    accepted_unix_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX async_events_state ON async_events (state, id);
