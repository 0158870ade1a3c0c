-- The recorder's count of observations merged into events already stored (one
-- happening seen by several sources), so that stored + duplicates + merged +
-- rejected + control = received holds in its heartbeat row too.
ALTER TABLE recorder_state ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
