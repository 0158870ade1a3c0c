//! What of an event full-text search finds (`search`): what people read in
//! a session, not its whole JSON. Prompts, responses and messages, a tool
//! call's input (on its `PreToolUse`) and its output (on its `PostToolUse`),
//! errors, and file paths; string values only (no JSON keys), and not the
//! copies a source repeats elsewhere (a `PostToolUse`'s `tool_input`, a
//! `PostToolBatch`'s calls). Pure: the writer calls it for each event it
//! stores or merges, and the V7 backfill as the SQL function
//! `mpm_search_text`, so there is one definition.

use serde_json::{Map, Value};

/// Longest searchable text of one event, in bytes (cut on a character boundary).
pub const MAX_BYTES: usize = 64 * 1024;

/// Event types whose data holds text worth finding.
const TYPES: [&str; 14] = [
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "SessionEnd",
    "MessageDisplay",
    "Notification",
    "InstructionsLoaded",
    "AssistantResponse",
    "assistant_response",
];

/// claude-mpm's `tool_parameters` summary keys that hold the call's input.
const PARAMETER_KEYS: [&str; 10] = [
    "file_path",
    "notebook_path",
    "command",
    "pattern",
    "path",
    "url",
    "query",
    "prompt",
    "description",
    "subagent_type",
];

/// Keys of a tool's output that are bookkeeping, not output.
const OUTPUT_NOISE: [&str; 4] = ["type", "status", "agentId", "tool_use_id"];

/// Every string in `v`, depth first, members named in `skip` left out.
fn strings<'a>(v: &'a Value, skip: &[&str], out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) if !s.trim().is_empty() => out.push(s),
        Value::Array(items) => items.iter().for_each(|x| strings(x, skip, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if !skip.contains(&k.as_str()) {
                    strings(x, skip, out);
                }
            }
        }
        _ => {}
    }
}

fn text<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The top-level fields read, borrowed from the data's text: the rest of it
/// is scanned, not built (a hook payload's paths, ids and flags).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow)]
    prompt: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    prompt_text: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    last_assistant_message: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    final_response: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    response: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    delta: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    message: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    error: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    error_message: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    file_path: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    tool_input: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    tool_parameters: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    tool_response: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    tool_output: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    output: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    result: Option<&'a serde_json::value::RawValue>,
}

fn value(raw: Option<&serde_json::value::RawValue>) -> Option<Value> {
    serde_json::from_str(raw?.get()).ok()
}

/// A field that is a string with something in it.
fn string(raw: Option<&serde_json::value::RawValue>) -> Option<String> {
    match value(raw)? {
        Value::String(s) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

/// The searchable text of an event of type `event_type` whose data is the JSON
/// text `data`: its parts one per line; empty when it has none (or the data is
/// not a JSON object).
pub fn searchable_text(event_type: &str, data: &str) -> String {
    if !TYPES.contains(&event_type) || !data.trim_start().starts_with('{') {
        return String::new();
    }
    let Ok(f) = serde_json::from_str::<Fields<'_>>(data) else {
        return String::new();
    };
    // Each part in the order of the rules; trees' strings copied out of them.
    let mut parts: Vec<String> = Vec::new();
    let leaves = |tree: Option<Value>, skip: &[&str], parts: &mut Vec<String>| {
        let Some(tree) = tree else { return false };
        let mut found = Vec::new();
        strings(&tree, skip, &mut found);
        parts.extend(found.into_iter().map(str::to_string));
        true
    };
    parts.extend(string(f.prompt).or_else(|| string(f.prompt_text)));
    parts.extend(string(f.last_assistant_message).or_else(|| string(f.final_response)));
    leaves(value(f.response), &[], &mut parts);
    parts.extend(string(f.delta));
    parts.extend(string(f.message));
    match value(f.error) {
        Some(Value::Bool(_) | Value::Null) | None => parts.extend(string(f.error_message)),
        e => {
            leaves(e, &[], &mut parts);
        }
    }
    parts.extend(string(f.file_path));
    match event_type {
        "PreToolUse" => {
            let found = leaves(value(f.tool_input), &[], &mut parts);
            if let (false, Some(Value::Object(p))) = (found, value(f.tool_parameters)) {
                parts.extend(
                    PARAMETER_KEYS
                        .iter()
                        .filter_map(|k| text(&p, k))
                        .map(str::to_string),
                );
            }
        }
        "PostToolUse" => {
            let output = value(f.tool_response).or_else(|| value(f.tool_output));
            if !leaves(output, &OUTPUT_NOISE, &mut parts) {
                parts.extend(string(f.output).or_else(|| string(f.result)));
            }
        }
        _ => {}
    }
    let mut body = parts.join("\n");
    if body.len() > MAX_BYTES {
        let mut cut = MAX_BYTES;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_calls_input_and_output_are_found_on_their_own_events() {
        let pre = r#"{"tool_name":"Bash","tool_input":{"command":"ls /nowhere","description":"List"},"cwd":"/p"}"#;
        assert_eq!(searchable_text("PreToolUse", pre), "ls /nowhere\nList");
        let post = r#"{"tool_input":{"command":"ls /nowhere"},"tool_response":{"stdout":"a.txt","stderr":"","interrupted":false,"type":"text"}}"#;
        assert_eq!(searchable_text("PostToolUse", post), "a.txt");
        let failed = r#"{"tool_input":{"command":"false"},"error":"Exit code 1\nboom"}"#;
        assert_eq!(
            searchable_text("PostToolUseFailure", failed),
            "Exit code 1\nboom"
        );
        // claude-mpm's summary of the input, without its bookkeeping.
        let mpm = r#"{"tool_parameters":{"file_path":"/p/a.rs","param_keys":["file_path"],"input_type":"dict"}}"#;
        assert_eq!(searchable_text("PreToolUse", mpm), "/p/a.rs");
    }

    #[test]
    fn prompts_responses_and_paths_and_nothing_of_meta_events() {
        assert_eq!(
            searchable_text(
                "UserPromptSubmit",
                r#"{"prompt":"Fix it","prompt_preview":"Fix it"}"#
            ),
            "Fix it"
        );
        assert_eq!(
            searchable_text("UserPromptSubmit", r#"{"prompt_text":"From mpm"}"#),
            "From mpm"
        );
        assert_eq!(
            searchable_text("Stop", r#"{"last_assistant_message":"Done.","reason":"x"}"#),
            "Done."
        );
        assert_eq!(
            searchable_text("InstructionsLoaded", r#"{"file_path":"/p/CLAUDE.md"}"#),
            "/p/CLAUDE.md"
        );
        assert_eq!(searchable_text("hook_execution", r#"{"prompt":"x"}"#), "");
        assert_eq!(
            searchable_text(
                "PostToolBatch",
                r#"{"tool_calls":[{"tool_input":{"a":"b"}}]}"#
            ),
            ""
        );
        assert_eq!(searchable_text("Stop", "not json"), "");
        assert_eq!(searchable_text("Stop", "[1]"), "");
    }

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_BYTES);
        let data = serde_json::json!({ "prompt": long }).to_string();
        let body = searchable_text("UserPromptSubmit", &data);
        assert!(body.len() <= MAX_BYTES && body.len() > MAX_BYTES - 2);
        assert!(body.chars().all(|c| c == 'é'));
    }
}
