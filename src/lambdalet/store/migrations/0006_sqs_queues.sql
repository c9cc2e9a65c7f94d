CREATE TABLE sqs_queues (
    name TEXT PRIMARY KEY,
    attributes TEXT NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    last_modified_unix_ms INTEGER NOT NULL
);

CREATE TABLE sqs_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_name TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    message_attributes TEXT NOT NULL,
    sent_unix_ms INTEGER NOT NULL,
    visible_at_unix_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_unix_ms INTEGER,
    receipt_token TEXT,
    dead_letter_source_queue TEXT
);
CREATE INDEX sqs_messages_queue ON sqs_messages (queue_name, seq);
CREATE INDEX sqs_messages_visible ON sqs_messages (queue_name, visible_at_unix_ms);
