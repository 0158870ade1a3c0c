//! [`AgentDelegation`]: work handed to a sub-agent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{ser_opt_ts, ser_ts, str_field, string_list, tokens_field, ts_field};
use crate::core::event::Tokens;

/// An agent delegation within a session.
///
/// With Claude Code 2.1 sources (SPEC section 7) it is a sub-agent: its
/// `agent_id`, the parent's `Agent`/`Task` call (`tool_use_id`), its own tool
/// calls, failures, API calls, tokens, first model and cost (`None` without
/// API calls or for a model with no price). `background` is written only when
/// true, `parent_agent_id` only when known.
///
/// ```
/// use mpm_aggregate::AgentDelegation;
/// let d = AgentDelegation::new("engineer", "Implement JWT", chrono::Utc::now());
/// assert!(d.is_running());
/// assert_eq!(d.to_dict()["agent_type"], "engineer");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentDelegation {
    pub agent_type: String,
    #[serde(serialize_with = "ser_ts")]
    pub start_time: DateTime<Utc>,
    #[serde(serialize_with = "ser_opt_ts")]
    pub end_time: Option<DateTime<Utc>>,
    pub instructions: String,
    pub description: Option<String>,
    pub event_count: u64,
    pub tool_operations: Vec<String>,
    pub files_modified: Vec<String>,
    pub success: bool,
    pub response_preview: Option<String>,
    pub error: Option<String>,
    /// The sub-agent's `agent_id`.
    pub agent_id: Option<String>,
    /// The parent's `Agent`/`Task` call that started it.
    pub tool_use_id: Option<String>,
    /// The sub-agent that started this one (nested sub-agents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_agent_id: Option<String>,
    /// Launched in the background.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub background: bool,
    pub tool_calls: u64,
    pub tool_failures: u64,
    pub api_calls: u64,
    pub tokens: Option<Tokens>,
    pub model: Option<String>,
    pub cost_usd: Option<f64>,
}

impl AgentDelegation {
    /// A running delegation.
    pub fn new(agent_type: &str, instructions: &str, start_time: DateTime<Utc>) -> Self {
        AgentDelegation {
            agent_type: agent_type.to_string(),
            start_time,
            end_time: None,
            instructions: instructions.to_string(),
            description: None,
            event_count: 0,
            tool_operations: Vec::new(),
            files_modified: Vec::new(),
            success: false,
            response_preview: None,
            error: None,
            agent_id: None,
            tool_use_id: None,
            parent_agent_id: None,
            background: false,
            tool_calls: 0,
            tool_failures: 0,
            api_calls: 0,
            tokens: None,
            model: None,
            cost_usd: None,
        }
    }

    /// Whether it has not ended yet.
    pub fn is_running(&self) -> bool {
        self.end_time.is_none()
    }

    /// Time from start to end (to now while running).
    pub fn duration(&self) -> chrono::Duration {
        self.end_time.unwrap_or_else(Utc::now) - self.start_time
    }

    /// The delegation as a JSON object (with `duration_ms` once ended).
    pub fn to_dict(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(end), Value::Object(map)) = (self.end_time, &mut v) {
            map.insert(
                "duration_ms".into(),
                Value::from((end - self.start_time).num_milliseconds()),
            );
        }
        v
    }

    /// Reads a delegation from a document: ours, or the Python original's
    /// (`task_description`, `prompt`, `response`, `tool_operations` as objects,
    /// `file_changes`). Returns `None` without an agent type or start time;
    /// figures it does not have are zero or absent.
    pub fn from_value(v: &Value) -> Option<Self> {
        let agent_type = str_field(v, "agent_type")?;
        let start_time = ts_field(v, "start_time")?;
        let tool_operations = match v.get("tool_operations").and_then(Value::as_array) {
            Some(items) => {
                let mut names: Vec<String> = Vec::new();
                for item in items {
                    let name = item
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| str_field(item, "tool_name"));
                    if let Some(name) = name {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                names
            }
            None => Vec::new(),
        };
        let mut files_modified = string_list(v.get("files_modified"));
        if files_modified.is_empty() {
            files_modified = string_list(v.get("file_changes"));
        }
        let response = str_field(v, "response_preview").or_else(|| str_field(v, "response"));
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        Some(AgentDelegation {
            agent_type,
            start_time,
            end_time: ts_field(v, "end_time"),
            instructions: str_field(v, "instructions")
                .or_else(|| str_field(v, "prompt"))
                .unwrap_or_default(),
            description: str_field(v, "description").or_else(|| str_field(v, "task_description")),
            event_count: v.get("event_count").and_then(Value::as_u64).unwrap_or(0),
            tool_operations,
            files_modified,
            success: v.get("success").and_then(Value::as_bool).unwrap_or(false),
            response_preview: response.map(|r| r.chars().take(200).collect()),
            error: str_field(v, "error"),
            agent_id: str_field(v, "agent_id"),
            tool_use_id: str_field(v, "tool_use_id"),
            parent_agent_id: str_field(v, "parent_agent_id"),
            background: v
                .get("background")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            tool_calls: n("tool_calls"),
            tool_failures: n("tool_failures"),
            api_calls: n("api_calls"),
            tokens: tokens_field(v.get("tokens")),
            model: str_field(v, "model"),
            cost_usd: v.get("cost_usd").and_then(Value::as_f64),
        })
    }
}
