//! The event store on the real fixtures: the reconstruction SPEC section 4
//! expects, the Python original's session file, idempotent imports, capture
//! filters, pruning, and the delegation pairing rules on crafted streams.

use crate::common;

use std::path::Path;

use common::*;
use mpm_aggregate::{Config, EventAggregator};
use serde_json::{json, Value};

fn aggregator(config: &Config) -> EventAggregator {
    EventAggregator::with_config(config.clone())
}

#[test]
fn capture_rebuilds_exactly_what_the_spec_expects() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let report = import_with(&config, &[fixture(CAPTURE)]);
    assert_eq!(
        (
            report.stored,
            report.control,
            report.rejected,
            report.duplicates
        ),
        (59, 2, 0, 0)
    );
    let db = &config.database;
    assert_eq!(
        count(db, "SELECT count(*) FROM events WHERE session_id IS NULL"),
        2,
        "two events carry no session"
    );
    assert_eq!(count(db, "SELECT count(*) FROM sessions"), 2);

    let agg = aggregator(&config);
    let a = agg.get_session(SESSION_A).unwrap();
    assert_eq!(a.events.len(), 47);
    assert_eq!(a.metrics.total_events, 47);
    assert_eq!(
        a.initial_prompt.as_deref(),
        Some("Add JWT authentication to the API and document it")
    );
    assert_eq!(a.working_directory.as_deref(), Some("/tmp/proj"));
    assert_eq!(
        a.metrics.tools_used,
        ["Task", "Read", "Grep", "TodoWrite", "Write", "Edit", "Bash"]
    );
    assert!(!a.is_active(), "finalized by Stop");
    assert_eq!(a.delegations.len(), 2);
    let research = &a.delegations[0];
    assert_eq!(research.agent_type, "research");
    assert_eq!(research.tool_operations, ["Read", "Grep"]);
    assert!(research.files_modified.is_empty());
    assert!(research.success && research.end_time.is_some());
    assert_eq!(
        research.instructions,
        "Analyze the current authentication setup in src/"
    );
    let engineer = &a.delegations[1];
    assert_eq!(engineer.agent_type, "engineer");
    assert_eq!(engineer.tool_operations, ["Write", "Edit", "Bash"]);
    assert_eq!(
        engineer.files_modified,
        ["/tmp/proj/src/auth.py", "/tmp/proj/src/server.py"]
    );
    assert!(engineer.success && engineer.end_time.is_some());
    assert_eq!(a.metrics.agents_used, ["research", "engineer"]);
    assert_eq!(
        (
            a.metrics.total_delegations,
            a.metrics.successful_delegations,
            a.metrics.failed_delegations
        ),
        (2, 2, 0)
    );
    assert_eq!(
        a.metrics.files_modified,
        ["/tmp/proj/src/auth.py", "/tmp/proj/src/server.py"]
    );
    assert_eq!(a.metrics.event_breakdown.values().sum::<u64>(), 47);

    let b = agg.get_session("7a91").unwrap();
    assert_eq!(b.session_id, SESSION_B);
    assert_eq!(b.events.len(), 10);
    assert!(b.delegations.is_empty());
    assert_eq!(b.metrics.tools_used, ["Read"]);
    assert!(!b.is_active());
    assert_eq!(
        b.initial_prompt.as_deref(),
        Some("What does src/main.rs do?")
    );

    // Each finalized session has its file, generated from SQL, equal to the export.
    for s in [&a, &b] {
        let path = s.metadata["file_path"]
            .as_str()
            .expect("file path recorded");
        assert!(Path::new(path).starts_with(dir.path().join("activity")));
        let name = Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(&format!("session_{}_2026112", &s.session_id[..8])),
            "{name}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(doc["events"].as_array().unwrap().len(), s.events.len());
        assert_eq!(doc["session_id"], json!(s.session_id));
    }
}

#[test]
fn python_original_session_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let report = import_with(&config, &[fixture(PYTHON_SESSION)]);
    assert_eq!(report.stored, 11);
    let s = aggregator(&config).get_session("9f1c2d3e").unwrap();
    assert_eq!(
        s.initial_prompt.as_deref(),
        Some("Help me implement user authentication")
    );
    assert_eq!(s.git_branch.as_deref(), Some("feature/auth"));
    assert_eq!(s.claude_pid, Some(4242));
    assert_eq!(s.metrics.session_duration_ms, 205333);
    assert_eq!(
        s.final_response.as_deref(),
        Some("Authentication implemented with JWT.")
    );
    assert_eq!(s.delegations.len(), 2);
    let (r, e) = (&s.delegations[0], &s.delegations[1]);
    assert_eq!(
        (r.agent_type.as_str(), r.description.as_deref(), r.success),
        ("research", Some("Analyze auth setup"), true)
    );
    assert_eq!(r.tool_operations, ["Read"]);
    assert_eq!(r.response_preview.as_deref(), Some("Auth is cookie based."));
    assert_eq!(
        (e.agent_type.as_str(), e.success, e.error.as_deref()),
        ("engineer", false, Some("Delegation did not complete"))
    );
    assert_eq!(e.files_modified, ["/home/dev/myapp/src/jwt.py"]);
    assert_eq!(
        (
            s.metrics.successful_delegations,
            s.metrics.failed_delegations
        ),
        (1, 1)
    );
    assert_eq!(s.metrics.tools_used, ["Read", "Write"]);
    assert_eq!(s.events[0].timestamp, "2025-08-12T14:15:30.123Z");

    // AgentSession::load reads the same file directly.
    let loaded = mpm_aggregate::AgentSession::load(&fixture(PYTHON_SESSION)).unwrap();
    assert_eq!(
        loaded.delegations,
        s.delegations
            .iter()
            .map(|d| mpm_aggregate::AgentDelegation {
                event_count: 0,
                ..d.clone()
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(loaded.metrics.session_duration_ms, 205333);
}

#[test]
fn importing_twice_changes_no_count() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let files = [fixture(CAPTURE), fixture(PYTHON_SESSION), fixture(HOOKS)];
    import_with(&config, &files);
    let before = table_counts(&config.database);
    let metrics_before = reconstruction(&config.database);
    let again = import_with(&config, &files);
    assert_eq!(again.stored, 0);
    assert_eq!(again.duplicates, 59 + 11 + 27);
    assert_eq!(table_counts(&config.database), before);
    assert_eq!(
        reconstruction(&config.database)["metrics"],
        metrics_before["metrics"]
    );
    assert_eq!(
        reconstruction(&config.database)["delegations"],
        metrics_before["delegations"]
    );
}

#[test]
fn raw_hook_payloads_rebuild_the_same_delegations() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, &[fixture(HOOKS)]);
    let a = aggregator(&config).get_session(SESSION_A).unwrap();
    assert_eq!(a.events.len(), 22);
    let shape: Vec<_> = a
        .delegations
        .iter()
        .map(|d| {
            (
                d.agent_type.clone(),
                d.tool_operations.clone(),
                d.files_modified.clone(),
                d.success,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                "research".into(),
                vec!["Read".to_string(), "Grep".into()],
                vec![],
                true
            ),
            (
                "engineer".into(),
                vec!["Write".into(), "Edit".into(), "Bash".into()],
                vec![
                    "/tmp/proj/src/auth.py".to_string(),
                    "/tmp/proj/src/server.py".into()
                ],
                true
            ),
        ]
    );
    assert_eq!(
        a.delegations[0].response_preview.as_deref(),
        Some("Auth is session-cookie based in src/server.py; no JWT yet.")
    );
}

/// Writes `events` (payloads of `claude_event`) as a capture file and imports it.
fn import_stream(dir: &Path, events: &[Value]) -> Config {
    let config = test_config(dir);
    let path = dir.join("stream.jsonl");
    let text: String = events
        .iter()
        .map(|e| json!({"event": "claude_event", "data": e}).to_string() + "\n")
        .collect();
    std::fs::write(&path, text).unwrap();
    import_with(&config, &[path]);
    config
}

fn ts(sec: u32) -> String {
    format!("2026-01-01T00:00:{sec:02}.000Z")
}

fn pre_task(sec: u32, agent: &str, id: &str) -> Value {
    json!({"hook_event_name": "PreToolUse", "session_id": "s", "timestamp": ts(sec), "tool_name": "Task", "tool_use_id": id,
           "tool_input": {"subagent_type": agent, "prompt": format!("do {agent} work")}})
}
fn post_task(sec: u32, id: Option<&str>, extra: Value) -> Value {
    let mut v = json!({"hook_event_name": "PostToolUse", "session_id": "s", "timestamp": ts(sec), "tool_name": "Task"});
    if let Some(id) = id {
        v["tool_use_id"] = json!(id);
    }
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}
fn sub(kind: &str, sec: u32, agent: Option<&str>) -> Value {
    let mut v = json!({"type": "hook_event", "subtype": kind, "session_id": "s", "timestamp": ts(sec), "data": {"session_id": "s"}});
    if let Some(a) = agent {
        v["data"]["agent_type"] = json!(a);
    }
    v
}
fn tool(sec: u32, name: &str, file: &str) -> Value {
    json!({"hook_event_name": "PreToolUse", "session_id": "s", "timestamp": ts(sec), "tool_name": name, "tool_input": {"file_path": file}})
}

#[test]
fn parallel_delegations_stay_apart_and_each_pair_is_one_transition() {
    let dir = tempfile::tempdir().unwrap();
    // Two delegations overlap; each start and end arrives as a pair, in both orders.
    let config = import_stream(
        dir.path(),
        &[
            sub("subagent_start", 1, Some("research")),
            pre_task(1, "research", "t1"),
            pre_task(2, "engineer", "t2"),
            sub("subagent_start", 2, Some("engineer")),
            tool(3, "Write", "/p/a.py"),
            sub("subagent_stop", 4, Some("research")),
            post_task(4, Some("t1"), json!({})),
            post_task(5, Some("t2"), json!({})),
            sub("subagent_stop", 5, Some("engineer")),
        ],
    );
    let s = aggregator(&config).get_session("s").unwrap();
    assert_eq!(s.delegations.len(), 2, "{:#?}", s.delegations);
    let r = &s.delegations[0];
    let e = &s.delegations[1];
    assert_eq!(
        (
            r.agent_type.as_str(),
            r.end_time.map(|t| t.timestamp() % 60)
        ),
        ("research", Some(4))
    );
    assert_eq!(
        (
            e.agent_type.as_str(),
            e.end_time.map(|t| t.timestamp() % 60)
        ),
        ("engineer", Some(5))
    );
    assert!(r.success && e.success);
    assert_eq!(
        e.files_modified,
        ["/p/a.py"],
        "work goes to the most recent running delegation"
    );
    assert_eq!(s.metrics.total_delegations, 2);
    assert_eq!(s.metrics.successful_delegations, 2);
}

#[test]
fn end_pairs_without_ids_close_one_delegation_each() {
    let dir = tempfile::tempdir().unwrap();
    let config = import_stream(
        dir.path(),
        &[
            pre_task(1, "qa", "a"),
            pre_task(2, "qa", "b"),
            // Second delegation ends first: SubagentStop without a type, then its PostToolUse without an id.
            sub("subagent_stop", 3, None),
            post_task(3, None, json!({})),
            sub("subagent_stop", 6, None),
            post_task(6, None, json!({})),
        ],
    );
    let s = aggregator(&config).get_session("s").unwrap();
    assert_eq!(s.delegations.len(), 2);
    assert!(s
        .delegations
        .iter()
        .all(|d| d.end_time.is_some() && d.success));
    let ends: Vec<_> = s
        .delegations
        .iter()
        .map(|d| d.end_time.unwrap().timestamp() % 60)
        .collect();
    assert_eq!(
        ends,
        [6, 3],
        "the most recent running delegation closes first"
    );
}

#[test]
fn errors_and_unfinished_delegations_are_failures() {
    let dir = tempfile::tempdir().unwrap();
    let config = import_stream(
        dir.path(),
        &[
            pre_task(1, "engineer", "a"),
            post_task(
                2,
                Some("a"),
                json!({"tool_response": {"is_error": true, "content": "boom"}}),
            ),
            pre_task(3, "qa", "b"),
            json!({"hook_event_name": "Stop", "session_id": "s", "timestamp": ts(9)}),
        ],
    );
    let s = aggregator(&config).get_session("s").unwrap();
    assert_eq!(s.delegations.len(), 2);
    assert!(!s.delegations[0].success);
    assert_eq!(s.delegations[0].response_preview.as_deref(), Some("boom"));
    assert!(!s.delegations[1].success, "still running at finalize");
    assert_eq!(
        s.delegations[1].end_time.map(|t| t.timestamp() % 60),
        Some(9)
    );
    assert_eq!(
        (
            s.metrics.successful_delegations,
            s.metrics.failed_delegations
        ),
        (0, 2)
    );
}

#[test]
fn a_later_turn_reopens_a_finalized_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = import_stream(
        dir.path(),
        &[
            json!({"hook_event_name": "UserPromptSubmit", "session_id": "s", "timestamp": ts(1), "prompt": "first"}),
            json!({"hook_event_name": "Stop", "session_id": "s", "timestamp": ts(2)}),
            json!({"type": "claude_event", "subtype": "hook_execution", "session_id": "s", "timestamp": ts(3), "data": {"hook_name": "Stop"}}),
        ],
    );
    let agg = aggregator(&config);
    assert!(
        !agg.get_session("s").unwrap().is_active(),
        "hook bookkeeping after Stop does not reopen"
    );
    let path = dir.path().join("more.jsonl");
    std::fs::write(&path, json!({"hook_event_name": "UserPromptSubmit", "session_id": "s", "timestamp": ts(4), "prompt": "second"}).to_string()).unwrap();
    import_with(&config, &[path]);
    let s = agg.get_session("s").unwrap();
    assert!(s.is_active(), "a new prompt reopens the same session");
    assert_eq!(s.initial_prompt.as_deref(), Some("first"));
    assert_eq!(count(&config.database, "SELECT count(*) FROM sessions"), 1);
}

#[test]
fn capture_filters_drop_categories_but_keep_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.capture.tool_operations = false;
    config.capture.file_operations = false;
    config.capture.responses = false;
    let report = import_with(&config, &[fixture(CAPTURE)]);
    assert!(report.filtered > 0);
    let db = &config.database;
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM events WHERE category IN ('tool', 'file', 'response')"
        ),
        0
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM events WHERE category = 'delegation'"
        ),
        6
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM sessions WHERE status = 'completed'"
        ),
        2,
        "Stop still finalizes"
    );
}

#[test]
fn prune_deletes_old_sessions_with_their_rows_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, &[fixture(CAPTURE), fixture(PYTHON_SESSION)]);
    let old_file = aggregator(&config).get_session("9f1c").unwrap().metadata["file_path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&old_file).exists());
    let writer = mpm_aggregate::store::writer::Writer::spawn(
        mpm_aggregate::documents::writer_config(&config),
    )
    .unwrap();
    // The age is when data was stored here: the Python session (of 2025) was
    // stored long ago in this story, the capture's sessions today.
    rusqlite::Connection::open(&config.database)
        .unwrap()
        .execute(
            "UPDATE sessions SET stored_at = '2025-09-01T00:00:00.000Z' WHERE session_id LIKE '9f1c%'",
            [],
        )
        .unwrap();
    let days = (chrono::Utc::now()
        - chrono::DateTime::parse_from_rfc3339("2025-09-02T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc))
    .num_days() as u64;
    let report = writer.prune(days).unwrap();
    // Answered only once the deletion is committed: another connection sees
    // it already, and the file went only after that.
    assert_eq!(
        count(
            &config.database,
            "SELECT count(*) FROM sessions WHERE session_id LIKE '9f1c%'"
        ),
        0
    );
    assert!(!Path::new(&old_file).exists());
    writer.shutdown().unwrap();
    assert_eq!(
        (
            report.sessions,
            report.events,
            report.delegations,
            report.files
        ),
        (1, 11, 2, 1)
    );
    assert!(!Path::new(&old_file).exists());
    let db = &config.database;
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM events WHERE session_id LIKE '9f1c%'"
        ),
        0
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM metrics WHERE session_id LIKE '9f1c%'"
        ),
        0
    );
    assert_eq!(
        count(db, "SELECT sum(count) FROM event_type_counts"),
        count(db, "SELECT count(*) FROM events")
    );
    assert_eq!(count(db, "SELECT count(*) FROM sessions"), 2);
}

#[test]
fn compressed_session_files_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.compress_sessions = true;
    import_with(&config, &[fixture(CAPTURE)]);
    let s = aggregator(&config).get_session(SESSION_B).unwrap();
    let path = s.metadata["file_path"].as_str().unwrap();
    assert!(path.ends_with(".json.gz"));
    let loaded = mpm_aggregate::AgentSession::load(Path::new(path)).unwrap();
    assert_eq!(loaded.events.len(), 10);
    assert_eq!(loaded.session_id, SESSION_B);
}

#[test]
fn reopening_a_database_runs_no_migration_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, &[fixture(CAPTURE)]);
    let before = table_counts(&config.database);
    let conn = mpm_aggregate::store::open_writable(&config.database).unwrap();
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        applied,
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .count() as i64
    );
    drop(conn);
    assert_eq!(table_counts(&config.database), before);
    // Migrations only add: no statement drops, renames or rewrites what exists.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let mut sql = std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .to_uppercase();
        // A trigger's body runs on later writes, not at migration: left out.
        while let Some(start) = sql.find("CREATE TRIGGER") {
            let end = sql[start..]
                .find("END;")
                .map_or(sql.len(), |e| start + e + 4);
            sql.replace_range(start..end, "");
        }
        for banned in ["DROP ", "RENAME ", "DELETE FROM", "UPDATE "] {
            assert!(!sql.contains(banned), "migrations only add; found {banned}");
        }
    }
}

#[test]
fn save_then_load_gives_an_equal_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, &[fixture(CAPTURE), fixture(PYTHON_SESSION)]);
    let agg = aggregator(&config);
    for id in [SESSION_A, SESSION_B, "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"] {
        let session = agg.get_session(id).unwrap();
        for name in ["s.json", "s.json.gz"] {
            let path = dir.path().join(name);
            session.save(&path).unwrap();
            let loaded = mpm_aggregate::AgentSession::load(&path).unwrap();
            assert_eq!(loaded, session, "{id} via {name}");
        }
    }
    let exported = agg
        .export_session("5283", Some(&dir.path().join("e.json")), "json")
        .unwrap();
    assert_eq!(
        mpm_aggregate::AgentSession::load(&exported).unwrap(),
        agg.get_session(SESSION_A).unwrap()
    );
    assert!(matches!(
        agg.export_session("5283", None, "yaml"),
        Err(mpm_aggregate::AggregatorError::InvalidFormat(_))
    ));
    assert!(matches!(
        agg.get_session("nope"),
        Err(mpm_aggregate::AggregatorError::SessionNotFound(_))
    ));
    assert_eq!(agg.list_sessions().unwrap().len(), 3);
}

#[test]
fn database_errors_keep_sqlites_own_error_as_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.db");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = mpm_aggregate::store::open_writable(&path).unwrap_err();
    assert_eq!(
        err.sqlite_code(),
        Some(rusqlite::ErrorCode::NotADatabase),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
    // A statement that fails keeps its cause too; a message we made has none.
    let good = dir.path().join("good.db");
    let conn = mpm_aggregate::store::open_writable(&good).unwrap();
    let err =
        mpm_aggregate::store::readonly::prepare(&conn, "SELECT nope FROM events").unwrap_err();
    assert!(std::error::Error::source(&err).is_some(), "{err}");
    let err = mpm_aggregate::store::readonly::prepare(&conn, "-- nothing").unwrap_err();
    assert!(std::error::Error::source(&err).is_none(), "{err}");
}

/// The document types of the reference count by the store's rules: a session
/// built event by event with `AgentSession::add_event` has the figures the
/// store computes from the same payloads (one set of metric rules).
#[test]
fn add_event_counts_as_the_store_does() {
    let hooks = fixture("claude-code-2.1/a-mpm-fast/hooks.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    import_with(&config, std::slice::from_ref(&hooks));
    let payloads: Vec<serde_json::Value> = std::fs::read_to_string(&hooks)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let id = payloads[0]["session_id"].as_str().unwrap();
    let mut built = mpm_aggregate::AgentSession::new(id, chrono::Utc::now());
    for p in &payloads {
        built.add_event(p["hook_event_name"].as_str().unwrap(), p.clone(), None);
    }
    let stored = aggregator(&config).get_session(id).unwrap();
    let (b, s) = (&built.metrics, &stored.metrics);
    assert_eq!(b.total_events, s.total_events);
    assert_eq!(b.event_breakdown, s.event_breakdown);
    assert_eq!(
        (b.prompts, b.tool_calls, b.tool_failures),
        (s.prompts, s.tool_calls, s.tool_failures)
    );
    assert_eq!(
        (&b.tools_used, &b.files_modified),
        (&s.tools_used, &s.files_modified)
    );
    assert_eq!(built.initial_prompt, stored.initial_prompt);
}
