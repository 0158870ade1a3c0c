-- The team's store in PostgreSQL, filled by `mpm-aggregate push` from many
-- machines: the tables of the local SQLite store (README, "The database"),
-- with the same column names and text timestamps (ISO-8601 UTC, they sort as
-- text), JSON columns as json, and a host column. Rows are keyed by what they
-- are, not by a local row id, so that two machines pushing the same imported
-- file make one copy: sessions by session_id, events by their identity within
-- the session (else their content hash), delegations by their sub-agent id
-- (else the Task call, else their order in the session). Forward-only.

CREATE TABLE sessions (
    session_id        TEXT PRIMARY KEY,
    host_id           TEXT NOT NULL,            -- the machine that pushed it first
    pushed_by         TEXT NOT NULL,            -- the machine that pushed it last
    pushed_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    start_time        TEXT NOT NULL,
    end_time          TEXT,
    last_event_time   TEXT NOT NULL,
    status            TEXT NOT NULL,
    working_directory TEXT,
    git_branch        TEXT,
    launch_method     TEXT,
    claude_pid        BIGINT,
    initial_prompt    TEXT,
    final_response    TEXT,
    event_count       BIGINT NOT NULL,
    metadata          JSON NOT NULL,
    stored_at         TEXT,
    claude_version    TEXT,
    sources           JSON NOT NULL,
    id_aware          BIGINT NOT NULL
);
CREATE INDEX sessions_by_start ON sessions(start_time);
CREATE INDEX sessions_by_host ON sessions(host_id, start_time);

CREATE TABLE events (
    event_key      TEXT PRIMARY KEY,            -- i:<hash of session id and identity> or d:<dedup_key hex>
    host_id        TEXT NOT NULL,               -- the machine that pushed it first
    local_id       BIGINT NOT NULL,             -- its events.id there
    session_id     TEXT,
    timestamp      TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    category       TEXT NOT NULL,
    tool_name      TEXT,
    socket_event   TEXT NOT NULL,
    raw_type       TEXT,
    subtype        TEXT,
    source         TEXT,
    correlation_id TEXT,
    data           JSON NOT NULL,
    envelope       JSON,
    received_at    TEXT NOT NULL,
    dedup_key      BYTEA NOT NULL,
    identity       TEXT,
    origin         TEXT,
    agent_id       TEXT
);
CREATE INDEX events_by_session ON events(session_id, timestamp);
CREATE INDEX events_by_type ON events(event_type, tool_name);

CREATE TABLE delegations (
    session_id       TEXT NOT NULL,
    delegation_key   TEXT NOT NULL,             -- agent:<agent_id>, call:<start_ref> or n:<order in the session>
    host_id          TEXT NOT NULL,
    local_id         BIGINT NOT NULL,
    agent_type       TEXT NOT NULL,
    instructions     TEXT,
    description      TEXT,
    start_time       TEXT NOT NULL,
    end_time         TEXT,
    success          BIGINT,
    error            TEXT,
    event_count      BIGINT NOT NULL,
    tool_operations  JSON NOT NULL,
    files_modified   JSON NOT NULL,
    response_preview TEXT,
    start_ref        TEXT,
    agent_id         TEXT,
    parent_agent_id  TEXT,
    background       BIGINT NOT NULL,
    call_failed      BIGINT NOT NULL,
    stop_failed      BIGINT NOT NULL,
    tool_calls       BIGINT NOT NULL,
    tool_failures    BIGINT NOT NULL,
    api_calls        BIGINT NOT NULL,
    tokens           JSON,
    model            TEXT,
    cost_usd         DOUBLE PRECISION,
    PRIMARY KEY (session_id, delegation_key)
);

CREATE TABLE metrics (
    session_id             TEXT PRIMARY KEY,
    host_id                TEXT NOT NULL,
    total_events           BIGINT NOT NULL,
    session_duration_ms    BIGINT NOT NULL,
    event_breakdown        JSON NOT NULL,
    agents_used            JSON NOT NULL,
    tools_used             JSON NOT NULL,
    files_modified         JSON NOT NULL,
    total_delegations      BIGINT NOT NULL,
    successful_delegations BIGINT NOT NULL,
    failed_delegations     BIGINT NOT NULL,
    prompts                BIGINT NOT NULL,
    tool_calls             BIGINT NOT NULL,
    tool_failures          BIGINT NOT NULL,
    api_calls              BIGINT NOT NULL,
    tokens                 JSON,
    tokens_by_model        JSON,
    models                 JSON NOT NULL,
    cost_usd               DOUBLE PRECISION,
    claude_code            JSON
);
