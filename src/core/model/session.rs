//! [`AgentSession`]: a whole Claude session as a document.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{str_field, string_list, ts_field, AgentDelegation, SessionEvent, SessionMetrics};
use crate::core::time::format_timestamp;

/// A complete agent activity session.
///
/// Built from SQL by [`crate::EventAggregator::get_session`], or read from a
/// session file by [`AgentSession::load`] (ours, gzip or not, and the Python
/// original's).
///
/// ```
/// use mpm_aggregate::AgentSession;
/// let start = chrono::Utc::now();
/// let mut s = AgentSession::new("abc123", start);
/// s.add_event("UserPromptSubmit", serde_json::json!({"prompt": "hello"}), None);
/// s.add_delegation("engineer", "build it", start);
/// s.complete_delegation("engineer", start + chrono::Duration::seconds(5), true, Some("done"));
/// assert_eq!(s.event_count(), 1);
/// assert_eq!(s.initial_prompt.as_deref(), Some("hello"));
/// assert_eq!(s.metrics.successful_delegations, 1);
/// assert!(s.is_active());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSession {
    pub session_id: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
    /// Claude Code's version (from its transcripts).
    pub claude_version: Option<String>,
    /// Which sources contributed (`monitor`, `hook`, `transcript`, `import`), first first.
    pub sources: Vec<String>,
    pub initial_prompt: Option<String>,
    pub final_response: Option<String>,
    pub events: Vec<SessionEvent>,
    pub delegations: Vec<AgentDelegation>,
    pub metrics: SessionMetrics,
    /// Other facts: `status`, `file_path`, fields of imported documents.
    pub metadata: Map<String, Value>,
}

impl AgentSession {
    /// An empty, active session.
    pub fn new(session_id: &str, start_time: DateTime<Utc>) -> Self {
        AgentSession {
            session_id: session_id.to_string(),
            start_time,
            end_time: None,
            working_directory: None,
            git_branch: None,
            launch_method: None,
            claude_pid: None,
            claude_version: None,
            sources: Vec::new(),
            initial_prompt: None,
            final_response: None,
            events: Vec::new(),
            delegations: Vec::new(),
            metrics: SessionMetrics::default(),
            metadata: Map::new(),
        }
    }

    /// Time from the start to the end (to now while active).
    pub fn duration(&self) -> chrono::Duration {
        self.end_time.unwrap_or_else(Utc::now) - self.start_time
    }

    /// Whether the session has not been finalized.
    pub fn is_active(&self) -> bool {
        self.end_time.is_none()
    }

    /// Number of events (from the metrics when the events were not loaded).
    pub fn event_count(&self) -> u64 {
        if self.events.is_empty() {
            self.metrics.total_events
        } else {
            self.events.len() as u64
        }
    }

    /// Adds an event (timestamp now when `None`), categorizes it and updates the metrics.
    pub fn add_event(
        &mut self,
        event_type: &str,
        data: Value,
        timestamp: Option<&str>,
    ) -> &SessionEvent {
        let ts = timestamp.map_or_else(|| format_timestamp(&Utc::now()), str::to_string);
        let event = SessionEvent::new(event_type, data, &ts, Some(&self.session_id));
        if self.initial_prompt.is_none() {
            let canonical = event.to_canonical();
            if crate::core::session::is_person_prompt(&canonical) {
                self.initial_prompt = canonical.facts.prompt;
            }
        }
        self.metrics.update(&event);
        self.events.push(event);
        &self.events[self.events.len() - 1]
    }

    /// Starts a delegation.
    pub fn add_delegation(
        &mut self,
        agent_type: &str,
        instructions: &str,
        start_time: DateTime<Utc>,
    ) -> &AgentDelegation {
        self.delegations
            .push(AgentDelegation::new(agent_type, instructions, start_time));
        self.metrics.total_delegations += 1;
        if !self.metrics.agents_used.iter().any(|a| a == agent_type) {
            self.metrics.agents_used.push(agent_type.to_string());
        }
        &self.delegations[self.delegations.len() - 1]
    }

    /// Ends the most recent running delegation of `agent_type` (else the most recent running one).
    pub fn complete_delegation(
        &mut self,
        agent_type: &str,
        end_time: DateTime<Utc>,
        success: bool,
        response: Option<&str>,
    ) {
        let index = self
            .delegations
            .iter()
            .rposition(|d| d.is_running() && d.agent_type == agent_type)
            .or_else(|| {
                self.delegations
                    .iter()
                    .rposition(AgentDelegation::is_running)
            });
        if let Some(i) = index {
            let d = &mut self.delegations[i];
            d.end_time = Some(end_time);
            d.success = success;
            d.response_preview = response.map(|r| r.chars().take(200).collect());
            if success {
                self.metrics.successful_delegations += 1;
            } else {
                self.metrics.failed_delegations += 1;
            }
        }
    }

    /// The session document (SPEC section 5, format `full`).
    pub fn to_dict(&self) -> Value {
        let mut doc = self.summary_header();
        doc["events"] = Value::Array(self.events.iter().map(SessionEvent::to_dict).collect());
        doc
    }

    /// The document without events (format `summary` adds `delegations_summary`).
    pub(crate) fn summary_header(&self) -> Value {
        let mut metadata = self.metadata.clone();
        metadata.insert("claude_pid".into(), json!(self.claude_pid));
        json!({
            "session_id": self.session_id,
            "start_time": format_timestamp(&self.start_time),
            "end_time": self.end_time.as_ref().map(format_timestamp),
            "working_directory": self.working_directory,
            "git_branch": self.git_branch,
            "claude_version": self.claude_version,
            "sources": self.sources,
            "launch_method": self.launch_method,
            "initial_prompt": self.initial_prompt,
            "final_response": self.final_response,
            "delegations": self.delegations.iter().map(AgentDelegation::to_dict).collect::<Vec<_>>(),
            "metrics": self.metrics.to_dict(),
            "metadata": metadata,
        })
    }

    /// Counts of delegations by outcome and by agent.
    pub fn delegations_summary(&self) -> Value {
        let mut by_agent: Map<String, Value> = Map::new();
        for d in &self.delegations {
            let n = by_agent
                .get(&d.agent_type)
                .and_then(Value::as_u64)
                .unwrap_or(0);
            by_agent.insert(d.agent_type.clone(), json!(n + 1));
        }
        let running = self.delegations.iter().filter(|d| d.is_running()).count();
        let succeeded = self
            .delegations
            .iter()
            .filter(|d| !d.is_running() && d.success)
            .count();
        json!({
            "total": self.delegations.len(),
            "successful": succeeded,
            "failed": self.delegations.len() - running - succeeded,
            "running": running,
            "by_agent": by_agent,
        })
    }

    /// Reads a session document value (ours or the Python original's).
    /// The metrics of the reference are recomputed from the events when the
    /// document has any; those of SPEC section 7 (tokens, cost, …) are the
    /// document's.
    pub fn from_value(v: &Value) -> std::result::Result<AgentSession, String> {
        let obj = v.as_object().ok_or("a session document is a JSON object")?;
        let session_id = str_field(v, "session_id")
            .filter(|s| !s.is_empty())
            .ok_or("no session_id")?;
        let events: Vec<SessionEvent> = obj
            .get("events")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|e| event_from_value(e, &session_id))
                    .collect()
            })
            .unwrap_or_default();
        let start_time = ts_field(v, "start_time")
            .or_else(|| {
                events
                    .first()
                    .and_then(|e| crate::core::time::parse_timestamp_str(&e.timestamp))
            })
            .ok_or("no valid start_time")?;
        let delegations: Vec<AgentDelegation> = obj
            .get("delegations")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(AgentDelegation::from_value)
                    .collect()
            })
            .unwrap_or_default();
        let mut metadata = obj
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let claude_pid = obj
            .get("claude_pid")
            .or_else(|| metadata.get("claude_pid"))
            .and_then(Value::as_i64);
        let git_branch = str_field(v, "git_branch").or_else(|| {
            metadata
                .get("git_branch")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        metadata.remove("claude_pid");
        let end_time = ts_field(v, "end_time");

        let mut metrics = if events.is_empty() {
            obj.get("metrics")
                .map(SessionMetrics::from_value)
                .unwrap_or_default()
        } else {
            // Counted from the events by the store's rules; the cost, which
            // needs the price table, is the document's.
            let mut m = SessionMetrics::default();
            events.iter().for_each(|e| m.update(e));
            m.cost_usd = obj
                .get("metrics")
                .and_then(|v| v.get("cost_usd"))
                .and_then(Value::as_f64);
            m
        };
        if !delegations.is_empty() {
            metrics.agents_used.clear();
            for d in &delegations {
                if !metrics.agents_used.contains(&d.agent_type) {
                    metrics.agents_used.push(d.agent_type.clone());
                }
            }
            metrics.total_delegations = delegations.len() as u64;
            metrics.successful_delegations = delegations
                .iter()
                .filter(|d| !d.is_running() && d.success)
                .count() as u64;
            metrics.failed_delegations = delegations
                .iter()
                .filter(|d| !d.is_running() && !d.success)
                .count() as u64;
        }
        let last = events
            .iter()
            .filter_map(|e| crate::core::time::parse_timestamp_str(&e.timestamp))
            .max();
        metrics.session_duration_ms = (end_time.or(last).unwrap_or(start_time) - start_time)
            .num_milliseconds()
            .max(0);

        Ok(AgentSession {
            session_id,
            start_time,
            end_time,
            working_directory: str_field(v, "working_directory"),
            git_branch,
            launch_method: str_field(v, "launch_method"),
            claude_pid,
            claude_version: str_field(v, "claude_version"),
            sources: string_list(obj.get("sources")),
            initial_prompt: str_field(v, "initial_prompt"),
            final_response: str_field(v, "final_response"),
            events,
            delegations,
            metrics,
            metadata,
        })
    }
}

fn event_from_value(v: &Value, session_id: &str) -> Option<SessionEvent> {
    let event_type = str_field(v, "event_type")?;
    let data = v.get("data").cloned().unwrap_or(Value::Object(Map::new()));
    let timestamp = ts_field(v, "timestamp").map(|t| format_timestamp(&t))?;
    let mut event = SessionEvent::new(&event_type, data, &timestamp, Some(session_id));
    if let Some(c) = v
        .get("category")
        .and_then(Value::as_str)
        .and_then(|c| c.parse().ok())
    {
        event.category = c;
    }
    event.session_id = str_field(v, "session_id").or(Some(session_id.to_string()));
    event.correlation_id = str_field(v, "correlation_id");
    Some(event)
}
