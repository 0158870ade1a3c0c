//! Interoperability with python-socketio, the server library claude-mpm's
//! monitor is built on: a small aiohttp + python-socketio server broadcasts the
//! fixture capture, the real binary records it, and the database equals the
//! one `import` builds. The test sets up its Python itself: a virtualenv in
//! `target/py-venv` with python-socketio and aiohttp (`common::python`).

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use common::*;

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn records_a_python_socketio_monitor_exactly() {
    // target/py-venv, with python-socketio and aiohttp, made on first use.
    let python = common::python::python();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/monitor.py");
    let mut server = KillOnDrop(
        Command::new(python)
            .args([
                script,
                "--port",
                &port.to_string(),
                "--capture",
                &fixture(CAPTURE).to_string_lossy(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let recorder = Command::cargo_bin("mpm-aggregate")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "--db",
            "live.db",
            "--activity-dir",
            "activity",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut recorder = KillOnDrop(recorder);
    assert_eq!(lines.next().unwrap().unwrap(), "broadcast 61");
    let db = dir.path().join("live.db");
    assert!(
        wait_until(Duration::from_secs(15), || count(
            &db,
            "SELECT count(*) FROM events"
        ) == 59),
        "got {}",
        count(&db, "SELECT count(*) FROM events")
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(recorder.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(recorder.0.wait().unwrap().success());

    let config = test_config(dir.path());
    import_with(&config, &[fixture(CAPTURE)]);
    assert_eq!(reconstruction(&db), reconstruction(&config.database));
    assert_eq!(count(&db, "SELECT count(*) FROM rejected_events"), 0);
    assert_eq!(
        count(&db, "SELECT control_events FROM recorder_state"),
        3,
        "the welcome plus the capture's two control events"
    );
}

#[test]
fn history_from_a_monitor_that_answers_like_claude_mpm() {
    // target/py-venv, with python-socketio and aiohttp, made on first use.
    let python = common::python::python();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/monitor.py");
    let mut server = KillOnDrop(
        Command::new(python)
            .args([script, "--port", &port.to_string(), "--capture"])
            .arg(fixture(CAPTURE))
            .args(["--history", "mpm", "--preload", "25"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let recorder = ForegroundRecorder::start(dir.path(), port, &[]);
    // The history comes first: 25 events, before the monitor broadcasts.
    assert_eq!(lines.next().unwrap().unwrap(), "broadcast 61");
    let db = dir.path().join("rec.db");
    assert!(
        wait_until(Duration::from_secs(15), || count(
            &db,
            "SELECT count(*) FROM events"
        ) == 59),
        "got {}",
        count(&db, "SELECT count(*) FROM events")
    );
    let (status, out) = recorder.stop();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("history: the monitor sent 25 events in answer to hook:history:get"),
        "{out}"
    );
    let (duplicates, rejected): (i64, i64) = open(&db)
        .query_row(
            "SELECT duplicates, (SELECT count(*) FROM rejected_events) FROM recorder_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((duplicates, rejected), (25, 0), "{out}");
    let config = test_config(dir.path());
    import_with(&config, &[fixture(CAPTURE)]);
    assert_eq!(reconstruction(&db), reconstruction(&config.database));
}
