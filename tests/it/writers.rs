//! Several writers on one database at once: the live recorder, `import`
//! processes and a `prune`. Each process has its own writer; none may lose or
//! overwrite another's counts (the recorder notices their commits through
//! `PRAGMA data_version` and reloads what it had cached).

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

use crate::common::*;
use mpm_aggregate::{Config, EventAggregator};

const SESSIONS: usize = 4;

/// The real run's raw hook payloads, as copies in sessions of their own.
fn hook_payloads(copy: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("claude-code-2.1/a-mpm-fast/hooks.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["session_id"] = format!("writers-{copy}").into();
            v
        })
        .collect()
}

fn binary(db: &Path, activity: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
    c.arg("--db")
        .arg(db)
        .arg("--activity-dir")
        .arg(activity)
        .args(args);
    c
}

#[test]
fn the_recorder_imports_and_a_prune_write_one_database_without_losing_counts() {
    let dir = tempfile::tempdir().unwrap();
    // No history: raw hook payloads carry no time of their own, so one sent
    // again by a history answer would be a new event (claude-mpm's monitor
    // stamps what it broadcasts; this test sends them raw).
    let monitor = TestMonitor::start_with(None, Vec::new(), HistoryStyle::None);
    let config = Config {
        database: dir.path().join("agg.db"),
        activity_directory: dir.path().join("activity"),
        dashboard_host: "127.0.0.1".into(),
        dashboard_port: monitor.port,
        status_interval_seconds: 0,
        auto_cleanup_days: 0,
        ..Config::default()
    };
    let (db, activity) = (config.database.clone(), config.activity_directory.clone());
    // An archive stored here long ago, for the prune to remove meanwhile.
    import_with(&config, &[fixture(PYTHON_SESSION)]);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE sessions SET stored_at = '2020-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();

    let recorder = EventAggregator::with_config(config.clone());
    recorder.start().unwrap();
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));

    // Every session gets half of its payloads live and half from an import
    // process, interleaved in time.
    let mut live = Vec::new();
    let mut total = 0;
    for copy in 0..SESSIONS {
        let payloads = hook_payloads(copy);
        total += payloads.len();
        let mut file = String::new();
        for (i, p) in payloads.into_iter().enumerate() {
            if i % 2 == 0 {
                live.push(("claude_event".to_string(), p));
            } else {
                file.push_str(&p.to_string());
                file.push('\n');
            }
        }
        std::fs::write(dir.path().join(format!("half-{copy}.jsonl")), file).unwrap();
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in live.chunks(8) {
                monitor.emit_all(chunk);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        for copy in 0..SESSIONS {
            let file = dir.path().join(format!("half-{copy}.jsonl"));
            let (db, activity) = (&db, &activity);
            s.spawn(move || {
                binary(db, activity, &["import", &file.to_string_lossy()])
                    .assert()
                    .success();
            });
        }
        s.spawn(|| {
            binary(&db, &activity, &["prune", "--older-than-days", "30"])
                .assert()
                .success();
        });
    });
    let stored = "SELECT count(*) FROM events WHERE session_id LIKE 'writers-%'";
    assert!(
        wait_until(Duration::from_secs(20), || count(&db, stored)
            == total as i64),
        "every payload stored once: {} of {total}",
        count(&db, stored)
    );
    recorder.stop().unwrap();

    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sessions WHERE session_id LIKE '9f1c%'"
        ),
        0,
        "pruned"
    );
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("claude-code-2.1/a-mpm-fast/expected.json")).unwrap(),
    )
    .unwrap();
    let want = expected.as_object().unwrap().values().next().unwrap();
    let conn = open(&db);
    for copy in 0..SESSIONS {
        let id = format!("writers-{copy}");
        let (event_count, total_events, stored, prompts, tool_calls, failures, delegations): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = conn
            .query_row(
                "SELECT s.event_count, m.total_events, (SELECT count(*) FROM events e WHERE e.session_id = s.session_id),
                        m.prompts, m.tool_calls, m.tool_failures, m.total_delegations
                 FROM sessions s JOIN metrics m USING (session_id) WHERE s.session_id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .unwrap();
        assert_eq!(
            (event_count, total_events),
            (stored, stored),
            "{id}: no count lost or overwritten"
        );
        assert_eq!(
            prompts as usize,
            want["prompts"].as_array().unwrap().len(),
            "{id}"
        );
        assert_eq!(tool_calls, want["tool_calls"].as_i64().unwrap(), "{id}");
        assert_eq!(failures, want["tool_failures"].as_i64().unwrap(), "{id}");
        assert_eq!(
            delegations as usize,
            want["delegations"].as_array().unwrap().len(),
            "{id}"
        );
        let per_agent: Vec<(i64, i64)> = conn
            .prepare("SELECT tool_calls, tool_failures FROM delegations WHERE session_id = ?1 ORDER BY agent_type")
            .unwrap()
            .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want_per_agent: Vec<(i64, i64)> = want["delegations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["tool_calls"].as_i64().unwrap(),
                    d["tool_failures"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(per_agent, want_per_agent, "{id}: each sub-agent's own work");
    }
}

#[test]
fn two_writers_alternating_on_one_session_see_each_others_delegations() {
    use mpm_aggregate::ingest::{normalize, DedupSalt, NormalizeOptions};
    use mpm_aggregate::store::writer::{send_blocking, Writer};
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let payloads = hook_payloads(9);
    let a = Writer::spawn(mpm_aggregate::documents::writer_config(&config)).unwrap();
    let b = Writer::spawn(mpm_aggregate::documents::writer_config(&config)).unwrap();
    for (i, p) in payloads.into_iter().enumerate() {
        let w = if i % 2 == 0 { &a } else { &b };
        for o in normalize(
            "claude_event",
            p,
            chrono::Utc::now(),
            &NormalizeOptions::default(),
            &mut DedupSalt::ReceivedAt,
        ) {
            send_blocking(&w.sender(), o.into()).unwrap();
        }
        w.flush().unwrap();
    }
    a.shutdown().unwrap();
    b.shutdown().unwrap();
    assert_eq!(
        count(&config.database, "SELECT count(*) FROM delegations"),
        2
    );
}
