-- Full-text search over what people read in a session (`search`), and an index for `stats --by tool`.
-- Forward-only: a virtual table, triggers and an index are added; nothing is changed.

-- The searchable text of each event (rowid = events.id), as src/core/searchable.rs makes it (the
-- SQL function `mpm_search_text(event_type, data)` that every connection opened for writing
-- registers, for the backfill below): one definition for the backfill and the writer. The index
-- keeps its own copy of that text (not the whole JSON): snippets are cut from it and an entry is
-- deleted by its rowid alone.
CREATE VIRTUAL TABLE event_search USING fts5(body, tokenize = 'unicode61 remove_diacritics 2');

-- Kept by the writer, in the transaction that writes the event (src/store/search_index.rs: an
-- event stored, or its data changed by a merged observation), not by triggers on writes: such a
-- trigger makes every write of an event a statement transaction with its own journal, which
-- doubled the writer's cost per event. A deletion (prune, or any tool) takes its entry away here.
CREATE TRIGGER event_search_delete AFTER DELETE ON events BEGIN
    DELETE FROM event_search WHERE rowid = old.id;
END;

-- The events already stored (a database made before this version).
INSERT INTO event_search (rowid, body)
    SELECT id, t FROM (SELECT id, mpm_search_text(event_type, data) AS t FROM events) WHERE t <> '';

-- `stats --by tool`: tool calls and failures per tool, read from this index alone.
CREATE INDEX events_tool_calls ON events(tool_name, event_type, session_id)
    WHERE event_type IN ('PreToolUse', 'PostToolUseFailure');
