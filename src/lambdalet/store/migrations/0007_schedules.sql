CREATE TABLE schedules (
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    next_fire_ms INTEGER,
    config TEXT NOT NULL,
    PRIMARY KEY (group_name, name)
);
CREATE INDEX schedules_next_fire ON schedules (next_fire_ms);
