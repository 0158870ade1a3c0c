//! The local side of a push: reading the store (a read-only connection) and
//! the bookkeeping of what each target was sent (`push_targets`,
//! `push_sessions`, `push_changes`: migration V8), on a connection of its own
//! that writes only those tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{AggregatorError, Result};
use crate::store;

/// One row of `events`, as pushed.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub session_id: Option<String>,
    pub timestamp: String,
    pub event_type: String,
    pub category: String,
    pub tool_name: Option<String>,
    pub socket_event: String,
    pub raw_type: Option<String>,
    pub subtype: Option<String>,
    pub source: Option<String>,
    pub correlation_id: Option<String>,
    pub data: String,
    pub envelope: Option<String>,
    pub received_at: String,
    pub dedup_key: Vec<u8>,
    pub identity: Option<String>,
    pub origin: Option<String>,
    pub agent_id: Option<String>,
    pub delegation_id: Option<i64>,
}

const EVENT_COLUMNS: &str = "e.id, e.session_id, e.timestamp, e.event_type, e.category, e.tool_name, e.socket_event,
    e.raw_type, e.subtype, e.source, e.correlation_id, e.data, e.envelope, e.received_at, e.dedup_key,
    e.identity, e.origin, e.agent_id, e.delegation_id";

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    event_row_at(r, 0)
}

impl EventRow {
    /// What the event is wherever it was stored: its identity within its
    /// session when it has one (the same happening observed on two machines),
    /// else its content hash.
    pub fn key(&self) -> String {
        match &self.identity {
            Some(identity) => format!(
                "i:{:032x}",
                super::hash128(&[self.session_id.as_deref().unwrap_or(""), identity])
            ),
            None => format!("d:{}", super::hex(&self.dedup_key)),
        }
    }
}

/// One row of `sessions`, as pushed (without the local file path and sequence).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session_id: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub last_event_time: String,
    pub status: String,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
    pub initial_prompt: Option<String>,
    pub final_response: Option<String>,
    pub event_count: i64,
    pub metadata: String,
    pub stored_at: Option<String>,
    pub claude_version: Option<String>,
    pub sources: String,
    pub id_aware: i64,
}

const SESSION_COLUMNS: &str = "session_id, start_time, end_time, last_event_time, status, working_directory, git_branch,
    launch_method, claude_pid, initial_prompt, final_response, event_count, metadata, stored_at, claude_version,
    sources, id_aware";

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        session_id: r.get(0)?,
        start_time: r.get(1)?,
        end_time: r.get(2)?,
        last_event_time: r.get(3)?,
        status: r.get(4)?,
        working_directory: r.get(5)?,
        git_branch: r.get(6)?,
        launch_method: r.get(7)?,
        claude_pid: r.get(8)?,
        initial_prompt: r.get(9)?,
        final_response: r.get(10)?,
        event_count: r.get(11)?,
        metadata: r.get(12)?,
        stored_at: r.get(13)?,
        claude_version: r.get(14)?,
        sources: r.get(15)?,
        id_aware: r.get(16)?,
    })
}

/// One row of `metrics`.
#[derive(Debug, Clone)]
pub struct MetricsRow {
    pub total_events: i64,
    pub session_duration_ms: i64,
    pub event_breakdown: String,
    pub agents_used: String,
    pub tools_used: String,
    pub files_modified: String,
    pub total_delegations: i64,
    pub successful_delegations: i64,
    pub failed_delegations: i64,
    pub prompts: i64,
    pub tool_calls: i64,
    pub tool_failures: i64,
    pub api_calls: i64,
    pub tokens: Option<String>,
    pub tokens_by_model: Option<String>,
    pub models: String,
    pub cost_usd: Option<f64>,
    pub claude_code: Option<String>,
}

const METRICS_COLUMNS: &str = "total_events, session_duration_ms, event_breakdown, agents_used, tools_used,
    files_modified, total_delegations, successful_delegations, failed_delegations, prompts, tool_calls,
    tool_failures, api_calls, tokens, tokens_by_model, models, cost_usd, claude_code";

fn metrics_row(r: &Row<'_>, at: usize) -> rusqlite::Result<MetricsRow> {
    Ok(MetricsRow {
        total_events: r.get(at)?,
        session_duration_ms: r.get(at + 1)?,
        event_breakdown: r.get(at + 2)?,
        agents_used: r.get(at + 3)?,
        tools_used: r.get(at + 4)?,
        files_modified: r.get(at + 5)?,
        total_delegations: r.get(at + 6)?,
        successful_delegations: r.get(at + 7)?,
        failed_delegations: r.get(at + 8)?,
        prompts: r.get(at + 9)?,
        tool_calls: r.get(at + 10)?,
        tool_failures: r.get(at + 11)?,
        api_calls: r.get(at + 12)?,
        tokens: r.get(at + 13)?,
        tokens_by_model: r.get(at + 14)?,
        models: r.get(at + 15)?,
        cost_usd: r.get(at + 16)?,
        claude_code: r.get(at + 17)?,
    })
}

/// One row of `delegations`.
#[derive(Debug, Clone)]
pub struct DelegationRow {
    pub id: i64,
    pub agent_type: String,
    pub instructions: Option<String>,
    pub description: Option<String>,
    pub start_time: String,
    pub end_time: Option<String>,
    pub success: Option<i64>,
    pub error: Option<String>,
    pub event_count: i64,
    pub tool_operations: String,
    pub files_modified: String,
    pub response_preview: Option<String>,
    pub start_ref: Option<String>,
    pub agent_id: Option<String>,
    pub parent_agent_id: Option<String>,
    pub background: i64,
    pub call_failed: i64,
    pub stop_failed: i64,
    pub tool_calls: i64,
    pub tool_failures: i64,
    pub api_calls: i64,
    pub tokens: Option<String>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
}

const DELEGATION_COLUMNS: &str = "id, agent_type, instructions, description, start_time, end_time, success, error,
    event_count, tool_operations, files_modified, response_preview, start_ref, agent_id, parent_agent_id,
    background, call_failed, stop_failed, tool_calls, tool_failures, api_calls, tokens, model, cost_usd";

fn delegation_row(r: &Row<'_>) -> rusqlite::Result<DelegationRow> {
    delegation_row_at(r, 0)
}

/// What a machine-independent delegation is: its sub-agent, else the call
/// that started it, else its place in the session (`keys[i]` for
/// `delegations[i]`, in the session's order; never twice the same).
pub fn delegation_keys(delegations: &[DelegationRow]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    delegations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let key = match (&d.agent_id, &d.start_ref) {
                (Some(a), _) => format!("agent:{a}"),
                (None, Some(r)) => format!("call:{r}"),
                (None, None) => format!("n:{i}"),
            };
            if seen.insert(key.clone()) {
                key
            } else {
                let k = format!("{key}#{i}");
                seen.insert(k.clone());
                k
            }
        })
        .collect()
}

/// A session with its figures and delegations (in the session's order).
#[derive(Debug, Clone)]
pub struct SessionBundle {
    pub session: SessionRow,
    pub metrics: Option<MetricsRow>,
    pub delegations: Vec<DelegationRow>,
}

/// A session that differs from what a target was last sent.
#[derive(Debug, Clone)]
pub struct Changed {
    pub session_id: String,
    pub fingerprint: Vec<u8>,
    pub completed: bool,
}

/// The store, read for one target.
pub struct Local {
    path: PathBuf,
    read: Connection,
    state: Connection,
    target: String,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> AggregatorError + '_ {
    move |e| AggregatorError::db(path, e)
}

impl Local {
    /// Opens the store at `db` (migrating it, so that V8's tables exist).
    pub fn open(db: &Path, target: &str) -> Result<Local> {
        if !db.is_file() {
            return Err(AggregatorError::db_message(
                db,
                "no database here yet (nothing was recorded or imported into it)",
            ));
        }
        let state = store::open_writable(db)?;
        let read = store::open_read_only(db)?;
        Ok(Local {
            path: db.to_path_buf(),
            read,
            state,
            target: target.to_string(),
        })
    }

    /// Makes the target known, once it answered: from then on changes to
    /// events are logged for it (before its first batch is read, so that none
    /// is missed). A target that never answered leaves nothing behind.
    pub fn register(&self) -> Result<()> {
        self.state
            .execute(
                "INSERT OR IGNORE INTO push_targets (target) VALUES (?1)",
                [&self.target],
            )
            .map(|_| ())
            .map_err(db_err(&self.path))
    }

    /// (last event id sent, last change sent).
    pub fn cursor(&self) -> Result<(i64, i64)> {
        self.state
            .query_row(
                "SELECT last_event_id, last_change FROM push_targets WHERE target = ?1",
                [&self.target],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map(|c| c.unwrap_or((0, 0)))
            .map_err(db_err(&self.path))
    }

    /// Records that everything up to `event_id` and `change` was sent.
    pub fn advance(&self, event_id: i64, change: i64) -> Result<()> {
        self.state
            .execute(
                "UPDATE push_targets SET last_event_id = max(last_event_id, ?2), last_change = max(last_change, ?3),
                 pushed_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE target = ?1",
                params![self.target, event_id, change],
            )
            .map(|_| ())
            .map_err(db_err(&self.path))
    }

    /// Events not yet sent: their number and the highest id now.
    pub fn pending_events(&self, after: i64) -> Result<(u64, i64)> {
        self.read
            .query_row(
                "SELECT count(*), coalesce(max(id), ?1) FROM events WHERE id > ?1",
                [after],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .map_err(db_err(&self.path))
    }

    /// The next `limit` events after id `after`, up to `upto`, in id order.
    pub fn events_after(&self, after: i64, upto: i64, limit: usize) -> Result<Vec<EventRow>> {
        let mut stmt = self
            .read
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id > ?1 AND e.id <= ?2 ORDER BY e.id LIMIT ?3"
            ))
            .map_err(db_err(&self.path))?;
        let rows = stmt
            .query_map(params![after, upto, limit as i64], event_row)
            .map_err(db_err(&self.path))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err(&self.path))
    }

    /// The highest change recorded now.
    pub fn last_change(&self) -> Result<i64> {
        self.read
            .query_row("SELECT coalesce(max(seq), 0) FROM push_changes", [], |r| {
                r.get(0)
            })
            .map_err(db_err(&self.path))
    }

    /// Events sent before (id up to `sent`) that changed after change `after`
    /// (up to `upto`): the next `limit` of them with their change numbers.
    pub fn changed_events(
        &self,
        after: i64,
        upto: i64,
        sent: i64,
        limit: usize,
    ) -> Result<Vec<(i64, EventRow)>> {
        let mut stmt = self
            .read
            .prepare_cached(&format!(
                "SELECT c.seq, {EVENT_COLUMNS} FROM push_changes c JOIN events e ON e.id = c.event_id
                 WHERE c.seq > ?1 AND c.seq <= ?2 AND c.event_id <= ?3 ORDER BY c.seq LIMIT ?4"
            ))
            .map_err(db_err(&self.path))?;
        let rows = stmt
            .query_map(params![after, upto, sent, limit as i64], |r| {
                let seq: i64 = r.get(0)?;
                // The event's columns follow the change number.
                Ok((seq, event_row_at(r, 1)?))
            })
            .map_err(db_err(&self.path))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db_err(&self.path))
    }

    /// Sessions whose row, figures or delegations differ from what this
    /// target was last sent, oldest first.
    pub fn changed_sessions(&self) -> Result<Vec<Changed>> {
        let err = db_err(&self.path);
        let mut hashes: HashMap<String, (Xxh3, bool)> = HashMap::new();
        let mut order = Vec::new();
        {
            let mut stmt = self
                .read
                .prepare(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions ORDER BY start_time, session_id"
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            while let Some(r) = rows.next().map_err(&err)? {
                let s = session_row(r).map_err(&err)?;
                let mut h = Xxh3::new();
                h.update(format!("{s:?}").as_bytes());
                order.push(s.session_id.clone());
                hashes.insert(s.session_id, (h, s.status == "completed"));
            }
        }
        {
            let mut stmt = self
                .read
                .prepare(&format!(
                    "SELECT session_id, {METRICS_COLUMNS} FROM metrics"
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            while let Some(r) = rows.next().map_err(&err)? {
                let id: String = r.get(0).map_err(&err)?;
                if let Some((h, _)) = hashes.get_mut(&id) {
                    h.update(format!("{:?}", metrics_row(r, 1).map_err(&err)?).as_bytes());
                }
            }
        }
        {
            let mut stmt = self
                .read
                .prepare(&format!(
                    "SELECT session_id, {DELEGATION_COLUMNS} FROM delegations ORDER BY session_id, start_time, id"
                ))
                .map_err(&err)?;
            let mut rows = stmt.query([]).map_err(&err)?;
            while let Some(r) = rows.next().map_err(&err)? {
                let id: String = r.get(0).map_err(&err)?;
                if let Some((h, _)) = hashes.get_mut(&id) {
                    let d = delegation_row_at(r, 1).map_err(&err)?;
                    h.update(format!("{d:?}").as_bytes());
                }
            }
        }
        let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
        {
            let mut stmt = self
                .state
                .prepare("SELECT session_id, fingerprint FROM push_sessions WHERE target = ?1")
                .map_err(&err)?;
            let rows = stmt
                .query_map([&self.target], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(&err)?;
            for row in rows {
                let (id, fp) = row.map_err(&err)?;
                sent.insert(id, fp);
            }
        }
        let mut changed = Vec::new();
        for id in order {
            let (h, completed) = &hashes[&id];
            let fingerprint = h.digest128().to_be_bytes().to_vec();
            if sent.get(&id) != Some(&fingerprint) {
                changed.push(Changed {
                    session_id: id,
                    fingerprint,
                    completed: *completed,
                });
            }
        }
        Ok(changed)
    }

    /// A session with its figures and delegations (`None`: it is gone, pruned meanwhile).
    pub fn bundle(&self, session_id: &str) -> Result<Option<SessionBundle>> {
        let err = db_err(&self.path);
        let session = self
            .read
            .query_row(
                &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1"),
                [session_id],
                session_row,
            )
            .optional()
            .map_err(&err)?;
        let Some(session) = session else {
            return Ok(None);
        };
        let metrics = self
            .read
            .query_row(
                &format!("SELECT {METRICS_COLUMNS} FROM metrics WHERE session_id = ?1"),
                [session_id],
                |r| metrics_row(r, 0),
            )
            .optional()
            .map_err(&err)?;
        let mut stmt = self
            .read
            .prepare_cached(&format!(
                "SELECT {DELEGATION_COLUMNS} FROM delegations WHERE session_id = ?1 ORDER BY start_time, id"
            ))
            .map_err(&err)?;
        let delegations = stmt
            .query_map([session_id], delegation_row)
            .map_err(&err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&err)?;
        Ok(Some(SessionBundle {
            session,
            metrics,
            delegations,
        }))
    }

    /// A session's tool-call events (starts, ends, failures), in the order stored.
    pub fn tool_events(&self, session_id: &str) -> Result<Vec<EventRow>> {
        let err = db_err(&self.path);
        let mut stmt = self
            .read
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e WHERE e.session_id = ?1
                 AND e.event_type IN ('PreToolUse', 'PostToolUse', 'PostToolUseFailure') ORDER BY e.id"
            ))
            .map_err(&err)?;
        let rows = stmt.query_map([session_id], event_row).map_err(&err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(&err)
    }

    /// Records that these sessions were sent as they are now.
    pub fn mark_sent(&mut self, sessions: &[(String, Vec<u8>)]) -> Result<()> {
        let err = db_err(&self.path);
        let tx = self.state.transaction().map_err(&err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO push_sessions (target, session_id, fingerprint) VALUES (?1, ?2, ?3)",
                )
                .map_err(&err)?;
            for (id, fp) in sessions {
                stmt.execute(params![self.target, id, fp]).map_err(&err)?;
            }
        }
        tx.execute(
            "INSERT INTO push_targets (target, pushed_at) VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             ON CONFLICT (target) DO UPDATE SET pushed_at = excluded.pushed_at",
            [&self.target],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Drops the changes every PostgreSQL target has been sent.
    pub fn forget_sent_changes(&self) -> Result<()> {
        self.state
            .execute(
                "DELETE FROM push_changes WHERE seq <= (SELECT coalesce(min(last_change), 1 << 62) FROM push_targets
                 WHERE target NOT LIKE 'otlp:%')",
                [],
            )
            .map(|_| ())
            .map_err(db_err(&self.path))
    }
}

/// A summary of the store that changes with every new event, every change
/// to a stored event a PostgreSQL target follows, every session ended and
/// every session pruned: `--watch` skips the per-session scan while it holds.
pub fn signature(db: &Path) -> Result<[i64; 4]> {
    let conn = store::open_read_only(db)?;
    conn.query_row(
        "SELECT (SELECT coalesce(max(id), 0) FROM events),
                (SELECT coalesce(max(seq), 0) FROM push_changes),
                (SELECT coalesce(max(completed_seq), 0) FROM sessions),
                (SELECT count(*) FROM sessions)",
        [],
        |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
    )
    .map_err(db_err(db))
}

fn event_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(at)?,
        session_id: r.get(at + 1)?,
        timestamp: r.get(at + 2)?,
        event_type: r.get(at + 3)?,
        category: r.get(at + 4)?,
        tool_name: r.get(at + 5)?,
        socket_event: r.get(at + 6)?,
        raw_type: r.get(at + 7)?,
        subtype: r.get(at + 8)?,
        source: r.get(at + 9)?,
        correlation_id: r.get(at + 10)?,
        data: r.get(at + 11)?,
        envelope: r.get(at + 12)?,
        received_at: r.get(at + 13)?,
        dedup_key: r.get(at + 14)?,
        identity: r.get(at + 15)?,
        origin: r.get(at + 16)?,
        agent_id: r.get(at + 17)?,
        delegation_id: r.get(at + 18)?,
    })
}

fn delegation_row_at(r: &Row<'_>, at: usize) -> rusqlite::Result<DelegationRow> {
    Ok(DelegationRow {
        id: r.get(at)?,
        agent_type: r.get(at + 1)?,
        instructions: r.get(at + 2)?,
        description: r.get(at + 3)?,
        start_time: r.get(at + 4)?,
        end_time: r.get(at + 5)?,
        success: r.get(at + 6)?,
        error: r.get(at + 7)?,
        event_count: r.get(at + 8)?,
        tool_operations: r.get(at + 9)?,
        files_modified: r.get(at + 10)?,
        response_preview: r.get(at + 11)?,
        start_ref: r.get(at + 12)?,
        agent_id: r.get(at + 13)?,
        parent_agent_id: r.get(at + 14)?,
        background: r.get(at + 15)?,
        call_failed: r.get(at + 16)?,
        stop_failed: r.get(at + 17)?,
        tool_calls: r.get(at + 18)?,
        tool_failures: r.get(at + 19)?,
        api_calls: r.get(at + 20)?,
        tokens: r.get(at + 21)?,
        model: r.get(at + 22)?,
        cost_usd: r.get(at + 23)?,
    })
}
