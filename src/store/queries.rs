//! Read queries behind the CLI and the library: resolving ids and prefixes,
//! listing sessions, and the figures `status` shows.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{AggregatorError, Result};

fn sql_err(e: rusqlite::Error) -> AggregatorError {
    AggregatorError::query(e)
}

/// Resolves a full session id or a unique prefix of one.
pub fn resolve_session(conn: &Connection, id_or_prefix: &str) -> Result<String> {
    if id_or_prefix.is_empty() {
        return Err(AggregatorError::SessionNotFound(String::new()));
    }
    let exact: Option<String> = conn
        .prepare_cached("SELECT session_id FROM sessions WHERE session_id = ?1")
        .map_err(sql_err)?
        .query_row([id_or_prefix], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    if let Some(id) = exact {
        return Ok(id);
    }
    // Every id starting with the prefix sorts between it and it + U+10FFFF.
    let upper = format!("{id_or_prefix}\u{10FFFF}");
    let mut stmt = conn
        .prepare_cached("SELECT session_id FROM sessions WHERE session_id >= ?1 AND session_id < ?2 ORDER BY session_id LIMIT 11")
        .map_err(sql_err)?;
    let candidates: Vec<String> = stmt
        .query_map(params![id_or_prefix, upper], |r| r.get(0))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    match candidates.len() {
        0 => Err(AggregatorError::SessionNotFound(id_or_prefix.to_string())),
        1 => Ok(candidates.into_iter().next().unwrap_or_default()),
        _ => {
            let mut shown: Vec<String> = candidates.into_iter().take(10).collect();
            if shown.len() == 10 {
                shown.push("…".into());
            }
            Err(AggregatorError::AmbiguousSession {
                prefix: id_or_prefix.to_string(),
                candidates: shown,
            })
        }
    }
}

/// Order of `sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionSort {
    /// Newest first.
    #[default]
    Time,
    /// Most events first.
    Events,
    /// Longest first.
    Duration,
}

impl std::str::FromStr for SessionSort {
    type Err = AggregatorError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "time" => Ok(SessionSort::Time),
            "events" => Ok(SessionSort::Events),
            "duration" => Ok(SessionSort::Duration),
            _ => Err(AggregatorError::InvalidFormat(format!(
                "unknown sort '{s}' (expected time, events or duration)"
            ))),
        }
    }
}

/// One line of the session list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub session_id: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub last_event_time: String,
    pub status: String,
    pub event_count: u64,
    pub delegation_count: u64,
    pub duration_ms: i64,
    pub initial_prompt: Option<String>,
    pub working_directory: Option<String>,
    pub file_path: Option<String>,
    /// Tokens of its API calls (`input`, `output`, `cache_creation`,
    /// `cache_read`); `None` without any (no transcript).
    pub tokens: Option<crate::core::event::Tokens>,
    /// From the pricing table; `None` without API calls or when a model has no price.
    pub cost_usd: Option<f64>,
    /// Which sources contributed (`monitor`, `hook`, `transcript`, `import`).
    pub sources: Vec<String>,
}

/// Which sessions `sessions` lists; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Started at or after this stored timestamp.
    pub since: Option<String>,
    /// Working directory is this directory or inside it.
    pub project: Option<String>,
    /// `active` or `completed`.
    pub status: Option<String>,
    /// Delegated at least once to this sub-agent type.
    pub agent: Option<String>,
}

impl SessionFilter {
    /// The `WHERE` clause over `sessions s` (parameters ?2 to ?5).
    const SQL: &'static str = "(?2 IS NULL OR s.start_time >= ?2)
           AND (?3 IS NULL OR s.working_directory = ?3
                OR (substr(s.working_directory, 1, length(?3) + 1) = ?3 || '/'))
           AND (?4 IS NULL OR s.status = ?4)
           AND (?5 IS NULL OR EXISTS (SELECT 1 FROM delegations d
                                      WHERE d.session_id = s.session_id AND d.agent_type = ?5))";

    fn project(&self) -> Option<&str> {
        // `/a/b/` and `/a/b` name one directory; `/` stays itself.
        self.project
            .as_deref()
            .map(|p| match p.trim_end_matches('/') {
                "" => "/",
                trimmed => trimmed,
            })
    }
}

/// How many sessions pass `filter`.
pub fn count_sessions(conn: &Connection, filter: &SessionFilter) -> Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM sessions s WHERE ?1 IS NULL AND {}",
        SessionFilter::SQL
    );
    conn.query_row(
        &sql,
        params![
            Option::<i64>::None,
            filter.since,
            filter.project(),
            filter.status,
            filter.agent
        ],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(sql_err)
}

/// Lists sessions in `sort` order, at most `limit`.
pub fn list_sessions(
    conn: &Connection,
    sort: SessionSort,
    limit: Option<u64>,
) -> Result<Vec<SessionSummary>> {
    list_sessions_filtered(conn, sort, limit, &SessionFilter::default())
}

/// Lists the sessions that pass `filter` in `sort` order, at most `limit`.
pub fn list_sessions_filtered(
    conn: &Connection,
    sort: SessionSort,
    limit: Option<u64>,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>> {
    let order = match sort {
        SessionSort::Time => "s.start_time DESC",
        SessionSort::Events => "s.event_count DESC, s.start_time DESC",
        SessionSort::Duration => "duration_ms DESC, s.start_time DESC",
    };
    let sql = format!(
        "SELECT s.session_id, s.start_time, s.end_time, s.last_event_time, s.status, s.event_count,
                coalesce(m.total_delegations, 0), coalesce(m.session_duration_ms, 0) AS duration_ms,
                s.initial_prompt, s.working_directory, s.file_path, m.tokens, m.cost_usd, s.sources
         FROM sessions s LEFT JOIN metrics m USING (session_id)
         WHERE {}
         ORDER BY {order} LIMIT ?1",
        SessionFilter::SQL
    );
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let limit = limit.map_or(-1, |l| l as i64);
    let rows = stmt
        .query_map(
            params![
                limit,
                filter.since,
                filter.project(),
                filter.status,
                filter.agent
            ],
            |r| {
                Ok(SessionSummary {
                    session_id: r.get(0)?,
                    start_time: r.get(1)?,
                    end_time: r.get(2)?,
                    last_event_time: r.get(3)?,
                    status: r.get(4)?,
                    event_count: r.get::<_, i64>(5)? as u64,
                    delegation_count: r.get::<_, i64>(6)? as u64,
                    duration_ms: r.get(7)?,
                    initial_prompt: r.get(8)?,
                    working_directory: r.get(9)?,
                    file_path: r.get(10)?,
                    tokens: r
                        .get::<_, Option<String>>(11)?
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    cost_usd: r.get(12)?,
                    sources: r
                        .get::<_, Option<String>>(13)?
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                })
            },
        )
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    Ok(rows)
}

/// Ids of sessions finalized after `after_seq`, with the highest sequence seen.
pub fn completed_since(conn: &Connection, after_seq: i64) -> Result<(Vec<String>, i64)> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT session_id, completed_seq FROM sessions
             WHERE completed_seq > ?1 AND status = 'completed' ORDER BY completed_seq",
        )
        .map_err(sql_err)?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([after_seq], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    let max = rows.iter().map(|(_, s)| *s).max().unwrap_or(after_seq);
    Ok((rows.into_iter().map(|(id, _)| id).collect(), max))
}

/// Store-wide figures for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StoreFigures {
    pub total_events: u64,
    pub events_by_type: std::collections::BTreeMap<String, u64>,
    pub sessions: u64,
    pub active_sessions: u64,
    pub rejected_events: u64,
    pub last_event_time: Option<String>,
}

/// Reads the store-wide figures (cheap: kept counters and indexed counts).
pub fn store_figures(conn: &Connection) -> Result<StoreFigures> {
    let mut figures = StoreFigures::default();
    let mut stmt = conn
        .prepare_cached("SELECT event_type, count FROM event_type_counts")
        .map_err(sql_err)?;
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sql_err)?
    {
        let (t, n) = row.map_err(sql_err)?;
        figures.total_events += n as u64;
        figures.events_by_type.insert(t, n as u64);
    }
    let count = |sql: &str| -> Result<u64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sql_err)
    };
    figures.sessions = count("SELECT count(*) FROM sessions")?;
    figures.active_sessions = count("SELECT count(*) FROM sessions WHERE status = 'active'")?;
    figures.rejected_events = count("SELECT count(*) FROM rejected_events")?;
    figures.last_event_time = conn
        .query_row(LAST_EVENT_TIME_SQL, [], |r| r.get(0))
        .optional()
        .map_err(sql_err)?
        .flatten();
    Ok(figures)
}

/// The ids of a session's events in time order (the order a rebuild replays
/// them in), and whether any of them carries a time of its own (see
/// `NormalizedEvent::time_known`). Only ids are held, so a rebuild's memory
/// stays small for any session size.
pub fn replay_order(conn: &Connection, session_id: &str) -> rusqlite::Result<(Vec<i64>, bool)> {
    let ids = conn
        .prepare_cached("SELECT id FROM events WHERE session_id = ?1 ORDER BY timestamp, id")?
        .query_map([session_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let any_timed: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1 AND (origin IS NULL
                 OR origin NOT LIKE 'import%' OR json_extract(data, '$.timestamp') IS NOT NULL
                 OR json_extract(envelope, '$.timestamp') IS NOT NULL))",
        )?
        .query_row([session_id], |r| r.get(0))?;
    Ok((ids, any_timed))
}

/// One stored event read back as a canonical event, its facts read again
/// from its data (for rebuilding its session).
pub fn stored_event(
    conn: &Connection,
    session_id: &str,
    id: i64,
) -> rusqlite::Result<crate::core::NormalizedEvent> {
    conn.prepare_cached(
        "SELECT timestamp, event_type, category, socket_event, raw_type, subtype, correlation_id,
                data, envelope, identity, origin
         FROM events WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let envelope: Option<String> = r.get(8)?;
        let origin: Option<String> = r.get(10)?;
        let stored = crate::ingest::StoredEvent {
            session_id,
            timestamp: &r.get::<_, String>(0)?,
            event_type: &r.get::<_, String>(1)?,
            category: &r.get::<_, String>(2)?,
            socket_event: &r.get::<_, String>(3)?,
            raw_type: r.get(4)?,
            subtype: r.get(5)?,
            correlation_id: r.get(6)?,
            data: &r.get::<_, String>(7)?,
            envelope: envelope.as_deref(),
            identity: r.get(9)?,
            origin: origin.as_deref(),
        };
        Ok(stored.to_event())
    })
}

/// The newest event time in the store: `max(timestamp)` of `events`, read
/// without scanning them. Each session row keeps the newest time of its events
/// (`last_event_time`, one row per session); of the events of no session, the
/// one stored last, found at once through `events_by_session` (their `max`
/// visited every one of them: 58 ms for `status` on the CLI bench's million
/// events, 100,000 of them of no session). (Timestamps are stored as sortable
/// text.)
pub const LAST_EVENT_TIME_SQL: &str = "SELECT max(t) FROM (
    SELECT max(last_event_time) AS t FROM sessions
    UNION ALL
    SELECT timestamp FROM (
        SELECT timestamp FROM events WHERE session_id IS NULL ORDER BY id DESC LIMIT 1))";

/// An event as `tail` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TailEvent {
    pub id: i64,
    pub timestamp: String,
    pub session_id: Option<String>,
    /// Its delegation's sub-agent type (`None`: the main thread).
    pub agent_type: Option<String>,
    pub event_type: String,
    pub tool_name: Option<String>,
    pub data: String,
}

/// The newest event row (0 when there is none): where `tail` starts.
pub fn last_event_id(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
        .map_err(sql_err)
}

const TAIL_SELECT: &str = "SELECT e.id, e.timestamp, e.session_id,
        (SELECT d.agent_type FROM delegations d WHERE d.id = e.delegation_id),
        e.event_type, e.tool_name, e.data
    FROM events e";

fn tail_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<TailEvent> {
    Ok(TailEvent {
        id: r.get(0)?,
        timestamp: r.get(1)?,
        session_id: r.get(2)?,
        agent_type: r.get(3)?,
        event_type: r.get(4)?,
        tool_name: r.get(5)?,
        data: r.get(6)?,
    })
}

/// Events stored after row `after` (in one session, or in all), oldest row
/// first, at most `limit`. Rows are numbered in commit order (one writer at a
/// time), so none is skipped when the next call starts past the last one seen.
pub fn events_after(
    conn: &Connection,
    after: i64,
    session_id: Option<&str>,
    limit: u64,
) -> Result<Vec<TailEvent>> {
    let sql = format!(
        "{TAIL_SELECT} WHERE e.id > ?1 AND (?2 IS NULL OR e.session_id = ?2) ORDER BY e.id LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)
        .map_err(sql_err)?
        .query_map(params![after, session_id, limit as i64], tail_event)
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    Ok(rows)
}

/// The last `limit` events up to row `upto` (in one session, or in all), oldest row first.
pub fn events_up_to(
    conn: &Connection,
    upto: i64,
    session_id: Option<&str>,
    limit: u64,
) -> Result<Vec<TailEvent>> {
    let sql = format!(
        "{TAIL_SELECT} WHERE e.id <= ?1 AND (?2 IS NULL OR e.session_id = ?2) ORDER BY e.id DESC LIMIT ?3"
    );
    let mut rows: Vec<TailEvent> = conn
        .prepare(&sql)
        .map_err(sql_err)?
        .query_map(params![upto, session_id, limit as i64], tail_event)
        .map_err(sql_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql_err)?;
    rows.reverse();
    Ok(rows)
}

/// How far each transcript file was read (`transcript_offsets`): path →
/// bytes whose events are all stored.
pub fn transcript_offsets(conn: &Connection) -> Result<std::collections::HashMap<String, u64>> {
    let mut stmt = conn
        .prepare("SELECT path, offset FROM transcript_offsets")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(sql_err)?;
    rows.map(|r| r.map(|(p, o)| (p, o.max(0) as u64)).map_err(sql_err))
        .collect()
}
