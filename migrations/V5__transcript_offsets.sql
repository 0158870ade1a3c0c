-- How far each Claude Code transcript file has been read by the `hook`
-- command (and later the transcript follower): the byte offset just past the
-- last complete line read, so that the next read starts there.
CREATE TABLE IF NOT EXISTS transcript_offsets (
    path       TEXT PRIMARY KEY NOT NULL,
    offset     INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
