//! The session projection's state in SQL: loaded on a cache miss, written back
//! once per batch. The rules themselves are in `core::session`; this module
//! only moves their state between memory and rows.
//!
//! The writer holds a small cache of the sessions touched recently (their row,
//! their metrics, their running and identified delegations: bounded state, no
//! event lists). A busy session costs one UPDATE per batch rather than one per
//! event. The cache can be dropped at any time (and is, when another process
//! wrote the database: see `writer.rs`), since everything in it is in SQL.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::core::delegation::DelegationState;
use crate::core::event::{ClaudeCodeAccount, NormalizedEvent, Tokens};
use crate::core::pricing::PricingTable;
use crate::core::session::{Metrics, SessionState};
use crate::core::time::{format_timestamp, parse_stored};

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn json_or_default<T: serde::de::DeserializeOwned + Default>(text: Option<String>) -> T {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn ts(text: &str) -> DateTime<Utc> {
    parse_stored(text).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Reads a session's state back from SQL.
pub fn load(conn: &Connection, session_id: &str) -> rusqlite::Result<Option<SessionState>> {
    let row = conn
        .prepare_cached(
            "SELECT s.start_time, s.end_time, s.last_event_time, s.status, s.working_directory, s.git_branch,
                    s.launch_method, s.claude_pid, s.initial_prompt, s.final_response, s.event_count,
                    s.file_path, s.completed_seq, s.metadata,
                    m.event_breakdown, m.agents_used, m.tools_used, m.files_modified,
                    m.total_delegations, m.successful_delegations, m.failed_delegations,
                    s.claude_version, s.sources, s.id_aware,
                    m.prompts, m.tool_calls, m.tool_failures, m.api_calls, m.tokens, m.tokens_by_model,
                    m.models, m.claude_code
             FROM sessions s LEFT JOIN metrics m USING (session_id) WHERE s.session_id = ?1",
        )?
        .query_row([session_id], |r| {
            let claude_code: Option<ClaudeCodeAccount> = r
                .get::<_, Option<String>>(31)?
                .and_then(|t| serde_json::from_str(&t).ok());
            Ok(SessionState {
                start_time: ts(&r.get::<_, String>(0)?),
                end_time: r.get::<_, Option<String>>(1)?.map(|s| ts(&s)),
                last_event_time: ts(&r.get::<_, String>(2)?),
                completed: r.get::<_, String>(3)? == "completed",
                working_directory: r.get(4)?,
                git_branch: r.get(5)?,
                launch_method: r.get(6)?,
                claude_pid: r.get(7)?,
                initial_prompt: r.get(8)?,
                final_response: r.get(9)?,
                event_count: r.get(10)?,
                file_path: r.get(11)?,
                completed_seq: r.get(12)?,
                metadata: r.get(13)?,
                claude_version: r.get(21)?,
                sources: json_list(&r.get::<_, String>(22)?),
                ids_seen: r.get(23)?,
                ignore_unknown_times: false,
                metrics: Metrics {
                    breakdown: json_or_default(r.get(14)?),
                    agents_used: json_list(&r.get::<_, Option<String>>(15)?.unwrap_or_default()),
                    tools_used: json_list(&r.get::<_, Option<String>>(16)?.unwrap_or_default()),
                    files_modified: json_list(&r.get::<_, Option<String>>(17)?.unwrap_or_default()),
                    total_delegations: r.get::<_, Option<i64>>(18)?.unwrap_or(0),
                    successful_delegations: r.get::<_, Option<i64>>(19)?.unwrap_or(0),
                    failed_delegations: r.get::<_, Option<i64>>(20)?.unwrap_or(0),
                    prompts: r.get::<_, Option<i64>>(24)?.unwrap_or(0),
                    tool_calls: r.get::<_, Option<i64>>(25)?.unwrap_or(0),
                    tool_failures: r.get::<_, Option<i64>>(26)?.unwrap_or(0),
                    api_calls: r.get::<_, Option<i64>>(27)?.unwrap_or(0),
                    tokens: json_or_default(r.get(28)?),
                    tokens_by_model: json_or_default(r.get(29)?),
                    models: json_list(&r.get::<_, Option<String>>(30)?.unwrap_or_default()),
                    claude_code,
                },
                delegations: Default::default(),
                dirty: false,
                touched_batch: 0,
            })
        })
        .optional()?;
    let Some(mut state) = row else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, agent_type, instructions, description, start_time, end_time, success, error, event_count,
                tool_operations, files_modified, response_preview, start_ref, halves,
                agent_id, parent_agent_id, background, call_failed, stop_failed, tool_calls, tool_failures,
                api_calls, tokens, model
         FROM delegations WHERE session_id = ?1 AND (end_time IS NULL OR agent_id IS NOT NULL OR id IN
              (SELECT id FROM delegations WHERE session_id = ?1 AND end_time IS NOT NULL ORDER BY end_time DESC, id DESC LIMIT ?2))
         ORDER BY start_time, id",
    )?;
    state.delegations = stmt
        .query_map(
            params![session_id, crate::core::session::RECENTLY_ENDED_KEPT as i64],
            |r| {
                Ok(DelegationState {
                    id: r.get(0)?,
                    agent_type: r.get(1)?,
                    instructions: r.get(2)?,
                    description: r.get(3)?,
                    start_time: ts(&r.get::<_, String>(4)?),
                    end_time: r.get::<_, Option<String>>(5)?.map(|s| ts(&s)),
                    success: r.get(6)?,
                    error: r.get(7)?,
                    event_count: r.get(8)?,
                    tools: json_list(&r.get::<_, String>(9)?),
                    files: json_list(&r.get::<_, String>(10)?),
                    response_preview: r.get(11)?,
                    start_ref: r.get(12)?,
                    halves: r.get(13)?,
                    agent_id: r.get(14)?,
                    parent_agent_id: r.get(15)?,
                    background: r.get(16)?,
                    call_failed: r.get(17)?,
                    stop_failed: r.get(18)?,
                    tool_calls: r.get(19)?,
                    tool_failures: r.get(20)?,
                    api_calls: r.get(21)?,
                    tokens: json_or_default::<Tokens>(r.get(22)?),
                    model: r.get(23)?,
                    dirty: false,
                })
            },
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(state))
}

/// Inserts a delegation row and returns its id (the rest is written at flush).
pub fn insert_delegation(
    conn: &Connection,
    session_id: &str,
    event: &NormalizedEvent,
    half: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO delegations (session_id, agent_type, start_time, halves) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        session_id,
        event.facts.agent_type.as_deref().unwrap_or(crate::core::delegation::UNKNOWN_AGENT),
        event.timestamp_text(),
        half
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Cost of tokens by model from the pricing table; `None` when any model is unknown.
fn cost_of(
    pricing: &PricingTable,
    by_model: &std::collections::BTreeMap<String, Tokens>,
) -> Option<f64> {
    let mut total = 0.0;
    for (model, tokens) in by_model {
        total += pricing.cost_usd(model, tokens)?;
    }
    Some(total)
}

/// Writes a dirty session (row, metrics, changed delegations) back.
pub fn flush(
    conn: &Connection,
    pricing: &PricingTable,
    session_id: &str,
    state: &mut SessionState,
) -> rusqlite::Result<()> {
    if !state.dirty {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO sessions (session_id, start_time, end_time, last_event_time, status, working_directory, git_branch,
                               launch_method, claude_pid, initial_prompt, final_response, event_count, file_path,
                               completed_seq, metadata, claude_version, sources, id_aware, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT(session_id) DO UPDATE SET
            start_time = excluded.start_time, end_time = excluded.end_time, last_event_time = excluded.last_event_time,
            status = excluded.status, working_directory = excluded.working_directory, git_branch = excluded.git_branch,
            launch_method = excluded.launch_method, claude_pid = excluded.claude_pid,
            initial_prompt = excluded.initial_prompt, final_response = excluded.final_response,
            event_count = excluded.event_count, file_path = excluded.file_path,
            completed_seq = excluded.completed_seq, metadata = excluded.metadata,
            claude_version = excluded.claude_version, sources = excluded.sources, id_aware = excluded.id_aware,
            stored_at = coalesce(sessions.stored_at, excluded.stored_at)",
    )?
    .execute(params![
        session_id,
        format_timestamp(&state.start_time),
        state.end_time.as_ref().map(format_timestamp),
        format_timestamp(&state.last_event_time),
        if state.completed { "completed" } else { "active" },
        state.working_directory,
        state.git_branch,
        state.launch_method,
        state.claude_pid,
        state.initial_prompt,
        state.final_response,
        state.event_count,
        state.file_path,
        state.completed_seq,
        state.metadata,
        state.claude_version,
        to_json(&state.sources),
        state.ids_seen,
        format_timestamp(&Utc::now()),
    ])?;
    let m = &state.metrics;
    let has_tokens = m.api_calls > 0;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO metrics (session_id, total_events, session_duration_ms, event_breakdown, agents_used,
                tools_used, files_modified, total_delegations, successful_delegations, failed_delegations,
                prompts, tool_calls, tool_failures, api_calls, tokens, tokens_by_model, models, cost_usd, claude_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        session_id,
        state.event_count,
        state.duration_ms(),
        to_json(&m.breakdown),
        to_json(&m.agents_used),
        to_json(&m.tools_used),
        to_json(&m.files_modified),
        m.total_delegations,
        m.successful_delegations,
        m.failed_delegations,
        m.prompts,
        m.tool_calls,
        m.tool_failures,
        m.api_calls,
        has_tokens.then(|| to_json(&m.tokens)),
        has_tokens.then(|| to_json(&m.tokens_by_model)),
        to_json(&m.models),
        if has_tokens { cost_of(pricing, &m.tokens_by_model) } else { None },
        m.claude_code.as_ref().map(to_json),
    ])?;
    let mut update = conn.prepare_cached(
        "UPDATE delegations SET agent_type = ?2, instructions = ?3, description = ?4, start_time = ?5, end_time = ?6,
                success = ?7, error = ?8, event_count = ?9, tool_operations = ?10, files_modified = ?11,
                response_preview = ?12, start_ref = ?13, halves = ?14, agent_id = ?15, parent_agent_id = ?16,
                background = ?17, call_failed = ?18, stop_failed = ?19, tool_calls = ?20, tool_failures = ?21,
                api_calls = ?22, tokens = ?23, model = ?24, cost_usd = ?25
         WHERE id = ?1",
    )?;
    for slot in state.delegations.dirty() {
        let d = &state.delegations[slot];
        let cost = d
            .model
            .as_deref()
            .filter(|_| d.api_calls > 0)
            .and_then(|model| pricing.cost_usd(model, &d.tokens));
        update.execute(params![
            d.id,
            d.agent_type,
            d.instructions,
            d.description,
            format_timestamp(&d.start_time),
            d.end_time.as_ref().map(format_timestamp),
            d.success,
            d.error,
            d.event_count,
            to_json(&d.tools),
            to_json(&d.files),
            d.response_preview,
            d.start_ref,
            d.halves,
            d.agent_id,
            d.parent_agent_id,
            d.background,
            d.call_failed,
            d.stop_failed,
            d.tool_calls,
            d.tool_failures,
            d.api_calls,
            (d.api_calls > 0).then(|| to_json(&d.tokens)),
            d.model,
            cost,
        ])?;
        state.delegations.mark_written(slot);
    }
    state.dirty = false;
    Ok(())
}

/// The cache of session states held by the writer.
pub struct SessionCache {
    pub sessions: HashMap<String, SessionState>,
    /// Prices the costs written at flush.
    pricing: PricingTable,
}

/// Most sessions kept in the cache between batches.
pub const CACHE_LIMIT: usize = 512;

impl SessionCache {
    pub fn new(pricing: PricingTable) -> SessionCache {
        SessionCache {
            sessions: HashMap::new(),
            pricing,
        }
    }

    /// Gets the state of `session_id`, loading it from SQL on a miss.
    pub fn get_or_load(
        &mut self,
        conn: &Connection,
        session_id: &str,
    ) -> rusqlite::Result<Option<&mut SessionState>> {
        if !self.sessions.contains_key(session_id) {
            match load(conn, session_id)? {
                Some(state) => {
                    self.sessions.insert(session_id.to_string(), state);
                }
                None => return Ok(None),
            }
        }
        Ok(self.sessions.get_mut(session_id))
    }

    /// Writes every dirty session back.
    pub fn flush_all(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        for (id, state) in self.sessions.iter_mut() {
            flush(conn, &self.pricing, id, state)?;
        }
        Ok(())
    }

    /// Keeps the cache bounded: drops clean sessions not touched in `batch`.
    pub fn evict(&mut self, batch: u64) {
        if self.sessions.len() > CACHE_LIMIT {
            self.sessions
                .retain(|_, s| s.dirty || s.touched_batch == batch);
        }
    }
}
