//! Malformed input never panics, never loses a valid event, and always leaves
//! a rejection with its reason (SPEC section 3, "Nothing lost, nothing crashes").

use crate::common;

use common::*;
use serde_json::{json, Value};

#[test]
fn malformed_lines_are_rejected_and_every_valid_line_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let valid = std::fs::read_to_string(fixture(CAPTURE)).unwrap();
    let valid_lines: Vec<&str> = valid.lines().collect();
    let long_id = "x".repeat(10_000);
    let deep = format!("{}1{}", "[".repeat(400), "]".repeat(400));
    let bad: Vec<(String, bool)> = vec![
        // (line, is rejected) — the rest are stored as events
        ("this is not json".into(), true),
        ("{\"event\": \"claude_event\", \"data\": ".into(), true),
        ("[1, 2, 3]".into(), true),
        ("\"just a string\"".into(), true),
        ("42".into(), true),
        ("null".into(), true),
        (json!({"event": "claude_event", "data": [1, 2]}).to_string(), true),
        (json!({"event": "claude_event", "data": "text"}).to_string(), true),
        (json!({"event": "claude_event", "data": {"type": "t", "session_id": long_id}}).to_string(), true),
        (json!({"event": "claude_event", "data": {"type": "t", "session_id": "a\u{0}b"}}).to_string(), true),
        (format!("{{\"event\": \"claude_event\", \"data\": {{\"type\": \"t\", \"data\": {deep}}}}}"), true),
        // Wrong-typed or hostile but storable:
        (json!({"event": "claude_event", "data": {"type": 5, "subtype": ["x"], "session_id": "../../x", "timestamp": "not a time"}}).to_string(), false),
        (json!({"event": "claude_event", "data": {"hook_event_name": "Stop", "session_id": 1234, "timestamp": -1}}).to_string(), false),
        (json!({"event": "claude_event", "data": {"type": "claude_event", "session_id": "/etc/passwd", "data": "not an object", "timestamp": 1e300}}).to_string(), false),
        (json!({"event": "claude_event", "data": {"hook_event_name": "PreToolUse", "tool_name": 7, "tool_input": "x", "session_id": "s..//"}}).to_string(), false),
        (json!({"event": "claude_event", "data": {"type": "x", "timestamp": "99999-01-01T00:00:00Z"}}).to_string(), false),
    ];
    let mut text = String::new();
    for (i, line) in valid_lines.iter().enumerate() {
        text.push_str(line);
        text.push('\n');
        if let Some((b, _)) = bad.get(i) {
            text.push_str(b);
            text.push('\n');
        }
    }
    let path = dir.path().join("mixed.jsonl");
    std::fs::write(&path, text).unwrap();
    let report = import_with(&config, &[path]);

    let rejected = bad.iter().filter(|(_, r)| *r).count() as u64;
    let odd_but_valid = bad.len() as u64 - rejected;
    assert_eq!(report.rejected, rejected, "{report:?}");
    assert_eq!(report.stored, 59 + odd_but_valid);
    assert_eq!(report.control, 2);
    let db = &config.database;
    assert_eq!(
        count(db, "SELECT count(*) FROM rejected_events"),
        rejected as i64
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM rejected_events WHERE reason = '' OR payload IS NULL"
        ),
        0
    );
    // The fixture's reconstruction is untouched by the noise around it.
    let agg = mpm_aggregate::EventAggregator::with_config(config.clone());
    let a = agg.get_session(SESSION_A).unwrap();
    assert_eq!((a.events.len(), a.delegations.len()), (47, 2));
    // Hostile ids are plain data: stored, and kept out of paths.
    for id in ["../../x", "1234", "/etc/passwd", "s..//"] {
        assert_eq!(
            count(
                db,
                &format!("SELECT count(*) FROM sessions WHERE session_id = '{id}'")
            ),
            1,
            "{id}"
        );
    }
    let reasons: Vec<String> = {
        let c = open(db);
        let mut stmt = c.prepare("SELECT reason FROM rejected_events").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for needle in [
        "not JSON",
        "an array",
        "a string",
        "a number",
        "null",
        "10000 characters",
        "control characters",
        "recursion limit",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "no rejection mentions {needle:?}: {reasons:#?}"
        );
    }
    for entry in walk(&dir.path().join("activity")) {
        assert!(
            entry.starts_with(dir.path().join("activity")),
            "{entry:?} escaped"
        );
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
            "{name}"
        );
    }
    assert!(!dir.path().join("x").exists() && !std::path::Path::new("/etc/passwd_").exists());
    // Bad timestamps fall back to the arrival time, in range.
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM events WHERE timestamp < '2000' OR timestamp > '2200'"
        ),
        0
    );
}

#[test]
fn events_of_one_session_with_stop_without_timestamps_stay_distinct() {
    // Raw hook payloads carry no timestamp: two identical Stops are two events.
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let stop = json!({"hook_event_name": "Stop", "session_id": "same", "stop_hook_active": false})
        .to_string();
    let path = dir.path().join("stops.jsonl");
    std::fs::write(&path, format!("{stop}\n{stop}\n")).unwrap();
    assert_eq!(import_with(&config, std::slice::from_ref(&path)).stored, 2);
    assert_eq!(import_with(&config, &[path]).duplicates, 2);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn oversized_events_are_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.max_event_bytes = 64 * 1024;
    let big: Value = json!({"event": "claude_event", "data": {"type": "t", "session_id": "big", "data": {"blob": "x".repeat(100_000)}}});
    let small: Value = json!({"event": "claude_event", "data": {"type": "t", "session_id": "small", "timestamp": "2026-01-01T00:00:00Z"}});
    let path = dir.path().join("sizes.jsonl");
    std::fs::write(&path, format!("{big}\n{small}\n")).unwrap();
    let report = import_with(&config, &[path]);
    assert_eq!((report.stored, report.rejected), (1, 1));
    let reason: String = open(&config.database)
        .query_row("SELECT reason FROM rejected_events", [], |r| r.get(0))
        .unwrap();
    assert!(reason.contains("exceeds max_event_bytes"), "{reason}");
}

#[test]
fn a_line_that_is_not_utf8_is_rejected_and_its_neighbours_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let a = json!({"hook_event_name": "SessionStart", "session_id": "before", "timestamp": "2026-01-01T00:00:00Z"}).to_string();
    let b = json!({"hook_event_name": "SessionStart", "session_id": "after", "timestamp": "2026-01-01T00:00:01Z"}).to_string();
    let mut bytes = a.into_bytes();
    bytes.extend_from_slice(b"\n{\"event\": \"x\", \"data\": \"\xff\xfe\"}\n");
    bytes.extend_from_slice(b.as_bytes());
    bytes.push(b'\n');
    let path = dir.path().join("latin1.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let report = import_with(&config, &[path]);
    assert_eq!((report.stored, report.rejected), (2, 1));
    assert_eq!(
        count(
            &config.database,
            "SELECT count(*) FROM sessions WHERE session_id IN ('before', 'after')"
        ),
        2
    );
}
