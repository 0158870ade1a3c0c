//! [`AgentDelegation`]: work handed to a sub-agent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{ser_opt_ts, ser_ts, str_field, string_list, ts_field};

/// An agent delegation within a session.
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
    /// `file_changes`). Returns `None` without an agent type or start time.
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
        })
    }
}
