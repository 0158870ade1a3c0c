//! Reliability and security, on the real binary, a real Socket.IO server and
//! real database files: bad input mixed into a live stream, kill -9, readers
//! beside a busy writer, lost connections, and resources that fail (unwritable
//! directories, read-only, corrupt or full databases). Longer runs: set
//! `MPM_LONG_TESTS=1`.

use crate::common;

use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use common::*;
use serde_json::{json, Value};

fn long() -> bool {
    std::env::var("MPM_LONG_TESTS").is_ok_and(|v| v == "1")
}

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = bare_cmd(dir, &["--db", "rec.db", "--activity-dir", "activity"]);
    c.args(args);
    c
}

/// The binary with only `args`.
fn bare_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("mpm-aggregate").unwrap();
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        .args(args)
        .timeout(Duration::from_secs(60));
    c
}

/// A foreground recorder process, killed when dropped.
struct Recorder(Child);

impl Recorder {
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Recorder {
        let child = start_command(dir, port, extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("recorder.log")).unwrap())
            .spawn()
            .unwrap();
        Recorder(child)
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.0.id() as i32)
    }

    fn stop(mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
        self.0.wait().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn integrity_ok(db: &Path) -> bool {
    mpm_aggregate::store::integrity_ok(&open(db)).unwrap()
}

#[test]
fn bad_input_in_a_live_stream_never_stops_recording() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[event_aggregator]\nmax_event_bytes = 1048576\n",
    )
    .unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let recorder = Recorder::start(dir.path(), monitor.port, &["--config", "c.toml"]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let db = dir.path().join("rec.db");
    let lines = capture_lines();
    let bad: Vec<(&str, Value, bool)> = vec![
        // (event, payload, stored?) — emitted between valid capture lines
        ("claude_event", json!("just a string"), false),
        ("claude_event", json!(42), false),
        ("claude_event", Value::Null, false),
        (
            "claude_event",
            json!({"type": "x", "data": "not an object", "session_id": "odd-data", "timestamp": "2026-01-01T00:00:00Z"}),
            true,
        ),
        (
            "claude_event",
            json!({"type": 7, "subtype": ["no"], "timestamp": "yesterday", "session_id": "bad-time"}),
            true,
        ),
        (
            "claude_event",
            json!({"type": "x", "timestamp": "99999-12-31T00:00:00Z", "session_id": "absurd-time"}),
            true,
        ),
        (
            "claude_event",
            json!({"hook_event_name": "Stop", "session_id": 12345, "timestamp": 1795494251480u64}),
            true,
        ),
        (
            "claude_event",
            json!({"type": "x", "session_id": "y".repeat(10_000)}),
            false,
        ),
        (
            "claude_event",
            json!({"type": "x", "session_id": "nul\u{0}id"}),
            false,
        ),
        (
            "claude_event",
            json!({"type": "x", "session_id": "../../../etc/x", "timestamp": "2026-01-01T00:00:01Z"}),
            true,
        ),
        (
            "claude_event",
            json!({"type": "x", "session_id": "a/b/../c", "timestamp": "2026-01-01T00:00:02Z"}),
            true,
        ),
        (
            "claude_event",
            json!({"type": "x", "session_id": "big", "data": {"blob": "z".repeat(4 * 1024 * 1024)}}),
            false,
        ),
        ("hook_event", json!({"hook_event_name": "PreToolUse"}), true),
    ];
    // What rust_socketio dropped before any callback (its serde_json parse of
    // the packet failed, silently): nesting past serde_json's limit of 128
    // levels, a number out of range. Mixed in after the other bad input.
    let nested = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    };
    let unparseable: Vec<(&str, String)> = vec![
        (
            "claude_event",
            json!({"type": "deep", "session_id": "deep", "data": {"x": nested(400)}}).to_string(),
        ),
        ("hook_event", nested(129).to_string()),
        (
            "claude_event",
            r#"{"type": "x", "session_id": "big-number", "timestamp": "2026-01-01T00:00:03Z", "n": 1e400}"#
                .to_string(),
        ),
        (
            "claude_event",
            json!({"type": "deep", "session_id": "deep", "data": {"x": nested(200)}}).to_string(),
        ),
    ];
    let mut emitted_bad = 0;
    let mut emitted_unparseable = 0;
    for (i, line) in lines.iter().enumerate() {
        monitor.emit_all(std::slice::from_ref(line));
        if let Some((event, payload, _)) = bad.get(i) {
            monitor.emit_raw(event, payload);
            emitted_bad += 1;
        } else if let Some((event, text)) = unparseable.get(i - bad.len()) {
            monitor.emit_raw_json(event, text);
            emitted_unparseable += 1;
        }
    }
    // An array as the payload, and a binary attachment.
    monitor.emit_raw("claude_event", &json!([[1, 2, 3]]));
    monitor.emit_raw_binary("claude_event", bytes::Bytes::from_static(b"\x00\x01binary"));
    let stored_bad = bad.iter().filter(|(_, _, s)| *s).count() as i64;
    let rejected_bad = bad.len() as i64 - stored_bad + 2 + unparseable.len() as i64;
    assert!(
        wait_until(Duration::from_secs(10), || count(
            &db,
            "SELECT count(*) FROM events"
        ) == 59 + stored_bad
            && count(&db, "SELECT count(*) FROM rejected_events")
                == rejected_bad),
        "stored {} rejected {}",
        count(&db, "SELECT count(*) FROM events"),
        count(&db, "SELECT count(*) FROM rejected_events")
    );
    assert_eq!(emitted_bad, bad.len());
    assert_eq!(emitted_unparseable, unparseable.len());

    // The connection and the recording go on after them.
    let connections_before = count(&db, "SELECT connections FROM recorder_state");
    assert_eq!(connections_before, 1);
    let after = json!({"hook_event_name": "UserPromptSubmit", "session_id": "after-the-storm", "prompt": "still here", "timestamp": "2026-01-02T00:00:00Z"});
    monitor.emit_all(&[("claude_event".into(), after)]);
    assert!(
        wait_until(Duration::from_secs(10), || count(
            &db,
            "SELECT count(*) FROM events WHERE session_id = 'after-the-storm'"
        ) == 1),
        "recording goes on"
    );
    assert_eq!(
        count(&db, "SELECT connections FROM recorder_state"),
        connections_before,
        "no reconnection was needed"
    );
    assert_eq!(monitor.clients(), 1);

    assert!(recorder.stop().success());
    let stored = count(&db, "SELECT count(*) FROM events");
    let rejected = count(&db, "SELECT count(*) FROM rejected_events");
    let (received, control, duplicates): (i64, i64, i64) = open(&db)
        .query_row(
            "SELECT events_received, control_events, duplicates FROM recorder_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        stored + rejected + control + duplicates,
        received,
        "stored + rejected (+ control, duplicates) = received"
    );
    // (Duplicates come from the history answer, which may hold the first
    // lines when they are emitted before the monitor handles the request.)
    assert_eq!(
        (stored, rejected),
        (59 + stored_bad + 1, rejected_bad),
        "every event sent is stored or rejected, none lost"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM rejected_events WHERE reason LIKE '%nested deeper than 128 levels%'"
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM rejected_events WHERE reason = ''"
        ),
        0
    );
    let reasons: Vec<String> = open(&db)
        .prepare("SELECT reason FROM rejected_events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for needle in [
        "a string",
        "a number",
        "null",
        "10000 characters",
        "control characters",
        "exceeds max_event_bytes",
        "binary payload",
        "nested deeper than 128 levels",
        "number out of range",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(needle)),
            "no rejection mentions {needle:?}: {reasons:#?}"
        );
    }
    // The fixture's sessions came through whole.
    assert_eq!(
        count(
            &db,
            &format!("SELECT event_count FROM sessions WHERE session_id = '{SESSION_A}'")
        ),
        47
    );
    let log = std::fs::read_to_string(dir.path().join("recorder.log")).unwrap();
    assert!(
        !log.contains("zzzzzzzz") && !log.contains("Add JWT"),
        "payloads stay out of the log"
    );
    assert_eq!(
        log.matches("rejected an event").count() as i64,
        rejected,
        "one log line per rejection:\n{log}"
    );
    assert!(integrity_ok(&db));
}

#[test]
fn kill_9_keeps_what_was_committed_and_history_fills_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rec.db");
    std::fs::write(
        dir.path().join("c.toml"),
        "[event_aggregator]\nhistory_limit = 100000\n",
    )
    .unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let rounds = if long() { 20 } else { 3 };
    let mut emitted = 0usize;
    let mut copy = 0usize;
    for round in 0..rounds {
        let recorder = Recorder::start(dir.path(), monitor.port, &["--config", "c.toml"]);
        assert!(
            monitor.wait_for_clients(1, Duration::from_secs(10)),
            "round {round}"
        );
        // The history the server replays on connect holds everything emitted so far.
        assert!(
            wait_until(
                Duration::from_secs(10),
                || count(&db, "SELECT count(*) FROM events") as usize == emitted
            ),
            "round {round}: history filled the gap"
        );
        let batch: Vec<(String, Value)> = (0..400)
            .map(|i| {
                copy += 1;
                ("claude_event".to_string(), json!({"type": "claude_event", "subtype": "user_prompt", "session_id": format!("s{}", copy % 17),
                    "timestamp": format!("2026-01-01T00:{:02}:{:02}.{:03}Z", copy / 60000 % 60, copy / 1000 % 60, copy % 1000), "data": {"prompt_text": format!("p{i}")}}))
            })
            .collect();
        let kill_after = 50 + fastrand::usize(..300);
        monitor.emit_all(&batch[..kill_after]);
        std::thread::sleep(Duration::from_millis(fastrand::u64(..30)));
        let committed_before = count(&db, "SELECT count(*) FROM events");
        nix::sys::signal::kill(recorder.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
        drop(recorder);
        // Emitted while nothing listens: only the history can bring these.
        monitor.emit_all(&batch[kill_after..]);
        emitted += batch.len();
        assert!(integrity_ok(&db), "round {round}");
        assert!(
            count(&db, "SELECT count(*) FROM events") >= committed_before,
            "round {round}: committed events survive"
        );
        let _ = std::fs::remove_file(dir.path().join("activity/mpm-aggregate.pid"));
    }
    let recorder = Recorder::start(dir.path(), monitor.port, &["--config", "c.toml"]);
    assert!(wait_until(
        Duration::from_secs(15),
        || count(&db, "SELECT count(*) FROM events") as usize == emitted
    ));
    assert!(recorder.stop().success());
    assert_eq!(
        count(&db, "SELECT count(*) FROM events") as usize,
        emitted,
        "no duplicates, nothing missing"
    );
    assert!(integrity_ok(&db));
}

#[test]
fn readers_and_the_writer_do_not_block_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rec.db");
    let monitor = TestMonitor::start(None, Vec::new());
    let recorder = Recorder::start(dir.path(), monitor.port, &[]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let base = capture_lines();
    let copies = if long() { 2000 } else { 300 };
    let stream: Vec<(String, Value)> = (0..copies)
        .flat_map(|c| {
            base.iter()
                .filter(|(e, _)| !e.starts_with("dashboard:"))
                .map(move |(e, d)| {
                    let text = d
                        .to_string()
                        .replace(SESSION_A, &format!("{c:06}-a"))
                        .replace(SESSION_B, &format!("{c:06}-b"))
                        .replace(
                            "\"session_id\":null",
                            &format!("\"session_id\":null,\"copy\":{c}"),
                        );
                    (e.clone(), serde_json::from_str::<Value>(&text).unwrap())
                })
        })
        .collect();
    let total = stream.len() as i64;
    let emitter = {
        let monitor_port = monitor.port;
        let _ = monitor_port;
        let stream = stream.clone();
        let monitor = &monitor;
        std::thread::scope(|scope| {
            let emitting = scope.spawn(move || monitor.emit_all(&stream));
            // Read while the recorder writes at full speed.
            let started = Instant::now();
            let mut reads = 0;
            while !emitting.is_finished() || reads < 8 {
                for args in [
                    vec!["sessions", "--limit", "5"],
                    vec!["status", "--json"],
                    vec!["query", "SELECT count(*) FROM events"],
                    vec!["view", "000001-a"],
                    vec!["export", "000001-a", "-o", "-"],
                ] {
                    // view/export may run before session 000001-a exists: looked at
                    // before the command (looked at after, the writer may have stored
                    // it in between, and a correct answer would count as a failure).
                    let stored_before = count(
                        &db,
                        "SELECT count(*) FROM sessions WHERE session_id = '000001-a'",
                    );
                    let out = cmd(dir.path(), &args).output().unwrap();
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let not_there_yet = stored_before == 0 && stderr.contains("no session matches");
                    assert!(
                        out.status.success() || not_there_yet,
                        "{args:?} failed while the recorder writes: {stderr}"
                    );
                    assert!(!stderr.contains("locked"), "{stderr}");
                    reads += 1;
                }
                assert!(started.elapsed() < Duration::from_secs(120));
            }
            emitting.join().unwrap();
            reads
        })
    };
    assert!(emitter >= 8);
    assert!(
        wait_until(Duration::from_secs(15), || count(
            &db,
            "SELECT count(*) FROM events"
        ) == total),
        "the recorder kept up: {} of {total}",
        count(&db, "SELECT count(*) FROM events")
    );
    assert!(recorder.stop().success());
}

#[test]
fn lost_connections_are_logged_and_shown_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let port = monitor.port;
    let recorder = Recorder::start(dir.path(), port, &[]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let status = || -> Value {
        serde_json::from_slice(
            &cmd(dir.path(), &["status", "--json"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert!(wait_until(Duration::from_secs(10), || status()
        ["connected"]
        == true));
    monitor.kill();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let s = status();
            s["running"] == true && s["connected"] == false && s["state"] == "disconnected"
        }),
        "status shows the recorder disconnected: {}",
        status()
    );
    let monitor = TestMonitor::start(Some(port), Vec::new());
    assert!(monitor.wait_for_clients(1, Duration::from_secs(40)));
    assert!(wait_until(Duration::from_secs(10), || status()
        ["connected"]
        == true));
    assert!(recorder.stop().success());
    let log = std::fs::read_to_string(dir.path().join("recorder.log")).unwrap();
    assert!(
        log.contains("lost the connection to the monitor")
            && log.contains("reconnected to the monitor"),
        "{log}"
    );
    assert_eq!(
        log.matches("lost the connection").count(),
        1,
        "one line per state change, not per attempt:\n{log}"
    );
}

fn one_line_error(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr} (status {:?})", out.status);
    assert!(lines[0].contains(needle), "{stderr} lacks {needle}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn failing_resources_are_one_clear_error_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rec.db");
    cmd(dir.path(), &["import", &fixture(CAPTURE).to_string_lossy()])
        .assert()
        .success();
    let before = table_counts(&db);

    // Unwritable activity directory (a path through a regular file).
    std::fs::write(dir.path().join("plain-file"), "x").unwrap();
    for args in [
        vec![
            "--db",
            "rec.db",
            "--activity-dir",
            "plain-file/activity",
            "start",
            "--force",
        ],
        vec![
            "--db",
            "rec.db",
            "--activity-dir",
            "plain-file/activity",
            "import",
            "x.jsonl",
        ],
    ] {
        let out = bare_cmd(dir.path(), &args).output().unwrap();
        one_line_error(&out, "plain-file/activity");
    }

    // Corrupt database: refused, and left as it was.
    let garbage = vec![0x5au8; 16384];
    std::fs::write(dir.path().join("bad.db"), &garbage).unwrap();
    let hooks = fixture(HOOKS).to_string_lossy().into_owned();
    for args in [
        vec!["--db", "bad.db", "import", &hooks],
        vec!["--db", "bad.db", "start", "--force"],
        vec!["--db", "bad.db", "prune", "--older-than-days", "1"],
    ] {
        let out = bare_cmd(dir.path(), &args).output().unwrap();
        one_line_error(&out, "not a database");
    }
    assert_eq!(std::fs::read(dir.path().join("bad.db")).unwrap(), garbage);

    // A database that cannot be written (immutable file; root ignores modes).
    let chattr = StdCommand::new("chattr").arg("+i").arg(&db).status();
    if chattr.is_ok_and(|s| s.success()) {
        let out = cmd(dir.path(), &["import", &fixture(HOOKS).to_string_lossy()])
            .output()
            .unwrap();
        let _ = StdCommand::new("chattr").arg("-i").arg(&db).status();
        one_line_error(&out, "rec.db");
        assert_eq!(table_counts(&db), before);
    } else {
        eprintln!("chattr unavailable here: the read-only database case is not exercised");
    }

    // A full disk (a file-size limit): the import fails cleanly, nothing stored before is lost.
    let big = dir.path().join("big.jsonl");
    let base = std::fs::read_to_string(fixture(CAPTURE)).unwrap();
    let mut text = String::new();
    for c in 0..400 {
        text.push_str(
            &base
                .replace(SESSION_A, &format!("full-{c}-a"))
                .replace(SESSION_B, &format!("full-{c}-b")),
        );
    }
    std::fs::write(&big, text).unwrap();
    let size_before = std::fs::metadata(&db).unwrap().len();
    let mut limited = std::process::Command::cargo_bin("mpm-aggregate").unwrap();
    limited
        .current_dir(dir.path())
        .args(["--db", "rec.db", "--activity-dir", "activity", "import"])
        .arg(&big);
    unsafe {
        use std::os::unix::process::CommandExt;
        let limit = size_before + 2 * 1024 * 1024;
        limited.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_FSIZE, limit, limit)
                .map_err(std::io::Error::from)
        });
    }
    let out = limited.output().unwrap();
    one_line_error(&out, "rec.db");
    assert!(integrity_ok(&db));
    let after = table_counts(&db);
    assert!(
        after[0] >= before[0] && after[1] >= before[1],
        "nothing stored before is lost"
    );
    assert_eq!(
        count(
            &db,
            &format!("SELECT event_count FROM sessions WHERE session_id = '{SESSION_A}'")
        ),
        47
    );

    // Files are private to their owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&dir.path().join("activity")), 0o700);
    for f in std::fs::read_dir(dir.path().join("activity")).unwrap() {
        assert_eq!(mode(&f.unwrap().path()), 0o600);
    }
}

#[test]
fn session_files_stay_inside_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    // Same first eight characters and the same start second: two files.
    let lines: Vec<String> = ["samestart-1", "samestart-2", "../../../../tmp/evil", "..", "/abs/olute"]
        .iter()
        .flat_map(|id| {
            [json!({"hook_event_name": "UserPromptSubmit", "session_id": id, "prompt": "p", "timestamp": "2026-01-01T00:00:00Z"}),
             json!({"hook_event_name": "Stop", "session_id": id, "timestamp": "2026-01-01T00:00:00.500Z"})]
        })
        .map(|v| v.to_string())
        .collect();
    std::fs::write(dir.path().join("ids.jsonl"), lines.join("\n")).unwrap();
    cmd(dir.path(), &["import", "ids.jsonl"]).assert().success();
    let files: Vec<String> = std::fs::read_dir(dir.path().join("activity"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 5, "{files:?}");
    for f in &files {
        assert!(
            f.starts_with("session_")
                && f.ends_with(".json")
                && !f.contains('/')
                && !f.starts_with(".."),
            "{f}"
        );
    }
    assert!(!Path::new("/tmp/evil").exists());
    // The default export name of a hostile id is sanitized too, and lands where we run.
    cmd(dir.path(), &["export", "../../../../tmp/evil"])
        .assert()
        .success();
    let exported: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_full.json"))
        .collect();
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert!(exported[0].starts_with("session_"), "{exported:?}");
}

#[test]
fn the_foreground_states_each_change_once() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let port = monitor.port;
    let recorder = ForegroundRecorder::start(dir.path(), port, &[]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    assert!(wait_until(Duration::from_secs(10), || recorder
        .output()
        .contains("Ctrl-C to stop")));
    monitor.kill();
    assert!(wait_until(Duration::from_secs(15), || recorder
        .output()
        .contains("lost the connection")));
    let monitor = TestMonitor::start(Some(port), Vec::new());
    assert!(monitor.wait_for_clients(1, Duration::from_secs(40)));
    assert!(wait_until(Duration::from_secs(10), || recorder
        .output()
        .contains("reconnected to the monitor")));
    let (status, out) = recorder.stop();
    assert!(status.success(), "{out}");
    // stdout and stderr share the terminal: each state is stated on one of them.
    let lines_with = |needle: &str| out.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        lines_with("connected to"),
        2,
        "start, then reconnection:\n{out}"
    );
    assert_eq!(lines_with("reconnected to the monitor"), 1, "{out}");
    assert_eq!(lines_with("lost the connection"), 1, "{out}");
    assert_eq!(lines_with("stopped:"), 1, "{out}");
    assert_eq!(lines_with("recording"), 1, "{out}");
}

#[test]
fn a_frame_the_transport_cannot_decode_is_counted_and_recording_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = TestMonitor::start(None, Vec::new());
    let recorder = Recorder::start(dir.path(), monitor.port, &[]);
    assert!(monitor.wait_for_clients(1, Duration::from_secs(10)));
    let db = dir.path().join("rec.db");
    let lines = capture_lines();
    monitor.emit_all(&lines[..10]);
    let first = lines[..10]
        .iter()
        .filter(|(e, _)| !e.starts_with("dashboard:"))
        .count() as i64;
    assert!(wait_until(Duration::from_secs(10), || count(
        &db,
        "SELECT count(*) FROM events"
    ) == first));
    // rust_engineio splits every frame at the byte 0x1e (the long-polling
    // separator), so this attachment reaches it as a packet with an invalid type.
    monitor.emit_raw_binary(
        "claude_event",
        bytes::Bytes::from_static(b"\x01\x1e\xffbinary"),
    );
    assert!(
        wait_until(Duration::from_secs(15), || {
            count(
            &db,
            "SELECT count(*) FROM rejected_events WHERE reason LIKE 'a binary attachment the transport could not decode%' AND socket_event = 'claude_event'"
        ) == 1
        }),
        "{}",
        std::fs::read_to_string(dir.path().join("recorder.log")).unwrap()
    );
    assert!(wait_until(Duration::from_secs(15), || count(
        &db,
        "SELECT connections FROM recorder_state"
    ) == 2));
    monitor.emit_all(&lines[10..]);
    assert!(wait_until(Duration::from_secs(10), || count(
        &db,
        "SELECT count(*) FROM events"
    ) == 59));
    assert!(recorder.stop().success());
    let (stored, rejected, control, duplicates, received): (i64, i64, i64, i64, i64) = open(&db)
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejected_events),
                    control_events, duplicates, events_received FROM recorder_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(stored + rejected + control + duplicates, received);
    assert_eq!((stored, rejected), (59, 1), "one event sent, one rejection");
    let log = std::fs::read_to_string(dir.path().join("recorder.log")).unwrap();
    assert!(log.contains("history not asked"), "{log}");
}
