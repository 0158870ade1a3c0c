//! The few facts the store needs from an event's payload, read once by the
//! normalizer so the writer never has to look inside the JSON again.

use serde_json::{Map, Value};

use super::category::{is_tool_event, DELEGATION_TOOLS, WRITE_TOOLS};

/// Longest text kept in a fact (prompts, responses); the full text stays in `data`.
const MAX_FACT_CHARS: usize = 16 * 1024;

/// Derived facts of one event. Every field is optional: payloads vary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `tool_name` of a tool call.
    pub tool_name: Option<String>,
    /// Claude Code's `tool_use_id`, which pairs a `PreToolUse` with its `PostToolUse`.
    pub tool_use_id: Option<String>,
    /// The path a write tool modified.
    pub file_written: Option<String>,
    /// Sub-agent type of a delegation event.
    pub agent_type: Option<String>,
    /// Instructions given to a sub-agent.
    pub instructions: Option<String>,
    /// Short description of a delegated task.
    pub description: Option<String>,
    /// The text of a user prompt.
    pub prompt: Option<String>,
    /// A response text (final answer or sub-agent result).
    pub response: Option<String>,
    /// The event reports an error.
    pub is_error: bool,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn first_str(objs: &[Option<&Map<String, Value>>], keys: &[&str]) -> Option<String> {
    for obj in objs.iter().flatten() {
        for key in keys {
            if let Some(s) = get_str(obj, key) {
                return Some(clip(s));
            }
        }
    }
    None
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_FACT_CHARS) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn obj<'a>(parent: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a Map<String, Value>> {
    parent?.get(key)?.as_object()
}

/// An agent type that says nothing ("unknown", "") counts as absent.
fn known_agent(s: Option<String>) -> Option<String> {
    s.filter(|a| !a.eq_ignore_ascii_case("unknown"))
}

/// Text of a response in the shapes seen: a string, `{"content": [{"text"}]}`, `{"text"}`.
fn response_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(clip(s)),
        Value::Object(o) => {
            if let Some(content) = o.get("content") {
                if let Some(t) = response_text(content) {
                    return Some(t);
                }
            }
            ["text", "result", "response", "output"]
                .iter()
                .find_map(|k| o.get(*k).and_then(response_text))
        }
        Value::Array(items) => {
            let texts: Vec<String> = items.iter().filter_map(response_text).collect();
            (!texts.is_empty()).then(|| clip(&texts.join("\n")))
        }
        _ => None,
    }
}

fn reports_error(objs: &[Option<&Map<String, Value>>]) -> bool {
    objs.iter().flatten().any(|o| {
        let is_true = |k: &str| o.get(k).and_then(Value::as_bool) == Some(true);
        is_true("is_error_termination")
            || is_true("is_error")
            || is_true("has_error")
            || o.get("success").and_then(Value::as_bool) == Some(false)
            || matches!(get_str(o, "status"), Some("error" | "failed" | "failure"))
            || match o.get("error") {
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Object(m)) => !m.is_empty(),
                Some(Value::Bool(b)) => *b,
                _ => false,
            }
    })
}

impl Facts {
    /// Reads the facts of an event of canonical type `event_type` from its
    /// `data` object and the payload's top level.
    pub fn extract(
        event_type: &str,
        data: Option<&Map<String, Value>>,
        top: Option<&Map<String, Value>>,
    ) -> Facts {
        let both = [data, top];
        let mut facts = Facts {
            tool_name: first_str(&both, &["tool_name"]),
            tool_use_id: first_str(&both, &["tool_use_id"]),
            working_directory: first_str(&both, &["working_directory", "cwd"]),
            git_branch: first_str(&both, &["git_branch"]),
            launch_method: first_str(&both, &["launch_method"]),
            claude_pid: [data, top]
                .iter()
                .flatten()
                .find_map(|o| o.get("claude_pid").and_then(Value::as_i64)),
            ..Facts::default()
        };

        let tool_input = obj(data, "tool_input").or_else(|| obj(top, "tool_input"));
        let tool_params = obj(data, "tool_parameters");
        let delegation = obj(data, "delegation_details");
        let tool = facts.tool_name.as_deref();

        if is_tool_event(event_type) {
            if tool.is_some_and(|t| WRITE_TOOLS.contains(&t)) {
                facts.file_written = first_str(
                    &[tool_input, tool_params, data],
                    &["file_path", "notebook_path", "path"],
                );
            }
            if tool.is_some_and(|t| DELEGATION_TOOLS.contains(&t)) {
                facts.agent_type = known_agent(
                    first_str(&[tool_params, tool_input], &["subagent_type"])
                        .or_else(|| first_str(&[delegation], &["agent_type"]))
                        .or_else(|| first_str(&both, &["agent_type", "subagent_type"])),
                );
                facts.instructions = first_str(&[tool_params, tool_input, delegation], &["prompt"]);
                facts.description =
                    first_str(&[tool_params, tool_input, delegation], &["description"]);
            }
            if event_type == "PostToolUse" {
                let response = [data, top].iter().flatten().find_map(|o| {
                    ["tool_response", "tool_output", "output", "result"]
                        .iter()
                        .find_map(|k| o.get(*k).and_then(response_text))
                });
                facts.response = response;
                let nested = [obj(data, "tool_response"), obj(top, "tool_response")];
                facts.is_error = reports_error(&both) || reports_error(&nested);
            }
        } else {
            match event_type {
                "SubagentStart" | "SubagentStop" => {
                    facts.agent_type =
                        known_agent(first_str(&both, &["agent_type", "subagent_type", "agent"]));
                    facts.instructions = first_str(&both, &["prompt", "instructions"]);
                    facts.description = first_str(&both, &["description", "task_description"]);
                    facts.is_error = reports_error(&both);
                }
                "UserPromptSubmit" => {
                    facts.prompt = first_str(&both, &["prompt", "prompt_text"]);
                }
                _ => {}
            }
            if matches!(event_type, "Stop" | "SubagentStop" | "SessionEnd") {
                facts.response = [data, top].iter().flatten().find_map(|o| {
                    [
                        "response",
                        "final_response",
                        "last_assistant_message",
                        "output",
                        "result",
                    ]
                    .iter()
                    .find_map(|k| o.get(*k).and_then(response_text))
                });
            }
        }
        facts
    }
}
