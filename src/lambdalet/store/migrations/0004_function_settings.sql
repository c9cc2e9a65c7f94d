CREATE TABLE function_settings (
    function_name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (function_name, key)
);
