CREATE TABLE function_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    code_shas TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE version_counters (
    name TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);

CREATE TABLE aliases (
    function_name TEXT NOT NULL,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (function_name, name)
);
