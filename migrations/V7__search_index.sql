-- Full-text search over what people read in a session (`search`), and an index for `stats --by tool`.
-- Forward-only: a virtual table, triggers and an index are added; nothing is changed.

-- The searchable text of each event (rowid = events.id), as `mpm_search_text(event_type, data)`
-- gives it: a function of ours (src/core/searchable.rs) that every connection opened for writing
-- registers, so that the index kept as events arrive and the backfill below have one definition.
-- (A tool that writes events without it fails on these triggers: write through mpm-aggregate.)
-- The index keeps its own copy of that text (not the whole JSON): snippets are cut from it and an
-- entry is deleted by its rowid alone.
CREATE VIRTUAL TABLE event_search USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');

-- Kept in the transaction that writes the event, by whichever process writes it (the recorder, a
-- hook, an import, a prune). A merged observation changes an event's data: its text is replaced.
CREATE TRIGGER event_search_insert AFTER INSERT ON events BEGIN
    INSERT INTO event_search (rowid, body)
        SELECT new.id, t FROM (SELECT mpm_search_text(new.event_type, new.data) AS t) WHERE t <> '';
END;
CREATE TRIGGER event_search_update AFTER UPDATE OF data, event_type ON events BEGIN
    DELETE FROM event_search WHERE rowid = old.id;
    INSERT INTO event_search (rowid, body)
        SELECT new.id, t FROM (SELECT mpm_search_text(new.event_type, new.data) AS t) WHERE t <> '';
END;
CREATE TRIGGER event_search_delete AFTER DELETE ON events BEGIN
    DELETE FROM event_search WHERE rowid = old.id;
END;

-- The events already stored (a database made before this version).
INSERT INTO event_search (rowid, body)
    SELECT id, t FROM (SELECT id, mpm_search_text(event_type, data) AS t FROM events) WHERE t <> '';

-- `stats --by tool`: tool calls and failures per tool, read from this index alone.
CREATE INDEX events_tool_calls ON events(tool_name, event_type, session_id)
    WHERE event_type IN ('PreToolUse', 'PostToolUseFailure');
