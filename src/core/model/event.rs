//! [`SessionEvent`]: one event of a session as documents show it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::time::parse_timestamp_str;
use crate::core::{category_for, Category, Facts, HookEvent, NormalizedEvent};

/// A single event within a session.
///
/// ```
/// use mpm_aggregate::SessionEvent;
/// let e = SessionEvent::new("PreToolUse", serde_json::json!({"tool_name": "Edit"}), "2026-01-01T00:00:00.000Z", Some("s1"));
/// assert_eq!(e.category.as_str(), "file");
/// assert_eq!(e.to_dict()["event_type"], "PreToolUse");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// ISO-8601 UTC with milliseconds and `Z`.
    pub timestamp: String,
    pub event_type: String,
    pub category: Category,
    pub data: Value,
    pub session_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl SessionEvent {
    /// An event categorized by the rules of SPEC section 4.
    pub fn new(event_type: &str, data: Value, timestamp: &str, session_id: Option<&str>) -> Self {
        let tool = data.get("tool_name").and_then(Value::as_str);
        SessionEvent {
            timestamp: timestamp.to_string(),
            event_type: event_type.to_string(),
            category: category_for(event_type, tool),
            correlation_id: data
                .get("correlation_id")
                .and_then(Value::as_str)
                .map(str::to_string),
            data,
            session_id: session_id.map(str::to_string),
        }
    }

    /// The tool this event is about, if any.
    pub fn tool_name(&self) -> Option<&str> {
        self.data.get("tool_name").and_then(Value::as_str)
    }

    /// The event as the core's rules read it: its facts read from its data.
    pub fn to_canonical(&self) -> NormalizedEvent {
        let facts = Facts::extract(&self.event_type, self.data.as_object(), None);
        let kind = HookEvent::parse(&self.event_type);
        let timestamp = parse_timestamp_str(&self.timestamp).unwrap_or_default();
        NormalizedEvent {
            session_id: self.session_id.clone(),
            timestamp,
            identity: NormalizedEvent::identity_of(&kind, &facts),
            kind,
            category: self.category,
            socket_event: String::new(),
            raw_type: None,
            subtype: None,
            source: None,
            correlation_id: self.correlation_id.clone(),
            data: String::new(),
            envelope: None,
            origin: crate::core::Source::Import,
            facts,
            dedup_key: [0; 24],
            received_at: timestamp,
            time_known: true,
            search_text: None,
        }
    }

    /// The event as a JSON object with the keys of the reference.
    pub fn to_dict(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
