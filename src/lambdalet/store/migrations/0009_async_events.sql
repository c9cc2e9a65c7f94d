-- How many times an event was throttled (its backoff grows with it).
ALTER TABLE async_events ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
-- Claims only look for pending events: an index of those alone is smaller, and a claimed or
-- deleted event leaves it instead of moving inside it.
DROP INDEX async_events_state;
CREATE INDEX async_events_pending ON async_events (id) WHERE state = 'pending'
