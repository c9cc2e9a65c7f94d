CREATE TABLE layers (
    name TEXT PRIMARY KEY,
    latest_version INTEGER NOT NULL
);

CREATE TABLE layer_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    code_sha256 TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX layer_versions_code ON layer_versions (code_sha256);

ALTER TABLE functions ADD COLUMN code_shas TEXT NOT NULL DEFAULT '';
UPDATE functions SET code_shas = code_sha256;
