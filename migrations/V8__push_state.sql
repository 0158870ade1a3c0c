-- `push` (SPEC section 8): what was sent to each target, so that a push sends
-- only what is new or changed since the last one, and an interrupted push
-- continues where its last committed batch ended. Forward-only.

-- One row per target: a PostgreSQL URL (without its password) or an OTLP endpoint.
CREATE TABLE push_targets (
    target        TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL DEFAULT 0, -- events up to this id were sent
    last_change   INTEGER NOT NULL DEFAULT 0, -- push_changes up to this seq were sent
    pushed_at     TEXT                        -- when a batch was last sent
);

-- Per target and session, a hash of the session's row, metrics and delegations
-- as last sent: a session is sent again only when it differs.
CREATE TABLE push_sessions (
    target      TEXT NOT NULL,
    session_id  TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    PRIMARY KEY (target, session_id)
) WITHOUT ROWID;

-- Events whose content changed after they were stored (a second observation
-- merged into them), in the order of the changes, while some PostgreSQL target
-- exists: an event already sent is sent again once it changed. (OTLP targets
-- send whole sessions again instead.)
CREATE TABLE push_changes (
    event_id INTEGER PRIMARY KEY,
    seq      INTEGER NOT NULL
);
CREATE INDEX push_changes_by_seq ON push_changes(seq);
CREATE TRIGGER push_event_changed
    AFTER UPDATE OF data, envelope, origin, timestamp, agent_id, identity ON events
    WHEN EXISTS (SELECT 1 FROM push_targets WHERE target NOT LIKE 'otlp:%')
BEGIN
    INSERT OR REPLACE INTO push_changes (event_id, seq)
    VALUES (new.id, (SELECT coalesce(max(seq), 0) + 1 FROM push_changes));
END;
