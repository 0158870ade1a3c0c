//! The shareable HTML page of a session (`export --format html`): one
//! self-contained file, styles and script inline, the session's data embedded
//! as compact JSON in a `<script type="application/json">`, which the page's
//! script draws (turns, a timeline with a lane per agent, the events, details
//! on click). The data is streamed from SQL rows to the output like the other
//! exports, so memory stays flat for any session size.

use std::io::Write;

use rusqlite::Connection;
use serde_json::{json, Map, Value};

use crate::core::event::Tokens;
use crate::core::pricing::PricingTable;
use crate::core::time::parse_stored;
use crate::error::{AggregatorError, Result};

const PAGE: &str = include_str!("html/page.html");
const CSS: &str = include_str!("html/page.css");
const JS: &str = include_str!("html/page.js");

/// Strings in event data longer than this are cut in the page (with the
/// number of characters left out): a page is for reading, the full export
/// keeps everything, and one huge tool output must not make the page heavy.
pub const STRING_LIMIT: usize = 3000;

/// Fields every event repeats with the same value as the session; left out
/// of the page when they equal the session's.
const SESSION_FIELDS: [(&str, &str); 4] = [
    ("session_id", "session_id"),
    ("cwd", "working_directory"),
    ("git_branch", "git_branch"),
    ("claude_version", "claude_version"),
];

/// Fields the page carries in an event's own columns, or that tell nothing a
/// reader needs (the transcript's line id, the hook name again).
const DROPPED_FIELDS: [&str; 8] = [
    "hook_event_name",
    "timestamp",
    "transcript_uuid",
    "transcript_path",
    "tool_use_id",
    "prompt_id",
    "agent_id",
    "tool_name",
];

fn sql_err(e: rusqlite::Error) -> AggregatorError {
    AggregatorError::query(e)
}

fn ms(text: &str) -> Option<i64> {
    parse_stored(text).map(|t| t.timestamp_millis())
}

/// Writes through to `inner`, escaping `<` as `\u003c` so that nothing in the
/// JSON (a `</script>` in a tool output) can end the script element early.
/// JSON has `<` only inside strings, where the escape means the same.
struct ScriptSafe<'a>(&'a mut dyn Write);

impl Write for ScriptSafe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'<') {
            self.0.write_all(&rest[..i])?;
            self.0.write_all(b"\\u003c")?;
            rest = &rest[i + 1..];
        }
        self.0.write_all(rest)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Escapes text for an HTML element's content.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts long strings anywhere in `v` to [`STRING_LIMIT`] characters.
fn cut_strings(v: &mut Value) {
    match v {
        // Only a string of more bytes than the limit can have more characters.
        Value::String(s) if s.len() > STRING_LIMIT => {
            if let Some((i, _)) = s.char_indices().nth(STRING_LIMIT) {
                let left = s[i..].chars().count();
                s.truncate(i);
                s.push_str(&format!("… [{left} more characters in the full export]"));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(cut_strings),
        Value::Object(o) => o.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// The session's header as the page needs it: the export's header fields
/// (metrics included) and the times as milliseconds.
fn session_header(conn: &Connection, session_id: &str) -> Result<Value> {
    let session = super::export::load_row(conn, session_id)?;
    let mut header = session.summary_header();
    let (last, event_count): (Option<String>, i64) = conn
        .prepare_cached("SELECT last_event_time, event_count FROM sessions WHERE session_id = ?1")
        .map_err(sql_err)?
        .query_row([session_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql_err)?;
    if let Some(o) = header.as_object_mut() {
        o.insert(
            "start_ms".into(),
            json!(session.start_time.timestamp_millis()),
        );
        o.insert(
            "end_ms".into(),
            json!(session.end_time.map(|t| t.timestamp_millis())),
        );
        o.insert("last_ms".into(), json!(last.as_deref().and_then(ms)));
        o.insert("event_count".into(), json!(event_count));
    }
    Ok(header)
}

fn write_delegations(conn: &Connection, session_id: &str, out: &mut dyn Write) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, agent_type, agent_id, parent_agent_id, start_ref, start_time, end_time, success, error,
                    description, instructions, response_preview, event_count, tool_calls, tool_failures,
                    api_calls, tokens, model, cost_usd, background, files_modified, tool_operations
             FROM delegations WHERE session_id = ?1 ORDER BY start_time, id",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([session_id]).map_err(sql_err)?;
    let io = |e: std::io::Error| AggregatorError::io("<output>", e);
    let mut n = 0;
    while let Some(r) = rows.next().map_err(sql_err)? {
        let text = |i: usize| r.get::<_, Option<String>>(i);
        let json_of = |i: usize| -> rusqlite::Result<Value> {
            Ok(text(i)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or(Value::Null))
        };
        let mut d = (|| {
            Ok::<_, rusqlite::Error>(json!({
                "id": r.get::<_, i64>(0)?,
                "agent_type": text(1)?,
                "agent_id": text(2)?,
                "parent_agent_id": text(3)?,
                "start_ref": text(4)?,
                "start_ms": text(5)?.as_deref().and_then(ms),
                "end_ms": text(6)?.as_deref().and_then(ms),
                "success": r.get::<_, Option<bool>>(7)?,
                "error": text(8)?,
                "description": text(9)?,
                "instructions": text(10)?,
                "response": text(11)?,
                "event_count": r.get::<_, Option<i64>>(12)?,
                "tool_calls": r.get::<_, Option<i64>>(13)?,
                "tool_failures": r.get::<_, Option<i64>>(14)?,
                "api_calls": r.get::<_, Option<i64>>(15)?,
                "tokens": json_of(16)?,
                "model": text(17)?,
                "cost_usd": r.get::<_, Option<f64>>(18)?,
                "background": r.get::<_, Option<bool>>(19)?.unwrap_or(false),
                "files_modified": json_of(20)?,
                "tool_operations": json_of(21)?,
            }))
        })()
        .map_err(sql_err)?;
        cut_strings(&mut d);
        out.write_all(if n == 0 { b"\n" } else { b",\n" })
            .map_err(io)?;
        serde_json::to_writer(&mut *out, &d).map_err(|e| io(e.into()))?;
        n += 1;
    }
    Ok(n)
}

fn take_str(data: &mut Map<String, Value>, key: &str) -> Value {
    match data.get(key) {
        Some(Value::String(_)) => data.remove(key).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Streams the session's events, each as one compact array:
/// `[id, time_ms, event_type, category, tool_name, agent_id, delegation_id,
/// tool_use_id, prompt_id, cost_usd, data]` (the order `page.js` reads).
fn write_events(
    conn: &Connection,
    session_id: &str,
    header: &Value,
    pricing: &PricingTable,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, timestamp, event_type, category, tool_name, agent_id, delegation_id, data
             FROM events WHERE session_id = ?1 ORDER BY id",
        )
        .map_err(sql_err)?;
    let mut rows = stmt.query([session_id]).map_err(sql_err)?;
    let io = |e: std::io::Error| AggregatorError::io("<output>", e);
    let same: Vec<(&str, &Value)> = SESSION_FIELDS
        .iter()
        .map(|(field, key)| (*field, header.get(*key).unwrap_or(&Value::Null)))
        .collect();
    let mut n = 0;
    while let Some(r) = rows.next().map_err(sql_err)? {
        let row = (|| {
            Ok::<_, rusqlite::Error>((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, String>(7)?,
            ))
        })()
        .map_err(sql_err)?;
        let (id, timestamp, event_type, category, tool_name, agent_id, delegation_id, text) = row;
        let mut data = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(o)) => o,
            Ok(other) => Map::from_iter([("value".to_string(), other)]),
            Err(_) => Map::new(),
        };
        let tool_use_id = take_str(&mut data, "tool_use_id");
        let prompt_id = take_str(&mut data, "prompt_id");
        let cost = (event_type == "ApiCall")
            .then(|| {
                let model = data.get("model").and_then(Value::as_str)?;
                let tokens = Tokens::from_usage(data.get("usage")?);
                pricing.cost_usd(model, &tokens)
            })
            .flatten();
        for (field, value) in &same {
            if data.get(*field) == Some(value) {
                data.remove(*field);
            }
        }
        for field in DROPPED_FIELDS {
            data.remove(field);
        }
        let mut data = Value::Object(data);
        cut_strings(&mut data);
        let event = json!([
            id,
            ms(&timestamp),
            event_type,
            category,
            tool_name,
            agent_id,
            delegation_id,
            tool_use_id,
            prompt_id,
            cost,
            data
        ]);
        out.write_all(if n == 0 { b"\n" } else { b",\n" })
            .map_err(io)?;
        serde_json::to_writer(&mut *out, &event).map_err(|e| io(e.into()))?;
        n += 1;
    }
    Ok(n)
}

/// Streams the page of `session_id` to `out`; `pricing` prices each API call
/// (the session's and its sub-agents' totals are the store's). Returns the
/// number of events in the page.
pub fn write_page(
    conn: &Connection,
    session_id: &str,
    pricing: &PricingTable,
    out: &mut dyn Write,
) -> Result<u64> {
    let io = |e: std::io::Error| AggregatorError::io("<output>", e);
    let header = session_header(conn, session_id)?;
    let (head, tail) = PAGE
        .split_once("{{DATA}}")
        .expect("page.html has a {{DATA}} marker");
    let short: String = session_id.chars().take(8).collect();
    let title = format!("Session {short} · mpm-aggregate");
    let head = head
        .replace("{{TITLE}}", &html_text(&title))
        .replace("/*{{CSS}}*/", CSS);
    let tail = tail.replace("/*{{JS}}*/", JS);
    out.write_all(head.as_bytes()).map_err(io)?;
    let mut data = ScriptSafe(out);
    data.write_all(b"{\"format\":1,\"string_limit\":")
        .map_err(io)?;
    write!(data, "{STRING_LIMIT}").map_err(io)?;
    data.write_all(b",\n\"session\":").map_err(io)?;
    serde_json::to_writer(&mut data, &header).map_err(|e| io(e.into()))?;
    data.write_all(b",\n\"delegations\":[").map_err(io)?;
    write_delegations(conn, session_id, &mut data)?;
    data.write_all(b"],\n\"events\":[").map_err(io)?;
    let n = write_events(conn, session_id, &header, pricing, &mut data)?;
    data.write_all(b"]}").map_err(io)?;
    out.write_all(tail.as_bytes()).map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_escapes_every_angle_bracket() {
        let mut buf = Vec::new();
        let mut w = ScriptSafe(&mut buf);
        serde_json::to_writer(&mut w, &json!({"x": "</script><!-- <b>"})).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('<'), "{text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["x"], "</script><!-- <b>");
    }

    #[test]
    fn long_strings_are_cut_on_a_character_boundary() {
        let mut v = json!({"a": ["é".repeat(STRING_LIMIT + 5)], "b": "short"});
        cut_strings(&mut v);
        let a = v["a"][0].as_str().unwrap();
        assert!(a.starts_with(&"é".repeat(STRING_LIMIT)));
        assert!(
            a.ends_with("… [5 more characters in the full export]"),
            "{a}"
        );
        assert_eq!(v["b"], "short");
    }

    #[test]
    fn the_template_has_its_markers() {
        for marker in ["{{DATA}}", "{{TITLE}}", "/*{{CSS}}*/", "/*{{JS}}*/"] {
            assert_eq!(PAGE.matches(marker).count(), 1, "{marker}");
        }
        assert!(!CSS.contains("</style"));
        assert!(!JS.contains("</script"));
    }
}
