//! Property-based fuzzing of the normalizer and the import parser (proptest).
//!
//! Generated payloads mix the field names the normalizer looks at with random
//! ones, wrong types, odd strings and deep nesting. Properties: no panic; every
//! input becomes a well-formed event, a control marker, or a rejection with a
//! reason; imports of arbitrary lines leave a sound database.
//!
//! Longer runs: `PROPTEST_CASES=100000 cargo test --release --test it fuzz::`.
//! With `MPM_FUZZ_SAVE=tests/fuzz-corpus`, an input of every new outcome class
//! (event type × category, or rejection reason) is written there; the corpus is
//! committed and replayed by every run.

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use mpm_aggregate::ingest::{
    normalize, split_capture_line, DedupSalt, NormalizeOptions, Outcome, MAX_SESSION_ID_LEN,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "type",
    "subtype",
    "data",
    "session_id",
    "sessionId",
    "session",
    "timestamp",
    "hook_event_name",
    "event_type",
    "category",
    "tool_name",
    "tool_input",
    "tool_parameters",
    "tool_response",
    "tool_use_id",
    "correlation_id",
    "subagent_type",
    "agent_type",
    "prompt",
    "prompt_text",
    "response",
    "cwd",
    "working_directory",
    "git_branch",
    "events",
    "event",
    "hook_data",
    "event_data",
    "context",
    "file_path",
    "success",
    "error",
    "is_error",
];
const STRINGS: &[&str] = &[
    "PreToolUse",
    "PostToolUse",
    "SubagentStart",
    "SubagentStop",
    "Stop",
    "SessionEnd",
    "UserPromptSubmit",
    "pre_tool",
    "post_tool",
    "subagent_stop",
    "user_prompt",
    "todo_updated",
    "memory_saved",
    "Task",
    "Agent",
    "Write",
    "Edit",
    "heartbeat",
    "history",
    "../../x",
    "",
    " ",
    "\u{0}",
    "é\u{202e}",
    "2026-11-24T04:24:11.480034+00:00Z",
    "1795494251480",
    "unknown",
    "session.end",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
    ]
}

fn payload() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        "[a-z_]{1,8}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn socket_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "claude_event",
                "hook_event",
                "tool_event",
                "history",
                "dashboard:welcome",
                "heartbeat",
                "mpm_event"
            ][..]
        )
        .prop_map(str::to_string),
        "\\PC{0,12}",
    ]
}

/// The class of an outcome, for keeping one input per class.
fn class(outcome: &Outcome) -> String {
    const HOOKS: [&str; 11] = [
        "PreToolUse",
        "PostToolUse",
        "UserPromptSubmit",
        "Stop",
        "SubagentStart",
        "SubagentStop",
        "SessionStart",
        "SessionEnd",
        "Notification",
        "PreCompact",
        "hook_execution",
    ];
    match outcome {
        Outcome::Event(e) => format!(
            "event:{}:{}:session={}:envelope={}",
            if HOOKS.contains(&e.kind.as_str()) {
                e.kind.as_str()
            } else {
                "other"
            },
            e.category,
            e.session_id.is_some(),
            e.envelope.is_some()
        ),
        Outcome::Control(_) => "control".into(),
        Outcome::Rejected(r) => format!(
            "rejected:{}",
            r.reason
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .take(48)
                .collect::<String>()
        ),
    }
}

/// The regressions proptest found, replayed first by every run; named by path
/// because the default (beside the crate root's `main.rs`) would move them.
fn regressions() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/fuzz.proptest-regressions"
        )),
    ))
}

/// `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn save_if_new(name: &str, payload: &Value, outcomes: &[Outcome]) {
    let Ok(dir) = std::env::var("MPM_FUZZ_SAVE") else {
        return;
    };
    let mut seen = SEEN.lock().unwrap();
    let seen = seen.get_or_insert_with(HashSet::new);
    for o in outcomes {
        let c = class(o);
        if seen.insert(c.clone()) {
            let file = Path::new(&dir).join(format!(
                "{:016x}.json",
                xxhash_rust::xxh3::xxh3_64(c.as_bytes())
            ));
            if !file.exists() {
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(file, json!({"event": name, "data": payload}).to_string());
            }
        }
    }
}

/// Checks the properties every outcome must have.
fn check(outcomes: &[Outcome]) -> Result<(), TestCaseError> {
    for o in outcomes {
        match o {
            Outcome::Event(e) => {
                prop_assert!(
                    serde_json::from_str::<Value>(&e.data).is_ok(),
                    "data is JSON"
                );
                if let Some(env) = &e.envelope {
                    prop_assert!(
                        serde_json::from_str::<Value>(env)
                            .map(|v| v.is_object())
                            .unwrap_or(false),
                        "envelope is an object"
                    );
                }
                if let Some(id) = &e.session_id {
                    prop_assert!(
                        !id.is_empty()
                            && id.chars().count() <= MAX_SESSION_ID_LEN
                            && !id.chars().any(char::is_control)
                    );
                }
                let year = chrono::Datelike::year(&e.timestamp);
                prop_assert!((1970..=2200).contains(&year));
                prop_assert!(!e.kind.as_str().is_empty());
            }
            Outcome::Rejected(r) => prop_assert!(!r.reason.is_empty()),
            Outcome::Control(_) => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), failure_persistence: regressions(), ..ProptestConfig::default() })]

    #[test]
    fn normalizer_never_panics_and_always_answers(name in socket_name(), payload in payload()) {
        let outcomes = normalize(&name, payload.clone(), Utc::now(), &NormalizeOptions::default(), &mut DedupSalt::ReceivedAt);
        if name != "history" {
            prop_assert_eq!(outcomes.len(), 1);
        }
        check(&outcomes)?;
        save_if_new(&name, &payload, &outcomes);
    }

    #[test]
    fn capture_lines_split_and_normalize(line in prop_oneof![payload().prop_map(|v| v.to_string()), "\\PC{0,200}"]) {
        if let Ok(value) = serde_json::from_str::<Value>(&line) {
            let (name, inner) = split_capture_line(value);
            let outcomes = normalize(name.as_deref().unwrap_or("import"), inner, Utc::now(), &NormalizeOptions::default(), &mut DedupSalt::ReceivedAt);
            check(&outcomes)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24) / 50 + 24, failure_persistence: regressions(), ..ProptestConfig::default() })]

    #[test]
    fn importing_arbitrary_lines_leaves_a_sound_database(lines in prop::collection::vec(prop_oneof![
        payload().prop_map(|v| v.to_string()),
        payload().prop_map(|v| json!({"event": "claude_event", "data": v}).to_string()),
        "\\PC{0,80}",
    ], 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = common::test_config(dir.path());
        let file = dir.path().join("fuzz.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let report = common::import_with(&config, &[file]);
        // (A lone `[]` is an empty `events` document: no outcome at all is right.)
        let ok: String = common::open(&config.database).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        prop_assert_eq!(ok, "ok");
        prop_assert_eq!(common::count(&config.database, "SELECT count(*) FROM events"), report.stored as i64);
    }
}

#[test]
fn the_committed_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fuzz-corpus exists") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let (name, payload) = split_capture_line(serde_json::from_str(&text).unwrap());
        let outcomes = normalize(
            name.as_deref().unwrap_or("import"),
            payload,
            Utc::now(),
            &NormalizeOptions::default(),
            &mut DedupSalt::ReceivedAt,
        );
        check(&outcomes).unwrap();
        n += 1;
    }
    assert!(n >= 10, "the corpus has {n} inputs");
}
