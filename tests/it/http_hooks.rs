//! `start --listen ADDR`: Claude Code `http` hooks. The a-mpm-fast run's hook
//! payloads posted one request each to the real binary (`--no-monitor`), then
//! its transcripts imported, rebuild the run as `expected.json` says; every
//! request is answered 200 with an empty body; a body over 1 MiB is answered
//! 413, one that is not JSON 400 with a rejected row; a non-loopback address
//! is refused with one line, accepted with `listen_any = true`; a wrong
//! method is answered 405.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{count, fixture, free_port, import_with, open, start_command, wait_until};

fn run_dir() -> PathBuf {
    fixture("claude-code-2.1").join("a-mpm-fast")
}

/// One request, `Connection: close`; the status code and the body. A
/// hand-built request, in the test only: the server is axum's.
fn request(port: u16, method: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nX-Mpm-Aggregate: hook\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // A refused body may be answered before it is all sent: a write error is fine then.
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(answer.len());
    (status, answer[split..].to_vec())
}

fn status(work: &Path) -> String {
    let out = assert_cmd::Command::cargo_bin("mpm-aggregate")
        .unwrap()
        .current_dir(work)
        .args(["--db", "rec.db", "--activity-dir", "activity", "status"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Recorder {
    child: std::process::Child,
    output: PathBuf,
}

impl Recorder {
    fn start(work: &Path, listen: &str, extra: &[&str]) -> Recorder {
        let output = work.join("recorder.out");
        let out = std::fs::File::create(&output).unwrap();
        let child = start_command(work, free_port(), &[])
            .args(["--no-monitor", "--listen", listen])
            .args(extra)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("recorder starts");
        Recorder { child, output }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{}", self.output());
        self.output()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening(work: &Path, port: u16, rec: &Recorder) {
    assert!(
        wait_until(Duration::from_secs(20), || status(work)
            .contains(&format!("listening on 127.0.0.1:{port}"))),
        "{}\n{}",
        status(work),
        rec.output()
    );
}

#[test]
fn a_run_posted_as_http_hooks_then_its_transcripts_is_rebuilt_exactly() {
    let run = run_dir();
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let rec = Recorder::start(work.path(), &format!("127.0.0.1:{port}"), &[]);
    listening(work.path(), port, &rec);
    let payloads: Vec<String> = std::fs::read_to_string(run.join("hooks.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert!(payloads.len() > 10);
    for (i, p) in payloads.iter().enumerate() {
        let (code, body) = request(port, "POST", p.as_bytes());
        assert_eq!(
            (code, body.as_slice()),
            (200, &b""[..]),
            "payload {i}: {}",
            rec.output()
        );
    }
    assert_eq!(request(port, "GET", b"").0, 405);
    let n = payloads.len();
    assert!(
        wait_until(Duration::from_secs(10), || status(work.path())
            .contains(&format!("{n} payloads received"))),
        "{}",
        status(work.path())
    );
    let out = rec.stop();
    assert!(
        out.contains(&format!("http hooks on 127.0.0.1:{port}")),
        "{out}"
    );
    let db = work.path().join("rec.db");
    assert_eq!(count(&db, "SELECT count(*) FROM rejected_events"), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE origin = 'hook'"),
        count(&db, "SELECT count(*) FROM events"),
        "every event from a hook"
    );
    // Every item received is stored, a duplicate, merged, rejected or control.
    let (received, stored, duplicates, merged, rejected, control): (i64, i64, i64, i64, i64, i64) =
        open(&db)
            .query_row(
                "SELECT events_received, events_stored, duplicates, merged, rejected, control_events
                 FROM recorder_state",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .unwrap();
    assert_eq!(received, n as i64);
    assert_eq!(stored + duplicates + merged + rejected + control, received);
    // What the listener did is in the heartbeat row (status reads it there).
    let (address, payloads): (Option<String>, i64) = open(&db)
        .query_row(
            "SELECT listen_address, http_payloads FROM recorder_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(address.is_some_and(|a| a.starts_with("127.0.0.1:")));
    assert_eq!(payloads, received);
    let config = mpm_aggregate::Config {
        database: db.clone(),
        activity_directory: work.path().join("activity"),
        ..Default::default()
    };
    import_with(&config, &[run.join("transcripts")]);
    crate::claude_code::check_store(&run, &db, true, "http hooks, then transcripts");
}

#[test]
fn a_body_too_large_is_413_and_one_not_json_is_400_and_rejected() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let rec = Recorder::start(work.path(), &format!("127.0.0.1:{port}"), &[]);
    listening(work.path(), port, &rec);
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    assert_eq!(request(port, "POST", big.as_bytes()).0, 413);
    assert_eq!(request(port, "POST", b"{not json").0, 400);
    assert_eq!(request(port, "POST", b"[1,2]").0, 400);
    assert_eq!(request(port, "PUT", b"{}").0, 405);
    assert!(
        wait_until(Duration::from_secs(10), || status(work.path())
            .contains("2 payloads received")),
        "{}",
        status(work.path())
    );
    let out = rec.stop();
    let db = work.path().join("rec.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM rejected_events"),
        2,
        "{out}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM rejected_events WHERE socket_event = 'hook' AND payload = '{not json' AND reason LIKE 'hook payload is not JSON%'"
        ),
        1
    );
    assert_eq!(
        count(&db, "SELECT events_received - rejected FROM recorder_state"),
        0
    );
}

#[test]
fn a_non_loopback_address_is_refused_with_one_line() {
    let work = tempfile::tempdir().unwrap();
    let out = start_command(work.path(), free_port(), &[])
        .args(["--no-monitor", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not a loopback address") && err.contains("--listen-any"),
        "{err}"
    );
    assert!(!work.path().join("activity/recorder.pid").exists());
}

#[test]
fn listen_any_in_the_configuration_allows_any_address() {
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config.toml");
    std::fs::write(&config, "[event_aggregator]\nlisten_any = true\n").unwrap();
    let port = free_port();
    let output = work.path().join("recorder.out");
    let out = std::fs::File::create(&output).unwrap();
    let mut child = start_command(
        work.path(),
        free_port(),
        &["--config", config.to_str().unwrap()],
    )
    .args(["--no-monitor", "--listen", &format!("0.0.0.0:{port}")])
    .stdout(out.try_clone().unwrap())
    .stderr(out)
    .spawn()
    .unwrap();
    let up = wait_until(Duration::from_secs(20), || {
        status(work.path()).contains(&format!("listening on 0.0.0.0:{port}"))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        up,
        "{}",
        std::fs::read_to_string(&output).unwrap_or_default()
    );
}
