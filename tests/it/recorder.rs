//! The live recorder against a real Socket.IO server (socketioxide on loopback):
//! live replay equals import, reconnection after a server restart, history
//! replays without duplicates, unreachable monitors with and without `force`.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mpm_aggregate::recorder::RecorderOptions;
use mpm_aggregate::{Config, EventAggregator};

fn config(dir: &Path, port: u16) -> Config {
    Config {
        database: dir.join("agg.db"),
        activity_directory: dir.join("activity"),
        dashboard_host: "127.0.0.1".into(),
        dashboard_port: port,
        status_interval_seconds: 0,
        ..Config::default()
    }
}

fn import_db(dir: &Path) -> std::path::PathBuf {
    let cfg = Config {
        database: dir.join("imported.db"),
        activity_directory: dir.join("imported-activity"),
        ..Config::default()
    };
    import_with(&cfg, &[fixture(CAPTURE)]);
    cfg.database
}

const STORED: &str = "SELECT count(*) FROM events";

#[test]
fn live_replay_builds_the_same_database_as_import() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let cfg = config(dir.path(), monitor.port);
    let db = cfg.database.clone();
    let aggregator = EventAggregator::with_config(cfg);
    aggregator
        .start()
        .expect("recorder starts against a live monitor");
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    assert!(
        wait_until(Duration::from_secs(5), || *monitor
            .history_requests
            .lock()
            .unwrap()
            >= 1),
        "get_history asked on connect"
    );

    monitor.emit_all(&capture_lines());
    assert!(
        wait_until(Duration::from_secs(10), || count(&db, STORED) == 59),
        "all 59 events stored live, got {}",
        count(&db, STORED)
    );
    let status = aggregator.get_status().unwrap();
    assert!(status.running && status.connected);
    let report = aggregator.stop().unwrap();
    assert_eq!(report.stats.stored, 59);
    assert_eq!(
        report.stats.control, 3,
        "welcome from the test server plus the capture's two control events"
    );
    assert_eq!(report.stats.rejected, 0);

    let imported = import_db(dir.path());
    assert_eq!(reconstruction(&db), reconstruction(&imported));
    let files: Vec<_> = std::fs::read_dir(dir.path().join("activity"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        files
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".json"))
            .count(),
        2,
        "{files:?}"
    );
}

#[test]
fn reconnects_after_a_server_restart_and_history_adds_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let lines = capture_lines();
    let (first, second) = lines.split_at(30);
    let monitor = TestMonitor::start(None, Vec::new());
    let port = monitor.port;
    let cfg = config(dir.path(), port);
    let db = cfg.database.clone();
    let aggregator = EventAggregator::with_config(cfg);
    aggregator.start().unwrap();
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    monitor.emit_all(first);
    let stored_first = first
        .iter()
        .filter(|(e, _)| !e.starts_with("dashboard:"))
        .count() as i64;
    assert!(wait_until(Duration::from_secs(10), || count(&db, STORED)
        == stored_first));

    // Kill the server; the recorder notices and says so in its status.
    let history = monitor.kill();
    assert!(
        wait_until(Duration::from_secs(15), || !aggregator
            .get_status()
            .unwrap()
            .connected),
        "status shows the recorder disconnected"
    );

    // Same port, the old events in its history: the recorder reconnects by itself.
    let monitor = TestMonitor::start(Some(port), history);
    assert!(
        monitor.wait_for_clients(1, Duration::from_secs(40)),
        "recorder reconnected"
    );
    assert!(wait_until(Duration::from_secs(10), || *monitor
        .history_requests
        .lock()
        .unwrap()
        >= 1));
    monitor.emit_all(second);
    assert!(
        wait_until(Duration::from_secs(10), || count(&db, STORED) == 59),
        "got {}",
        count(&db, STORED)
    );
    let status = aggregator.get_status().unwrap();
    assert!(status.connected);
    assert!(status.connections >= 2);
    let report = aggregator.stop().unwrap();
    assert!(
        report.stats.duplicates >= stored_first as u64,
        "history replay was recognized: {:?}",
        report.stats
    );
    assert_eq!(count(&db, STORED), 59);
    let imported = import_db(dir.path());
    assert_eq!(reconstruction(&db), reconstruction(&imported));
}

#[test]
fn unreachable_monitor_is_an_error_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), port);
    let db = cfg.database.clone();
    let aggregator = EventAggregator::with_config(cfg.clone());
    match aggregator.start() {
        Err(mpm_aggregate::AggregatorError::Connection { url, .. }) => {
            assert!(url.contains(&port.to_string()))
        }
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(!aggregator.is_running());

    let forced = EventAggregator::with_config(cfg);
    forced
        .start_with(RecorderOptions {
            force: true,
            status_lines: false,
            ..RecorderOptions::default()
        })
        .expect("force starts without a monitor");
    std::thread::sleep(Duration::from_millis(1500));
    let monitor = TestMonitor::start(Some(port), Vec::new());
    assert!(
        monitor.wait_for_clients(1, Duration::from_secs(40)),
        "recording begins when the server appears"
    );
    monitor.emit_all(&capture_lines());
    assert!(wait_until(Duration::from_secs(10), || count(&db, STORED) == 59));
    forced.stop().unwrap();
}

#[test]
fn idle_sessions_are_finalized_by_the_sweeper_and_imported_archives_kept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let mut cfg = config(dir.path(), monitor.port);
    cfg.session_timeout_minutes = 0.02; // 1.2 seconds
    cfg.auto_cleanup_days = 30;
    let db = cfg.database.clone();
    // An old session (2025) is in the database before the recorder starts.
    import_with(&cfg, &[fixture(PYTHON_SESSION)]);
    assert_eq!(count(&db, "SELECT count(*) FROM sessions"), 1);

    let aggregator = EventAggregator::with_config(cfg);
    aggregator.start().unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM sessions"),
        1,
        "an archive of 2025 imported today is not deleted: its age counts from storage"
    );
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let now = chrono::Utc::now().to_rfc3339();
    monitor.emit_all(&[(
        "claude_event".into(),
        serde_json::json!({"type": "claude_event", "subtype": "user_prompt", "session_id": "idle", "timestamp": now, "data": {"prompt_text": "hello"}}),
    )]);
    assert!(wait_until(Duration::from_secs(3), || count(
        &db,
        "SELECT count(*) FROM sessions WHERE status = 'active'"
    ) == 1));
    assert!(
        wait_until(Duration::from_secs(10), || {
            count(
            &db,
            "SELECT count(*) FROM sessions WHERE status = 'completed' AND file_path IS NOT NULL AND session_id = 'idle'"
        ) == 1
        }),
        "the idle session was finalized"
    );
    let file = open(&db)
        .query_row(
            "SELECT file_path FROM sessions WHERE session_id = 'idle'",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || Path::new(&file).exists()));
    assert_eq!(aggregator.get_completed_sessions().unwrap(), ["idle"]);
    assert!(
        aggregator.get_completed_sessions().unwrap().is_empty(),
        "only those completed since the previous call"
    );
    aggregator.stop().unwrap();
}

/// The capture's event lines (no dashboard traffic).
fn event_lines() -> Vec<(String, serde_json::Value)> {
    capture_lines()
        .into_iter()
        .filter(|(e, _)| !e.starts_with("dashboard:"))
        .collect()
}

fn received_equation(db: &Path) -> (i64, i64, i64, i64, i64) {
    open(db)
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejected_events),
                    control_events, duplicates, events_received FROM recorder_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

#[test]
fn history_is_asked_for_the_way_claude_mpm_answers_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let lines = event_lines();
    // claude-mpm's monitor keeps what it broadcast; one element nested past
    // the JSON parser's limit costs that element only.
    let mut deep = serde_json::json!("bottom");
    for _ in 0..300 {
        deep = serde_json::json!({ "d": deep });
    }
    let mut history = lines[..30].to_vec();
    history.insert(
        10,
        (
            "claude_event".into(),
            serde_json::json!({"type": "hook", "subtype": "deep", "session_id": "deep", "data": deep}),
        ),
    );
    let monitor = TestMonitor::start_with(None, history, HistoryStyle::ClaudeMpm);
    let db = dir.path().join("rec.db");
    let recorder = ForegroundRecorder::start(dir.path(), monitor.port, &[]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    assert!(
        wait_until(Duration::from_secs(10), || count(&db, STORED) == 30
            && count(&db, "SELECT count(*) FROM rejected_events") == 1),
        "history brought 30 events and one rejection: {} stored, {} rejected\n{}",
        count(&db, STORED),
        count(&db, "SELECT count(*) FROM rejected_events"),
        recorder.output()
    );
    assert_eq!(*monitor.history_requests.lock().unwrap(), 1);

    // Live, the whole capture: what history brought is recognized.
    monitor.emit_all(&lines);
    assert!(wait_until(Duration::from_secs(10), || count(&db, STORED) == 59));
    let (status, out) = recorder.stop();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("history: the monitor sent 31 events in answer to hook:history:get"),
        "{out}"
    );
    assert!(!out.contains("no answer from the monitor"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("rejected an event") && l.contains("nested deeper than 128 levels")),
        "{out}"
    );
    let (stored, rejected, control, duplicates, received) = received_equation(&db);
    assert_eq!((stored, rejected, duplicates), (59, 1, 30));
    assert_eq!(stored + rejected + control + duplicates, received);
    let imported = import_db(dir.path());
    assert_eq!(reconstruction(&db), reconstruction(&imported));
}

#[test]
fn history_answers_are_logged_with_their_count_and_silence_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = TestMonitor::start_with(None, Vec::new(), HistoryStyle::ClaudeMpm);
    let silent = TestMonitor::start_with(None, Vec::new(), HistoryStyle::None);
    let empty_dir = dir.path().join("empty");
    let silent_dir = dir.path().join("silent");
    std::fs::create_dir_all(&empty_dir).unwrap();
    std::fs::create_dir_all(&silent_dir).unwrap();
    let empty_recorder = ForegroundRecorder::start(&empty_dir, empty.port, &[]);
    let silent_recorder = ForegroundRecorder::start(&silent_dir, silent.port, &[]);
    assert!(wait_until(Duration::from_secs(10), || empty_recorder
        .output()
        .contains(
            "history: the monitor sent 0 events in answer to hook:history:get"
        )));
    let wait = mpm_aggregate::recorder::client::HISTORY_WAIT + Duration::from_secs(5);
    assert!(
        wait_until(wait, || {
            silent_recorder.output().contains(
            "history: no answer from the monitor within 5s (asked with hook:history:get and get_history)"
        )
        }),
        "{}",
        silent_recorder.output()
    );
    // Events still arrive from the monitor that keeps no history.
    silent.emit_all(&event_lines()[..5]);
    let db = silent_dir.join("rec.db");
    assert!(wait_until(Duration::from_secs(10), || count(&db, STORED) == 5));
    let (status, out) = silent_recorder.stop();
    assert!(status.success(), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("history: ")).count(),
        1,
        "{out}"
    );
    let (status, out) = empty_recorder.stop();
    assert!(status.success(), "{out}");
    assert!(!out.contains("no answer"), "{out}");
}
