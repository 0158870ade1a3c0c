-- mpm-aggregate schema, version 1. Later versions only add to it.
-- Timestamps are ISO-8601 UTC text with milliseconds and 'Z' (they sort as text).
-- JSON columns hold valid JSON text, so json_extract() and json_each() work on them.

-- One row per Claude session, created by its first event.
CREATE TABLE sessions (
    session_id        TEXT PRIMARY KEY,
    start_time        TEXT NOT NULL,            -- timestamp of the first event
    end_time          TEXT,                     -- set when finalized; NULL while active
    last_event_time   TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed')),
    working_directory TEXT,
    git_branch        TEXT,
    launch_method     TEXT,
    claude_pid        INTEGER,
    initial_prompt    TEXT,                     -- first prompt of the session
    final_response    TEXT,                     -- last response seen on Stop
    event_count       INTEGER NOT NULL DEFAULT 0,
    file_path         TEXT,                     -- session file written at the last finalize
    completed_seq     INTEGER,                  -- increases at each finalize (get_completed_sessions)
    metadata          TEXT NOT NULL DEFAULT '{}' -- JSON object: extra fields (imported documents)
);
CREATE INDEX sessions_by_start ON sessions(start_time);
CREATE INDEX sessions_by_status ON sessions(status, last_event_time);
CREATE INDEX sessions_by_completed ON sessions(completed_seq) WHERE completed_seq IS NOT NULL;
CREATE INDEX sessions_by_file ON sessions(file_path) WHERE file_path IS NOT NULL;

-- Every event received, in arrival order (id). Control traffic is not stored.
CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    session_id     TEXT,                        -- NULL: the event names no session
    timestamp      TEXT NOT NULL,               -- the event's own time (arrival time if it has none)
    event_type     TEXT NOT NULL,               -- canonical: PreToolUse, Stop, hook_execution, ...
    category       TEXT NOT NULL,               -- prompt|delegation|tool|file|todo|response|memory|meta
    tool_name      TEXT,
    socket_event   TEXT NOT NULL,               -- Socket.IO event name it arrived under
    raw_type       TEXT,                        -- payload "type"
    subtype        TEXT,                        -- payload "subtype"
    source         TEXT,                        -- payload "source"
    correlation_id TEXT,
    delegation_id  INTEGER,                     -- the delegation running when it arrived
    data           TEXT NOT NULL,               -- JSON: the payload's data object
    envelope       TEXT,                        -- JSON: the payload's other top-level fields
    received_at    TEXT NOT NULL,
    dedup_key      BLOB NOT NULL                -- content hash; the same event is stored once
);
CREATE UNIQUE INDEX events_by_dedup ON events(dedup_key);
CREATE INDEX events_by_session ON events(session_id, id);
CREATE INDEX events_by_delegation ON events(delegation_id) WHERE delegation_id IS NOT NULL;

-- Delegations to sub-agents (Task/Agent tool, SubagentStart/SubagentStop).
CREATE TABLE delegations (
    id               INTEGER PRIMARY KEY,
    session_id       TEXT NOT NULL,
    agent_type       TEXT NOT NULL,
    instructions     TEXT,
    description      TEXT,
    start_time       TEXT NOT NULL,
    end_time         TEXT,                      -- NULL while running
    success          INTEGER,                   -- 1/0 once ended; NULL while running
    error            TEXT,
    event_count      INTEGER NOT NULL DEFAULT 0,
    tool_operations  TEXT NOT NULL DEFAULT '[]', -- JSON array: tool names used, first use first
    files_modified   TEXT NOT NULL DEFAULT '[]', -- JSON array: paths written
    response_preview TEXT,                      -- first 200 characters of the response
    start_ref        TEXT,                      -- correlation or tool-use id of the Task call
    halves           INTEGER NOT NULL DEFAULT 0 -- bit set of transition events seen (pairing)
);
CREATE INDEX delegations_by_session ON delegations(session_id, start_time);
CREATE INDEX delegations_running ON delegations(session_id) WHERE end_time IS NULL;

-- Per-session metrics, kept as events arrive.
CREATE TABLE metrics (
    session_id             TEXT PRIMARY KEY,
    total_events           INTEGER NOT NULL DEFAULT 0,
    session_duration_ms    INTEGER NOT NULL DEFAULT 0,
    event_breakdown        TEXT NOT NULL DEFAULT '{}',  -- JSON object: category -> count
    agents_used            TEXT NOT NULL DEFAULT '[]',  -- JSON array
    tools_used             TEXT NOT NULL DEFAULT '[]',  -- JSON array
    files_modified         TEXT NOT NULL DEFAULT '[]',  -- JSON array
    total_delegations      INTEGER NOT NULL DEFAULT 0,
    successful_delegations INTEGER NOT NULL DEFAULT 0,
    failed_delegations     INTEGER NOT NULL DEFAULT 0
);

-- Input that could not be stored as an event, and why.
CREATE TABLE rejected_events (
    id            INTEGER PRIMARY KEY,
    received_at   TEXT NOT NULL,
    socket_event  TEXT,
    reason        TEXT NOT NULL,
    payload       TEXT NOT NULL,                -- the input as text, cut to 64 KiB
    payload_bytes INTEGER NOT NULL
);
CREATE INDEX rejected_by_time ON rejected_events(received_at);

-- Stored events per canonical type (kept by the writer; status reads it).
CREATE TABLE event_type_counts (
    event_type TEXT PRIMARY KEY,
    count      INTEGER NOT NULL
) WITHOUT ROWID;

-- The recorder's own state, one row, refreshed every few seconds.
CREATE TABLE recorder_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    pid                INTEGER,
    state              TEXT NOT NULL,           -- starting|connected|disconnected|stopped
    connected          INTEGER NOT NULL DEFAULT 0,
    host               TEXT,
    port               INTEGER,
    activity_directory TEXT,
    started_at         TEXT,
    heartbeat_at       TEXT,
    stopped_at         TEXT,
    events_received    INTEGER NOT NULL DEFAULT 0,
    events_stored      INTEGER NOT NULL DEFAULT 0,
    duplicates         INTEGER NOT NULL DEFAULT 0,
    rejected           INTEGER NOT NULL DEFAULT 0,
    control_events     INTEGER NOT NULL DEFAULT 0,
    filtered           INTEGER NOT NULL DEFAULT 0,
    last_event_time    TEXT,
    last_error         TEXT,
    connections        INTEGER NOT NULL DEFAULT 0
);
