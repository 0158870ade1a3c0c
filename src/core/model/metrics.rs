//! [`SessionMetrics`]: the figures of a session.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SessionEvent;
use super::{string_list, tokens_field};
use crate::core::event::{ClaudeCodeAccount, Tokens};
use crate::core::session::{count, Metrics};

/// Session statistics, as kept in the `metrics` table.
///
/// The figures of SPEC section 7 (`prompts`, `tool_calls`, `tool_failures`,
/// `api_calls`, `tokens`, `models`, `cost_usd`, `claude_code`) come from the
/// store's projection; [`SessionMetrics::update`] keeps only those of the
/// reference. `tokens` and `cost_usd` are `None` without API calls, `cost_usd`
/// also when a model has no price; `claude_code` is Claude Code's own account
/// (its last `cost-state`), never mixed into ours.
///
/// ```
/// use mpm_aggregate::{SessionEvent, SessionMetrics};
/// let mut m = SessionMetrics::default();
/// m.update(&SessionEvent::new("PreToolUse", serde_json::json!({"tool_name": "Write", "tool_input": {"file_path": "/a"}}), "2026-01-01T00:00:00.000Z", None));
/// assert_eq!(m.tools_used, ["Write"]);
/// assert_eq!(m.files_modified, ["/a"]);
/// assert_eq!(m.event_breakdown["file"], 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionMetrics {
    pub total_events: u64,
    pub session_duration_ms: i64,
    pub event_breakdown: BTreeMap<String, u64>,
    pub agents_used: Vec<String>,
    pub tools_used: Vec<String>,
    pub files_modified: Vec<String>,
    pub total_delegations: u64,
    pub successful_delegations: u64,
    pub failed_delegations: u64,
    /// Prompts a person submitted.
    pub prompts: u64,
    /// Distinct tool calls.
    pub tool_calls: u64,
    pub tool_failures: u64,
    /// Distinct API calls (one `message.id` each).
    pub api_calls: u64,
    /// Tokens of those API calls (`None` without any).
    pub tokens: Option<Tokens>,
    /// The same by model (what the cost is computed from).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens_by_model: BTreeMap<String, Tokens>,
    /// Models in order of first use.
    pub models: Vec<String>,
    /// From the pricing table; `None` without API calls or when a model has no price.
    pub cost_usd: Option<f64>,
    /// Claude Code's own account (absent when the transcripts had none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claude_code: Option<ClaudeCodeAccount>,
}

fn push_distinct(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

impl SessionMetrics {
    /// Counts one more event, by the same rules as the store
    /// ([`crate::core::session::count`]): its category, prompt, tool call,
    /// failure, written file, API call and tokens.
    pub fn update(&mut self, event: &SessionEvent) {
        let mut one = Metrics::default();
        count(&mut one, &event.to_canonical());
        self.total_events += 1;
        for (category, n) in one.breakdown {
            *self.event_breakdown.entry(category).or_insert(0) += n as u64;
        }
        self.prompts += one.prompts as u64;
        self.tool_calls += one.tool_calls as u64;
        self.tool_failures += one.tool_failures as u64;
        self.api_calls += one.api_calls as u64;
        for tool in one.tools_used {
            push_distinct(&mut self.tools_used, &tool);
        }
        for file in one.files_modified {
            push_distinct(&mut self.files_modified, &file);
        }
        for model in one.models {
            push_distinct(&mut self.models, &model);
        }
        if one.api_calls > 0 {
            self.tokens
                .get_or_insert_with(Tokens::default)
                .add(&one.tokens);
            for (model, tokens) in one.tokens_by_model {
                self.tokens_by_model.entry(model).or_default().add(&tokens);
            }
        }
        if one.claude_code.is_some() {
            self.claude_code = one.claude_code;
        }
    }

    /// The metrics as a JSON object.
    pub fn to_dict(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads metrics from a document, ours or the Python original's
    /// (`event_counts` instead of `event_breakdown`). Figures a document does
    /// not have are zero or absent.
    pub fn from_value(v: &Value) -> Self {
        let counts = |key: &str| -> BTreeMap<String, u64> {
            v.get(key)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut event_breakdown = counts("event_breakdown");
        if event_breakdown.is_empty() {
            event_breakdown = counts("event_counts");
        }
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        SessionMetrics {
            total_events: n("total_events"),
            session_duration_ms: v
                .get("session_duration_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            event_breakdown,
            agents_used: string_list(v.get("agents_used")),
            tools_used: string_list(v.get("tools_used")),
            files_modified: string_list(v.get("files_modified")),
            total_delegations: n("total_delegations"),
            successful_delegations: n("successful_delegations"),
            failed_delegations: n("failed_delegations"),
            ..Self::claude_code_figures(v)
        }
    }

    /// Only the figures of SPEC section 7 of a document's metrics (the rest default).
    fn claude_code_figures(v: &Value) -> Self {
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        let tokens_by_model = v
            .get("tokens_by_model")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(model, t)| Some((model.clone(), tokens_field(Some(t))?)))
                    .collect()
            })
            .unwrap_or_default();
        SessionMetrics {
            prompts: n("prompts"),
            tool_calls: n("tool_calls"),
            tool_failures: n("tool_failures"),
            api_calls: n("api_calls"),
            tokens: tokens_field(v.get("tokens")),
            tokens_by_model,
            models: string_list(v.get("models")),
            cost_usd: v.get("cost_usd").and_then(Value::as_f64),
            claude_code: v.get("claude_code").filter(|c| c.is_object()).map(|c| {
                ClaudeCodeAccount {
                    tokens: tokens_field(c.get("tokens")).unwrap_or_default(),
                    cost_usd: c.get("cost_usd").and_then(Value::as_f64),
                    lines_added: c.get("lines_added").and_then(Value::as_i64),
                    lines_removed: c.get("lines_removed").and_then(Value::as_i64),
                }
            }),
            ..SessionMetrics::default()
        }
    }
}
