//! The normalizer: one Socket.IO event (name + first argument) in, canonical
//! events out. Accepts every payload shape of SPEC section 3: wrapped, the
//! `mpm_event` normalized form, legacy `{"type": "PreToolUse"}`, raw Claude Code
//! hook payloads, our own exported events, and `history` batches.
//!
//! It never panics and never drops silently: each input yields events, a
//! control marker, or a rejection carrying its reason.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::core::time::parse_timestamp;
use crate::core::{category_for, Facts, HookEvent, NormalizedEvent, Source};

/// Longest session id accepted. Real ids are 36-character UUIDs.
pub const MAX_SESSION_ID_LEN: usize = 256;
/// How much of a rejected payload is kept in the rejected table.
const MAX_REJECTED_PAYLOAD: usize = 64 * 1024;

/// Limits applied while normalizing, and where the input comes from.
#[derive(Debug, Clone, Copy)]
pub struct NormalizeOptions {
    /// Largest accepted event (serialized `data` plus envelope), in bytes.
    pub max_event_bytes: usize,
    /// The source its events are said to come from (a payload that says it
    /// is a transcript's is one whatever the caller).
    pub origin: Source,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            max_event_bytes: 16 * 1024 * 1024,
            origin: Source::Monitor,
        }
    }
}

/// How the duplicate key of an event that carries no timestamp of its own is
/// made unique. Events with a timestamp are identified by their content alone,
/// so a history replay or a second import of them is recognized; events without
/// one (raw hook payloads) could legitimately repeat byte for byte.
pub enum DedupSalt<'a> {
    /// Live: the arrival time tells two identical payloads apart.
    ReceivedAt,
    /// Import: the n-th identical payload of a file is the n-th event, so
    /// importing the same file twice still finds every one a duplicate.
    Occurrences(&'a mut HashMap<u128, u32>),
}

/// Input that could not be stored as an event, with the reason.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub socket_event: Option<String>,
    pub reason: String,
    /// The payload as text, cut to 64 KiB.
    pub payload: String,
    /// The payload's full size in bytes.
    pub payload_bytes: usize,
    pub received_at: DateTime<Utc>,
}

impl Rejection {
    /// A rejection of raw text (an import line that is not JSON, say).
    pub fn of_text(
        socket_event: Option<&str>,
        reason: impl Into<String>,
        text: &str,
        received_at: DateTime<Utc>,
    ) -> Self {
        Rejection {
            socket_event: socket_event.map(str::to_string),
            reason: reason.into(),
            payload: truncate(text, MAX_REJECTED_PAYLOAD).to_string(),
            payload_bytes: text.len(),
            received_at,
        }
    }
}

/// What one input became.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An event to store.
    Event(Box<NormalizedEvent>),
    /// Dashboard, heartbeat and connection traffic: counted, not stored.
    Control(String),
    /// Input that cannot be stored, with the reason.
    Rejected(Rejection),
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether a Socket.IO event name is control traffic.
fn is_control_name(name: &str) -> bool {
    name.starts_with("dashboard:")
        || matches!(
            name,
            "heartbeat"
                | "connect"
                | "disconnect"
                | "connect_error"
                | "connection"
                | "ping"
                | "pong"
                | "reconnect"
        )
}

/// Splits a capture line `{"event": name, "data": payload}` into its parts.
/// Any other object (a bare payload) is returned whole with no name.
pub fn split_capture_line(value: Value) -> (Option<String>, Value) {
    const CAPTURE_KEYS: [&str; 5] = ["event", "data", "namespace", "received_at", "args"];
    if let Value::Object(map) = &value {
        let is_capture = map.get("event").is_some_and(Value::is_string)
            && map.contains_key("data")
            && map.keys().all(|k| CAPTURE_KEYS.contains(&k.as_str()));
        if is_capture {
            if let Value::Object(mut map) = value {
                let name = match map.remove("event") {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                let data = map.remove("data").unwrap_or(Value::Null);
                return (name, data);
            }
            unreachable!("checked to be an object above");
        }
    }
    (None, value)
}

/// Maps a monitor subtype to the Claude Code hook name.
fn hook_name_for_subtype(subtype: &str) -> Option<&'static str> {
    Some(match subtype {
        "pre_tool" => "PreToolUse",
        "post_tool" => "PostToolUse",
        "user_prompt" => "UserPromptSubmit",
        "stop" => "Stop",
        "subagent_start" => "SubagentStart",
        "subagent_stop" => "SubagentStop",
        "session_start" => "SessionStart",
        "session_end" => "SessionEnd",
        "notification" => "Notification",
        "pre_compact" => "PreCompact",
        _ => return None,
    })
}

fn str_field(obj: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    obj?.get(key)?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A session id candidate: non-empty strings and numbers; anything else is skipped.
fn id_candidate(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Session id lookup order of SPEC section 3.
fn find_session_id(top: &Map<String, Value>, data: Option<&Map<String, Value>>) -> Option<String> {
    id_candidate(top.get("session_id"))
        .or_else(|| id_candidate(top.get("sessionId")))
        .or_else(|| {
            let data = data?;
            id_candidate(data.get("session_id"))
                .or_else(|| id_candidate(data.get("sessionId")))
                .or_else(|| id_candidate(data.get("session")))
                .or_else(|| {
                    ["hook_data", "event_data", "context"]
                        .iter()
                        .find_map(|k| id_candidate(data.get(*k)?.as_object()?.get("session_id")))
                })
        })
}

fn check_session_id(id: &str) -> Result<(), String> {
    if id.chars().count() > MAX_SESSION_ID_LEN {
        return Err(format!(
            "session id is {} characters long (limit {MAX_SESSION_ID_LEN})",
            id.chars().count()
        ));
    }
    if id.chars().any(char::is_control) {
        return Err("session id contains control characters".into());
    }
    Ok(())
}

/// The text serde_json writes for `map` with the members `skip` names taken
/// out (same order, same escapes), without taking them out.
fn object_text_without(map: &Map<String, Value>, skip: impl Fn(&str, &Value) -> bool) -> String {
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    for (key, value) in map {
        if skip(key, value) {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        // Writing to a Vec fails only on a value serde_json cannot write,
        // which a parsed Value never holds.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// Normalizes one Socket.IO event. `history` events expand into their elements.
pub fn normalize(
    socket_event: &str,
    payload: Value,
    received_at: DateTime<Utc>,
    opts: &NormalizeOptions,
    salt: &mut DedupSalt<'_>,
) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(1);
    normalize_into(socket_event, payload, received_at, opts, salt, 0, &mut out);
    out
}

fn normalize_into(
    socket_event: &str,
    payload: Value,
    received_at: DateTime<Utc>,
    opts: &NormalizeOptions,
    salt: &mut DedupSalt<'_>,
    depth: u8,
    out: &mut Vec<Outcome>,
) {
    if is_control_name(socket_event) {
        out.push(Outcome::Control(socket_event.to_string()));
        return;
    }
    if socket_event == "history" && depth == 0 {
        let items = match payload {
            Value::Array(items) => Some(items),
            Value::Object(mut map) => match map.remove("events") {
                Some(Value::Array(items)) => Some(items),
                other => {
                    if let Some(v) = other {
                        map.insert("events".into(), v);
                    }
                    out.push(reject(
                        socket_event,
                        "history payload has no 'events' array",
                        &Value::Object(map),
                        received_at,
                    ));
                    None
                }
            },
            other => {
                out.push(reject(
                    socket_event,
                    "history payload is not an object",
                    &other,
                    received_at,
                ));
                None
            }
        };
        for item in items.into_iter().flatten() {
            let (name, inner) = split_capture_line(item);
            let name = name.unwrap_or_else(|| "history".to_string());
            normalize_into(&name, inner, received_at, opts, salt, depth + 1, out);
        }
        return;
    }
    out.push(normalize_one(
        socket_event,
        payload,
        received_at,
        opts,
        salt,
    ));
}

fn reject(
    socket_event: &str,
    reason: impl Into<String>,
    payload: &Value,
    received_at: DateTime<Utc>,
) -> Outcome {
    let text = payload.to_string();
    Outcome::Rejected(Rejection::of_text(
        Some(socket_event),
        reason,
        &text,
        received_at,
    ))
}

fn normalize_one(
    socket_event: &str,
    payload: Value,
    received_at: DateTime<Utc>,
    opts: &NormalizeOptions,
    salt: &mut DedupSalt<'_>,
) -> Outcome {
    let Value::Object(top) = payload else {
        let kind = match &payload {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        return reject(
            socket_event,
            format!("payload is {kind}, not a JSON object"),
            &payload,
            received_at,
        );
    };

    let raw_type = str_field(Some(&top), "type");
    let subtype = str_field(Some(&top), "subtype");
    if [raw_type.as_deref(), subtype.as_deref()].contains(&Some("heartbeat")) {
        return Outcome::Control(socket_event.to_string());
    }

    // The data object: the inner `data` of wrapped shapes, else the payload
    // itself. Read in place: no reader of the top level looks at `data`, and
    // the envelope is written without it (no map taken apart and rebuilt).
    let inner = top.get("data").and_then(Value::as_object);
    let data_obj: &Map<String, Value> = inner.unwrap_or(&top);
    let top_ref = inner.map(|_| &top);

    let session_id = match inner {
        Some(d) => find_session_id(&top, Some(d)),
        None => find_session_id(&top, None).or_else(|| {
            // Shapes without a data object keep the lookup's nested forms at the top.
            ["hook_data", "event_data", "context"]
                .iter()
                .find_map(|k| id_candidate(top.get(*k)?.as_object()?.get("session_id")))
        }),
    };
    if let Some(id) = &session_id {
        if let Err(reason) = check_session_id(id) {
            return reject(
                socket_event,
                format!("invalid session id: {reason}"),
                &Value::Object(top),
                received_at,
            );
        }
    }

    let event_type = str_field(Some(data_obj), "hook_event_name")
        .or_else(|| top_ref.and_then(|t| str_field(Some(t), "hook_event_name")))
        .or_else(|| str_field(Some(&top), "event_type"))
        .or_else(|| {
            subtype
                .as_deref()
                .map(|s| hook_name_for_subtype(s).map_or_else(|| s.to_string(), str::to_string))
        })
        .or_else(|| raw_type.clone())
        .or_else(|| {
            Some(socket_event.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".to_string());

    let mut facts = Facts::extract(&event_type, Some(data_obj), top_ref);
    // claude-mpm's full handler makes up `<agent_type>_<session_id>` as an
    // agent id: the same for two sub-agents of one type, so not an identity.
    if let (Some(agent), Some(sid)) = (&facts.agent_id, &session_id) {
        if agent.ends_with(sid.as_str()) {
            facts.agent_id = None;
        }
    }
    // Our own exported events (and the Python original's) carry their category.
    let category = top
        .get("category")
        .and_then(Value::as_str)
        .filter(|_| top.contains_key("event_type"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| category_for(&event_type, facts.tool_name.as_deref()));

    let ts_value = top.get("timestamp").or_else(|| data_obj.get("timestamp"));
    let has_own_timestamp = ts_value.is_some();
    // Stored with millisecond precision, so durations computed now equal those
    // computed later from the stored text.
    let own_time = ts_value.and_then(parse_timestamp);
    let timestamp = own_time.unwrap_or(received_at);
    let timestamp =
        DateTime::from_timestamp_millis(timestamp.timestamp_millis()).unwrap_or(timestamp);
    let correlation_id = str_field(Some(&top), "correlation_id")
        .or_else(|| str_field(Some(data_obj), "correlation_id"));
    let source = str_field(Some(&top), "source");

    let (data, envelope) = match inner {
        Some(d) => {
            // Envelope fields held verbatim in a column are not stored twice.
            let in_column = |key: &str, value: &Value| {
                let column = match key {
                    "data" => return true,
                    "type" => &raw_type,
                    "subtype" => &subtype,
                    "source" => &source,
                    "correlation_id" => &correlation_id,
                    "session_id" => &session_id,
                    _ => return false,
                };
                matches!((value, column), (Value::String(v), Some(c)) if v == c)
            };
            let envelope = object_text_without(&top, in_column);
            (serde_json::to_string(d).unwrap_or_default(), Some(envelope))
        }
        None => (serde_json::to_string(&top).unwrap_or_default(), None),
    };
    let size = data.len() + envelope.as_ref().map_or(0, String::len);
    if size > opts.max_event_bytes {
        let mut text = envelope.unwrap_or_default();
        text.push_str(&data);
        return Outcome::Rejected(Rejection::of_text(
            Some(socket_event),
            format!(
                "payload of {size} bytes exceeds max_event_bytes ({})",
                opts.max_event_bytes
            ),
            &text,
            received_at,
        ));
    }

    let mut hasher = Xxh3::new();
    hasher.update(envelope.as_deref().unwrap_or("").as_bytes());
    hasher.update(b"\x00");
    hasher.update(data.as_bytes());
    for column in [&raw_type, &subtype, &source, &correlation_id, &session_id] {
        match column {
            Some(v) => {
                hasher.update(b"\x01");
                hasher.update(v.as_bytes());
            }
            None => hasher.update(b"\x00"),
        }
    }
    // The key's time part must be the same on every delivery of an event: its
    // own time; the arrival time only where arrival already tells events apart.
    let mut key_time = own_time.map_or(0, |t| t.timestamp_millis());
    if !has_own_timestamp {
        let content = hasher.digest128();
        if matches!(salt, DedupSalt::ReceivedAt) {
            key_time = received_at.timestamp_millis();
        }
        let extra: u64 = match salt {
            DedupSalt::ReceivedAt => received_at.timestamp_nanos_opt().unwrap_or_default() as u64,
            DedupSalt::Occurrences(seen) => {
                let n = seen.entry(content).or_insert(0);
                *n += 1;
                u64::from(*n)
            }
        };
        hasher.update(b"\x00salt");
        hasher.update(&extra.to_le_bytes());
    }
    let mut dedup_key = [0u8; 24];
    dedup_key[..8].copy_from_slice(&(key_time.max(0) as u64).to_be_bytes());
    dedup_key[8..].copy_from_slice(&hasher.digest128().to_be_bytes());

    let kind = HookEvent::parse(&event_type);
    let search_text = crate::core::searchable::searchable_text_of(kind.as_str(), data_obj);
    let identity = NormalizedEvent::identity_of(&kind, &facts);
    let origin = if source.as_deref() == Some("transcript") {
        Source::Transcript
    } else {
        opts.origin
    };
    Outcome::Event(Box::new(NormalizedEvent {
        session_id,
        timestamp,
        kind,
        category,
        socket_event: socket_event.to_string(),
        raw_type,
        subtype,
        source,
        correlation_id,
        data,
        envelope,
        identity,
        origin,
        facts,
        dedup_key,
        received_at,
        time_known: own_time.is_some() || matches!(salt, DedupSalt::ReceivedAt),
        search_text: Some(search_text),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Category;
    use serde_json::json;

    fn one(name: &str, payload: Value) -> Outcome {
        let mut out = normalize(
            name,
            payload,
            Utc::now(),
            &NormalizeOptions::default(),
            &mut DedupSalt::ReceivedAt,
        );
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn event(name: &str, payload: Value) -> NormalizedEvent {
        match one(name, payload) {
            Outcome::Event(e) => *e,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn wrapped_tool_event() {
        let e = event(
            "tool_event",
            json!({"type": "tool_event", "subtype": "pre_tool", "timestamp": "2026-11-24T04:24:12.093427+00:00",
            "session_id": "s1", "source": "hook", "correlation_id": "c1", "cwd": "/p",
            "data": {"tool_name": "Write", "tool_parameters": {"file_path": "/p/a.py"}, "session_id": "s1"}}),
        );
        assert_eq!(e.kind, HookEvent::PreToolUse);
        assert_eq!(e.category, Category::File);
        assert_eq!(e.session_id.as_deref(), Some("s1"));
        assert_eq!(e.correlation_id.as_deref(), Some("c1"));
        assert_eq!(e.facts.file_written.as_deref(), Some("/p/a.py"));
        assert_eq!(e.facts.working_directory.as_deref(), Some("/p"));
        assert_eq!(e.timestamp_text(), "2026-11-24T04:24:12.093Z");
        assert!(e.envelope.unwrap().contains("\"cwd\""));
    }

    #[test]
    fn normalized_legacy_and_raw_shapes() {
        let e = event(
            "mpm_event",
            json!({"event": "mpm_event", "source": "hook", "type": "hook", "subtype": "user_prompt",
            "timestamp": 1795494251480i64, "data": {"prompt": "hi", "sessionId": "s2"}}),
        );
        assert_eq!(
            (e.kind.as_str(), e.category),
            ("UserPromptSubmit", Category::Prompt)
        );
        assert_eq!(e.session_id.as_deref(), Some("s2"));
        assert_eq!(e.facts.prompt.as_deref(), Some("hi"));

        let e = event(
            "claude_event",
            json!({"type": "PreToolUse", "timestamp": "2026-01-01T00:00:00Z", "data": {"tool_name": "Bash", "session": "s3"}}),
        );
        assert_eq!(
            (e.kind.as_str(), e.category),
            ("PreToolUse", Category::Tool)
        );
        assert_eq!(e.session_id.as_deref(), Some("s3"));

        let e = event(
            "claude_event",
            json!({"hook_event_name": "PreToolUse", "session_id": "s4", "tool_name": "Task",
            "tool_input": {"subagent_type": "qa", "prompt": "test it"}}),
        );
        assert_eq!(
            (e.kind.as_str(), e.category),
            ("PreToolUse", Category::Delegation)
        );
        assert_eq!(e.facts.agent_type.as_deref(), Some("qa"));
        assert_eq!(e.facts.instructions.as_deref(), Some("test it"));
        assert!(e.envelope.is_none());

        let e = event(
            "claude_event",
            json!({"type": "x", "data": {"hook_data": {"session_id": "s5"}}}),
        );
        assert_eq!(e.session_id.as_deref(), Some("s5"));
        assert_eq!(e.kind.as_str(), "x");
    }

    #[test]
    fn history_expands_and_control_is_marked() {
        let out = normalize(
            "history",
            json!({"events": [
                {"event": "claude_event", "data": {"type": "claude_event", "subtype": "stop", "session_id": "a", "timestamp": "2026-01-01T00:00:00Z"}},
                {"type": "hook_event", "subtype": "todo_updated", "session_id": "a", "timestamp": "2026-01-01T00:00:01Z"},
                "junk"
            ]}),
            Utc::now(),
            &NormalizeOptions::default(),
            &mut DedupSalt::ReceivedAt,
        );
        assert_eq!(out.len(), 3);
        assert!(
            matches!(&out[0], Outcome::Event(e) if e.kind == HookEvent::Stop && e.socket_event == "claude_event")
        );
        assert!(matches!(&out[1], Outcome::Event(e) if e.category == Category::Todo));
        assert!(matches!(&out[2], Outcome::Rejected(_)));
        assert!(matches!(
            one("dashboard:welcome", json!({"session_id": "sock"})),
            Outcome::Control(_)
        ));
        assert!(matches!(
            one(
                "system_event",
                json!({"type": "system", "subtype": "heartbeat"})
            ),
            Outcome::Control(_)
        ));
    }

    #[test]
    fn bad_input_is_rejected_with_reason() {
        for (payload, needle) in [
            (json!("text"), "a string"),
            (json!([1, 2]), "an array"),
            (json!(null), "null"),
            (
                json!({"session_id": "x".repeat(10_000), "type": "t"}),
                "10000 characters",
            ),
            (json!({"session_id": "a\u{0}b", "type": "t"}), "control"),
        ] {
            match one("claude_event", payload) {
                Outcome::Rejected(r) => assert!(r.reason.contains(needle), "{}", r.reason),
                other => panic!("{other:?}"),
            }
        }
        let big = json!({"type": "t", "data": {"blob": "x".repeat(5000)}});
        let out = normalize(
            "e",
            big,
            Utc::now(),
            &NormalizeOptions {
                max_event_bytes: 4096,
                ..NormalizeOptions::default()
            },
            &mut DedupSalt::ReceivedAt,
        );
        assert!(matches!(&out[0], Outcome::Rejected(r) if r.reason.contains("exceeds")));
    }

    #[test]
    fn hostile_but_valid_ids_and_odd_fields_are_kept() {
        let e = event(
            "claude_event",
            json!({"session_id": "../../x", "type": "t", "timestamp": "not a time", "data": "oops"}),
        );
        assert_eq!(e.session_id.as_deref(), Some("../../x"));
        assert!(e.data.contains("oops"));
        let e = event("claude_event", json!({"session_id": 42, "type": "t"}));
        assert_eq!(e.session_id.as_deref(), Some("42"));
        let e = event(
            "claude_event",
            json!({"session_id": {"nested": 1}, "type": "t"}),
        );
        assert_eq!(e.session_id, None);
    }

    #[test]
    fn the_full_handler_and_claude_code_give_one_call_the_same_content_key() {
        let long = format!("echo {}", "x".repeat(150));
        let full = |tool: &str, params: Value| {
            event(
                "tool_event",
                json!({"type": "tool_event", "subtype": "pre_tool", "session_id": "s",
                       "timestamp": "2026-11-24T10:47:45.253975+00:00",
                       "data": {"tool_name": tool, "tool_parameters": params, "session_id": "s"}}),
            )
            .facts
            .content_key
        };
        let raw = |tool: &str, input: Value| {
            event(
                "claude_event",
                json!({"hook_event_name": "PreToolUse", "session_id": "s", "tool_name": tool,
                       "tool_use_id": "toolu_1", "tool_input": input}),
            )
            .facts
            .content_key
        };
        let cut: String = long.chars().take(100).collect();
        let bash_full = full(
            "Bash",
            json!({"input_type": "dict", "command": cut, "command_length": long.len()}),
        );
        assert_eq!(
            bash_full,
            raw("Bash", json!({"command": long, "description": "d"}))
        );
        assert_ne!(bash_full, raw("Bash", json!({"command": "ls"})));
        assert_eq!(
            full(
                "Write",
                json!({"file_path": "/p/a.py", "content_length": 3, "is_create": true})
            ),
            raw("Write", json!({"file_path": "/p/a.py", "content": "abc"}))
        );
        assert_eq!(
            full(
                "TodoWrite",
                json!({"todos": [{"content": "a", "status": "pending"}], "todo_count": 1})
            ),
            raw(
                "TodoWrite",
                json!({"todos": [{"status": "pending", "content": "a"}]})
            )
        );
        // The full handler keeps nothing of an Agent call's input: the name only.
        assert_eq!(
            full("Agent", json!({"param_keys": ["description", "prompt"]})).as_deref(),
            Some("pre:Agent")
        );
        assert_eq!(
            raw("Agent", json!({"subagent_type": "qa", "prompt": "p"})).as_deref(),
            Some("pre:Agent")
        );
        let prompt = |payload: Value| event("claude_event", payload).facts.content_key;
        assert_eq!(
            prompt(
                json!({"type": "claude_event", "subtype": "user_prompt", "session_id": "s",
                          "data": {"prompt_text": "hello there", "prompt_preview": "hello"}})
            ),
            prompt(
                json!({"hook_event_name": "UserPromptSubmit", "session_id": "s",
                          "prompt_id": "p1", "prompt": "hello there"})
            )
        );
    }

    #[test]
    fn dedup_keys_identify_content() {
        let p = json!({"type": "a", "timestamp": "2026-01-01T00:00:00Z", "session_id": "s", "data": {"x": 1}});
        let k = |p: Value| event("e", p).dedup_key;
        assert_eq!(k(p.clone()), k(p.clone()));
        let mut q = p.clone();
        q["data"]["x"] = json!(2);
        assert_ne!(k(p), k(q));
        // Untimed payloads: occurrences within one import are distinct events.
        let untimed = json!({"hook_event_name": "Stop", "session_id": "s"});
        let mut seen = HashMap::new();
        let mut salt = DedupSalt::Occurrences(&mut seen);
        let opts = NormalizeOptions::default();
        let a = normalize("e", untimed.clone(), Utc::now(), &opts, &mut salt);
        let b = normalize("e", untimed, Utc::now(), &opts, &mut salt);
        let key = |o: &Outcome| match o {
            Outcome::Event(e) => e.dedup_key,
            _ => panic!(),
        };
        assert_ne!(key(&a[0]), key(&b[0]));
    }
}
