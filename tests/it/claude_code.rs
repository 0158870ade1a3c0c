//! Claude Code 2.1 as a source (SPEC section 7): the real runs of
//! `fixtures/claude-code-2.1/` rebuilt from each source alone and from every
//! combination, in every order, against the run's `expected.json` (the output
//! of `real-claude/truth.py`, computed from the raw hooks and transcripts).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{count, fixture, import_with, open, reconstruction, wait_until, TestMonitor};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Source {
    Hooks,
    Transcripts,
    Monitor,
}

fn path_of(run: &Path, source: Source) -> PathBuf {
    match source {
        Source::Hooks => run.join("hooks.jsonl"),
        Source::Transcripts => run.join("transcripts"),
        Source::Monitor => run.join("monitor-capture.jsonl"),
    }
}

fn config_in(dir: &Path) -> mpm_aggregate::Config {
    mpm_aggregate::Config {
        database: dir.join("rec.db"),
        activity_directory: dir.join("activity"),
        ..Default::default()
    }
}

fn json_of(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn sorted(v: &Value) -> Vec<String> {
    let mut items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

fn cost(tokens: &Value) -> f64 {
    let n = |k: &str| tokens[k].as_f64().unwrap();
    (n("input") * 3.0 + n("output") * 15.0 + n("cache_creation") * 3.75 + n("cache_read") * 0.30)
        / 1e6
}

/// Imports `sources` in that order into a fresh store and checks the session
/// against the run's truth.
fn check(run_name: &str, sources: &[Source]) {
    let run = fixture("claude-code-2.1").join(run_name);
    check_run(&run, sources);
}

/// [`check`] for a run folder anywhere (our own fixtures).
fn check_run(run: &Path, sources: &[Source]) {
    let run_name = run.file_name().unwrap().to_string_lossy().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    for source in sources {
        import_with(&config, &[path_of(run, *source)]);
    }
    let with_transcript = sources.contains(&Source::Transcripts);
    check_store(
        run,
        &config.database,
        with_transcript,
        &format!("{run_name} {sources:?}"),
    );
}

/// Checks the sessions of `database` against the run's `expected.json`; with a
/// transcript among the sources, its tokens, API calls, models and branch too.
pub(crate) fn check_store(run: &Path, database: &Path, with_transcript: bool, ctx: &str) {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap()).unwrap();
    let db = open(database);
    for (id, want) in expected.as_object().unwrap() {
        type Figures = (
            i64,
            i64,
            i64,
            String,
            String,
            i64,
            Option<String>,
            String,
            Option<f64>,
            Option<String>,
        );
        let (prompts, tool_calls, failures, tools, files, api_calls, tokens, models, cost_usd, claude_code): Figures = db
            .query_row(
                "SELECT prompts, tool_calls, tool_failures, tools_used, files_modified, api_calls, tokens, models,
                        cost_usd, claude_code FROM metrics WHERE session_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?)),
            )
            .unwrap_or_else(|e| panic!("{ctx}: session {id}: {e}"));
        assert_eq!(
            prompts as usize,
            want["prompts"].as_array().unwrap().len(),
            "{ctx}: prompts"
        );
        assert_eq!(
            tool_calls,
            want["tool_calls"].as_i64().unwrap(),
            "{ctx}: tool calls"
        );
        assert_eq!(
            failures,
            want["tool_failures"].as_i64().unwrap(),
            "{ctx}: tool failures"
        );
        assert_eq!(
            sorted(&json_of(Some(tools))),
            sorted(&want["tools_used"]),
            "{ctx}: tools"
        );
        assert_eq!(
            sorted(&json_of(Some(files))),
            sorted(&want["files_modified"]),
            "{ctx}: files"
        );
        let (initial, final_response, branch): (Option<String>, Option<String>, Option<String>) = db
            .query_row(
                "SELECT initial_prompt, final_response, git_branch FROM sessions WHERE session_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            initial.as_deref(),
            want["prompts"][0].as_str(),
            "{ctx}: first prompt"
        );
        assert_eq!(
            final_response.as_deref(),
            want["final_response"].as_str(),
            "{ctx}: final response"
        );
        // Exactly one start and one end event per tool call, whatever the sources.
        for (types, what) in [
            ("'PreToolUse'", "starts"),
            ("'PostToolUse','PostToolUseFailure'", "ends"),
        ] {
            let n: i64 = db
                .query_row(
                    &format!("SELECT count(*) FROM events WHERE session_id = ?1 AND event_type IN ({types})"),
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                n,
                want["tool_calls"].as_i64().unwrap(),
                "{ctx}: tool call {what}"
            );
        }
        // One event per turn's end and per prompt a person submitted, whatever the sources.
        let count = |sql: &str| -> i64 {
            db.query_row(
                &format!("SELECT count(*) FROM events WHERE session_id = ?1 AND {sql}"),
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            count("event_type = 'Stop'"),
            want["turns"].as_i64().unwrap(),
            "{ctx}: Stop events"
        );
        assert_eq!(
            count(
                "event_type = 'UserPromptSubmit' AND json_extract(data, '$.not_a_person') IS NOT 1
                 AND ltrim(coalesce(json_extract(data, '$.prompt'), json_extract(data, '$.prompt_text'), ''))
                     NOT LIKE '<task-notification>%'"
            ) as usize,
            want["prompts"].as_array().unwrap().len(),
            "{ctx}: prompt events"
        );
        if with_transcript {
            assert_eq!(
                api_calls,
                want["api_calls"].as_i64().unwrap(),
                "{ctx}: API calls"
            );
            assert_eq!(json_of(tokens.clone()), want["tokens"], "{ctx}: tokens");
            assert_eq!(json_of(Some(models)), want["models"], "{ctx}: models");
            assert_eq!(
                branch.as_deref(),
                want["git_branch"].as_str(),
                "{ctx}: git branch"
            );
            let cost_usd = cost_usd.expect("a known model has a cost");
            assert!(
                (cost_usd - cost(&want["tokens"])).abs() < 1e-9,
                "{ctx}: cost {cost_usd}"
            );
            let cc = json_of(claude_code);
            assert_eq!(
                cc["tokens"], want["claude_code"]["tokens"],
                "{ctx}: Claude Code's tokens"
            );
            assert_eq!(
                cc["cost_usd"], want["claude_code"]["cost_usd"],
                "{ctx}: Claude Code's cost"
            );
            assert_eq!(
                cc["lines_added"], want["claude_code"]["lines_added"],
                "{ctx}"
            );
        }
        let mut stmt = db
            .prepare(
                "SELECT agent_id, agent_type, start_ref, tool_operations, tool_calls, tool_failures, files_modified,
                        response_preview, success, api_calls, tokens
                 FROM delegations WHERE session_id = ?1 ORDER BY agent_type",
            )
            .unwrap();
        let got: Vec<Value> = stmt
            .query_map([id], |r| {
                Ok(serde_json::json!({
                    "agent_id": r.get::<_, Option<String>>(0)?,
                    "agent_type": r.get::<_, String>(1)?,
                    "tool_use_id": r.get::<_, Option<String>>(2)?,
                    "tools": sorted(&json_of(r.get(3)?)),
                    "tool_calls": r.get::<_, i64>(4)?,
                    "tool_failures": r.get::<_, i64>(5)?,
                    "files_modified": sorted(&json_of(r.get(6)?)),
                    "response": r.get::<_, Option<String>>(7)?,
                    "success": r.get::<_, Option<bool>>(8)?,
                    "api_calls": r.get::<_, i64>(9)?,
                    "tokens": json_of(r.get(10)?),
                }))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want_delegations = want["delegations"].as_array().unwrap();
        assert_eq!(
            got.len(),
            want_delegations.len(),
            "{ctx}: delegations {got:#?}"
        );
        for (g, w) in got.iter().zip(want_delegations) {
            for key in [
                "agent_id",
                "agent_type",
                "tool_use_id",
                "tools",
                "tool_calls",
                "tool_failures",
                "files_modified",
                "success",
            ] {
                assert_eq!(
                    g[key], w[key],
                    "{ctx}: delegation {} {key}",
                    w["agent_type"]
                );
            }
            let preview: Option<String> = w["response"]
                .as_str()
                .map(|r| r.chars().take(200).collect());
            assert_eq!(
                g["response"].as_str(),
                preview.as_deref(),
                "{ctx}: delegation response"
            );
            if with_transcript {
                assert_eq!(
                    g["api_calls"], w["api_calls"],
                    "{ctx}: delegation API calls"
                );
                assert_eq!(g["tokens"], w["tokens"], "{ctx}: delegation tokens");
            }
        }
    }
}

use Source::{Hooks, Monitor, Transcripts};

#[test]
fn each_source_alone_rebuilds_the_run() {
    for run in ["a-mpm-fast", "a-mpm-full"] {
        check(run, &[Hooks]);
        check(run, &[Transcripts]);
    }
    // claude-mpm's fast hook forwards the raw payloads: as exact as the hooks.
    check("a-mpm-fast", &[Monitor]);
}

#[test]
fn sources_combined_in_any_order_are_one_session() {
    for run in ["a-mpm-fast", "a-mpm-full"] {
        check(run, &[Hooks, Transcripts]);
        check(run, &[Transcripts, Hooks]);
    }
    check("a-mpm-fast", &[Monitor, Transcripts]);
    check("a-mpm-fast", &[Transcripts, Monitor]);
    check("a-mpm-fast", &[Monitor, Hooks, Transcripts]);
    check("a-mpm-fast", &[Transcripts, Hooks, Monitor]);
}

/// claude-mpm's full handler forwards re-shaped events without `tool_use_id`,
/// failures or prompt ids: with the transcripts, in either order, the session
/// is exact all the same (its observations are matched by content).
#[test]
fn the_full_handler_with_the_transcripts_is_exact() {
    check("a-mpm-full", &[Monitor, Transcripts]);
    check("a-mpm-full", &[Transcripts, Monitor]);
    check("a-mpm-full", &[Monitor, Hooks, Transcripts]);
    // With the hooks the ids are there too; any order.
    check("a-mpm-full", &[Hooks, Monitor]);
    check("a-mpm-full", &[Monitor, Hooks]);
    check("a-mpm-full", &[Transcripts, Hooks, Monitor]);
    // A capture or transcript delivered again (a history replay, a second
    // import) is recognized, though its events were merged into others.
    check("a-mpm-full", &[Monitor, Transcripts, Monitor, Transcripts]);
    check("a-mpm-full", &[Transcripts, Monitor, Hooks, Monitor, Hooks]);
}

/// Alone, the full handler's capture is rebuilt as well as the old rules
/// allow: every tool call it forwarded is one event (two identical calls stay
/// two: observations without ids never merge with each other), its sub-agents
/// are known by `agent_id`, its failures are missing (it drops them).
#[test]
fn the_full_handler_alone_keeps_every_call_it_saw() {
    let run = fixture("claude-code-2.1").join("a-mpm-full");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    import_with(&config, &[path_of(&run, Monitor)]);
    import_with(&config, &[path_of(&run, Monitor)]);
    let db = open(&config.database);
    for (id, want) in expected.as_object().unwrap() {
        let n = |sql: &str| -> i64 {
            db.query_row(
                &format!("SELECT count(*) FROM events WHERE session_id = ?1 AND {sql}"),
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        let calls = want["tool_calls"].as_i64().unwrap();
        let failures = want["tool_failures"].as_i64().unwrap();
        assert_eq!(n("event_type = 'PreToolUse'"), calls);
        assert_eq!(n("event_type = 'PostToolUse'"), calls - failures);
        assert_eq!(
            n("event_type = 'PreToolUse' AND tool_name = 'Read'"),
            3,
            "src/greet.py read twice"
        );
        assert_eq!(n("event_type = 'UserPromptSubmit'"), 2);
        assert_eq!(n("event_type = 'Stop'"), want["turns"].as_i64().unwrap());
        assert_eq!(n("identity IS NULL AND match_key IS NULL AND event_type IN ('PreToolUse', 'PostToolUse', 'UserPromptSubmit', 'Stop')"), 0, "waiting for their counterparts");
        let agents: Vec<String> = db
            .prepare("SELECT agent_id FROM delegations WHERE session_id = ?1 ORDER BY agent_id")
            .unwrap()
            .query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut want_agents: Vec<String> = want["delegations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["agent_id"].as_str().unwrap().to_string())
            .collect();
        want_agents.sort();
        assert_eq!(agents, want_agents);
    }
}

#[test]
fn importing_a_transcript_twice_changes_nothing() {
    let run = fixture("claude-code-2.1").join("a-mpm-fast");
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let first = import_with(&config, &[run.join("transcripts")]);
    let second = import_with(&config, &[run.join("transcripts")]);
    assert!(first.stored > 0);
    assert_eq!(second.stored, 0, "{second:?}");
    check_counts_equal(&config.database, first.stored);
}

fn check_counts_equal(db: &Path, stored: u64) {
    let n: i64 = open(db)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n as u64, stored);
}

/// Our own runs of the real CLI (`tests/fixtures/claude-code/`: nested and
/// background sub-agents, the task tools, a failed sub-agent, `/compact`,
/// sessions resumed with `-c`), rebuilt exactly from each source and combined.
#[test]
fn our_own_real_runs_are_rebuilt_exactly() {
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code");
    for name in ["nest-mpm-fast", "compact-mpm-fast"] {
        let run = ours.join(name);
        check_run(&run, &[Hooks]);
        check_run(&run, &[Transcripts]);
        check_run(&run, &[Hooks, Transcripts]);
        check_run(&run, &[Transcripts, Hooks]);
        // Recorded through claude-mpm's fast hook: its capture too.
        check_run(&run, &[Monitor]);
        check_run(&run, &[Monitor, Transcripts]);
        check_run(&run, &[Transcripts, Hooks, Monitor]);
    }
    // A background sub-agent, a sub-agent failing on an API error, `/compact`
    // (recorded without claude-mpm: hooks and transcripts only).
    let run = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/transcript-fixtures/t-background-error-compact");
    for sources in [
        &[Hooks][..],
        &[Transcripts],
        &[Hooks, Transcripts],
        &[Transcripts, Hooks],
    ] {
        check_run(&run, sources);
    }
}

/// The lines of a capture file as (Socket.IO event name, payload).
fn capture_of(path: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["event"].as_str().unwrap().to_string(), v["data"].clone())
        })
        .collect()
}

/// Replays `lines` from a real Socket.IO server (socketioxide on loopback) to
/// the recorder, waits until `stored` events are in its store, and stops it.
/// Returns the recorder's configuration (its database and activity folder).
fn record_live(dir: &Path, lines: &[(String, Value)], stored: i64) -> mpm_aggregate::Config {
    use std::time::Duration;
    let monitor = TestMonitor::start(None, Vec::new());
    let config = mpm_aggregate::Config {
        dashboard_host: "127.0.0.1".into(),
        dashboard_port: monitor.port,
        status_interval_seconds: 0,
        ..config_in(dir)
    };
    let aggregator = mpm_aggregate::EventAggregator::with_config(config.clone());
    aggregator.start().expect("the recorder starts");
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    monitor.emit_all(lines);
    let events = "SELECT count(*) FROM events";
    assert!(
        wait_until(Duration::from_secs(20), || count(&config.database, events)
            >= stored),
        "{} of {stored} events stored live",
        count(&config.database, events)
    );
    let report = aggregator.stop().expect("the recorder stops");
    assert_eq!(report.stats.rejected, 0, "{:?}", report.stats);
    assert_eq!(
        count(&config.database, events),
        stored,
        "{:?}",
        report.stats
    );
    config
}

/// Each run's monitor capture (claude-mpm's fast hook, and its full handler)
/// replayed live to the recorder stores what its import stores; with the
/// transcripts imported afterwards, the session is the run's truth.
#[test]
fn monitor_captures_replayed_live_then_the_transcripts_are_exact() {
    for run_name in ["a-mpm-fast", "a-mpm-full"] {
        let run = fixture("claude-code-2.1").join(run_name);
        let dir = tempfile::tempdir().unwrap();
        let imported = config_in(&dir.path().join("imported"));
        import_with(&imported, &[path_of(&run, Monitor)]);
        let stored = count(&imported.database, "SELECT count(*) FROM events");
        let live = record_live(
            &dir.path().join("live"),
            &capture_of(&path_of(&run, Monitor)),
            stored,
        );
        assert_eq!(
            reconstruction(&live.database),
            reconstruction(&imported.database),
            "{run_name}: live replay = import"
        );
        if run_name == "a-mpm-fast" {
            check_store(&run, &live.database, false, "a-mpm-fast live monitor");
        }
        import_with(&live, &[path_of(&run, Transcripts)]);
        check_store(
            &run,
            &live.database,
            true,
            &format!("{run_name} live monitor, then transcripts"),
        );

        // The transcripts first, then the monitor live.
        let both = config_in(&dir.path().join("imported-both"));
        import_with(&both, &[path_of(&run, Transcripts), path_of(&run, Monitor)]);
        let stored = count(&both.database, "SELECT count(*) FROM events");
        let later = dir.path().join("transcripts-then-live");
        import_with(&config_in(&later), &[path_of(&run, Transcripts)]);
        let live = record_live(&later, &capture_of(&path_of(&run, Monitor)), stored);
        check_store(
            &run,
            &live.database,
            true,
            &format!("{run_name} transcripts, then live monitor"),
        );
    }
}

/// What claude-mpm's fast hook (`claude-hook-fast.sh`) posts to its monitor
/// for one raw hook payload: a `claude_event` whose `data` is the payload.
fn as_fast_hook(payload: &Value, n: usize) -> (String, Value) {
    let event = payload["hook_event_name"].as_str().unwrap_or("unknown");
    let subtype = match event {
        "PreToolUse" => "pre_tool",
        "PostToolUse" => "post_tool",
        "UserPromptSubmit" => "user_prompt",
        "SessionStart" => "session_start",
        "Stop" => "stop",
        "SubagentStop" => "subagent_stop",
        "Notification" => "notification",
        other => other,
    };
    let tool = payload["tool_name"].as_str().unwrap_or("");
    let now = chrono::Utc::now();
    let millis = now.timestamp_millis() as usize + n;
    let correlation = format!("{}_{millis}", if tool.is_empty() { event } else { tool });
    (
        "claude_event".into(),
        serde_json::json!({
            "type": "hook",
            "subtype": subtype,
            "hook_event_name": event,
            "tool_name": tool,
            "session_id": payload["session_id"],
            "correlation_id": correlation,
            "timestamp": now.format("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
            "source": "fast_hook",
            "data": payload,
        }),
    )
}

/// What a store holds of a run regardless of arrival times: the session's
/// figures, its delegations, and its events by kind, identity and agent.
fn time_free(database: &Path) -> Value {
    let db = open(database);
    let rows = |sql: &str| -> Vec<Value> {
        let mut stmt = db.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => Value::Null,
                        rusqlite::types::ValueRef::Integer(x) => serde_json::json!(x),
                        rusqlite::types::ValueRef::Real(x) => serde_json::json!(x),
                        rusqlite::types::ValueRef::Text(t) => {
                            serde_json::json!(String::from_utf8_lossy(t))
                        }
                        rusqlite::types::ValueRef::Blob(b) => serde_json::json!(b.len()),
                    })
                })
                .collect::<rusqlite::Result<Vec<Value>>>()
                .map(Value::Array)
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    serde_json::json!({
        "sessions": rows("SELECT session_id, status, working_directory, git_branch, initial_prompt, final_response, event_count
                          FROM sessions ORDER BY session_id"),
        "metrics": rows("SELECT session_id, total_delegations, successful_delegations, failed_delegations, tools_used,
                                files_modified, agents_used, prompts, tool_calls, tool_failures, api_calls, tokens
                         FROM metrics ORDER BY session_id"),
        "delegations": rows("SELECT session_id, agent_type, agent_id, start_ref, success, error, event_count, tool_operations,
                                    files_modified, response_preview, tool_calls, tool_failures, background
                             FROM delegations ORDER BY session_id, agent_type, agent_id"),
        "events": rows("SELECT e.session_id, e.event_type, e.category, e.tool_name, e.identity, e.agent_id, d.agent_id, count(*)
                        FROM events e LEFT JOIN delegations d ON d.id = e.delegation_id
                        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7"),
    })
}

/// The raw hook payloads, sent live as claude-mpm's fast hook sends them (each
/// the `data` of a `claude_event`), rebuild what importing `hooks.jsonl` does;
/// and so with the transcripts after them.
#[test]
fn hook_payloads_replayed_live_as_the_fast_hook_sends_them_equal_their_import() {
    for run_name in ["a-mpm-fast", "a-mpm-full"] {
        let run = fixture("claude-code-2.1").join(run_name);
        let dir = tempfile::tempdir().unwrap();
        let imported = config_in(&dir.path().join("imported"));
        import_with(&imported, &[path_of(&run, Hooks)]);
        let stored = count(&imported.database, "SELECT count(*) FROM events");
        let lines: Vec<(String, Value)> = std::fs::read_to_string(path_of(&run, Hooks))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(n, l)| as_fast_hook(&serde_json::from_str(l).unwrap(), n))
            .collect();
        let live = record_live(&dir.path().join("live"), &lines, stored);
        let ctx = format!("{run_name} hooks live");
        check_store(&run, &live.database, false, &ctx);
        assert_eq!(
            time_free(&live.database),
            time_free(&imported.database),
            "{ctx} = hooks imported"
        );
        for config in [&live, &imported] {
            import_with(config, &[path_of(&run, Transcripts)]);
        }
        check_store(
            &run,
            &live.database,
            true,
            &format!("{ctx}, then transcripts"),
        );
        assert_eq!(
            time_free(&live.database),
            time_free(&imported.database),
            "{ctx}, then transcripts = hooks imported, then transcripts"
        );
    }
}

#[test]
fn a_source_whose_every_observation_merged_is_still_listed() {
    let run = fixture("claude-code-2.1").join("a-mpm-fast");
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    import_with(&config, &[run.join("transcripts")]);
    // Only the hook payloads that the transcripts told already: all merge.
    let tool_hooks: String = std::fs::read_to_string(run.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| {
            l.contains("\"hook_event_name\": \"PreToolUse\"")
                || l.contains("\"hook_event_name\":\"PreToolUse\"")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!tool_hooks.is_empty());
    let file = dir.path().join("tool-hooks.jsonl");
    std::fs::write(&file, tool_hooks).unwrap();
    let report = import_with(&config, &[file]);
    assert_eq!((report.stored, report.merged > 0), (0, true), "{report:?}");
    let sources: String = open(&config.database)
        .query_row("SELECT sources FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        json_of(Some(sources)),
        serde_json::json!(["transcript", "import"])
    );
}

/// The recorder merging live hooks into what the transcripts stored before:
/// every received item is stored, a duplicate, merged, rejected or control.
#[test]
fn live_observations_merged_into_stored_events_are_counted_by_the_recorder() {
    let run = fixture("claude-code-2.1").join("a-mpm-fast");
    let dir = tempfile::tempdir().unwrap();
    let expected = config_in(&dir.path().join("expected"));
    import_with(
        &expected,
        &[path_of(&run, Transcripts), path_of(&run, Hooks)],
    );
    let total = count(&expected.database, "SELECT count(*) FROM events");
    let live_dir = dir.path().join("live");
    import_with(&config_in(&live_dir), &[path_of(&run, Transcripts)]);
    let lines: Vec<(String, Value)> = std::fs::read_to_string(path_of(&run, Hooks))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| as_fast_hook(&serde_json::from_str(l).unwrap(), n))
        .collect();
    let live = record_live(&live_dir, &lines, total);
    let (received, stored, duplicates, merged, rejected, control): (i64, i64, i64, i64, i64, i64) =
        open(&live.database)
            .query_row(
                "SELECT events_received, events_stored, duplicates, merged, rejected, control_events
                 FROM recorder_state",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
    assert!(merged > 0, "the hooks told what the transcripts had told");
    assert_eq!(stored + duplicates + merged + rejected + control, received);
    check_store(&run, &live.database, true, "transcripts, then hooks live");
}

#[test]
fn pruning_a_session_forgets_the_observations_merged_into_it() {
    let run = fixture("claude-code-2.1").join("a-mpm-full");
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    import_with(
        &config,
        &[path_of(&run, Monitor), path_of(&run, Transcripts)],
    );
    let merged = "SELECT count(*) FROM merged_observations";
    assert!(count(&config.database, merged) > 0);
    assert!(count(&config.database, "SELECT count(*) FROM transcript_offsets") > 0);
    rusqlite::Connection::open(&config.database)
        .unwrap()
        .execute(
            "UPDATE sessions SET stored_at = '2020-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    let writer = mpm_aggregate::store::writer::Writer::spawn(
        mpm_aggregate::documents::writer_config(&config),
    )
    .unwrap();
    let report = writer.prune(30).unwrap();
    writer.shutdown().unwrap();
    assert_eq!(report.sessions, 1);
    assert_eq!(count(&config.database, merged), 0);
    assert_eq!(
        count(&config.database, "SELECT count(*) FROM transcript_offsets"),
        0
    );
    // Imported again, the pruned transcripts are read again, not skipped as read.
    import_with(&config, &[path_of(&run, Transcripts)]);
    assert_eq!(count(&config.database, "SELECT count(*) FROM sessions"), 1);
    assert!(count(&config.database, "SELECT count(*) FROM events") > 0);
}
