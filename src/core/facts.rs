//! The facts of an event read from its payload, once: what every rule of the
//! core needs (tool, ids, prompt, response, tokens, …), so that no later step
//! looks inside the JSON again. Pure: the normalizer, the store's replays and
//! the document types all read events through this one reader.

use serde_json::{Map, Value};

use super::category::{is_tool_event, DELEGATION_TOOLS, WRITE_TOOLS};
use super::event::{ClaudeCodeAccount, Facts, Tokens};

/// Longest text kept in a fact (prompts, responses); the full text stays in `data`.
const MAX_FACT_CHARS: usize = 16 * 1024;

/// A string with something in it, trimmed.
fn nonempty(value: &Value) -> Option<&str> {
    value.as_str().map(str::trim).filter(|s| !s.is_empty())
}

fn get_str<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(nonempty)
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
    // No more bytes than the limit in characters: nothing to cut, no need to count.
    if s.len() <= MAX_FACT_CHARS {
        return s.to_string();
    }
    match s.char_indices().nth(MAX_FACT_CHARS) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The members every event's facts read at the data's and the payload's top
/// level, found in one pass over an object (a lookup per member and object
/// was most of the facts' cost).
#[derive(Default, Clone, Copy)]
struct Common<'a> {
    tool_name: Option<&'a Value>,
    tool_use_id: Option<&'a Value>,
    working_directory: Option<&'a Value>,
    cwd: Option<&'a Value>,
    git_branch: Option<&'a Value>,
    launch_method: Option<&'a Value>,
    claude_pid: Option<&'a Value>,
    agent_id: Option<&'a Value>,
    prompt_id: Option<&'a Value>,
    claude_version: Option<&'a Value>,
    parent_agent_id: Option<&'a Value>,
}

impl<'a> Common<'a> {
    fn of(obj: Option<&'a Map<String, Value>>) -> Self {
        let mut c = Common::default();
        for (key, value) in obj.into_iter().flatten() {
            let slot = match key.as_str() {
                "tool_name" => &mut c.tool_name,
                "tool_use_id" => &mut c.tool_use_id,
                "working_directory" => &mut c.working_directory,
                "cwd" => &mut c.cwd,
                "git_branch" => &mut c.git_branch,
                "launch_method" => &mut c.launch_method,
                "claude_pid" => &mut c.claude_pid,
                "agent_id" => &mut c.agent_id,
                "prompt_id" => &mut c.prompt_id,
                "claude_version" => &mut c.claude_version,
                "parent_agent_id" => &mut c.parent_agent_id,
                _ => continue,
            };
            *slot = Some(value);
        }
        c
    }
}

/// [`first_str`] over members already found: the first that is a string with
/// something in it, clipped.
fn first_of(members: &[Option<&Value>]) -> Option<String> {
    members.iter().flatten().find_map(|v| nonempty(v)).map(clip)
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

fn int(obj: Option<&Map<String, Value>>, key: &str) -> i64 {
    obj.and_then(|o| o.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Claude Code's own account from a `cost-state` line: tokens summed over its models.
fn claude_code_account(line: &Map<String, Value>) -> ClaudeCodeAccount {
    let mut tokens = Tokens::default();
    if let Some(models) = obj(Some(line), "modelUsage") {
        for usage in models.values().filter_map(Value::as_object) {
            let u = Some(usage);
            tokens.add(&Tokens {
                input: int(u, "inputTokens"),
                output: int(u, "outputTokens"),
                cache_creation: int(u, "cacheCreationInputTokens"),
                cache_read: int(u, "cacheReadInputTokens"),
                cache_creation_1h: int(u, "cacheCreationEphemeral1hInputTokens"),
            });
        }
    }
    ClaudeCodeAccount {
        tokens,
        cost_usd: line.get("totalCostUSD").and_then(Value::as_f64),
        lines_added: line.get("totalLinesAdded").and_then(Value::as_i64),
        lines_removed: line.get("totalLinesRemoved").and_then(Value::as_i64),
    }
}

/// A value as canonical JSON text: object keys sorted, so that two sources
/// that wrote the same value in another key order give the same text.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&o[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The part of a tool call's input that every source forwards: the raw
/// `tool_input` of Claude Code (hooks, transcripts) and the summary claude-mpm's
/// full handler sends as `tool_parameters` (its `extract_tool_parameters`:
/// the file path, the command cut to 100 characters, the pattern and path,
/// the URL, the delegation's agent type and description, the whole todo list).
/// `None` for tools whose summary keeps nothing of the input (Agent, ToolSearch,
/// any other): their calls are told apart by name and order only.
fn salient_input(tool: &str, inputs: &[Option<&Map<String, Value>>]) -> Option<String> {
    let field = |key: &str| inputs.iter().flatten().find_map(|o| o.get(key));
    let text = |key: &str| field(key).and_then(Value::as_str).unwrap_or("").to_string();
    Some(match tool {
        "Write" | "Edit" | "MultiEdit" | "Read" | "NotebookRead" | "NotebookEdit" => {
            let path = text("file_path");
            if path.is_empty() {
                text("notebook_path")
            } else {
                path
            }
        }
        "Bash" => text("command").chars().take(100).collect(),
        "Grep" | "Glob" => format!("{}\u{0}{}", text("pattern"), text("path")),
        "WebFetch" => text("url"),
        "Task" => {
            let agent = text("subagent_type");
            let agent = if agent == "unknown" {
                String::new()
            } else {
                agent
            };
            format!("{agent}\u{0}{}", text("description"))
        }
        "TodoWrite" => {
            let mut out = String::new();
            canonical(field("todos").unwrap_or(&Value::Null), &mut out);
            out
        }
        _ => return None,
    })
}

fn hash_hex(text: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// [`Facts::content_key`] of an event.
fn content_key(
    event_type: &str,
    facts: &Facts,
    tool_input: Option<&Map<String, Value>>,
    tool_params: Option<&Map<String, Value>>,
) -> Option<String> {
    match event_type {
        "PreToolUse" => {
            let tool = facts.tool_name.as_deref()?;
            Some(match salient_input(tool, &[tool_input, tool_params]) {
                Some(input) => format!("pre:{tool}:{}", hash_hex(&input)),
                None => format!("pre:{tool}"),
            })
        }
        "PostToolUse" => Some(format!("end:{}", facts.tool_name.as_deref()?)),
        "PostToolUseFailure" => Some(format!("fail:{}", facts.tool_name.as_deref()?)),
        "UserPromptSubmit" => Some(format!("prompt:{}", hash_hex(facts.prompt.as_deref()?))),
        "Stop" => Some("stop".into()),
        _ => None,
    }
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
        let (d, t) = (Common::of(data), Common::of(top));
        let mut facts = Facts {
            tool_name: first_of(&[d.tool_name, t.tool_name]),
            tool_use_id: first_of(&[d.tool_use_id, t.tool_use_id]),
            working_directory: first_of(&[d.working_directory, d.cwd, t.working_directory, t.cwd]),
            git_branch: first_of(&[d.git_branch, t.git_branch]),
            launch_method: first_of(&[d.launch_method, t.launch_method]),
            claude_pid: [d.claude_pid, t.claude_pid]
                .iter()
                .flatten()
                .find_map(|v| v.as_i64()),
            agent_id: first_of(&[d.agent_id, t.agent_id]),
            prompt_id: first_of(&[d.prompt_id, t.prompt_id]),
            claude_version: first_of(&[d.claude_version, t.claude_version]),
            parent_agent_id: first_of(&[d.parent_agent_id, t.parent_agent_id]),
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
            if event_type == "PostToolUseFailure" {
                facts.is_error = true;
                facts.error =
                    first_str(&both, &["error"]).or_else(|| Some("tool call failed".into()));
            }
            // What a delegation's call tells of its sub-agent: who, how it was
            // asked, launched in the background or not, its answer and outcome.
            // (Other tools' outputs are left in the data: nothing counts them.)
            if tool.is_some_and(|t| DELEGATION_TOOLS.contains(&t)) {
                facts.agent_type = known_agent(
                    first_str(&[tool_params, tool_input], &["subagent_type"])
                        .or_else(|| first_str(&[delegation], &["agent_type"]))
                        .or_else(|| first_str(&both, &["agent_type", "subagent_type"])),
                );
                facts.instructions = first_str(&[tool_params, tool_input, delegation], &["prompt"]);
                facts.description =
                    first_str(&[tool_params, tool_input, delegation], &["description"]);
                facts.background = [tool_input, tool_params]
                    .iter()
                    .flatten()
                    .any(|o| o.get("run_in_background").and_then(Value::as_bool) == Some(true));
                let response = obj(data, "tool_response").or_else(|| obj(top, "tool_response"));
                facts.launched_agent_id = first_str(&[response], &["agentId", "agent_id"]);
                if response
                    .and_then(|r| r.get("status"))
                    .and_then(Value::as_str)
                    == Some("async_launched")
                {
                    facts.background = true;
                }
                if event_type == "PostToolUse" {
                    facts.response = [data, top].iter().flatten().find_map(|o| {
                        ["tool_response", "tool_output", "output", "result"]
                            .iter()
                            .find_map(|k| o.get(*k).and_then(response_text))
                    });
                    let nested = [response, obj(top, "tool_response")];
                    facts.is_error = reports_error(&both) || reports_error(&nested);
                }
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
                    facts.not_a_person = [data, top]
                        .iter()
                        .flatten()
                        .any(|o| o.get("not_a_person").and_then(Value::as_bool) == Some(true))
                        || facts
                            .prompt
                            .as_deref()
                            .is_some_and(|p| p.trim_start().starts_with("<task-notification>"));
                }
                "StopFailure" => {
                    facts.is_error = true;
                    facts.error = first_str(&both, &["error", "reason", "message"])
                        .or_else(|| Some("the sub-agent stopped on an error".into()));
                }
                "ApiCall" => {
                    facts.message_id = first_str(&both, &["message_id"]);
                    facts.model = first_str(&both, &["model"]);
                    let usage = obj(data, "usage").or_else(|| obj(top, "usage"));
                    facts.tokens = usage.map(Tokens::from_usage_map).unwrap_or_default();
                }
                "CostState" => {
                    let line = obj(data, "cost_state").or_else(|| obj(top, "cost_state"));
                    facts.claude_code = line.map(claude_code_account);
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
        // Inside a sub-agent every hook names its type beside its id: the
        // agent the event belongs to, known even before its start arrives.
        if facts.agent_type.is_none() && facts.agent_id.is_some() {
            facts.agent_type = known_agent(first_str(&both, &["agent_type"]));
        }
        facts.content_key = content_key(event_type, &facts, tool_input, tool_params);
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass reading of the common members against a lookup per member
    /// (as `first_str` reads them), on every object of the fixtures' lines.
    #[test]
    fn one_pass_finds_what_a_lookup_per_member_finds() {
        // The fixtures' lines, built in (the core reads no files).
        macro_rules! fixture {
            ($path:literal) => {
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path))
            };
        }
        let texts = [
            fixture!("../shared/fixtures/claude-code-hooks.jsonl"),
            fixture!("../shared/fixtures/claude-mpm-monitor-capture.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-fast/hooks.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-fast/monitor-capture.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-fast/stream-1.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-fast/stream-2.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-full/hooks.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-full/monitor-capture.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-full/stream-1.jsonl"),
            fixture!("../shared/fixtures/claude-code-2.1/a-mpm-full/stream-2.jsonl"),
            fixture!("tests/transcript-fixtures/t-background-error-compact/hooks.jsonl"),
        ];
        let mut objects: Vec<Map<String, Value>> = Vec::new();
        for line in texts.iter().flat_map(|t| t.lines()) {
            // Every object at the first three levels of a line.
            let mut level: Vec<Value> = serde_json::from_str(line).into_iter().collect();
            for _ in 0..3 {
                let mut next = Vec::new();
                for v in level {
                    if let Value::Object(o) = v {
                        next.extend(o.values().cloned());
                        objects.push(o);
                    }
                }
                level = next;
            }
        }
        assert!(objects.len() > 1500, "{}", objects.len());
        let keys: [&[&str]; 10] = [
            &["tool_name"],
            &["tool_use_id"],
            &["working_directory", "cwd"],
            &["git_branch"],
            &["launch_method"],
            &["agent_id"],
            &["prompt_id"],
            &["claude_version"],
            &["parent_agent_id"],
            &["claude_pid"],
        ];
        let mut found = 0;
        for pair in objects.windows(2) {
            let (data, top) = (Some(&pair[0]), Some(&pair[1]));
            let (d, t) = (Common::of(data), Common::of(top));
            let one_pass = [
                first_of(&[d.tool_name, t.tool_name]),
                first_of(&[d.tool_use_id, t.tool_use_id]),
                first_of(&[d.working_directory, d.cwd, t.working_directory, t.cwd]),
                first_of(&[d.git_branch, t.git_branch]),
                first_of(&[d.launch_method, t.launch_method]),
                first_of(&[d.agent_id, t.agent_id]),
                first_of(&[d.prompt_id, t.prompt_id]),
                first_of(&[d.claude_version, t.claude_version]),
                first_of(&[d.parent_agent_id, t.parent_agent_id]),
                first_of(&[d.claude_pid, t.claude_pid]),
            ];
            for (keys, got) in keys.iter().zip(one_pass) {
                assert_eq!(got, first_str(&[data, top], keys), "{keys:?}");
                found += usize::from(got.is_some());
            }
        }
        assert!(found > 1000, "{found}");
    }
}
