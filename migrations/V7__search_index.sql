-- Full-text search over what people read in a session (`search`), and an index for `stats --by tool`.
-- Forward-only: a view, a virtual table, triggers and an index are added; nothing is changed.

-- The searchable text of an event, and only that (not its whole JSON): prompts, responses and
-- messages, a tool call's input (on its PreToolUse) and its output (on its PostToolUse), errors,
-- and file paths. JSON keys are left out (only string values are taken), and so are the copies
-- a source repeats elsewhere (PostToolUse's tool_input, PostToolBatch's calls). The first 64 KiB.
-- This one definition serves the index kept as events arrive (the triggers below) and the
-- backfill of a database made before this version (at the end), and snippets are
-- cut from it at query time.
CREATE VIEW event_search_text (id, body) AS
SELECT id, substr(
    coalesce(json_extract(data, '$.prompt') || char(10), json_extract(data, '$.prompt_text') || char(10), '')
    || coalesce(json_extract(data, '$.last_assistant_message') || char(10), json_extract(data, '$.final_response') || char(10), '')
    || coalesce((SELECT group_concat(value, char(10)) || char(10) FROM json_tree(data, '$.response') WHERE type = 'text'), '')
    || coalesce(json_extract(data, '$.delta') || char(10), '')
    || coalesce(json_extract(data, '$.message') || char(10), '')
    || coalesce(json_extract(data, '$.error') || char(10), json_extract(data, '$.error_message') || char(10), '')
    || coalesce(json_extract(data, '$.file_path') || char(10), '')
    || CASE event_type
         WHEN 'PreToolUse' THEN coalesce(
             (SELECT group_concat(value, char(10)) FROM json_tree(data, '$.tool_input') WHERE type = 'text'),
             (SELECT group_concat(value, char(10)) FROM json_tree(data, '$.tool_parameters')
               WHERE type = 'text' AND key IN ('file_path', 'notebook_path', 'command', 'pattern', 'path', 'url',
                                               'query', 'prompt', 'description', 'subagent_type')),
             '')
         WHEN 'PostToolUse' THEN coalesce(
             (SELECT group_concat(value, char(10)) FROM json_tree(data, '$.tool_response')
               WHERE type = 'text' AND key NOT IN ('type', 'status', 'agentId', 'tool_use_id')),
             (SELECT group_concat(value, char(10)) FROM json_tree(data, '$.tool_output') WHERE type = 'text'),
             json_extract(data, '$.output'),
             json_extract(data, '$.result'),
             '')
         ELSE '' END,
    1, 65536)
FROM events
WHERE event_type IN ('UserPromptSubmit', 'PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'Stop', 'StopFailure',
                     'SubagentStart', 'SubagentStop', 'SessionEnd', 'MessageDisplay', 'Notification',
                     'InstructionsLoaded', 'AssistantResponse', 'assistant_response');

-- External content: the index holds the terms only; the text is the view's (events.id is the rowid).
-- An entry leaves the index by its exact text, read from the view: a later migration that changes
-- the view must empty the index first ('delete-all') and fill it again from the new view.
CREATE VIRTUAL TABLE event_search USING fts5(
    body,
    content = 'event_search_text',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Kept in the transaction that writes the event, by whichever process writes it (the recorder,
-- a hook, an import, a prune, or a user's own SQLite tool). A merged observation changes an
-- event's data: its old text leaves the index before the change (the view still shows it then),
-- and its new text enters after.
CREATE TRIGGER event_search_insert AFTER INSERT ON events BEGIN
    INSERT INTO event_search (rowid, body) SELECT id, body FROM event_search_text WHERE id = new.id;
END;
CREATE TRIGGER event_search_before_update BEFORE UPDATE OF data, event_type ON events BEGIN
    INSERT INTO event_search (event_search, rowid, body)
        SELECT 'delete', id, body FROM event_search_text WHERE id = old.id;
END;
CREATE TRIGGER event_search_after_update AFTER UPDATE OF data, event_type ON events BEGIN
    INSERT INTO event_search (rowid, body) SELECT id, body FROM event_search_text WHERE id = new.id;
END;
CREATE TRIGGER event_search_delete BEFORE DELETE ON events BEGIN
    INSERT INTO event_search (event_search, rowid, body)
        SELECT 'delete', id, body FROM event_search_text WHERE id = old.id;
END;

-- The events already stored (a database made before this version).
INSERT INTO event_search (rowid, body) SELECT id, body FROM event_search_text;

-- `stats --by tool`: tool calls and failures per tool, read from this index alone.
CREATE INDEX events_tool_calls ON events(tool_name, event_type, session_id)
    WHERE event_type IN ('PreToolUse', 'PostToolUseFailure');
