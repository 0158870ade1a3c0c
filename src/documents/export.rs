//! Session documents generated from SQL and streamed to any writer: the
//! `full`, `summary` and `events` formats of SPEC section 5. Events go from the
//! row cursor straight to the output, so memory stays flat for any session size.

use std::io::Write;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

use crate::core::model::{AgentDelegation, AgentSession, SessionEvent, SessionMetrics};
use crate::core::time::parse_stored;
use crate::error::{AggregatorError, Result};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The whole session document, events included.
    Full,
    /// The document without events, with `delegations_summary`.
    Summary,
    /// The JSON array of events.
    Events,
    /// The self-contained HTML page of the session (`documents::html`).
    Html,
}

impl ExportFormat {
    /// The format's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Full => "full",
            ExportFormat::Summary => "summary",
            ExportFormat::Events => "events",
            ExportFormat::Html => "html",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = AggregatorError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "full" | "json" => Ok(ExportFormat::Full),
            "summary" => Ok(ExportFormat::Summary),
            "events" => Ok(ExportFormat::Events),
            "html" => Ok(ExportFormat::Html),
            _ => Err(AggregatorError::InvalidFormat(format!(
                "unknown export format '{s}' (expected full, summary, events or html)"
            ))),
        }
    }
}

fn sql_err(e: rusqlite::Error) -> AggregatorError {
    AggregatorError::query(e)
}

fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn json_value<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn count(n: Option<i64>) -> u64 {
    n.unwrap_or(0).max(0) as u64
}

/// Reads a session's row and metrics (no events, no delegations).
pub fn load_row(conn: &Connection, session_id: &str) -> Result<AgentSession> {
    let mut session = conn
        .prepare_cached(
            "SELECT start_time, end_time, working_directory, git_branch, launch_method, claude_pid, initial_prompt,
                    final_response, status, file_path, metadata, claude_version, sources
             FROM sessions WHERE session_id = ?1",
        )
        .map_err(sql_err)?
        .query_row([session_id], |r| {
            let mut s = AgentSession::new(session_id, parse_stored(&r.get::<_, String>(0)?).unwrap_or_default());
            s.end_time = r.get::<_, Option<String>>(1)?.and_then(|t| parse_stored(&t));
            s.working_directory = r.get(2)?;
            s.git_branch = r.get(3)?;
            s.launch_method = r.get(4)?;
            s.claude_pid = r.get(5)?;
            s.initial_prompt = r.get(6)?;
            s.final_response = r.get(7)?;
            let status: String = r.get(8)?;
            let file_path: Option<String> = r.get(9)?;
            let metadata: String = r.get(10)?;
            s.metadata = serde_json::from_str::<Map<String, Value>>(&metadata).unwrap_or_default();
            s.metadata.insert("status".into(), Value::from(status));
            s.metadata.insert("file_path".into(), file_path.map_or(Value::Null, Value::from));
            s.claude_version = r.get(11)?;
            s.sources = json_list(r.get(12)?);
            Ok(s)
        })
        .optional()
        .map_err(sql_err)?
        .ok_or_else(|| AggregatorError::SessionNotFound(session_id.to_string()))?;

    session.metrics = conn
        .prepare_cached(
            "SELECT total_events, session_duration_ms, event_breakdown, agents_used, tools_used, files_modified,
                    total_delegations, successful_delegations, failed_delegations,
                    prompts, tool_calls, tool_failures, api_calls, tokens, tokens_by_model, models, cost_usd, claude_code
             FROM metrics WHERE session_id = ?1",
        )
        .map_err(sql_err)?
        .query_row([session_id], |r| {
            Ok(SessionMetrics {
                total_events: r.get::<_, i64>(0)? as u64,
                session_duration_ms: r.get(1)?,
                event_breakdown: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                agents_used: json_list(r.get(3)?),
                tools_used: json_list(r.get(4)?),
                files_modified: json_list(r.get(5)?),
                total_delegations: r.get::<_, i64>(6)? as u64,
                successful_delegations: r.get::<_, i64>(7)? as u64,
                failed_delegations: r.get::<_, i64>(8)? as u64,
                prompts: count(r.get(9)?),
                tool_calls: count(r.get(10)?),
                tool_failures: count(r.get(11)?),
                api_calls: count(r.get(12)?),
                tokens: json_value(r.get(13)?),
                tokens_by_model: json_value(r.get(14)?).unwrap_or_default(),
                models: json_list(r.get(15)?),
                cost_usd: r.get(16)?,
                claude_code: json_value(r.get(17)?),
            })
        })
        .optional()
        .map_err(sql_err)?
        .unwrap_or_default();

    Ok(session)
}

/// Reads a session without its events: row, delegations and metrics.
pub fn load_header(conn: &Connection, session_id: &str) -> Result<AgentSession> {
    let mut session = load_row(conn, session_id)?;
    let mut delegations = Vec::new();
    for_each_delegation(conn, session_id, |d| {
        delegations.push(d);
        Ok(())
    })?;
    session.delegations = delegations;
    Ok(session)
}

/// Calls `each` for the session's delegations, oldest first, one row at a time.
pub fn for_each_delegation(
    conn: &Connection,
    session_id: &str,
    mut each: impl FnMut(AgentDelegation) -> std::io::Result<()>,
) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.agent_type, d.start_time, d.end_time, d.instructions, d.description, d.event_count,
                    d.tool_operations, d.files_modified, d.success, d.response_preview, d.error,
                    d.agent_id, d.start_ref, d.parent_agent_id, d.background, d.tool_calls, d.tool_failures,
                    d.api_calls, d.tokens, d.model, d.cost_usd,
                    d.start_ref LIKE 'toolu\\_%' ESCAPE '\\' OR EXISTS (SELECT 1 FROM events e
                        WHERE e.session_id = d.session_id AND e.identity = 'pre:' || d.start_ref)
             FROM delegations d WHERE d.session_id = ?1 ORDER BY d.start_time, d.id",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([session_id]).map_err(sql_err)?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(sql_err)? {
        let d = (|| {
            Ok::<_, rusqlite::Error>(AgentDelegation {
                agent_type: r.get(0)?,
                start_time: parse_stored(&r.get::<_, String>(1)?).unwrap_or_default(),
                end_time: r
                    .get::<_, Option<String>>(2)?
                    .and_then(|t| parse_stored(&t)),
                instructions: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                description: r.get(4)?,
                event_count: r.get::<_, i64>(5)? as u64,
                tool_operations: json_list(r.get(6)?),
                files_modified: json_list(r.get(7)?),
                success: r.get::<_, Option<bool>>(8)?.unwrap_or(false),
                response_preview: r.get(9)?,
                error: r.get(10)?,
                agent_id: r.get(11)?,
                // `start_ref` is the call's `tool_use_id`, or for id-less
                // sources a correlation id, which is no tool_use id.
                tool_use_id: r
                    .get::<_, Option<bool>>(21)?
                    .unwrap_or(false)
                    .then(|| r.get(12))
                    .transpose()?
                    .flatten(),
                parent_agent_id: r.get(13)?,
                background: r.get::<_, Option<bool>>(14)?.unwrap_or(false),
                tool_calls: count(r.get(15)?),
                tool_failures: count(r.get(16)?),
                api_calls: count(r.get(17)?),
                tokens: json_value(r.get(18)?),
                model: r.get(19)?,
                cost_usd: r.get(20)?,
            })
        })()
        .map_err(sql_err)?;
        each(d).map_err(|e| AggregatorError::io("<output>", e))?;
        n += 1;
    }
    Ok(n)
}

/// `delegations_summary` computed in SQL (no delegation is loaded).
pub fn delegations_summary(conn: &Connection, session_id: &str) -> Result<Value> {
    let (total, successful, running): (i64, i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(end_time IS NOT NULL AND success = 1), 0), coalesce(sum(end_time IS NULL), 0)
             FROM delegations WHERE session_id = ?1",
        )
        .map_err(sql_err)?
        .query_row([session_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sql_err)?;
    let mut by_agent = Map::new();
    let mut stmt = conn
        .prepare_cached("SELECT agent_type, count(*) FROM delegations WHERE session_id = ?1 GROUP BY agent_type")
        .map_err(sql_err)?;
    for row in stmt
        .query_map([session_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_err)?
    {
        let (agent, n) = row.map_err(sql_err)?;
        by_agent.insert(agent, Value::from(n));
    }
    Ok(serde_json::json!({
        "total": total,
        "successful": successful,
        "failed": total - successful - running,
        "running": running,
        "by_agent": by_agent,
    }))
}

/// Calls `each` for the session's events in arrival order, at most `limit`
/// (all when `None`), starting after the first `skip`.
pub fn for_each_event(
    conn: &Connection,
    session_id: &str,
    limit: Option<u64>,
    mut each: impl FnMut(EventRow<'_>) -> std::io::Result<()>,
) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT timestamp, event_type, category, data, correlation_id FROM events
             WHERE session_id = ?1 ORDER BY id LIMIT ?2",
        )
        .map_err(sql_err)?;
    let limit = limit.map_or(-1, |l| l as i64);
    let mut rows = stmt
        .query(rusqlite::params![session_id, limit])
        .map_err(sql_err)?;
    let mut n = 0;
    while let Some(r) = rows.next().map_err(sql_err)? {
        let get = |i| {
            r.get_ref(i)
                .ok()
                .and_then(|v| v.as_str_or_null().ok().flatten())
                .unwrap_or("")
        };
        let row = EventRow {
            timestamp: get(0),
            event_type: get(1),
            category: get(2),
            data: get(3),
            session_id,
            correlation_id: r
                .get_ref(4)
                .ok()
                .and_then(|v| v.as_str_or_null().ok().flatten()),
        };
        each(row).map_err(|e| AggregatorError::io("<output>", e))?;
        n += 1;
    }
    Ok(n)
}

/// One event row, borrowed from the cursor.
pub struct EventRow<'a> {
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub category: &'a str,
    /// JSON text as stored.
    pub data: &'a str,
    pub session_id: &'a str,
    pub correlation_id: Option<&'a str>,
}

impl EventRow<'_> {
    /// Writes the event as one compact JSON object (the `SessionEvent` shape).
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(b"{\"timestamp\":")?;
        serde_json::to_writer(&mut *out, self.timestamp)?;
        out.write_all(b",\"event_type\":")?;
        serde_json::to_writer(&mut *out, self.event_type)?;
        out.write_all(b",\"category\":")?;
        serde_json::to_writer(&mut *out, self.category)?;
        out.write_all(b",\"data\":")?;
        out.write_all(if self.data.is_empty() {
            b"null"
        } else {
            self.data.as_bytes()
        })?;
        out.write_all(b",\"session_id\":")?;
        serde_json::to_writer(&mut *out, self.session_id)?;
        out.write_all(b",\"correlation_id\":")?;
        serde_json::to_writer(&mut *out, &self.correlation_id)?;
        out.write_all(b"}")
    }

    /// The event as a model value.
    pub fn to_event(&self) -> SessionEvent {
        SessionEvent {
            timestamp: self.timestamp.to_string(),
            event_type: self.event_type.to_string(),
            category: self.category.parse().unwrap_or(crate::core::Category::Meta),
            data: serde_json::from_str(self.data).unwrap_or(Value::Null),
            session_id: Some(self.session_id.to_string()),
            correlation_id: self.correlation_id.map(str::to_string),
        }
    }
}

/// Reads a whole session, events included (for the library API).
pub fn load_session(conn: &Connection, session_id: &str) -> Result<AgentSession> {
    let mut session = load_header(conn, session_id)?;
    let mut events = Vec::new();
    for_each_event(conn, session_id, None, |row| {
        events.push(row.to_event());
        Ok(())
    })?;
    session.events = events;
    Ok(session)
}

fn write_key(out: &mut dyn Write, key: &str, value: &Value, last: bool) -> std::io::Result<()> {
    write!(out, "  \"{key}\": ")?;
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(if last { b"\n" } else { b",\n" })
}

/// Streams the session in `format` to `out`, an HTML page priced with the
/// built-in table. Returns the number of events written.
pub fn write_export(
    conn: &Connection,
    session_id: &str,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64> {
    let pricing = crate::core::pricing::PricingTable::builtin();
    write_export_priced(conn, session_id, format, pricing, out)
}

/// [`write_export`], the HTML page pricing each API call with `pricing` (the
/// configured table, as the store priced the session). The one place an
/// export picks its writer.
pub fn write_export_priced(
    conn: &Connection,
    session_id: &str,
    format: ExportFormat,
    pricing: &crate::core::pricing::PricingTable,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |e: std::io::Error| AggregatorError::io("<output>", e);
    if format == ExportFormat::Html {
        return super::html::write_page(conn, session_id, pricing, out);
    }
    if format == ExportFormat::Events {
        out.write_all(b"[").map_err(io)?;
        let mut first = true;
        let n = for_each_event(conn, session_id, None, |row| {
            out.write_all(if first { b"\n  " } else { b",\n  " })?;
            first = false;
            row.write_json(out)
        })?;
        out.write_all(if n == 0 { b"]\n" } else { b"\n]\n" })
            .map_err(io)?;
        return Ok(n);
    }

    let session = load_row(conn, session_id)?;
    let header = session.summary_header();
    let field = |k: &str| header.get(k).cloned().unwrap_or(Value::Null);
    out.write_all(b"{\n").map_err(io)?;
    for key in [
        "session_id",
        "start_time",
        "end_time",
        "working_directory",
        "git_branch",
        "claude_version",
        "sources",
        "launch_method",
        "initial_prompt",
        "final_response",
    ] {
        write_key(out, key, &field(key), false).map_err(io)?;
    }
    let mut n = 0;
    if format == ExportFormat::Full {
        out.write_all(b"  \"events\": [").map_err(io)?;
        let mut first = true;
        n = for_each_event(conn, session_id, None, |row| {
            out.write_all(if first { b"\n    " } else { b",\n    " })?;
            first = false;
            row.write_json(out)
        })?;
        out.write_all(if n == 0 { b"],\n" } else { b"\n  ],\n" })
            .map_err(io)?;
    }
    out.write_all(b"  \"delegations\": [").map_err(io)?;
    let mut first = true;
    let delegations = for_each_delegation(conn, session_id, |d| {
        out.write_all(if first { b"\n    " } else { b",\n    " })?;
        first = false;
        serde_json::to_writer(&mut *out, &d.to_dict()).map_err(std::io::Error::from)
    })?;
    out.write_all(if delegations == 0 {
        b"],\n"
    } else {
        b"\n  ],\n"
    })
    .map_err(io)?;
    if format == ExportFormat::Summary {
        write_key(
            out,
            "delegations_summary",
            &delegations_summary(conn, session_id)?,
            false,
        )
        .map_err(io)?;
    }
    write_key(out, "metrics", &field("metrics"), false).map_err(io)?;
    write_key(out, "metadata", &field("metadata"), true).map_err(io)?;
    out.write_all(b"}\n").map_err(io)?;
    Ok(n)
}

/// `session_<id8>_<format>.json` (the page: `session_<id8>.html`), the default name of an export.
pub fn default_file_name(session_id: &str, format: ExportFormat) -> String {
    let id8: String = crate::store::session_file::display_id(session_id)
        .chars()
        .take(8)
        .collect();
    if format == ExportFormat::Html {
        return format!("session_{id8}.html");
    }
    format!("session_{id8}_{}.json", format.as_str())
}

/// Writes an export to `path` atomically (gzip when it ends in `.gz`). An export is
/// made to be shared, so it is readable by all (0644), unlike the database and
/// session files (0600). Returns what `fill` returns.
pub fn write_shared_file(
    path: &std::path::Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let mut count = 0;
    crate::files::write_atomically(path, |out| {
        count = fill(out).map_err(std::io::Error::other)?;
        Ok(())
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| AggregatorError::io(path, e))?;
    }
    Ok(count)
}
