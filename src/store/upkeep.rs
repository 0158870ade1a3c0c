//! Sessions, delegations and metrics, kept up to date as each event is written.
//!
//! The writer holds a small cache of the sessions touched recently (their row,
//! their metrics, their running and just-ended delegations: bounded state, no
//! event lists). Changes are written back once per batch, so a busy session costs
//! one UPDATE per batch rather than one per event. On a cache miss the state is
//! read back from SQL, so the cache can be dropped at any time.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::ingest::timestamp::{format_timestamp, parse_stored};
use crate::ingest::{Category, NormalizedEvent};

/// The two halves of a delegation start and of its end. The monitor sends a
/// pair for each transition (SPEC section 4); bits record which were seen.
pub const PRE_TASK: i64 = 1;
pub const SUBAGENT_START: i64 = 2;
pub const SUBAGENT_STOP: i64 = 4;
pub const POST_TASK: i64 = 8;

/// How far apart the two halves of one transition may be.
pub fn pair_window() -> Duration {
    Duration::seconds(30)
}
/// Ended delegations kept in the cache for pairing late second halves.
const RECENTLY_ENDED_KEPT: usize = 8;
/// Characters of a response kept as `response_preview`.
pub const RESPONSE_PREVIEW_CHARS: usize = 200;
/// Error recorded on delegations still running when their session is finalized.
pub const UNFINISHED: &str = "still running when the session was finalized";

#[derive(Debug, Clone)]
pub struct DelegationState {
    pub id: i64,
    pub agent_type: String,
    pub instructions: Option<String>,
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub success: Option<bool>,
    pub error: Option<String>,
    pub event_count: i64,
    pub tools: Vec<String>,
    pub files: Vec<String>,
    pub response_preview: Option<String>,
    pub start_ref: Option<String>,
    pub halves: i64,
    pub dirty: bool,
}

impl DelegationState {
    fn is_running(&self) -> bool {
        self.end_time.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub breakdown: BTreeMap<String, i64>,
    pub agents_used: Vec<String>,
    pub tools_used: Vec<String>,
    pub files_modified: Vec<String>,
    pub total_delegations: i64,
    pub successful_delegations: i64,
    pub failed_delegations: i64,
}

#[derive(Debug, Clone)]
pub struct SessionState {
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_event_time: DateTime<Utc>,
    pub completed: bool,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
    pub initial_prompt: Option<String>,
    pub final_response: Option<String>,
    pub event_count: i64,
    pub file_path: Option<String>,
    pub completed_seq: Option<i64>,
    pub metadata: String,
    pub metrics: Metrics,
    /// Running delegations and the few that ended last, oldest first.
    pub delegations: Vec<DelegationState>,
    pub dirty: bool,
    pub touched_batch: u64,
}

impl SessionState {
    pub fn new(ts: DateTime<Utc>) -> Self {
        SessionState {
            start_time: ts,
            end_time: None,
            last_event_time: ts,
            completed: false,
            working_directory: None,
            git_branch: None,
            launch_method: None,
            claude_pid: None,
            initial_prompt: None,
            final_response: None,
            event_count: 0,
            file_path: None,
            completed_seq: None,
            metadata: "{}".into(),
            metrics: Metrics::default(),
            delegations: Vec::new(),
            dirty: true,
            touched_batch: 0,
        }
    }

    /// Milliseconds from the first event to the end (or the last event while active).
    pub fn duration_ms(&self) -> i64 {
        let end = self.end_time.unwrap_or(self.last_event_time);
        (end - self.start_time).num_milliseconds().max(0)
    }

    fn running_index_latest(&self) -> Option<usize> {
        self.delegations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_running())
            .max_by_key(|(_, d)| (d.start_time, d.id))
            .map(|(i, _)| i)
    }

    /// Drops ended delegations beyond the few kept for pairing.
    fn trim_ended(&mut self) {
        let ended = self.delegations.iter().filter(|d| !d.is_running()).count();
        if ended > RECENTLY_ENDED_KEPT {
            let mut to_drop = ended - RECENTLY_ENDED_KEPT;
            self.delegations.retain(|d| {
                if to_drop > 0 && !d.is_running() && !d.dirty {
                    to_drop -= 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

fn push_distinct(list: &mut Vec<String>, item: &str) -> bool {
    if list.iter().any(|x| x == item) {
        false
    } else {
        list.push(item.to_string());
        true
    }
}

fn preview(text: &str) -> String {
    text.chars().take(RESPONSE_PREVIEW_CHARS).collect()
}

/// What a delegation event does (decided before the event is stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Not a delegation transition.
    None,
    /// Starts a new delegation.
    Open,
    /// The second half of a pair: attaches to the delegation at this index.
    Attach(usize),
    /// Ends the running delegation at this index.
    Close(usize),
}

/// Which half of a transition an event is, if any.
pub fn half_of(event: &NormalizedEvent) -> Option<i64> {
    let is_task = || {
        event.facts.tool_name.as_deref().is_some_and(|t| {
            crate::ingest::category_for("PreToolUse", Some(t)) == Category::Delegation
        })
    };
    match event.event_type.as_str() {
        "PreToolUse" if is_task() => Some(PRE_TASK),
        "PostToolUse" if is_task() => Some(POST_TASK),
        "SubagentStart" => Some(SUBAGENT_START),
        "SubagentStop" => Some(SUBAGENT_STOP),
        _ => None,
    }
}

fn event_ref(event: &NormalizedEvent) -> Option<&str> {
    event
        .facts
        .tool_use_id
        .as_deref()
        .or(event.correlation_id.as_deref())
}

/// Decides the transition of `event` against the session's delegations
/// (SPEC section 4): the second half of a pair attaches to what the first half
/// opened or closed, and never opens or closes another delegation.
pub fn decide(session: Option<&SessionState>, event: &NormalizedEvent, half: i64) -> Transition {
    let delegations: &[DelegationState] = session.map_or(&[], |s| &s.delegations);
    let agent = event.facts.agent_type.as_deref();
    let reference = event_ref(event);
    let agent_fits = |d: &DelegationState| {
        agent.is_none() || d.agent_type == "unknown" || Some(d.agent_type.as_str()) == agent
    };
    let ref_fits = |d: &DelegationState| match (reference, d.start_ref.as_deref()) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let near = |a: DateTime<Utc>| (event.timestamp - a).abs() <= pair_window();

    if half == PRE_TASK || half == SUBAGENT_START {
        let other = if half == PRE_TASK {
            SUBAGENT_START
        } else {
            PRE_TASK
        };
        let candidate = delegations
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.is_running()
                    && d.halves & other != 0
                    && d.halves & half == 0
                    && agent_fits(d)
                    && ref_fits(d)
                    && near(d.start_time)
            })
            .min_by_key(|(_, d)| (d.start_time, d.id));
        return candidate.map_or(Transition::Open, |(i, _)| Transition::Attach(i));
    }

    let other = if half == SUBAGENT_STOP {
        POST_TASK
    } else {
        SUBAGENT_STOP
    };
    let second_half = delegations
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.end_time.is_some_and(near)
                && d.halves & other != 0
                && d.halves & half == 0
                && agent_fits(d)
                && ref_fits(d)
        })
        .max_by_key(|(_, d)| (d.end_time, d.id));
    if let Some((i, _)) = second_half {
        return Transition::Attach(i);
    }
    let running = || {
        delegations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_running())
    };
    let latest = |it: &mut dyn Iterator<Item = (usize, &DelegationState)>| {
        it.max_by_key(|(_, d)| (d.start_time, d.id)).map(|(i, _)| i)
    };
    let by_ref = reference
        .and_then(|r| latest(&mut running().filter(|(_, d)| d.start_ref.as_deref() == Some(r))));
    let by_agent = || agent.and_then(|a| latest(&mut running().filter(|(_, d)| d.agent_type == a)));
    match by_ref.or_else(by_agent).or_else(|| latest(&mut running())) {
        Some(i) => Transition::Close(i),
        None => Transition::None,
    }
}

/// The delegation an event is attributed to: the one it opens, attaches to or
/// closes, else the most recently started running one.
pub fn attributed_index(session: Option<&SessionState>, transition: Transition) -> Option<usize> {
    match transition {
        Transition::Attach(i) | Transition::Close(i) => Some(i),
        Transition::Open => None,
        Transition::None => session.and_then(SessionState::running_index_latest),
    }
}

/// Applies an event (already stored) to its session's state.
/// `new_delegation_id` is the row id allocated when the transition opens one.
pub fn apply_event(
    state: &mut SessionState,
    event: &NormalizedEvent,
    transition: Transition,
    half: i64,
    new_delegation_id: Option<i64>,
) {
    state.dirty = true;
    state.event_count += 1;
    *state
        .metrics
        .breakdown
        .entry(event.category.as_str().to_string())
        .or_insert(0) += 1;
    if event.timestamp > state.last_event_time {
        state.last_event_time = event.timestamp;
    }
    if event.timestamp < state.start_time {
        state.start_time = event.timestamp;
    }
    let facts = &event.facts;
    if state.initial_prompt.is_none() {
        state.initial_prompt.clone_from(&facts.prompt);
    }
    if state.working_directory.is_none() {
        state.working_directory.clone_from(&facts.working_directory);
    }
    let branch_unknown = state
        .git_branch
        .as_deref()
        .is_none_or(|b| b.eq_ignore_ascii_case("unknown"));
    if branch_unknown && facts.git_branch.is_some() {
        state.git_branch.clone_from(&facts.git_branch);
    }
    if state.launch_method.is_none() {
        state.launch_method.clone_from(&facts.launch_method);
    }
    if state.claude_pid.is_none() {
        state.claude_pid = facts.claude_pid;
    }
    if matches!(event.event_type.as_str(), "Stop" | "SessionEnd") && facts.response.is_some() {
        state.final_response.clone_from(&facts.response);
    }
    let is_tool_call = matches!(event.event_type.as_str(), "PreToolUse" | "PostToolUse");
    if let Some(t) = facts.tool_name.as_deref().filter(|_| is_tool_call) {
        push_distinct(&mut state.metrics.tools_used, t);
    }
    if let Some(f) = &facts.file_written {
        push_distinct(&mut state.metrics.files_modified, f);
    }

    match transition {
        Transition::Open => {
            let agent = facts
                .agent_type
                .clone()
                .unwrap_or_else(|| "unknown".to_string());
            if agent != "unknown" {
                push_distinct(&mut state.metrics.agents_used, &agent);
            }
            state.metrics.total_delegations += 1;
            state.delegations.push(DelegationState {
                id: new_delegation_id.unwrap_or_default(),
                agent_type: agent,
                instructions: facts.instructions.clone(),
                description: facts.description.clone(),
                start_time: event.timestamp,
                end_time: None,
                success: None,
                error: None,
                event_count: 0,
                tools: Vec::new(),
                files: Vec::new(),
                response_preview: None,
                start_ref: if half == PRE_TASK {
                    event_ref(event).map(str::to_string)
                } else {
                    None
                },
                halves: half,
                dirty: true,
            });
        }
        Transition::Attach(i) => {
            let metrics = &mut state.metrics;
            let d = &mut state.delegations[i];
            d.dirty = true;
            d.halves |= half;
            if d.agent_type == "unknown" {
                if let Some(a) = &facts.agent_type {
                    d.agent_type.clone_from(a);
                    push_distinct(&mut metrics.agents_used, a);
                }
            }
            if half == PRE_TASK {
                // The Task call carries the instructions as given, without the
                // memory preamble claude-mpm adds to SubagentStart.
                if facts.instructions.is_some() {
                    d.instructions.clone_from(&facts.instructions);
                }
                if d.start_ref.is_none() {
                    d.start_ref = event_ref(event).map(str::to_string);
                }
            }
            if d.instructions.is_none() {
                d.instructions.clone_from(&facts.instructions);
            }
            if d.description.is_none() {
                d.description.clone_from(&facts.description);
            }
            if half == SUBAGENT_STOP || half == POST_TASK {
                if d.response_preview.is_none() {
                    d.response_preview = facts.response.as_deref().map(preview);
                }
                if facts.is_error && d.success == Some(true) {
                    d.success = Some(false);
                    d.error = Some(format!("{} reported an error", event.event_type));
                    metrics.successful_delegations -= 1;
                    metrics.failed_delegations += 1;
                }
            }
        }
        Transition::Close(i) => {
            let d = &mut state.delegations[i];
            d.dirty = true;
            d.halves |= half;
            d.end_time = Some(event.timestamp.max(d.start_time));
            d.response_preview = facts.response.as_deref().map(preview);
            let ok = !facts.is_error;
            d.success = Some(ok);
            if ok {
                state.metrics.successful_delegations += 1;
            } else {
                d.error = Some(format!("{} reported an error", event.event_type));
                state.metrics.failed_delegations += 1;
            }
        }
        Transition::None => {}
    }

    // Work done while a delegation runs counts toward it; the transition
    // events themselves do not.
    if transition == Transition::None {
        if let Some(i) = state.running_index_latest() {
            let d = &mut state.delegations[i];
            d.dirty = true;
            d.event_count += 1;
            if is_tool_call {
                if let Some(t) = facts.tool_name.as_deref() {
                    push_distinct(&mut d.tools, t);
                }
            }
            if let Some(f) = &facts.file_written {
                push_distinct(&mut d.files, f);
            }
        }
    }
    state.trim_ended();
}

/// Closes every running delegation (as failed) and marks the session completed at `end`.
pub fn finalize(state: &mut SessionState, end: DateTime<Utc>, completed_seq: i64) {
    for d in state.delegations.iter_mut().filter(|d| d.is_running()) {
        d.end_time = Some(end.max(d.start_time));
        d.success = Some(false);
        d.error = Some(UNFINISHED.into());
        d.dirty = true;
        state.metrics.failed_delegations += 1;
    }
    state.completed = true;
    state.end_time = Some(end.max(state.start_time));
    state.completed_seq = Some(completed_seq);
    state.dirty = true;
}

/// Whether an event reopens a completed session: a new turn (any non-meta
/// event, or SessionStart). Hook bookkeeping and notifications that follow a
/// `Stop` do not.
pub fn reopens(event: &NormalizedEvent) -> bool {
    event.category != Category::Meta || event.event_type == "SessionStart"
}

/// Whether an event finalizes its session.
pub fn finalizes(event: &NormalizedEvent) -> bool {
    matches!(
        event.event_type.as_str(),
        "Stop" | "SessionEnd" | "session.end"
    ) || (event.raw_type.as_deref() == Some("session") && event.subtype.as_deref() == Some("end"))
        || event.socket_event == "session.end"
}

// ---------------------------------------------------------------------------
// SQL: load on cache miss, write back once per batch.

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn ts(text: &str) -> DateTime<Utc> {
    parse_stored(text).unwrap_or_default()
}

/// Reads a session's state back from SQL.
pub fn load(conn: &Connection, session_id: &str) -> rusqlite::Result<Option<SessionState>> {
    let row = conn
        .prepare_cached(
            "SELECT s.start_time, s.end_time, s.last_event_time, s.status, s.working_directory, s.git_branch,
                    s.launch_method, s.claude_pid, s.initial_prompt, s.final_response, s.event_count,
                    s.file_path, s.completed_seq, s.metadata,
                    m.event_breakdown, m.agents_used, m.tools_used, m.files_modified,
                    m.total_delegations, m.successful_delegations, m.failed_delegations
             FROM sessions s LEFT JOIN metrics m USING (session_id) WHERE s.session_id = ?1",
        )?
        .query_row([session_id], |r| {
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
                metrics: Metrics {
                    breakdown: serde_json::from_str(&r.get::<_, Option<String>>(14)?.unwrap_or_default()).unwrap_or_default(),
                    agents_used: json_list(&r.get::<_, Option<String>>(15)?.unwrap_or_default()),
                    tools_used: json_list(&r.get::<_, Option<String>>(16)?.unwrap_or_default()),
                    files_modified: json_list(&r.get::<_, Option<String>>(17)?.unwrap_or_default()),
                    total_delegations: r.get::<_, Option<i64>>(18)?.unwrap_or(0),
                    successful_delegations: r.get::<_, Option<i64>>(19)?.unwrap_or(0),
                    failed_delegations: r.get::<_, Option<i64>>(20)?.unwrap_or(0),
                },
                delegations: Vec::new(),
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
                tool_operations, files_modified, response_preview, start_ref, halves
         FROM delegations WHERE session_id = ?1 AND (end_time IS NULL OR id IN
              (SELECT id FROM delegations WHERE session_id = ?1 AND end_time IS NOT NULL ORDER BY end_time DESC, id DESC LIMIT ?2))
         ORDER BY start_time, id",
    )?;
    state.delegations = stmt
        .query_map(params![session_id, RECENTLY_ENDED_KEPT as i64], |r| {
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
                dirty: false,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(state))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
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
        event.facts.agent_type.as_deref().unwrap_or("unknown"),
        event.timestamp_text(),
        half
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes a dirty session (row, metrics, changed delegations) back.
pub fn flush(
    conn: &Connection,
    session_id: &str,
    state: &mut SessionState,
) -> rusqlite::Result<()> {
    if !state.dirty {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO sessions (session_id, start_time, end_time, last_event_time, status, working_directory, git_branch,
                               launch_method, claude_pid, initial_prompt, final_response, event_count, file_path,
                               completed_seq, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT(session_id) DO UPDATE SET
            start_time = excluded.start_time, end_time = excluded.end_time, last_event_time = excluded.last_event_time,
            status = excluded.status, working_directory = excluded.working_directory, git_branch = excluded.git_branch,
            launch_method = excluded.launch_method, claude_pid = excluded.claude_pid,
            initial_prompt = excluded.initial_prompt, final_response = excluded.final_response,
            event_count = excluded.event_count, file_path = excluded.file_path,
            completed_seq = excluded.completed_seq, metadata = excluded.metadata",
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
    ])?;
    let m = &state.metrics;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO metrics (session_id, total_events, session_duration_ms, event_breakdown, agents_used,
                tools_used, files_modified, total_delegations, successful_delegations, failed_delegations)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
    ])?;
    let mut update = conn.prepare_cached(
        "UPDATE delegations SET agent_type = ?2, instructions = ?3, description = ?4, start_time = ?5, end_time = ?6,
                success = ?7, error = ?8, event_count = ?9, tool_operations = ?10, files_modified = ?11,
                response_preview = ?12, start_ref = ?13, halves = ?14
         WHERE id = ?1",
    )?;
    for d in state.delegations.iter_mut().filter(|d| d.dirty) {
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
        ])?;
        d.dirty = false;
    }
    state.dirty = false;
    Ok(())
}

/// The cache of session states held by the writer.
#[derive(Default)]
pub struct SessionCache {
    pub sessions: HashMap<String, SessionState>,
}

/// Most sessions kept in the cache between batches.
pub const CACHE_LIMIT: usize = 512;

impl SessionCache {
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
            flush(conn, id, state)?;
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
