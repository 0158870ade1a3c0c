-- Claude Code 2.1 as a source (SPEC section 7) and storage-time ages (section 6).
-- Forward-only: columns are added, never changed or dropped.

-- Events: what makes two observations one happening, and who observed it.
ALTER TABLE events ADD COLUMN identity TEXT;      -- pre:/end:<tool_use_id>, start:/stop:<agent_id>, prompt:/turn:<prompt_id>, api:<message.id>
ALTER TABLE events ADD COLUMN origin TEXT;        -- sources that observed it, comma-separated: monitor, hook, transcript, import
ALTER TABLE events ADD COLUMN agent_id TEXT;      -- the sub-agent it belongs to (Claude Code's agent_id)
CREATE UNIQUE INDEX events_by_identity ON events(session_id, identity) WHERE identity IS NOT NULL;

-- Sessions: when the data was stored here (the age prune and auto_cleanup_days use), and what told us.
ALTER TABLE sessions ADD COLUMN stored_at TEXT;   -- first time anything of it was stored here (NULL before V2: the first event's received_at stands in)
ALTER TABLE sessions ADD COLUMN claude_version TEXT;
ALTER TABLE sessions ADD COLUMN sources TEXT NOT NULL DEFAULT '[]'; -- JSON array, first first
ALTER TABLE sessions ADD COLUMN id_aware INTEGER NOT NULL DEFAULT 0; -- Claude Code ids seen: 1 tool_use_id/prompt_id, 2 agent_id; 3 = attribution by agent_id
CREATE INDEX sessions_by_stored ON sessions(stored_at);

-- Metrics: prompts, tool calls, API calls, tokens and cost.
ALTER TABLE metrics ADD COLUMN prompts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN tool_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN api_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN tokens TEXT;           -- JSON {"input","output","cache_creation","cache_read"}
ALTER TABLE metrics ADD COLUMN tokens_by_model TEXT;  -- JSON {model: tokens}
ALTER TABLE metrics ADD COLUMN models TEXT NOT NULL DEFAULT '[]'; -- JSON array, first use first
ALTER TABLE metrics ADD COLUMN cost_usd REAL;         -- from the pricing table; NULL when a model is unknown
ALTER TABLE metrics ADD COLUMN claude_code TEXT;      -- JSON: Claude Code's own account (last cost-state)

-- Delegations: the sub-agent's identity and its own figures.
ALTER TABLE delegations ADD COLUMN agent_id TEXT;
ALTER TABLE delegations ADD COLUMN parent_agent_id TEXT;
ALTER TABLE delegations ADD COLUMN background INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN call_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN stop_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN tool_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN api_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE delegations ADD COLUMN tokens TEXT;
ALTER TABLE delegations ADD COLUMN model TEXT;
ALTER TABLE delegations ADD COLUMN cost_usd REAL;
CREATE INDEX delegations_by_agent ON delegations(session_id, agent_id) WHERE agent_id IS NOT NULL;
