-- One happening, one event, for sources without ids (SPEC section 7): claude-mpm's
-- full handler forwards tool calls, prompts and stops without tool_use_id or
-- prompt_id. Such an observation is matched by content to an observation of
-- the same happening that carries the ids. Forward-only: columns and tables are added.

-- What the event is by content, while it waits for its counterpart:
-- pre:<tool>[:<input hash>], end:<tool>, fail:<tool>, prompt:<text hash>,
-- stop:<row id of the turn's prompt>. NULL once an observation with ids and
-- one without have met in this row (or for events that never match by content).
ALTER TABLE events ADD COLUMN match_key TEXT;
-- Waiting observations without ids, and with ids, by session and key, oldest first.
CREATE INDEX events_unidentified_by_match ON events(session_id, match_key, timestamp)
    WHERE match_key IS NOT NULL AND identity IS NULL;
CREATE INDEX events_identified_by_match ON events(session_id, match_key, timestamp)
    WHERE match_key IS NOT NULL AND identity IS NOT NULL;
-- The prompts of a session by time (the turn a Stop without prompt_id ends).
CREATE INDEX events_prompts_by_time ON events(session_id, timestamp)
    WHERE event_type = 'UserPromptSubmit';

-- Duplicate keys of observations merged into an event stored under another key:
-- a second delivery of one of them (a history replay, an import again) is a
-- duplicate, not a new event. A key counts only while its event exists in the
-- same session (a pruned session's keys are ignored).
CREATE TABLE merged_observations (
    dedup_key  BLOB PRIMARY KEY,
    session_id TEXT NOT NULL,
    event_id   INTEGER NOT NULL
) WITHOUT ROWID;
