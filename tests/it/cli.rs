//! The command line on a database built from the fixtures: every read command
//! and option, the JSON documents field by field, the export → import → export
//! round trip, and every error as one line with a non-zero status.

use crate::common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::*;
use predicates::prelude::*;
use serde_json::{json, Value};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A working directory with a database imported from the capture and the Python file.
    fn with_fixtures() -> Env {
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        env.cmd(&["import", &fixture(CAPTURE).to_string_lossy(), &fixture(PYTHON_SESSION).to_string_lossy()])
            .assert()
            .success()
            .stdout(predicate::str::contains("imported 70 events (3 sessions) from 2 files: 0 skipped as duplicate, 0 rejected, 2 control skipped"));
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
        c.current_dir(self.dir.path())
            .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
            .env_remove("CLAUDE_MPM_ACTIVITY_DIR")
            .env_remove("RUST_LOG")
            .args(["--db", "rec.db", "--activity-dir", "activity"])
            .args(args);
        c
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self
            .cmd(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.stdout(args))
            .unwrap_or_else(|e| panic!("{args:?}: not JSON: {e}"))
    }

    /// Runs a command that must fail with one `error:` line.
    fn fails(&self, args: &[&str], needle: &str) {
        let stderr = failure_stderr(&mut self.cmd(args));
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected, got {stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr} lacks {needle:?}"
        );
        assert!(!stderr.contains("panicked"));
    }

    /// Runs a command that the argument parser must refuse (exit status 2).
    fn usage_error(&self, args: &[&str], needle: &str) {
        let out = self
            .cmd(args)
            .assert()
            .failure()
            .code(2)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr} lacks {needle:?}"
        );
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn sessions_lists_as_table_and_json() {
    let env = Env::with_fixtures();
    let table = env.stdout(&["sessions"]);
    for needle in [
        "ID",
        "STARTED",
        "DURATION",
        "EVENTS",
        "DELEG",
        "STATUS",
        "FIRST PROMPT",
        "5283b66c",
        "7a91d44e",
        "9f1c2d3e",
        "Add JWT authentication",
        "completed",
    ] {
        assert!(table.contains(needle), "{needle} not in\n{table}");
    }
    let list = env.json(&["sessions", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    for s in list {
        for field in [
            "session_id",
            "start_time",
            "end_time",
            "event_count",
            "file_path",
            "status",
            "duration_ms",
            "delegation_count",
            "initial_prompt",
        ] {
            assert!(s.get(field).is_some(), "{field} missing in {s}");
        }
        assert!(Path::new(env.path(s["file_path"].as_str().unwrap()).as_path()).exists());
    }
    // time: newest first
    assert_eq!(
        list[2]["session_id"],
        "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"
    );
    let a = list.iter().find(|s| s["session_id"] == SESSION_A).unwrap();
    assert_eq!(
        (a["event_count"].as_u64(), a["delegation_count"].as_u64()),
        (Some(47), Some(2))
    );
    assert_eq!(a["start_time"], "2026-11-24T04:24:11.480Z");
    assert_eq!(a["end_time"], "2026-11-24T04:24:14.631Z");

    let by_events = env.json(&["sessions", "--json", "--sort", "events"]);
    let counts: Vec<u64> = by_events
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["event_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [47, 11, 10]);
    let by_duration = env.json(&["sessions", "--json", "--sort", "duration", "--limit", "1"]);
    assert_eq!(by_duration.as_array().unwrap().len(), 1);
    assert_eq!(by_duration[0]["duration_ms"], 205333);
    env.cmd(&["sessions", "--sort", "size"])
        .assert()
        .failure()
        .code(2);
}

#[test]
fn view_shows_metadata_prompt_metrics_delegations_events_and_response() {
    let env = Env::with_fixtures();
    let text = env.stdout(&["view", "5283"]);
    for needle in [
        "Session 5283b66c-2b29-4ee0-9698-f410f3a393fd",
        "status:      completed",
        "/tmp/proj",
        "Add JWT authentication to the API and document it",
        "research",
        "engineer",
        "Read, Grep",
        "Write, Edit, Bash",
        "/tmp/proj/src/auth.py",
        "success",
        "delegations: 2 (2 succeeded, 0 failed)",
        "Task, Read, Grep, TodoWrite, Write, Edit, Bash",
    ] {
        assert!(text.contains(needle), "{needle} not in\n{text}");
    }
    assert!(!text.contains("Events (first"));
    let events = env.stdout(&["view", "5283", "--show-events", "--event-limit", "5"]);
    assert!(events.contains("Events (first 5 of 47)"), "{events}");
    assert!(events.contains("SessionStart"));

    let python = env.stdout(&["view", "9f1c"]);
    assert!(
        python.contains("Final response")
            && python.contains("Authentication implemented with JWT.")
    );
    assert!(python.contains("failed: Delegation did not complete"));
    let no_response = env.stdout(&["view", "9f1c", "--no-response"]);
    assert!(!no_response.contains("Final response"));
    let verbose = env.stdout(&["view", "9f1c", "--verbose", "--show-events"]);
    assert!(
        verbose.contains("\"file_path\":\"/home/dev/myapp/src/auth.py\""),
        "{verbose}"
    );

    let doc = env.json(&[
        "view",
        "5283",
        "--json",
        "--show-events",
        "--event-limit",
        "3",
    ]);
    assert_eq!(doc["session_id"], SESSION_A);
    assert_eq!(doc["events"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["delegations_summary"],
        json!({"total": 2, "successful": 2, "failed": 0, "running": 0, "by_agent": {"research": 1, "engineer": 1}})
    );
    let doc = env.json(&["view", "9f1c", "--json", "--no-response"]);
    assert!(doc.get("final_response").is_none());
    assert!(doc.get("events").is_none());
}

fn check_event_shape(e: &Value) {
    assert_eq!(
        keys(e),
        [
            "category",
            "correlation_id",
            "data",
            "event_type",
            "session_id",
            "timestamp"
        ]
    );
    assert!(e["data"].is_object());
    let ts = e["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
        "{ts}"
    );
}

#[test]
fn export_formats_match_the_spec_field_by_field() {
    let env = Env::with_fixtures();
    let full = env.json(&["export", "5283", "-o", "-"]);
    assert_eq!(
        keys(&full),
        [
            "claude_version",
            "delegations",
            "end_time",
            "events",
            "final_response",
            "git_branch",
            "initial_prompt",
            "launch_method",
            "metadata",
            "metrics",
            "session_id",
            "sources",
            "start_time",
            "working_directory"
        ]
    );
    assert_eq!(full["session_id"], SESSION_A);
    assert_eq!(full["start_time"], "2026-11-24T04:24:11.480Z");
    assert_eq!(full["working_directory"], "/tmp/proj");
    assert_eq!(
        full["initial_prompt"],
        "Add JWT authentication to the API and document it"
    );
    let events = full["events"].as_array().unwrap();
    assert_eq!(events.len(), 47);
    events.iter().for_each(check_event_shape);
    assert_eq!(events[0]["event_type"], "SessionStart");
    assert_eq!(events[0]["category"], "meta");
    let pre_read = events
        .iter()
        .find(|e| e["event_type"] == "PreToolUse" && e["data"]["tool_name"] == "Read")
        .unwrap();
    assert_eq!(pre_read["category"], "file");
    assert_eq!(
        pre_read["correlation_id"],
        "fb709c4b-fd24-4b32-8285-b94259e56ead"
    );
    let d = &full["delegations"][1];
    assert_eq!(
        keys(d),
        [
            "agent_id",
            "agent_type",
            "api_calls",
            "cost_usd",
            "description",
            "duration_ms",
            "end_time",
            "error",
            "event_count",
            "files_modified",
            "instructions",
            "model",
            "response_preview",
            "start_time",
            "success",
            "tokens",
            "tool_calls",
            "tool_failures",
            "tool_operations",
            "tool_use_id"
        ]
    );
    assert_eq!(d["agent_type"], "engineer");
    assert_eq!(
        d["files_modified"],
        json!(["/tmp/proj/src/auth.py", "/tmp/proj/src/server.py"])
    );
    assert_eq!(d["success"], true);
    assert_eq!(
        keys(&full["metrics"]),
        [
            "agents_used",
            "api_calls",
            "cost_usd",
            "event_breakdown",
            "failed_delegations",
            "files_modified",
            "models",
            "prompts",
            "session_duration_ms",
            "successful_delegations",
            "tokens",
            "tool_calls",
            "tool_failures",
            "tools_used",
            "total_delegations",
            "total_events"
        ]
    );
    // A source without transcripts tells no API call: no tokens, no cost,
    // no Claude Code account, no sub-agent ids.
    assert_eq!(
        (
            &full["metrics"]["api_calls"],
            &full["metrics"]["tokens"],
            &full["metrics"]["cost_usd"]
        ),
        (&json!(0), &Value::Null, &Value::Null)
    );
    assert!(full["metrics"].get("claude_code").is_none());
    assert_eq!(
        (&d["agent_id"], &d["tool_use_id"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(full["sources"], json!(["import"]));
    assert_eq!(full["metrics"]["total_events"], 47);
    assert_eq!(full["metrics"]["session_duration_ms"], 3151);
    assert_eq!(
        full["metrics"]["tools_used"],
        json!(["Task", "Read", "Grep", "TodoWrite", "Write", "Edit", "Bash"])
    );

    let summary = env.json(&["export", "5283", "-o", "-", "--format", "summary"]);
    assert!(summary.get("events").is_none());
    assert_eq!(summary["delegations_summary"]["total"], 2);
    assert_eq!(summary["delegations"], full["delegations"]);
    assert_eq!(summary["metrics"], full["metrics"]);

    let events_only = env.json(&["export", "5283", "-o", "-", "--format", "events"]);
    assert_eq!(events_only, full["events"]);
    assert_eq!(
        env.json(&["export", "5283", "-o", "-", "--format", "json"]),
        full
    );

    // Default output name, gzip by extension.
    env.cmd(&["export", "5283"])
        .assert()
        .success()
        .stderr(predicate::str::contains("session_5283b66c_full.json"));
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("session_5283b66c_full.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written, full);
    env.cmd(&[
        "export",
        "7a91",
        "-o",
        "out/../b.json.gz",
        "--format",
        "events",
    ])
    .assert()
    .failure();
    env.cmd(&["export", "7a91", "-o", "b.json.gz", "--format", "events"])
        .assert()
        .success();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(env.path("b.json.gz")).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        10
    );
}

#[test]
fn a_summary_then_the_full_document_of_a_session_counts_each_event_once() {
    let env = Env::with_fixtures();
    for (prefix, events) in [("5283", 47), ("9f1c", 11)] {
        let summary = env.stdout(&["export", prefix, "-o", "-", "--format", "summary"]);
        let full = env.stdout(&["export", prefix, "-o", "-"]);
        std::fs::write(env.path("summary.json"), summary).unwrap();
        std::fs::write(env.path("full.json"), full).unwrap();
        for order in [["summary.json", "full.json"], ["full.json", "summary.json"]] {
            let other = Env {
                dir: tempfile::tempdir().unwrap(),
            };
            for file in order {
                other
                    .cmd(&["import", &env.path(file).to_string_lossy()])
                    .assert()
                    .success();
            }
            let sessions = other.json(&["sessions", "--json"]);
            assert_eq!(sessions[0]["event_count"], events, "{prefix} {order:?}");
            let doc = other.json(&["export", prefix, "-o", "-"]);
            assert_eq!(doc["metrics"]["total_events"], events, "{prefix} {order:?}");
            assert_eq!(doc["events"].as_array().unwrap().len(), events as usize);
        }
    }
}

#[test]
fn export_import_export_round_trip_is_identical() {
    let env = Env::with_fixtures();
    for (id, prefix) in [
        (SESSION_A, "5283"),
        ("9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", "9f1c"),
    ] {
        let first = env.json(&["export", prefix, "-o", "-"]);
        std::fs::write(env.path("first.json"), first.to_string()).unwrap();
        let other = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        other
            .cmd(&["import", &env.path("first.json").to_string_lossy()])
            .assert()
            .success();
        let second = other.json(&["export", id, "-o", "-"]);
        for field in [
            "events",
            "delegations",
            "metrics",
            "session_id",
            "start_time",
            "end_time",
            "initial_prompt",
            "final_response",
            "working_directory",
            "git_branch",
            "claude_version",
            "sources",
        ] {
            assert_eq!(
                first[field], second[field],
                "{id}: {field} differs after the round trip"
            );
        }
        // The events format imports too.
        let events = env.stdout(&["export", prefix, "-o", "-", "--format", "events"]);
        std::fs::write(env.path("events.json"), events).unwrap();
        let third = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        third
            .cmd(&["import", &env.path("events.json").to_string_lossy()])
            .assert()
            .success();
        assert_eq!(
            third.json(&["export", id, "-o", "-", "--format", "events"]),
            first["events"]
        );
    }
    // A real Claude Code run from its hooks and transcripts: every field,
    // the new figures included, comes back the same.
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, want) = claude_code_truth();
    let env = Env::with_claude_code_run(&run, &run.join("transcripts"));
    for format in ["full", "summary"] {
        let first = env.json(&["export", &id, "-o", "-", "--format", format]);
        std::fs::write(env.path("first.json"), first.to_string()).unwrap();
        let other = Env::empty();
        other
            .cmd(&["import", &env.path("first.json").to_string_lossy()])
            .assert()
            .success();
        let second = other.json(&["export", &id, "-o", "-", "--format", format]);
        let (mut a, mut b) = (first.clone(), second.clone());
        // Where the session file lives is the store's own.
        for doc in [&mut a, &mut b] {
            doc["metadata"].as_object_mut().unwrap().remove("file_path");
        }
        assert_eq!(a, b, "{format}: differs after the round trip");
        check_claude_code_document(
            &second,
            &want,
            &transcript_version(&run.join("transcripts"), &id),
            format,
        );
    }
}

/// A real Claude Code 2.1 run (SPEC section 7), its hooks and transcripts.
const CLAUDE_CODE_RUN: &str = "claude-code-2.1/a-mpm-fast";

impl Env {
    /// An empty working directory.
    fn empty() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A working directory with `run`'s hooks and transcripts (in `transcripts`) imported.
    fn with_claude_code_run(run: &Path, transcripts: &Path) -> Env {
        let env = Env::empty();
        env.cmd(&[
            "import",
            &run.join("hooks.jsonl").to_string_lossy(),
            &transcripts.to_string_lossy(),
        ])
        .assert()
        .success();
        env
    }
}

/// A copy of the run's transcripts under `to` (Claude Code's layout kept),
/// each file passed through `rewrite`.
fn copy_transcripts(run: &Path, to: &Path, rewrite: impl Fn(String) -> String) {
    for file in walk(&run.join("transcripts")) {
        let target = to.join(file.strip_prefix(run.join("transcripts")).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, rewrite(std::fs::read_to_string(&file).unwrap())).unwrap();
    }
}

/// The model of the run renamed to one no price table knows.
const UNKNOWN_MODEL: &str = "claude-nobody-knows-1";

/// The run's truth: its one session id and `expected.json`'s reconstruction of it.
fn claude_code_truth() -> (String, Value) {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(CLAUDE_CODE_RUN).join("expected.json")).unwrap(),
    )
    .unwrap();
    let (id, want) = expected.as_object().unwrap().iter().next().unwrap();
    (id.clone(), want.clone())
}

/// USD at the public prices of `claude-sonnet-4-5` (3 input, 15 output, 3.75
/// 5-minute cache writes, 0.30 cache reads, per million tokens).
fn sonnet_cost(tokens: &Value) -> f64 {
    let n = |k: &str| tokens[k].as_f64().unwrap();
    (n("input") * 3.0 + n("output") * 15.0 + n("cache_creation") * 3.75 + n("cache_read") * 0.30)
        / 1e6
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() < 1e-9)
}

/// `1,234`.
fn grouped(n: &Value) -> String {
    let digits = n.as_i64().unwrap().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The transcript's own `version` (what `claude_version` must be).
fn transcript_version(transcripts: &Path, id: &str) -> String {
    let main = walk(transcripts)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{id}.jsonl"))
        .unwrap();
    std::fs::read_to_string(main)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["version"].as_str().map(str::to_string))
        .unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Checks a document's (or `view --json`'s) SPEC section 7 fields against the run's truth.
fn check_claude_code_document(doc: &Value, want: &Value, version: &str, ctx: &str) {
    let m = &doc["metrics"];
    assert_eq!(
        m["prompts"].as_u64().unwrap() as usize,
        want["prompts"].as_array().unwrap().len(),
        "{ctx}: prompts"
    );
    for key in [
        "tool_calls",
        "tool_failures",
        "api_calls",
        "tokens",
        "models",
    ] {
        assert_eq!(m[key], want[key], "{ctx}: metrics.{key}");
    }
    assert!(
        close(&m["cost_usd"], sonnet_cost(&want["tokens"])),
        "{ctx}: cost {}",
        m["cost_usd"]
    );
    assert_eq!(
        m["claude_code"], want["claude_code"],
        "{ctx}: Claude Code's account"
    );
    assert_eq!(doc["git_branch"], want["git_branch"], "{ctx}: git branch");
    assert_eq!(doc["claude_version"], version, "{ctx}: Claude version");
    let sources: Vec<&str> = doc["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"transcript"),
        "{ctx}: sources {sources:?}"
    );
    let got = doc["delegations"].as_array().unwrap();
    assert_eq!(
        got.len(),
        want["delegations"].as_array().unwrap().len(),
        "{ctx}"
    );
    for w in want["delegations"].as_array().unwrap() {
        let d = got
            .iter()
            .find(|d| d["agent_id"] == w["agent_id"])
            .unwrap_or_else(|| panic!("{ctx}: no delegation {}", w["agent_id"]));
        for key in [
            "agent_type",
            "tool_use_id",
            "tool_calls",
            "tool_failures",
            "api_calls",
            "tokens",
        ] {
            assert_eq!(d[key], w[key], "{ctx}: delegation {} {key}", w["agent_id"]);
        }
        assert_eq!(d["model"], want["models"][0], "{ctx}: delegation model");
        assert!(
            close(&d["cost_usd"], sonnet_cost(&w["tokens"])),
            "{ctx}: delegation cost"
        );
        // Neither background nor nested: the fields are left out.
        assert!(d.get("background").is_none() && d.get("parent_agent_id").is_none());
    }
}

#[test]
fn documents_view_and_sessions_carry_a_real_runs_tokens_cost_and_sources() {
    let run = fixture(CLAUDE_CODE_RUN);
    let transcripts = run.join("transcripts");
    let (id, want) = claude_code_truth();
    let version = transcript_version(&transcripts, &id);
    let env = Env::with_claude_code_run(&run, &transcripts);

    let full = env.json(&["export", &id, "-o", "-"]);
    check_claude_code_document(&full, &want, &version, "full");
    let summary = env.json(&["export", &id, "-o", "-", "--format", "summary"]);
    check_claude_code_document(&summary, &want, &version, "summary");
    let view = env.json(&["view", &id, "--json"]);
    check_claude_code_document(&view, &want, &version, "view --json");

    // The text: ours, Claude Code's own account beside it, each delegation's own.
    let text = env.stdout(&["view", &id[..8]]);
    let tokens_line = |t: &Value| {
        format!(
            "{} in · {} out · {} cache write · {} cache read",
            grouped(&t["input"]),
            grouped(&t["output"]),
            grouped(&t["cache_creation"]),
            grouped(&t["cache_read"])
        )
    };
    let cc = &want["claude_code"];
    let mut needles = vec![
        format!("claude code: {version}"),
        "sources:     ".to_string()
            + &full["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(", "),
        format!("prompts:     {}", want["prompts"].as_array().unwrap().len()),
        format!(
            "tool calls:  {} ({} failed)",
            want["tool_calls"], want["tool_failures"]
        ),
        format!(
            "API calls:   {} ({})",
            want["api_calls"],
            want["models"][0].as_str().unwrap()
        ),
        format!("tokens:      {}", tokens_line(&want["tokens"])),
        format!(
            "cost:        ${:.4} · Claude Code's own account ${:.4}",
            sonnet_cost(&want["tokens"]),
            cc["cost_usd"].as_f64().unwrap()
        ),
        format!(
            "Claude Code: {} · lines +{} -{}",
            tokens_line(&cc["tokens"]),
            cc["lines_added"],
            cc["lines_removed"]
        ),
    ];
    for w in want["delegations"].as_array().unwrap() {
        needles.push(format!(
            "agent:   {} (call {})",
            w["agent_id"].as_str().unwrap(),
            w["tool_use_id"].as_str().unwrap()
        ));
        needles.push(format!(
            "({} calls, {} failed)",
            w["tool_calls"], w["tool_failures"]
        ));
        needles.push(format!("tokens:  {}", tokens_line(&w["tokens"])));
        needles.push(format!(
            "cost:    ${:.4} ({} API calls, {})",
            sonnet_cost(&w["tokens"]),
            w["api_calls"],
            want["models"][0].as_str().unwrap()
        ));
    }
    for needle in &needles {
        assert!(text.contains(needle.as_str()), "{needle:?} not in\n{text}");
    }

    // `sessions`: a COST column, and tokens, cost and sources in JSON.
    let list = env.json(&["sessions", "--json"]);
    let s = &list[0];
    assert_eq!(s["session_id"], id.as_str());
    assert_eq!(s["tokens"], want["tokens"]);
    assert!(close(&s["cost_usd"], sonnet_cost(&want["tokens"])));
    assert_eq!(s["sources"], full["sources"]);
    let table = env.stdout(&["sessions"]);
    assert!(table.lines().next().unwrap().contains(" COST "), "{table}");
    assert!(
        table.contains(&format!("${:.4}", sonnet_cost(&want["tokens"]))),
        "{table}"
    );
    for line in table.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}"
        );
    }
}

#[test]
fn an_unknown_model_has_no_cost_anywhere() {
    // The same run, as if its model had no price: tokens as counted, cost unknown.
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, want) = claude_code_truth();
    let model = want["models"][0].as_str().unwrap();
    let unknown = UNKNOWN_MODEL;
    let copy = tempfile::tempdir().unwrap();
    copy_transcripts(&run, copy.path(), |text| text.replace(model, unknown));
    let env = Env::with_claude_code_run(&run, copy.path());
    let doc = env.json(&["export", &id, "-o", "-"]);
    assert_eq!(doc["metrics"]["tokens"], want["tokens"]);
    assert_eq!(doc["metrics"]["models"], json!([unknown]));
    assert_eq!(doc["metrics"]["cost_usd"], Value::Null);
    for d in doc["delegations"].as_array().unwrap() {
        assert_eq!(
            (&d["model"], &d["cost_usd"]),
            (&json!(unknown), &Value::Null)
        );
        assert!(d["tokens"].is_object());
    }
    let text = env.stdout(&["view", &id]);
    assert!(
        text.contains(&format!("cost:        — (no price for {unknown})")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "cost:    — ({} API calls, {unknown})",
            want["delegations"][0]["api_calls"]
        )),
        "{text}"
    );
    let list = env.json(&["sessions", "--json"]);
    assert_eq!(
        (&list[0]["cost_usd"], &list[0]["tokens"]),
        (&Value::Null, &want["tokens"])
    );
    let table = env.stdout(&["sessions"]);
    let row = table.lines().find(|l| l.contains(&id[..8])).unwrap();
    assert!(row.contains(" — "), "{table}");
}

#[test]
fn the_import_report_tells_what_was_merged_from_another_source() {
    let run = fixture(CLAUDE_CODE_RUN);
    let env = Env::empty();
    let hooks = env.stdout(&["import", &run.join("hooks.jsonl").to_string_lossy()]);
    assert!(!hooks.contains("merged"), "{hooks}");
    let transcripts = env.stdout(&["import", &run.join("transcripts").to_string_lossy()]);
    // What of the transcripts tells no event is counted, not dropped unsaid.
    let lines: usize = walk(&run.join("transcripts"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum();
    assert!(
        transcripts.contains(&format!("{lines} transcript lines read; ")),
        "{transcripts}"
    );
    let api_requests = walk(&run.join("transcripts"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "api-request"))
        .count();
    assert!(
        transcripts.contains(&format!("line:api-request {api_requests},")),
        "{transcripts}"
    );
    let transcripts = transcripts.lines().next().unwrap().to_string();
    let merged: u64 = transcripts
        .trim()
        .split(", ")
        .find_map(|part| part.strip_suffix(" merged into events already stored"))
        .unwrap_or_else(|| panic!("{transcripts}"))
        .parse()
        .unwrap();
    // Every tool call's start and end, both prompts and turn ends, both
    // sub-agents' starts and stops were seen by the hooks already.
    let (_, want) = claude_code_truth();
    let tool_calls = want["tool_calls"].as_u64().unwrap();
    let turns = want["turns"].as_u64().unwrap();
    let delegations = want["delegations"].as_array().unwrap().len() as u64;
    assert_eq!(
        merged,
        2 * tool_calls + 2 * turns + 2 * delegations,
        "{transcripts}"
    );
}

#[test]
fn a_second_import_of_unchanged_transcripts_reads_none_of_them_and_a_grown_one_again() {
    let run = fixture(CLAUDE_CODE_RUN);
    let env = Env::empty();
    let projects = env.path("projects");
    copy_transcripts(&run, &projects, |t| t);
    let files = walk(&projects)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect::<Vec<_>>();
    let first = env.stdout(&["import", &projects.to_string_lossy()]);
    assert!(
        first.starts_with("imported 65 events (1 session)"),
        "{first}"
    );
    let figures = |env: &Env| {
        env.stdout(&[
            "query",
            "SELECT count(*), (SELECT count(*) FROM transcript_offsets) FROM events",
            "--format",
            "csv",
        ])
    };
    let stored = figures(&env);
    assert!(
        stored.ends_with(&format!("65,{}\n", files.len())),
        "{stored}"
    );
    // Nothing changed: every file is only looked at (its size is its offset).
    let second = env.stdout(&["import", &projects.to_string_lossy()]);
    assert!(
        second.starts_with("imported 0 events (0 sessions) from 1 file: 0 skipped as duplicate"),
        "{second}"
    );
    assert!(
        second.contains(&format!(
            "{} transcript files unchanged since they were last read (not read again)",
            files.len()
        )),
        "{second}"
    );
    assert!(!second.contains("transcript lines read"), "{second}");
    assert_eq!(figures(&env), stored);
    // A grown file is read again from its start: what is stored is dropped,
    // the new line stored; the others are still left alone.
    let main = files
        .iter()
        .find(|p| !p.to_string_lossy().contains("subagents"))
        .unwrap();
    let text = std::fs::read_to_string(main).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let prompt = serde_json::json!({
        "type": "user", "uuid": "0b5e1d3c-0000-4000-8000-00000000beef", "parentUuid": null,
        "promptId": "0b5e1d3c-0000-4000-8000-00000000cafe", "sessionId": last["sessionId"],
        "timestamp": "2026-11-24T10:59:00.000Z", "cwd": "/home/dev/work/a-fast/proj",
        "message": {"role": "user", "content": "one more prompt"}
    });
    std::fs::write(main, format!("{text}{prompt}\n")).unwrap();
    let third = env.stdout(&["import", &projects.to_string_lossy()]);
    assert!(third.starts_with("imported 1 event (1 session)"), "{third}");
    assert!(
        third.contains(&format!("{} transcript files unchanged", files.len() - 1)),
        "{third}"
    );
    assert!(
        figures(&env).ends_with(&format!("66,{}\n", files.len())),
        "{}",
        figures(&env)
    );
}

#[test]
fn import_without_a_file_reads_claude_codes_projects_folder() {
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, want) = claude_code_truth();
    let env = Env::empty();
    // No projects folder yet: a clear error that names where it looked.
    let home = tempfile::tempdir().unwrap();
    let err = failure_stderr(env.cmd(&["import"]).env("CLAUDE_CONFIG_DIR", home.path()));
    assert!(err.contains("no Claude Code transcripts at"), "{err}");
    // Claude Code's layout: <config dir>/projects/<project>/<session>.jsonl.
    let projects = home.path().join("projects");
    copy_transcripts(&run, &projects, |text| text);
    env.cmd(&["import"])
        .env("CLAUDE_CONFIG_DIR", home.path())
        .assert()
        .success();
    let doc = env.json(&["export", &id, "-o", "-"]);
    assert_eq!(doc["metrics"]["tokens"], want["tokens"]);
    assert_eq!(doc["metrics"]["tool_calls"], want["tool_calls"]);
}

#[test]
fn hooks_imported_without_times_do_not_stretch_a_session_the_transcripts_time() {
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, _) = claude_code_truth();
    let times = |files: &[PathBuf]| {
        let env = Env::empty();
        for f in files {
            env.cmd(&["import", &f.to_string_lossy()])
                .assert()
                .success();
        }
        let doc = env.json(&["export", &id, "-o", "-"]);
        (doc["start_time"].clone(), doc["end_time"].clone())
    };
    let transcripts = run.join("transcripts");
    let hooks = run.join("hooks.jsonl");
    let truth = times(std::slice::from_ref(&transcripts));
    assert!(truth.1.is_string(), "ended: {truth:?}");
    assert_eq!(times(&[hooks.clone(), transcripts.clone()]), truth);
    assert_eq!(times(&[transcripts, hooks]), truth);
}

#[test]
fn prune_from_another_directory_removes_the_files_an_import_named() {
    // The import runs with relative paths; the prune from elsewhere, with absolute ones.
    let env = Env::with_fixtures();
    let file: String = rusqlite::Connection::open(env.path("rec.db"))
        .unwrap()
        .query_row(
            "SELECT file_path FROM sessions WHERE session_id LIKE '9f1c%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(Path::new(&file).is_absolute(), "{file}");
    assert!(Path::new(&file).exists());
    rusqlite::Connection::open(env.path("rec.db"))
        .unwrap()
        .execute(
            "UPDATE sessions SET stored_at = '2020-01-01T00:00:00.000Z' WHERE session_id LIKE '9f1c%'",
            [],
        )
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let mut prune = Command::cargo_bin("mpm-aggregate").unwrap();
    prune
        .current_dir(elsewhere.path())
        .arg("--db")
        .arg(env.path("rec.db"))
        .arg("--activity-dir")
        .arg(env.path("activity"))
        .args(["prune", "--older-than-days", "30"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 session files"));
    assert!(!Path::new(&file).exists());
}

#[test]
fn a_users_price_file_prices_what_the_built_in_table_does_not() {
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, want) = claude_code_truth();
    let model = want["models"][0].as_str().unwrap();
    let unknown = UNKNOWN_MODEL;
    let copy = tempfile::tempdir().unwrap();
    copy_transcripts(&run, copy.path(), |text| text.replace(model, unknown));
    let env = Env::empty();
    std::fs::create_dir_all(env.path(".claude-mpm")).unwrap();
    std::fs::write(
        env.path(".claude-mpm/config.toml"),
        "[event_aggregator]\npricing_file = \"prices.toml\"\n",
    )
    .unwrap();
    std::fs::write(
        env.path("prices.toml"),
        format!("[models.{unknown}]\ninput = 1\noutput = 2\ncache_write_5m = 3\ncache_write_1h = 4\ncache_read = 0.5\n"),
    )
    .unwrap();
    env.cmd(&["import", &copy.path().to_string_lossy()])
        .assert()
        .success();
    let doc = env.json(&["export", &id, "-o", "-"]);
    let t = &want["tokens"];
    let n = |k: &str| t[k].as_f64().unwrap();
    let cost =
        (n("input") + 2.0 * n("output") + 3.0 * n("cache_creation") + 0.5 * n("cache_read")) / 1e6;
    let got = doc["metrics"]["cost_usd"]
        .as_f64()
        .expect("priced by the user's file");
    assert!((got - cost).abs() < 1e-9, "{got} vs {cost}");
    assert!(!env.stdout(&["view", &id]).contains("no price"));
    // A price file that is not one is a clear error, not a silent fallback.
    std::fs::write(env.path("prices.toml"), "[models.x]\ninput = -1\n").unwrap();
    let err = failure_stderr(&mut env.cmd(&["import", &copy.path().to_string_lossy()]));
    assert!(err.contains("prices.toml"), "{err}");
}

#[test]
fn older_documents_still_import_without_the_new_figures() {
    let run = fixture(CLAUDE_CODE_RUN);
    let (id, want) = claude_code_truth();
    let env = Env::with_claude_code_run(&run, &run.join("transcripts"));
    // An export from before these fields: it imports, the figures the events
    // tell are rebuilt from them, the others are absent or zero.
    let mut old = env.json(&["export", &id, "-o", "-"]);
    for key in ["claude_version", "sources"] {
        old.as_object_mut().unwrap().remove(key);
    }
    let metrics = old["metrics"].as_object_mut().unwrap();
    for key in [
        "prompts",
        "tool_calls",
        "tool_failures",
        "api_calls",
        "tokens",
        "tokens_by_model",
        "models",
        "cost_usd",
        "claude_code",
    ] {
        metrics.remove(key);
    }
    for d in old["delegations"].as_array_mut().unwrap() {
        let d = d.as_object_mut().unwrap();
        for key in [
            "agent_id",
            "tool_use_id",
            "tool_calls",
            "tool_failures",
            "api_calls",
            "tokens",
            "model",
            "cost_usd",
        ] {
            d.remove(key);
        }
    }
    std::fs::write(env.path("old.json"), old.to_string()).unwrap();
    let other = Env::empty();
    other
        .cmd(&["import", &env.path("old.json").to_string_lossy()])
        .assert()
        .success();
    let again = other.json(&["export", &id, "-o", "-"]);
    assert_eq!(again["events"], old["events"]);
    for key in ["api_calls", "tokens", "models"] {
        assert_eq!(
            again["metrics"][key], want[key],
            "rebuilt from the events: {key}"
        );
    }
    assert_eq!(again["metrics"]["claude_code"], want["claude_code"]);
    assert_eq!(again["sources"], json!(["import"]));
    for d in again["delegations"].as_array().unwrap() {
        assert_eq!(
            (&d["agent_id"], &d["tool_use_id"], &d["tokens"]),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        assert_eq!((&d["api_calls"], &d["tool_calls"]), (&json!(0), &json!(0)));
    }
    // The Python original's file: none of these figures, nothing made up.
    let python = Env::empty();
    python
        .cmd(&["import", &fixture(PYTHON_SESSION).to_string_lossy()])
        .assert()
        .success();
    let doc = python.json(&["export", "9f1c", "-o", "-"]);
    assert_eq!(
        (
            &doc["metrics"]["api_calls"],
            &doc["metrics"]["tokens"],
            &doc["metrics"]["cost_usd"],
            &doc["claude_version"]
        ),
        (&json!(0), &Value::Null, &Value::Null, &Value::Null)
    );
    assert!(doc["metrics"].get("claude_code").is_none());
}

#[test]
fn query_prints_table_json_csv_and_refuses_writes() {
    let env = Env::with_fixtures();
    let table = env.stdout(&["query", "SELECT tool_name, count(*) AS n FROM events WHERE tool_name IS NOT NULL AND event_type = 'PreToolUse' GROUP BY 1 ORDER BY 2 DESC, 1"]);
    assert!(
        table.contains("tool_name") && table.contains("Read") && table.contains("rows)"),
        "{table}"
    );
    let rows = env.json(&[
        "query",
        "SELECT session_id, event_count FROM sessions ORDER BY event_count DESC",
        "--format",
        "json",
    ]);
    assert_eq!(rows[0], json!({"session_id": SESSION_A, "event_count": 47}));
    let csv = env.stdout(&[
        "query",
        "SELECT agent_type, success FROM delegations ORDER BY id",
        "--format",
        "csv",
    ]);
    assert_eq!(
        csv,
        "agent_type,success\nresearch,1\nengineer,1\nresearch,1\nengineer,0\n"
    );
    let json_fn = env.json(&[
        "query",
        "SELECT value FROM metrics, json_each(metrics.tools_used) WHERE session_id LIKE '7a91%'",
        "--format",
        "json",
    ]);
    assert_eq!(json_fn, json!([{"value": "Read"}]));

    let before = table_counts(&env.path("rec.db"));
    for sql in [
        "DROP TABLE events",
        "DELETE FROM events",
        "INSERT INTO sessions (session_id, start_time, last_event_time) VALUES ('x', 'a', 'b')",
        "UPDATE sessions SET status = 'active'",
        "ATTACH DATABASE 'attached.db' AS other",
        "PRAGMA writable_schema = ON",
        "PRAGMA user_version = 7",
        "VACUUM INTO 'copy.db'",
        "CREATE TABLE t (x)",
        "SELECT 1; DELETE FROM events",
    ] {
        env.fails(&["query", sql], "query refused");
    }
    assert!(!env.path("attached.db").exists() && !env.path("copy.db").exists());
    assert_eq!(table_counts(&env.path("rec.db")), before);
    env.fails(&["query", "SELECT nope FROM nowhere"], "no such table");
    // The newest migration applied (set after migrating; see `store::open_writable`).
    let version = env.stdout(&["query", "PRAGMA user_version", "--format", "csv"]);
    let version: i64 = version.lines().nth(1).unwrap().parse().unwrap();
    assert!(version >= 6, "{version}");
}

#[test]
fn status_and_prune_and_import_report() {
    let env = Env::with_fixtures();
    let status = env.json(&["status", "--json"]);
    assert_eq!(status["running"], false);
    assert_eq!(status["connected"], false);
    assert_eq!(status["total_events"], 70);
    assert_eq!(status["sessions"], 3);
    assert_eq!(status["active_sessions"], 0);
    // Nine tool calls in the capture, two in the Python file.
    assert_eq!(status["events_by_type"]["PreToolUse"], 11);
    assert_eq!(status["dashboard_port"], 8765);
    assert_eq!(status["save_directory"], "activity");
    assert_eq!(status["database"], "rec.db");
    let text = env.stdout(&["status"]);
    assert!(
        text.contains("not running") && text.contains("3 (0 active)"),
        "{text}"
    );

    env.cmd(&["import", &fixture(CAPTURE).to_string_lossy()])
        .assert()
        .success()
        .stdout("imported 0 events (2 sessions) from 1 file: 59 skipped as duplicate, 0 rejected, 2 control skipped\n");
    // The age prune uses is when data was stored here: an archive of 2025
    // imported today is young...
    env.cmd(&["prune", "--older-than-days", "1"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("pruned 0 sessions"));
    // ...until it has been kept here for a while.
    rusqlite::Connection::open(env.path("rec.db"))
        .unwrap()
        .execute(
            "UPDATE sessions SET stored_at = '2025-09-01T00:00:00.000Z' WHERE session_id LIKE '9f1c2d3e%'",
            [],
        )
        .unwrap();
    let days = (chrono::Utc::now()
        - chrono::DateTime::parse_from_rfc3339("2025-09-02T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc))
    .num_days();
    env.cmd(&["prune", "--older-than-days", &days.to_string()])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "pruned 1 sessions (11 events, 2 delegations, 1 session files)",
        ));
    assert_eq!(
        env.json(&["sessions", "--json"]).as_array().unwrap().len(),
        2
    );
    env.usage_error(&["prune", "--older-than-days", "0"], "must be at least 1");
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let env = Env::with_fixtures();
    env.fails(&["view", "ffff"], "no session matches 'ffff'");
    env.fails(&["export", "nope", "-o", "-"], "no session matches 'nope'");
    env.usage_error(
        &["export", "5283", "--format", "xml"],
        "possible values: full, summary, events",
    );
    env.fails(
        &["export", "5283", "-o", "/nonexistent-dir/x/out.json"],
        "/nonexistent-dir/x",
    );

    // An ambiguous prefix lists the candidates.
    let lines = ["abc-1", "abc-2"].map(|id| json!({"hook_event_name": "SessionStart", "session_id": id, "timestamp": "2026-01-01T00:00:00Z"}).to_string());
    std::fs::write(env.path("amb.jsonl"), lines.join("\n")).unwrap();
    env.cmd(&["import", "amb.jsonl"]).assert().success();
    env.fails(&["view", "abc"], "ambiguous: it matches abc-1, abc-2");
    env.cmd(&["view", "abc-2"]).assert().success();

    // Missing and corrupt databases.
    let mut missing = env.cmd(&["sessions"]);
    missing.args(["--db", "nothing-here.db"]);
    let out = missing
        .assert()
        .failure()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("no database here yet"));
    std::fs::write(env.path("corrupt.db"), vec![0x42u8; 8192]).unwrap();
    for args in [
        vec!["sessions"],
        vec!["view", "5283"],
        vec!["export", "5283", "-o", "-"],
        vec!["query", "SELECT 1"],
        vec!["status"],
    ] {
        let mut c = env.cmd(&args);
        c.args(["--db", "corrupt.db"]);
        let text = failure_stderr(&mut c);
        assert!(
            text.starts_with("error: database corrupt.db")
                && text.contains("not a database")
                && text.lines().count() == 1,
            "{args:?}: {text}"
        );
    }
    // Import of a file that is not there, and of garbage.
    env.fails(&["import", "missing.jsonl"], "missing.jsonl");
    // A broken document is read line by line: its lines are rejected, none is
    // lost silently; a file that yields nothing at all is a failure.
    std::fs::write(env.path("garbage.json"), "{\n  \"not\": \"closed\"\n").unwrap();
    env.cmd(&["import", "garbage.json"])
        .assert()
        .failure()
        .code(1)
        .stdout(predicate::str::contains(
            "imported 0 events (0 sessions) from 1 file: 0 skipped as duplicate, 2 rejected",
        ))
        .stderr(predicate::str::contains(
            "error: invalid format: no event could be read from garbage.json (2 rejected)",
        ));
    // A JSON-lines file with a broken first line keeps the lines after it.
    let good = json!({"hook_event_name": "SessionStart", "session_id": "after-a-bad-line", "timestamp": "2026-01-01T00:00:00Z"});
    std::fs::write(
        env.path("broken-first.jsonl"),
        format!("{{\"event\": \"claude_event\", \"data\": {{\"x\"\n{good}\n"),
    )
    .unwrap();
    env.cmd(&["import", "broken-first.jsonl"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "imported 1 event (1 session) from 1 file: 0 skipped as duplicate, 1 rejected",
        ));
    env.fails(&["--config", "nope.toml", "sessions"], "nope.toml");
}

/// The binary with the environment and global options of [`Env::cmd`], as a
/// plain process (for pipes the test wires itself).
fn std_cmd(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mpm-aggregate"));
    c.current_dir(env.dir.path())
        .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
        .env_remove("CLAUDE_MPM_ACTIVITY_DIR")
        .env_remove("RUST_LOG")
        .args(["--db", "rec.db", "--activity-dir", "activity"])
        .args(args);
    c
}

/// Output into a pipe whose reader has gone: exit 0, nothing on stderr.
fn assert_quiet_on_closed_pipe(env: &Env, args: &[&str]) {
    let (reader, writer) = nix::unistd::pipe().unwrap();
    // The reader is gone before the command writes anything: every write fails.
    drop(reader);
    let out = std_cmd(env, args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{args:?}: {stderr}");
}

#[test]
fn output_ends_quietly_when_the_reader_goes_away() {
    let env = Env::with_fixtures();
    for args in [
        &["sessions"][..],
        &["sessions", "--json"],
        &["view", "5283", "--show-events"],
        &["view", "5283", "--json"],
        &["query", "SELECT * FROM events"],
        &["query", "SELECT * FROM events", "--format", "csv"],
        &["query", "SELECT * FROM events", "--format", "json"],
        &["export", "5283", "-o", "-"],
        &["status"],
    ] {
        assert_quiet_on_closed_pipe(&env, args);
    }

    // `| head -c1`: the reader takes one byte, then goes while output still comes.
    let rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 300000) SELECT x FROM c";
    for args in [
        &["query", rows][..],
        &["query", rows, "--format", "csv"],
        &["export", "5283", "-o", "-"],
    ] {
        let mut child = std_cmd(&env, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        std::io::Read::read_exact(&mut stdout, &mut byte).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn sessions_limit_zero_is_not_an_empty_store() {
    let env = Env::with_fixtures();
    let text = env.stdout(&["sessions", "--limit", "0"]);
    assert!(!text.contains("no sessions recorded yet"), "{text}");
    assert!(text.contains("ID") && text.contains("… 3 more"), "{text}");
    let one = env.stdout(&["sessions", "--limit", "1"]);
    assert!(one.contains("… 2 more"), "{one}");
    assert_eq!(env.json(&["sessions", "--json", "--limit", "0"]), json!([]));

    // An empty store still says so.
    let empty = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::write(empty.path("empty.jsonl"), "").unwrap();
    empty.cmd(&["import", "empty.jsonl"]).assert().success();
    assert_eq!(empty.stdout(&["sessions"]), "no sessions recorded yet\n");
}

#[test]
fn export_into_a_directory_is_shareable_and_does_not_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_fixtures();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let full = env.json(&["export", "5283", "-o", "-"]);

    // A directory means: the default file name inside it.
    env.cmd(&["export", "5283", "-o", "activity"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "to activity/session_5283b66c_full.json",
        ));
    let inside = env.path("activity/session_5283b66c_full.json");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&inside).unwrap()).unwrap();
    assert_eq!(written, full);
    env.cmd(&["export", "5283", "-o", ".", "--format", "summary"])
        .assert()
        .success();
    let summary = env.path("session_5283b66c_summary.json");
    assert!(summary.exists());

    // Exports are for sharing (0644); the database and session files stay private.
    assert_eq!(mode(&inside), 0o644);
    assert_eq!(mode(&summary), 0o644);
    assert_eq!(mode(&env.path("rec.db")), 0o600);
    let session_file = env.json(&["sessions", "--json"])[0]["file_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(mode(&env.path(&session_file)), 0o600);

    // An existing file is kept unless --force.
    std::fs::write(env.path("mine.json"), "keep me").unwrap();
    env.fails(&["export", "7a91", "-o", "mine.json"], "--force");
    env.fails(&["export", "5283", "-o", "activity"], "--force");
    assert_eq!(
        std::fs::read_to_string(env.path("mine.json")).unwrap(),
        "keep me"
    );
    env.cmd(&["export", "7a91", "-o", "mine.json", "--force"])
        .assert()
        .success();
    let replaced: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("mine.json")).unwrap()).unwrap();
    assert_eq!(replaced["session_id"], SESSION_B);
    assert_eq!(mode(&env.path("mine.json")), 0o644);
}

#[test]
fn choices_are_checked_by_the_parser() {
    let env = Env::with_fixtures();
    env.usage_error(&["prune", "--older-than-days", "0"], "--older-than-days");
    env.usage_error(
        &["query", "SELECT 1", "--format", "yaml"],
        "table, json, csv",
    );
    env.usage_error(&["sessions", "--sort", "size"], "time, events, duration");
    env.usage_error(
        &["export", "5283", "--format", "pdf"],
        "full, summary, events, html",
    );
    // `json` stays a name of `full`, in any case.
    let full = env.json(&["export", "5283", "-o", "-"]);
    assert_eq!(
        env.json(&["export", "5283", "-o", "-", "--format", "JSON"]),
        full
    );
    assert_eq!(
        env.json(&["export", "5283", "-o", "-", "--format", "Full"]),
        full
    );
}

#[test]
fn query_errors_are_sqlites_own_and_refused_only_for_writes() {
    let env = Env::with_fixtures();
    for (sql, needle) in [
        ("SELEC 1", "near \"SELEC\": syntax error"),
        ("SELECT nope FROM events", "no such column: nope"),
        ("SELECT count(* FROM events", "syntax error"),
        ("/* only a comment */", "no SQL statement"),
    ] {
        let text = failure_stderr(&mut env.cmd(&["query", sql]));
        assert!(text.contains(needle), "{sql}: {text}");
        assert!(!text.contains("refused"), "{sql}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
    env.fails(&["query", "DELETE FROM events"], "query refused");
    env.usage_error(&["query", ""], "SQL statement is required");
    env.usage_error(&["query", "  "], "SQL statement is required");
}

#[test]
fn import_of_junk_shows_a_few_warnings_then_a_count_and_fails() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let junk: String = (0..5000).map(|i| format!("not json {i}\n")).collect();
    std::fs::write(env.path("junk.txt"), &junk).unwrap();
    let out = env
        .cmd(&["import", "junk.txt"])
        .assert()
        .failure()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() <= 8, "{} lines:\n{stderr}", lines.len());
    assert_eq!(
        lines.iter().filter(|l| l.contains("not JSON")).count(),
        5,
        "{stderr}"
    );
    assert!(
        stderr.contains("4995 more rejected inputs not shown (5000 in all"),
        "{stderr}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &"error: invalid format: no event could be read from junk.txt (5000 rejected); the rejected inputs are in the rejected_events table"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("5000 rejected"));
    assert_eq!(
        count(&env.path("rec.db"), "SELECT count(*) FROM rejected_events"),
        5000
    );

    // Bad lines among good ones: warnings, but the import succeeds.
    let mut mixed = std::fs::read_to_string(fixture(CAPTURE)).unwrap();
    mixed.push_str(&junk[..200]);
    std::fs::write(env.path("mixed.jsonl"), mixed).unwrap();
    env.cmd(&["import", "mixed.jsonl"])
        .assert()
        .success()
        .stdout(predicate::str::contains("imported 59 events"));
}

#[test]
fn import_reads_standard_input_plain_or_gzip() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let capture = std::fs::read(fixture(CAPTURE)).unwrap();
    env.cmd(&["import", "-"])
        .write_stdin(capture.clone())
        .assert()
        .success()
        .stdout("imported 59 events (2 sessions) from 1 file: 0 skipped as duplicate, 0 rejected, 2 control skipped\n");
    let python = std::fs::read(fixture(PYTHON_SESSION)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &python).unwrap();
    env.cmd(&["import", "-"])
        .write_stdin(gz.finish().unwrap())
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "imported 11 events (1 session)",
        ));
    env.cmd(&["import", "-"])
        .write_stdin("garbage\n")
        .assert()
        .failure()
        .code(1)
        .stderr(predicate::str::contains(
            "no event could be read from standard input (1 rejected)",
        ));
}

#[test]
fn import_notes_sessions_older_than_the_cleanup_age() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let at = |days: i64| (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    let lines = [
        json!({"hook_event_name": "SessionStart", "session_id": "old-one", "timestamp": at(41)}),
        json!({"hook_event_name": "Stop", "session_id": "old-one", "timestamp": at(40)}),
        json!({"hook_event_name": "SessionStart", "session_id": "old-but-active", "timestamp": at(45)}),
        json!({"hook_event_name": "Stop", "session_id": "old-but-active", "timestamp": at(1)}),
        json!({"hook_event_name": "SessionStart", "session_id": "new-one", "timestamp": at(2)}),
    ]
    .map(|l| l.to_string());
    std::fs::write(env.path("mixed-ages.jsonl"), lines.join("\n")).unwrap();
    env.cmd(&["import", "mixed-ages.jsonl"])
        .assert()
        .success()
        .stderr("note: 1 imported session is older than auto_cleanup_days (30 days); it is kept: cleanup counts from when data was stored here\n");

    // Older than a shorter cleanup age: all three; no cleanup (0): no note.
    for (days, note) in [
        (
            "1",
            "note: 3 imported sessions are older than auto_cleanup_days (1 days); they are kept",
        ),
        ("0", ""),
    ] {
        let other = Env {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(
            other.path("config.toml"),
            format!("[event_aggregator]\nauto_cleanup_days = {days}\n"),
        )
        .unwrap();
        let out = other
            .cmd(&[
                "--config",
                "config.toml",
                "import",
                &env.path("mixed-ages.jsonl").to_string_lossy(),
            ])
            .assert()
            .success()
            .get_output()
            .stderr
            .clone();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with(note) && (note.is_empty() == text.is_empty()),
            "{days}: {text}"
        );
    }
}

#[test]
fn status_last_at_is_the_newest_event_without_a_scan() {
    let env = Env::with_fixtures();
    // The Python session (2025) was imported last; the newest event is the capture's.
    let newest = env.json(&[
        "query",
        "SELECT max(timestamp) AS t FROM events",
        "--format",
        "json",
    ])[0]["t"]
        .clone();
    assert_eq!(newest, "2026-11-24T04:24:14.631Z");
    assert_eq!(env.json(&["status", "--json"])["last_event_time"], newest);
    assert!(env
        .stdout(&["status"])
        .contains("(last at 2026-11-24T04:24:14.631Z)"));

    // An event of no session counts too.
    let loose = json!({"hook_event_name": "Notification", "timestamp": "2027-01-02T00:00:00.000Z", "message": "no session"});
    std::fs::write(env.path("loose.jsonl"), loose.to_string()).unwrap();
    env.cmd(&["import", "loose.jsonl"]).assert().success();
    assert_eq!(
        env.json(&[
            "query",
            "SELECT session_id FROM events WHERE timestamp = '2027-01-02T00:00:00.000Z'",
            "--format",
            "json"
        ]),
        json!([{"session_id": null}])
    );
    assert_eq!(
        env.json(&["status", "--json"])["last_event_time"],
        "2027-01-02T00:00:00.000Z"
    );

    let plan = env.stdout(&[
        "query",
        &format!(
            "EXPLAIN QUERY PLAN {}",
            mpm_aggregate::store::queries::LAST_EVENT_TIME_SQL
        ),
    ]);
    assert!(plan.contains("USING INDEX events_by_session"), "{plan}");
    assert!(
        !plan.lines().any(|l| l.contains("SCAN events")),
        "a scan of events:\n{plan}"
    );
}

#[test]
fn hints_repeat_the_global_options_given() {
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
    };
    let globals = ["--db", "my db.db", "--activity-dir", "act dir"];
    let bin = assert_cmd::cargo::cargo_bin("mpm-aggregate");
    let run = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.current_dir(env.path(""))
            .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
            .env_remove("CLAUDE_MPM_ACTIVITY_DIR")
            .env_remove("RUST_LOG")
            .args(globals)
            .args(args)
            .timeout(std::time::Duration::from_secs(60));
        c
    };
    // Runs a hint as a user would paste it into a shell.
    let paste = |hint: &str| {
        let line = hint.replacen("mpm-aggregate", &format!("'{}'", bin.display()), 1);
        std::process::Command::new("sh")
            .args(["-c", &line])
            .current_dir(env.path(""))
            .output()
            .unwrap()
    };
    let expected = "mpm-aggregate --db 'my db.db' --activity-dir 'act dir' stop";

    // No database yet: the hint names the options given.
    let out = run(&["sessions"])
        .assert()
        .failure()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("`mpm-aggregate --db 'my db.db' --activity-dir 'act dir' start`")
            && !text.contains("pass --db"),
        "{text}"
    );

    struct Kill(PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(&self.0)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _kill = Kill(env.path("act dir/mpm-aggregate.pid"));
    let port = free_port().to_string();
    let out = run(&[
        "start",
        "--daemon",
        "--force",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
    ])
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let text = String::from_utf8_lossy(&out);
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("stop with: "))
        .unwrap_or_else(|| panic!("no stop hint in {text}"));
    assert_eq!(hint, expected);

    let out = run(&["start", "--port", &port])
        .assert()
        .failure()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("already running") && text.contains(&format!("`{expected}`")),
        "{text}"
    );

    let stopped = paste(hint);
    assert!(
        stopped.status.success(),
        "{hint}: {}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped recorder"));
    assert!(!env.path("act dir/mpm-aggregate.pid").exists());
}
