//! What of an event full-text search finds (`search`): what people read in
//! a session, not its whole JSON. Prompts, responses and messages, a tool
//! call's input (on its `PreToolUse`) and its output (on its `PostToolUse`),
//! errors, and file paths; string values only (no JSON keys), and not the
//! copies a source repeats elsewhere (a `PostToolUse`'s `tool_input`, a
//! `PostToolBatch`'s calls). Pure: the writer calls it for each event it
//! stores or merges, and the V7 backfill as the SQL function
//! `mpm_search_text`, so there is one definition.

use std::borrow::Cow;

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

impl<'a> Fields<'a> {
    /// The member `key` as read (JSON `null` reads as absent).
    fn get(&self, key: &str) -> Option<&'a serde_json::value::RawValue> {
        match key {
            "prompt" => self.prompt,
            "prompt_text" => self.prompt_text,
            "last_assistant_message" => self.last_assistant_message,
            "final_response" => self.final_response,
            "response" => self.response,
            "delta" => self.delta,
            "message" => self.message,
            "error" => self.error,
            "error_message" => self.error_message,
            "file_path" => self.file_path,
            "tool_input" => self.tool_input,
            "tool_parameters" => self.tool_parameters,
            "tool_response" => self.tool_response,
            "tool_output" => self.tool_output,
            "output" => self.output,
            "result" => self.result,
            _ => None,
        }
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
    gather(event_type, |key| value(f.get(key)).map(Cow::Owned))
}

/// [`searchable_text`] of the JSON text of `data`, read from the object the
/// normalizer has in hand instead of from its text (which has no repeated
/// keys, the only thing the text's reading refuses).
pub fn searchable_text_of(event_type: &str, data: &Map<String, Value>) -> String {
    if !TYPES.contains(&event_type) {
        return String::new();
    }
    // `null` reads as absent, as the text's `Option` fields read it.
    gather(event_type, |key| {
        data.get(key).filter(|v| !v.is_null()).map(Cow::Borrowed)
    })
}

/// The rules, over the data's members as `get` reads them.
fn gather<'v>(event_type: &str, get: impl Fn(&str) -> Option<Cow<'v, Value>>) -> String {
    // A member that is a string with something in it.
    let string = |key: &str| match get(key)?.as_ref() {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    };
    // Each part in the order of the rules; trees' strings copied out of them.
    let mut parts: Vec<String> = Vec::new();
    let leaves = |tree: Option<&Value>, skip: &[&str], parts: &mut Vec<String>| {
        let Some(tree) = tree else { return false };
        let mut found = Vec::new();
        strings(tree, skip, &mut found);
        parts.extend(found.into_iter().map(str::to_string));
        true
    };
    parts.extend(string("prompt").or_else(|| string("prompt_text")));
    parts.extend(string("last_assistant_message").or_else(|| string("final_response")));
    leaves(get("response").as_deref(), &[], &mut parts);
    parts.extend(string("delta"));
    parts.extend(string("message"));
    match get("error").as_deref() {
        Some(Value::Bool(_) | Value::Null) | None => parts.extend(string("error_message")),
        e => {
            leaves(e, &[], &mut parts);
        }
    }
    parts.extend(string("file_path"));
    match event_type {
        "PreToolUse" => {
            let found = leaves(get("tool_input").as_deref(), &[], &mut parts);
            if let (false, Some(Value::Object(p))) = (found, get("tool_parameters").as_deref()) {
                parts.extend(
                    PARAMETER_KEYS
                        .iter()
                        .filter_map(|k| text(p, k))
                        .map(str::to_string),
                );
            }
        }
        "PostToolUse" => {
            let output = get("tool_response").or_else(|| get("tool_output"));
            if !leaves(output.as_deref(), &OUTPUT_NOISE, &mut parts) {
                parts.extend(string("output").or_else(|| string("result")));
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
    fn the_object_and_its_text_give_the_same_text() {
        for (kind, data) in [
            (
                "PreToolUse",
                r#"{"tool_input":null,"tool_parameters":{"command":"ls","input_type":"dict"}}"#,
            ),
            (
                "PreToolUse",
                r#"{"tool_input":{"command":"ls","n":[1,"two"]},"file_path":"/a"}"#,
            ),
            (
                "PostToolUse",
                r#"{"tool_response":null,"output":"done","error":null,"error_message":"e"}"#,
            ),
            (
                "PostToolUse",
                r#"{"tool_output":{"type":"x","text":"out"},"error":{"code":"E1"}}"#,
            ),
            (
                "Stop",
                r#"{"final_response":" ","response":{"content":[{"text":"hi"}]},"message":"m"}"#,
            ),
            (
                "UserPromptSubmit",
                r#"{"prompt":"","prompt_text":"second"}"#,
            ),
            ("hook_execution", r#"{"prompt":"x"}"#),
        ] {
            let map: Map<String, Value> = serde_json::from_str(data).unwrap();
            assert_eq!(
                searchable_text_of(kind, &map),
                searchable_text(kind, data),
                "{kind} {data}"
            );
        }
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
