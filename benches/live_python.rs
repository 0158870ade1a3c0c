//! Live, side by side with the Python original: one python-socketio + aiohttp
//! server (claude-mpm's monitor stack, `benches/python/emitter.py`) broadcasts
//! the fixture capture replicated to two clients at once, our recorder binary
//! (`mpm-aggregate start`) and claude-mpm's own `EventAggregator`
//! (`benches/python/original.py`, claude-mpm 5.9.10 from PyPI). Reports each
//! one's CPU (user + system, from `wait4` of the stopped process, so the files
//! written at the end count) per event broadcast.
//!
//! Runs: many short sessions (`short`), one long session (`long`: the same two
//! session ids, a `Stop` every ~30 events, with our CPU per event between 1,000,
//! 10,000 and 100,000 events), a realistic 100 events/s (`rate100`), and each
//! recorder idle (`idle`: CPU and context switches over 10 s).
//!
//! cargo bench --bench live_python [-- short|long|rate100|idle [EVENTS]]
//!
//! The virtualenvs are made on first use: `target/py-venv` (python-socketio,
//! aiohttp: the emitter) and `target/mpm-venv` (claude-mpm==5.9.10: the
//! original); `PYTHON` names the interpreter that makes them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// A virtualenv's python with `packages` installed (made once).
fn venv(name: &str, check: &str, packages: &[&str]) -> PathBuf {
    let dir = target_dir().join(name);
    let python = dir.join("bin/python");
    let ok = |p: &Path| {
        Command::new(p)
            .args(["-c", &format!("import {check}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&python) {
        let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let made = Command::new(&base).arg("-m").arg("venv").arg(&dir).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv {name}");
        let pip = Command::new(dir.join("bin/pip"))
            .args(["install", "-q"])
            .args(packages)
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {packages:?}");
        assert!(ok(&python), "{check} is not importable in {name}");
    }
    python
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/python")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// CPU seconds (user + system, all threads) of a running process.
fn cpu_seconds(pid: u32) -> f64 {
    common::cpu_seconds_of(&format!("/proc/{pid}/stat"))
}

/// CPU seconds of each thread of a process, by thread name (summed).
fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let tid: u32 = t.file_name().to_string_lossy().parse().unwrap_or(0);
        let cpu = common::cpu_seconds_of(&format!("/proc/{pid}/task/{tid}/stat"));
        let name = comm.trim().to_string();
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += cpu,
            None => out.push((name, cpu)),
        }
    }
    out
}

/// Context switches (voluntary + involuntary) of all of a process's threads.
fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// Stops a process with SIGTERM and returns its whole CPU time (wait4's rusage).
fn stop_and_cpu(child: &mut Child) -> f64 {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: signalling and reaping our own child with valid out-pointers.
    let reaped = unsafe {
        libc::kill(pid, libc::SIGTERM);
        libc::wait4(pid, &mut status, 0, &mut usage)
    };
    assert_eq!(reaped, pid, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "process {pid} ended with status {status:#x}"
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn stored(db: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn expect_line(out: &mut BufReader<ChildStdout>, starts: &str, who: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read");
        assert!(n > 0, "{who} ended before saying {starts:?}");
        if line.starts_with(starts) {
            return line.trim().to_string();
        }
    }
}

/// The emitter, our recorder and (optionally) the Python original, connected.
struct Run {
    dir: tempfile::TempDir,
    db: PathBuf,
    emitter: Child,
    emitter_in: ChildStdin,
    emitter_out: BufReader<ChildStdout>,
    ours: Child,
    python: Option<(Child, BufReader<ChildStdout>)>,
    /// `claude_event`s among the events broadcast, per broadcast: what the
    /// original counts (it listens to that event name only).
    claude_events: usize,
}

impl Run {
    fn start(mode: &str, events: usize, rate: f64, with_python: bool) -> Run {
        let emitter_py = venv(
            "py-venv",
            "socketio, aiohttp",
            &["python-socketio", "aiohttp"],
        );
        let mpm_py = with_python.then(|| {
            venv(
                "mpm-venv",
                "claude_mpm.services.event_aggregator",
                &["claude-mpm==5.9.10"],
            )
        });
        let dir = common::bench_dir();
        let db = dir.path().join("live.db");
        let port = free_port();
        let mut emitter = Command::new(&emitter_py)
            .arg(script("emitter.py"))
            .args(["--port", &port.to_string(), "--events", &events.to_string()])
            .args(["--mode", mode, "--rate", &rate.to_string()])
            .args(["--clients", if with_python { "2" } else { "1" }])
            .arg("--capture")
            .arg(common::fixture("claude-mpm-monitor-capture.jsonl"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("emitter");
        let emitter_in = emitter.stdin.take().expect("stdin");
        let mut emitter_out = BufReader::new(emitter.stdout.take().expect("stdout"));
        expect_line(&mut emitter_out, "ready", "the emitter");

        let ours = common::spawn_recorder(&db, &dir.path().join("activity"), port);
        let python = mpm_py.map(|py| {
            let cwd = dir.path().join("python");
            std::fs::create_dir_all(&cwd).expect("python dir");
            let mut child = Command::new(py)
                .arg(script("original.py"))
                .args(["127.0.0.1", &port.to_string()])
                .arg(cwd.join("activity"))
                .current_dir(&cwd)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python original");
            let mut out = BufReader::new(child.stdout.take().expect("stdout"));
            expect_line(&mut out, "started", "the Python original");
            (child, out)
        });
        expect_line(&mut emitter_out, "connected", "the emitter");
        // Both have asked for their history and had their (empty) answer.
        std::thread::sleep(Duration::from_millis(1500));
        let base: Vec<bool> = common::capture_text_lines()
            .iter()
            .filter(|l| !l.contains("\"event\": \"dashboard:"))
            .map(|l| l.starts_with("{\"event\": \"claude_event\""))
            .collect();
        let claude_events = (0..events).filter(|i| base[i % base.len()]).count();
        Run {
            dir,
            db,
            emitter,
            emitter_in,
            emitter_out,
            ours,
            python,
            claude_events,
        }
    }

    fn pids(&self) -> (u32, Option<u32>) {
        (self.ours.id(), self.python.as_ref().map(|(c, _)| c.id()))
    }

    /// Events the original has captured (asked with SIGUSR1).
    fn python_captured(&mut self) -> usize {
        let Some((child, out)) = self.python.as_mut() else {
            return 0;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        let line = expect_line(out, "captured", "the Python original");
        line[9..].parse().expect("count")
    }

    /// Broadcasts once; calls `at(stored)` as our recorder's count grows, and
    /// returns once both have everything (the emit rate and seconds taken).
    fn broadcast(&mut self, expected_ours: usize, mut at: impl FnMut(usize)) -> (f64, f64) {
        writeln!(self.emitter_in).expect("start the broadcast");
        let began = Instant::now();
        let mut done = String::new();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let out = &mut self.emitter_out;
            s.spawn(move || {
                let _ = tx.send(expect_line(out, "broadcast", "the emitter"));
            });
            loop {
                let n = stored(&self.db) as usize;
                at(n);
                if done.is_empty() {
                    if let Ok(line) = rx.try_recv() {
                        done = line;
                    }
                }
                if n >= expected_ours && !done.is_empty() {
                    break;
                }
                assert!(
                    began.elapsed() < Duration::from_secs(900),
                    "only {n} of {expected_ours} stored"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let expected_python = self.claude_events;
        // A watchdog: should the original stop answering its count requests
        // (it once did), it is killed after two minutes, and the read of its
        // answer ends with a clear failure instead of waiting for ever.
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some((child, _)) = &self.python {
            let pid = child.id() as libc::pid_t;
            let answered = answered.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                while Instant::now() < deadline {
                    if answered.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprintln!("the Python original did not report all its events in 120 s: killed");
                // SAFETY: signals our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            });
        }
        while self.python.is_some() && self.python_captured() < expected_python {
            std::thread::sleep(Duration::from_millis(20));
        }
        answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut f = done.split_whitespace().skip(1);
        let n: f64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let secs: f64 = f.next().and_then(|v| v.parse().ok()).unwrap_or(1.0);
        (n / secs, began.elapsed().as_secs_f64())
    }

    /// Stops everything: (our CPU seconds, the original's), whole lives.
    fn stop(mut self) -> (f64, Option<f64>, usize) {
        let ours = stop_and_cpu(&mut self.ours);
        let python = self.python.as_mut().map(|(c, _)| stop_and_cpu(c));
        let _ = self.emitter.kill();
        let _ = self.emitter.wait();
        let files = std::fs::read_dir(self.dir.path().join("activity"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("session_"))
                    .count()
            })
            .unwrap_or(0);
        (ours, python, files)
    }
}

fn side_by_side(mode: &str, events: usize) {
    let mut run = Run::start(mode, events, 0.0, true);
    let (ours_pid, py_pid) = run.pids();
    let ours_before = cpu_seconds(ours_pid);
    let py_before = py_pid.map(cpu_seconds).unwrap_or(0.0);
    let switches_before = (
        context_switches(ours_pid),
        py_pid.map(context_switches).unwrap_or(0),
    );
    let marks = [1_000usize, 10_000, 100_000];
    let mut readings = Vec::new();
    let (rate, _) = run.broadcast(events, |n| {
        if let Some(&m) = marks.get(readings.len()) {
            if n >= m {
                readings.push((m, cpu_seconds(ours_pid)));
            }
        }
    });
    let captured = run.python_captured();
    let threads = thread_cpu(ours_pid);
    let switches = (
        (context_switches(ours_pid) - switches_before.0) as f64 / events as f64,
        py_pid
            .map(context_switches)
            .unwrap_or(0)
            .saturating_sub(switches_before.1) as f64
            / events as f64,
    );
    let (ours, python, files) = run.stop();
    let ours = (ours - ours_before) * 1e6 / events as f64;
    let python = python.map(|p| (p - py_before) * 1e6 / events as f64);
    println!(
        "live_python {mode}: {events} events broadcast by python-socketio at {rate:.0} events/s to both"
    );
    println!("  ours        : {ours:>8.1} µs CPU/event ({files} session files)");
    if let Some(p) = python {
        println!(
            "  Python      : {p:>8.1} µs CPU/event (it captured {captured}: the claude_event ones)"
        );
        println!("  ratio       : {:>8.2} (Python / ours)", p / ours);
    }
    let split: Vec<String> = threads
        .iter()
        .filter(|(_, c)| *c > 0.0)
        .map(|(n, c)| format!("{n} {:.1}", c * 1e6 / events as f64))
        .collect();
    println!(
        "  ours by thread (µs/event, whole life): {}",
        split.join(", ")
    );
    println!(
        "  context switches/event: ours {:.2}, Python {:.2}",
        switches.0, switches.1
    );
    if mode == "long" {
        let mut prev = (0usize, ours_before);
        for (m, cpu) in readings {
            println!(
                "  ours, events {:>6}..{:<6}: {:>6.1} µs CPU/event",
                prev.0,
                m,
                (cpu - prev.1) * 1e6 / (m - prev.0) as f64
            );
            prev = (m, cpu);
        }
    }
}

fn rate100(events: usize) {
    let mut run = Run::start("short", events, 100.0, true);
    let (ours_pid, py_pid) = run.pids();
    let ours_before = cpu_seconds(ours_pid);
    let py_before = py_pid.map(cpu_seconds).unwrap_or(0.0);
    let (_, secs) = run.broadcast(events, |_| {});
    let ours_after = cpu_seconds(ours_pid);
    let py_after = py_pid.map(cpu_seconds).unwrap_or(0.0);
    let (ours, python, _) = run.stop();
    let _ = (ours, python);
    println!("live_python rate100: {events} events at 100 events/s ({secs:.1} s), both connected");
    let per = |d: f64| d * 1e6 / events as f64;
    println!(
        "  ours        : {:>8.1} µs CPU/event, {:.2}% of a core",
        per(ours_after - ours_before),
        (ours_after - ours_before) / secs * 100.0
    );
    println!(
        "  Python      : {:>8.1} µs CPU/event, {:.2}% of a core",
        per(py_after - py_before),
        (py_after - py_before) / secs * 100.0
    );
}

fn idle(seconds: u64) {
    let run = Run::start("short", 1, 0.0, true);
    let (ours_pid, py_pid) = run.pids();
    let py_pid = py_pid.expect("python");
    let before = (
        cpu_seconds(ours_pid),
        context_switches(ours_pid),
        cpu_seconds(py_pid),
        context_switches(py_pid),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let after = (
        cpu_seconds(ours_pid),
        context_switches(ours_pid),
        cpu_seconds(py_pid),
        context_switches(py_pid),
    );
    run.stop();
    let s = seconds as f64;
    println!("live_python idle: both connected, nothing broadcast, {seconds} s");
    println!(
        "  ours        : {:.3}% of a core, {:.1} context switches/s (all threads)",
        (after.0 - before.0) / s * 100.0,
        (after.1 - before.1) as f64 / s
    );
    println!(
        "  Python      : {:.3}% of a core, {:.1} context switches/s (all threads)",
        (after.2 - before.2) / s * 100.0,
        (after.3 - before.3) as f64 / s
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args.iter().find_map(|a| a.parse::<usize>().ok());
    let which = args
        .iter()
        .find(|a| ["short", "long", "rate100", "idle"].contains(&a.as_str()));
    match which.map(String::as_str) {
        Some("short") => side_by_side("short", n.unwrap_or(100_000)),
        Some("long") => side_by_side("long", n.unwrap_or(100_000)),
        Some("rate100") => rate100(n.unwrap_or(2_000)),
        Some("idle") => idle(n.unwrap_or(10) as u64),
        _ => {
            side_by_side("short", n.unwrap_or(100_000));
            side_by_side("long", n.unwrap_or(100_000));
            rate100(2_000);
            idle(10);
        }
    }
}
