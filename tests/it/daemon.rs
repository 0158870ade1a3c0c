//! The recorder as users run it: the real binary, `start --daemon`, `status
//! --json` from another process, `stop`; a foreground recorder stopped by
//! SIGTERM; an unreachable monitor; a second start; a stale PID file.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use common::*;
use serde_json::Value;

fn cmd(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
    c.current_dir(dir)
        .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
        .env_remove("CLAUDE_MPM_ACTIVITY_DIR")
        .env_remove("RUST_LOG")
        .args(["--db", "rec.db", "--activity-dir", "activity"])
        .args(args)
        .timeout(Duration::from_secs(60));
    c
}

/// Kills a daemon left running by a failing test.
struct DaemonGuard<'a>(&'a std::path::Path);

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("activity/mpm-aggregate.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn status(dir: &std::path::Path) -> Value {
    let out = cmd(dir, &["status", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn daemon_start_status_stop() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = DaemonGuard(dir.path());
    let monitor = TestMonitor::start(None, Vec::new());
    let port = monitor.port.to_string();
    let out = cmd(
        dir.path(),
        &["start", "--daemon", "--host", "127.0.0.1", "--port", &port],
    )
    .assert()
    .success()
    .get_output()
    .stdout
    .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("recording in the background (pid"), "{out}");
    let pid: i32 = std::fs::read_to_string(dir.path().join("activity/mpm-aggregate.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));

    // A second recorder for the same directory is refused.
    let again = failure_stderr(&mut cmd(dir.path(), &["start", "--port", &port]));
    assert!(again.contains("already running"), "{}", again);

    monitor.emit_all(&capture_lines());
    let db = dir.path().join("rec.db");
    assert!(wait_until(Duration::from_secs(10), || count(
        &db,
        "SELECT count(*) FROM events"
    ) == 59));
    assert!(wait_until(Duration::from_secs(10), || status(dir.path())
        ["connected"]
        == true));
    let s = status(dir.path());
    assert_eq!(s["running"], true);
    assert_eq!(s["pid"], pid);
    assert_eq!(s["total_events"], 59);
    assert_eq!(s["dashboard_port"].as_u64(), Some(monitor.port as u64));
    assert_eq!(s["events_by_type"]["PostToolUse"], 9);
    assert!(s["uptime_seconds"].as_i64().unwrap() >= 0);
    assert!(s["last_event_time"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-24T04:24:14"));

    // An unfinished session is finalized by stop.
    monitor.emit_all(&[("claude_event".to_string(), serde_json::json!({"hook_event_name": "UserPromptSubmit", "session_id": "open-session", "prompt": "still going", "timestamp": chrono::Utc::now().to_rfc3339()}))]);
    assert!(wait_until(Duration::from_secs(10), || count(
        &db,
        "SELECT count(*) FROM sessions WHERE status = 'active'"
    ) == 1));

    let stopped = cmd(dir.path(), &["stop"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let stopped = String::from_utf8_lossy(&stopped);
    assert!(
        stopped.contains(&format!("stopped recorder (pid {pid})"))
            && stopped.contains("60 events stored"),
        "{stopped}"
    );
    assert!(
        !mpm_aggregate::recorder::daemon::process_alive(pid),
        "the daemon is gone"
    );
    assert!(!dir.path().join("activity/mpm-aggregate.pid").exists());
    assert_eq!(
        count(&db, "SELECT count(*) FROM sessions WHERE status = 'active'"),
        0
    );
    let files = std::fs::read_dir(dir.path().join("activity"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(files, 3, "two finalized by Stop, one by stop");
    assert_eq!(status(dir.path())["running"], false);
    let log = std::fs::read_to_string(dir.path().join("activity/mpm-aggregate.log")).unwrap();
    assert!(
        log.contains("connected to the monitor") && !log.contains("JWT"),
        "the log names no payload content:\n{log}"
    );

    // Nothing runs now: stop is a clear error.
    let out = failure_stderr(&mut cmd(dir.path(), &["stop"]));
    assert!(out.contains("no recorder is running"));
}

#[test]
fn foreground_recorder_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    std::fs::write(
        dir.path().join("c.toml"),
        "[event_aggregator]\nstatus_interval_seconds = 1\n",
    )
    .unwrap();
    let child = start_command(dir.path(), monitor.port, &["--config", "c.toml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let lines = capture_lines();
    monitor.emit_all(&lines[..20]);
    let db = dir.path().join("rec.db");
    assert!(wait_until(Duration::from_secs(10), || count(
        &db,
        "SELECT count(*) FROM events"
    ) == 18));
    // Foreground recorders print a status line every status_interval_seconds.
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("recording: connected to")
            && stdout.contains("18 events stored this run")
            && stdout.contains("2 sessions finalized at stop")
            && stdout.contains("connected · 18 events recorded · 2 active sessions"),
        "{stdout}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sessions WHERE status = 'completed' AND file_path IS NOT NULL"
        ),
        2
    );
}

#[test]
fn unreachable_monitor_fails_without_force_and_stale_pid_files_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let _guard = DaemonGuard(dir.path());
    let port = free_port().to_string();
    let out = failure_stderr(&mut cmd(
        dir.path(),
        &["start", "--host", "127.0.0.1", "--port", &port],
    ));
    let text = out;
    assert!(
        text.contains(&format!(
            "cannot connect to the monitor at http://127.0.0.1:{port}"
        )),
        "{text}"
    );
    let out = failure_stderr(&mut cmd(
        dir.path(),
        &["start", "--daemon", "--host", "127.0.0.1", "--port", &port],
    ));
    assert!(out.contains("cannot connect to the monitor"), "{}", out);

    // A PID file left by a dead process does not block a start.
    std::fs::write(dir.path().join("activity/mpm-aggregate.pid"), "999999\n").unwrap();
    let out = cmd(dir.path(), &["stop"])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("removed a stale PID file"));
    assert!(!dir.path().join("activity/mpm-aggregate.pid").exists());

    // --force starts anyway and records once the monitor appears.
    std::fs::write(dir.path().join("activity/mpm-aggregate.pid"), "999999\n").unwrap();
    cmd(
        dir.path(),
        &[
            "start",
            "--daemon",
            "--force",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ],
    )
    .assert()
    .success();
    let s = status(dir.path());
    assert_eq!(
        (s["running"].as_bool(), s["connected"].as_bool()),
        (Some(true), Some(false))
    );
    let monitor = TestMonitor::start(Some(port.parse().unwrap()), Vec::new());
    assert!(monitor.wait_for_clients(1, Duration::from_secs(40)));
    monitor.emit_all(&capture_lines());
    let db = dir.path().join("rec.db");
    let stored = wait_until(Duration::from_secs(10), || {
        count(&db, "SELECT count(*) FROM events") == 59
    });
    let log =
        std::fs::read_to_string(dir.path().join("activity/mpm-aggregate.log")).unwrap_or_default();
    assert!(
        stored,
        "got {} events; log:\n{log}",
        count(&db, "SELECT count(*) FROM events")
    );
    cmd(dir.path(), &["stop"]).assert().success();
}
