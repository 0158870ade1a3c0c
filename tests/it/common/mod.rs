//! Helpers shared by the integration tests: the fixtures, a real Socket.IO
//! monitor (socketioxide on loopback, on a runtime of its own so that shutting
//! it down really drops every connection), database inspection, and the
//! Python virtualenv of the interoperability tests (`python`).

#![allow(dead_code)]

pub mod apt;
pub mod chromium;
pub mod postgres;
pub mod python;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socketioxide::extract::{Data, SocketRef};
use socketioxide::SocketIo;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name)
}

pub const CAPTURE: &str = "claude-mpm-monitor-capture.jsonl";
pub const HOOKS: &str = "claude-code-hooks.jsonl";
pub const PYTHON_SESSION: &str = "python-aggregator-session.json";
pub const SESSION_A: &str = "5283b66c-2b29-4ee0-9698-f410f3a393fd";
pub const SESSION_B: &str = "7a91d44e-8c12-4f3b-ae56-9b2c1e0f8d35";

/// The capture as (socket event name, payload) pairs.
pub fn capture_lines() -> Vec<(String, Value)> {
    std::fs::read_to_string(fixture(CAPTURE))
        .expect("fixture readable")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fixture line is JSON");
            (
                v["event"].as_str().expect("event name").to_string(),
                v["data"].clone(),
            )
        })
        .collect()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// How a test monitor answers requests for its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryStyle {
    /// `get_history` answered by `history` `{"events": [{"event", "data"}, …]}`
    /// (claude-mpm's older Socket.IO server, with the event names kept).
    GetHistory,
    /// As claude-mpm 5.9.10's monitor: no `get_history` handler;
    /// `hook:history:get` answered by `hook:history:response`
    /// `{"events": [payload, …], "total", "filters"}`, the payloads without their names.
    ClaudeMpm,
    /// No history at all: every request goes unanswered.
    None,
}

/// A claude-mpm-like monitor: welcomes clients, broadcasts what it is told to,
/// and answers history requests (see [`HistoryStyle`]) with what it broadcast so far.
pub struct TestMonitor {
    pub port: u16,
    io: SocketIo,
    runtime: Option<tokio::runtime::Runtime>,
    pub history: Arc<Mutex<Vec<(String, Value)>>>,
    pub history_requests: Arc<Mutex<u32>>,
}

impl TestMonitor {
    /// Starts on `port` (a free one when `None`), with `history` already known,
    /// answering `get_history`.
    pub fn start(port: Option<u16>, history: Vec<(String, Value)>) -> TestMonitor {
        Self::start_with(port, history, HistoryStyle::GetHistory)
    }

    /// Starts with history answered in `style`.
    pub fn start_with(
        port: Option<u16>,
        history: Vec<(String, Value)>,
        style: HistoryStyle,
    ) -> TestMonitor {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let history = Arc::new(Mutex::new(history));
        let history_requests = Arc::new(Mutex::new(0));
        let (layer, io) = SocketIo::builder().max_buffer_size(1 << 20).build_layer();
        {
            let history = history.clone();
            let requests = history_requests.clone();
            io.ns("/", async move |s: SocketRef| {
                s.emit("dashboard:welcome", &json!({"message": "Connected to test monitor", "session_id": s.id.to_string()})).ok();
                match style {
                    HistoryStyle::GetHistory => s.on("get_history", async move |s: SocketRef, Data::<Value>(req)| {
                        *requests.lock().unwrap() += 1;
                        let limit = req.get("limit").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
                        let all = history.lock().unwrap().clone();
                        let start = all.len().saturating_sub(limit);
                        let events: Vec<Value> = all[start..].iter().map(|(e, d)| json!({"event": e, "data": d})).collect();
                        s.emit("history", &json!({"events": events})).ok();
                    }),
                    // claude-mpm 5.9.10, services/monitor/handlers/hooks.py `handle_get_history`.
                    HistoryStyle::ClaudeMpm => s.on("hook:history:get", async move |s: SocketRef, Data::<Value>(req)| {
                        *requests.lock().unwrap() += 1;
                        let limit = req.get("limit").and_then(Value::as_i64).unwrap_or(100);
                        let all = history.lock().unwrap().clone();
                        let start = if limit > 0 { all.len().saturating_sub(limit as usize) } else { 0 };
                        let events: Vec<Value> = all[start..].iter().map(|(_, d)| d.clone()).collect();
                        s.emit("hook:history:response", &json!({
                            "events": events,
                            "total": events.len(),
                            "filters": {"type": null, "session_id": null, "limit": limit},
                        })).ok();
                    }),
                    HistoryStyle::None => {}
                }
            });
        }
        let app = axum::Router::new().layer(layer);
        let addr = format!("127.0.0.1:{}", port.unwrap_or(0));
        let listener = runtime.block_on(async {
            // The port may still be in TIME_WAIT after a restart: retry briefly.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::net::TcpListener::bind(&addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("bind {addr}: {e}"),
                }
            }
        });
        let port = listener.local_addr().expect("addr").port();
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestMonitor {
            port,
            io,
            runtime: Some(runtime),
            history,
            history_requests,
        }
    }

    /// Number of connected clients.
    pub fn clients(&self) -> usize {
        self.io.sockets().len()
    }

    pub fn wait_for_clients(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.clients() >= n)
    }

    /// Broadcasts each (event, payload) to every client, remembering it for history.
    pub fn emit_all(&self, lines: &[(String, Value)]) {
        let rt = self.runtime.as_ref().expect("running");
        for (event, data) in lines {
            self.history
                .lock()
                .unwrap()
                .push((event.clone(), data.clone()));
            let io = self.io.clone();
            rt.block_on(async move {
                for socket in io.sockets() {
                    let mut tries = 0;
                    while socket.emit(event.as_str(), data).is_err() && tries < 1000 {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            });
        }
    }

    /// Emits one raw value under `event` without recording it in history.
    pub fn emit_raw(&self, event: &str, data: &Value) {
        for socket in self.io.sockets() {
            if let Err(e) = socket.emit(event, data) {
                eprintln!("test monitor: emit of {event} failed: {e}");
            }
        }
    }

    /// Emits `json` as it is written (numbers out of range and all) under `event`.
    pub fn emit_raw_json(&self, event: &str, json: &str) {
        let raw =
            serde_json::value::RawValue::from_string(json.to_string()).expect("valid JSON text");
        for socket in self.io.sockets() {
            if let Err(e) = socket.emit(event, &raw) {
                eprintln!("test monitor: emit of {event} failed: {e}");
            }
        }
    }

    /// Emits a binary attachment under `event`.
    pub fn emit_raw_binary(&self, event: &str, data: bytes::Bytes) {
        for socket in self.io.sockets() {
            let _ = socket.emit(event, &data);
        }
    }

    /// Stops abruptly: every connection is dropped with the runtime.
    pub fn kill(mut self) -> Vec<(String, Value)> {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(200));
        }
        self.history.lock().unwrap().clone()
    }
}

impl Drop for TestMonitor {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The real binary recording in the foreground from a monitor on `port`
/// into `dir/rec.db`, stdout and stderr into one file as on a terminal;
/// killed when dropped.
pub struct ForegroundRecorder {
    child: std::process::Child,
    output: PathBuf,
}

/// `mpm-aggregate --db DB --activity-dir DB's folder/activity ARGS`, run in
/// the database's folder with no database or log level from the environment.
pub fn cli_on(db: &Path, args: &[&str]) -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut c = std::process::Command::cargo_bin("mpm-aggregate").expect("binary");
    c.current_dir(db.parent().unwrap())
        .env_remove("CLAUDE_MPM_AGGREGATOR_DB")
        .env_remove("RUST_LOG")
        .arg("--db")
        .arg(db)
        .arg("--activity-dir")
        .arg(db.parent().unwrap().join("activity"))
        .args(args);
    c
}

/// Runs [`cli_on`], which must succeed (its standard error shown if not);
/// returns its standard output.
pub fn cli_stdout(db: &Path, args: &[&str]) -> String {
    let out = cli_on(db, args).output().expect("mpm-aggregate runs");
    assert!(
        out.status.success(),
        "mpm-aggregate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The transcripts folder of one of our own real Claude Code runs
/// (`tests/fixtures/claude-code/RUN/transcripts`), as a command argument.
pub fn ours(run: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/claude-code")
        .join(run)
        .join("transcripts")
        .to_string_lossy()
        .into_owned()
}

/// `mpm-aggregate --db DB push ARGS`, given two minutes.
pub fn push(db: &Path, args: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("mpm-aggregate")
        .unwrap()
        .arg("--db")
        .arg(db)
        .arg("push")
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap()
}

/// `mpm-aggregate EXTRA --db rec.db --activity-dir activity start --host
/// 127.0.0.1 --port PORT`, run in `dir`: a foreground recorder of a test.
pub fn start_command(dir: &Path, port: u16, extra: &[&str]) -> std::process::Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut c = std::process::Command::cargo_bin("mpm-aggregate").expect("binary");
    c.current_dir(dir)
        .env_remove("RUST_LOG")
        .args(extra)
        .args(["--db", "rec.db", "--activity-dir", "activity", "start"])
        .args(["--host", "127.0.0.1", "--port"])
        .arg(port.to_string());
    c
}

impl ForegroundRecorder {
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> ForegroundRecorder {
        let output = dir.join("recorder.out");
        let out = std::fs::File::create(&output).expect("output file");
        let child = start_command(dir, port, extra)
            .stdout(out.try_clone().expect("clone"))
            .stderr(out)
            .spawn()
            .expect("recorder starts");
        ForegroundRecorder { child, output }
    }

    /// What it printed so far, stdout and stderr interleaved.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Stops it with SIGTERM; its exit status and everything it printed.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        let status = self.child.wait().expect("wait");
        (status, self.output())
    }
}

impl Drop for ForegroundRecorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    check()
}

/// Opens a database for inspection.
pub fn open(db: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    c.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    c
}

pub fn count(db: &Path, sql: &str) -> i64 {
    if !db.exists() {
        return 0;
    }
    open(db).query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// The reconstruction of a database, without arrival-dependent columns, for comparisons.
pub fn reconstruction(db: &Path) -> Value {
    let c = open(db);
    let rows = |sql: &str| -> Vec<Value> {
        let mut stmt = c.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        stmt.query_map([], |r| {
            let mut obj = serde_json::Map::new();
            for (i, name) in names.iter().enumerate().take(n) {
                let v = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(x) => json!(x),
                    rusqlite::types::ValueRef::Real(x) => json!(x),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(b) => json!(b.len()),
                };
                obj.insert(name.clone(), v);
            }
            Ok(Value::Object(obj))
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
    };
    json!({
        "sessions": rows("SELECT session_id, start_time, end_time, last_event_time, status, working_directory, git_branch, initial_prompt, final_response, event_count FROM sessions ORDER BY session_id"),
        "metrics": rows("SELECT * FROM metrics ORDER BY session_id"),
        "delegations": rows("SELECT session_id, agent_type, instructions, description, start_time, end_time, success, error, event_count, tool_operations, files_modified, response_preview FROM delegations ORDER BY session_id, start_time"),
        "events": rows("SELECT session_id, timestamp, event_type, category, tool_name, data FROM events ORDER BY timestamp, event_type, data"),
    })
}

/// Imports `files` into `dir/agg.db` (session files in `dir/activity`) with `config`'s capture settings.
pub fn import_with(
    config: &mpm_aggregate::Config,
    files: &[PathBuf],
) -> mpm_aggregate::import::ImportReport {
    let writer = mpm_aggregate::store::writer::Writer::spawn(
        mpm_aggregate::documents::writer_config(config),
    )
    .expect("writer starts");
    let opts = mpm_aggregate::ingest::NormalizeOptions {
        max_event_bytes: config.max_event_bytes,
        ..Default::default()
    };
    let report =
        mpm_aggregate::import::import_files(&writer, files, &opts, false).expect("import succeeds");
    writer.shutdown().expect("writer stops cleanly");
    report
}

/// A configuration whose database and activity directory live in `dir`.
pub fn test_config(dir: &Path) -> mpm_aggregate::Config {
    mpm_aggregate::Config {
        database: dir.join("agg.db"),
        activity_directory: dir.join("activity"),
        ..mpm_aggregate::Config::default()
    }
}

/// Counts of every table, to compare before and after.
pub fn table_counts(db: &Path) -> Vec<i64> {
    [
        "events",
        "sessions",
        "delegations",
        "metrics",
        "rejected_events",
        "(SELECT sum(count) AS n FROM event_type_counts)",
    ]
    .iter()
    .map(|t| {
        count(
            db,
            &format!("SELECT coalesce((SELECT count(*) FROM {t}), 0)"),
        )
    })
    .collect()
}

/// Runs a command that must fail with exit status 1; returns its stderr.
pub fn failure_stderr(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().failure().code(1).get_output().stderr.clone();
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until the background writers that `hook` processes of `db` forked
/// have stored what they were handed (a `hook` exits before its payload is in
/// the database).
pub fn wait_for_hooks(db: &Path) {
    assert!(
        mpm_aggregate::import::hook::wait_for_drainers(db, std::time::Duration::from_secs(60)),
        "hook drainers of {} still running after 60 s",
        db.display()
    );
}
