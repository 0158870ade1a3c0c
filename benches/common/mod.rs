//! Shared by the benchmark binaries: synthetic streams made from the real
//! capture, RSS readings, and timing helpers. Nothing large is committed; all
//! data is generated at run time.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const SESSION_A: &str = "5283b66c-2b29-4ee0-9698-f410f3a393fd";
pub const SESSION_B: &str = "7a91d44e-8c12-4f3b-ae56-9b2c1e0f8d35";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name)
}

/// The capture's lines as raw text.
pub fn capture_text_lines() -> Vec<String> {
    std::fs::read_to_string(fixture("claude-mpm-monitor-capture.jsonl"))
        .expect("fixture")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The capture's date and hour moved forward by `copy` minutes: each copy of
/// the capture happens later, as in a real stream.
pub fn shifted(line: &str, copy: usize) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 24)
        .and_then(|d| d.and_hms_opt(4, 24, 0))
        .expect("date");
    let at = base + chrono::Duration::minutes(copy as i64);
    line.replace(
        "2026-11-24T04:24:",
        &at.format("%Y-%m-%dT%H:%M:").to_string(),
    )
}

/// `n` capture lines: the fixture replicated, each copy with its own pair of
/// session ids and a later time (so every copy is distinct content, like real
/// traffic).
pub fn replicated_lines(n: usize) -> Vec<String> {
    let base = capture_text_lines();
    let mut out = Vec::with_capacity(n);
    let mut copy = 0usize;
    while out.len() < n {
        let a = format!("{:08x}-bench-{:012}-a", copy, copy);
        let b = format!("{:08x}-bench-{:012}-b", copy, copy);
        for line in &base {
            if out.len() == n {
                break;
            }
            out.push(shifted(
                &line.replace(SESSION_A, &a).replace(SESSION_B, &b),
                copy,
            ));
        }
        copy += 1;
    }
    out
}

/// `n` events of one session: the capture's session-A payloads, each with its
/// own timestamp (1 ms apart), and no `Stop` (one long turn). The session id
/// is replaced everywhere in the payload, as claude-mpm would send it for that
/// session: the sub-agent ids its full handler makes up (`research_<session>`)
/// are then told apart from real ones, instead of one made-up id naming a
/// sub-agent started again in every copy (each start merged into the first, the
/// session rebuilt at every batch).
pub fn one_session_lines(n: usize, session: &str) -> Vec<String> {
    let base: Vec<Value> = capture_text_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| {
            v["data"]["session_id"] == SESSION_A
                && v["data"]["subtype"] != "stop"
                && v["data"]["data"]["hook_name"] != "Stop"
        })
        .collect();
    let base: Vec<Value> = base
        .iter()
        .map(|v| serde_json::from_str(&v.to_string().replace(SESSION_A, session)).expect("json"))
        .collect();
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("ts")
        .with_timezone(&chrono::Utc);
    (0..n)
        .map(|i| {
            let mut v = base[i % base.len()].clone();
            v["data"]["timestamp"] =
                Value::from((start + chrono::Duration::milliseconds(i as i64)).to_rfc3339());
            v.to_string()
        })
        .collect()
}

pub fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for l in lines {
        f.write_all(l.as_bytes()).expect("write");
        f.write_all(b"\n").expect("write");
    }
    f.flush().expect("flush");
}

/// Peak and current resident set of this process, in MB.
pub fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Runs `cmd`, returning its wall time, user+system CPU time and peak RSS (MB).
/// Give `cmd` absolute paths and no `current_dir`: with one, std falls back to
/// fork+exec and the child's peak RSS would include this process's pages.
pub fn run_measured(
    cmd: &mut std::process::Command,
) -> (Duration, Duration, f64, std::process::Output) {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Drain the pipes while the child runs: a full pipe would block it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out_reader = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let err_reader = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    );
    let pid = child.id() as libc::pid_t;
    // The child's own peak (VmHWM), read until it exits: wait4's ru_maxrss
    // starts from the spawning process's high-water mark and would report ours.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak_kb = 0.0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if let Some(kb) = status
                        .lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|n| n.parse::<f64>().ok())
                    {
                        peak_kb = peak_kb.max(kb);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak_kb
        })
    };
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out-pointers.
    let out_pid = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_kb = watcher.join().unwrap_or(0.0);
    assert_eq!(out_pid, pid, "wait4");
    let cpu = Duration::from_micros(
        (usage.ru_utime.tv_sec * 1_000_000
            + usage.ru_utime.tv_usec
            + usage.ru_stime.tv_sec * 1_000_000
            + usage.ru_stime.tv_usec) as u64,
    );
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout,
        stderr,
    };
    (wall, cpu, peak_kb / 1024.0, output)
}

/// CPU seconds (user + system) in a `/proc/…/stat` file: a process's (all its
/// threads) or one thread's (`/proc/PID/task/TID/stat`); 0 when it is gone.
pub fn cpu_seconds_of(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (get(11) + get(12)) / ticks
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// The binary, built by cargo with the bench profile, or `BENCH_BIN` (another
/// build, to compare before and after a change).
pub fn binary() -> PathBuf {
    std::env::var_os("BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mpm-aggregate")))
}

/// `n` capture lines spread over `sessions` sessions: each copy of the capture
/// (two sessions) is repeated with its timestamps moved by whole days until the
/// sessions hold `n` events in all.
pub fn lines_in_sessions(n: usize, sessions: usize) -> Vec<String> {
    // Control lines are not stored: leave them out so `n` events are stored.
    let base: Vec<String> = capture_text_lines()
        .into_iter()
        .filter(|l| !l.contains("\"dashboard:"))
        .collect();
    let copies = sessions.div_ceil(2);
    let per_copy = n.div_ceil(copies);
    let mut out = Vec::with_capacity(n);
    'outer: for copy in 0..copies {
        let a = format!("{:08x}-cli-{:012}-a", copy, copy);
        let b = format!("{:08x}-cli-{:012}-b", copy, copy);
        let mut written = 0;
        let mut rep = 0;
        while written < per_copy {
            let day = format!("2026-{:02}-{:02}T", 1 + rep / 28 % 12, 1 + rep % 28);
            for line in &base {
                if out.len() == n {
                    break 'outer;
                }
                if written == per_copy {
                    break;
                }
                out.push(
                    line.replace(SESSION_A, &a)
                        .replace(SESSION_B, &b)
                        .replace("2026-11-24T", &day)
                        .replace(
                            "\"session_id\": null",
                            &format!("\"session_id\": null, \"copy\": {copy}"),
                        ),
                );
                written += 1;
            }
            rep += 1;
        }
    }
    out
}

/// Imports `lines` into `db` with the real binary; returns (wall, cpu, peak RSS MB).
pub fn import_with_binary(dir: &Path, db: &str, lines: &[String]) -> (Duration, Duration, f64) {
    let file = dir.join(format!("{db}.jsonl"));
    write_lines(&file, lines);
    let (wall, cpu, rss, out) = run_measured(
        std::process::Command::new(binary())
            .arg("--db")
            .arg(dir.join(db))
            .arg("--activity-dir")
            .arg(dir.join(format!("{db}-activity")))
            .arg("import")
            .arg(&file),
    );
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    (wall, cpu, rss)
}

/// A fresh directory for a benchmark's data: under `$BENCH_DIR` when set
/// (for example a tmpfs, /dev/shm, to leave the disk out), else Cargo's
/// target tmp directory.
pub fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::tempdir_in(base).expect("tempdir")
}

/// The recorder binary (`start`) on the monitor at 127.0.0.1:`port`, into `db`
/// with its session files in `activity`; its output discarded.
pub fn spawn_recorder(db: &Path, activity: &Path, port: u16) -> std::process::Child {
    std::process::Command::new(binary())
        .arg("--db")
        .arg(db)
        .arg("--activity-dir")
        .arg(activity)
        .args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("recorder")
}

/// The median wall time, in seconds, of `runs` runs of the binary with
/// `args` on the database `db` (process start included); each must succeed.
pub fn median_wall(db: &Path, args: &[&str], runs: usize) -> f64 {
    let times = (0..runs)
        .map(|_| {
            let (wall, _, _, out) = run_measured(
                std::process::Command::new(binary())
                    .arg("--db")
                    .arg(db)
                    .args(args),
            );
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            wall.as_secs_f64()
        })
        .collect();
    median(times)
}
