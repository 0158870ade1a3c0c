-- The transcript follower (`start --transcripts`): how far it has read each
-- transcript file (a byte offset just past the last whole line whose events
-- are all stored), so that a restart reads only what changed since.
CREATE TABLE transcript_offsets (
    path       TEXT PRIMARY KEY,
    offset     INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

-- The recorder's sources, for `status`: the monitor (enabled or not) and the
-- transcript follower (its folder, whether it waits for it, files followed,
-- when it last read a line).
CREATE TABLE recorder_sources (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    pid                 INTEGER,
    monitor_enabled     INTEGER NOT NULL DEFAULT 1,
    transcripts_dir     TEXT,
    transcripts_waiting INTEGER NOT NULL DEFAULT 0,
    files_followed      INTEGER NOT NULL DEFAULT 0,
    last_read_at        TEXT,
    updated_at          TEXT NOT NULL
);
