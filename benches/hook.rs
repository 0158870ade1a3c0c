//! The `hook` command: one process per Claude Code hook payload, as Claude
//! Code runs it. Prints p50/p99 latency (spawn to exit) one at a time and 16
//! at once (16 sessions), the CPU (user+sys) each process used, and how many
//! payloads were spooled.
//!
//! `HOOK_BENCH_COUNT` payloads per phase (default 160); `HOOK_BENCH_BIN` another
//! binary to measure (a build before a change).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn payloads(n: usize, sessions: usize) -> Vec<Vec<String>> {
    let run =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/claude-code-2.1/a-mpm-fast");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("hooks.jsonl"))
        .expect("fixture a-mpm-fast")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (0..sessions)
        .map(|s| {
            (0..n / sessions)
                .map(|i| {
                    let mut v = lines[i % lines.len()].clone();
                    let m = v.as_object_mut().unwrap();
                    m.insert("session_id".into(), format!("bench-session-{s:02}").into());
                    // Transcripts are read at stops only; none here (their cost is the import's).
                    m.remove("transcript_path");
                    m.remove("agent_transcript_path");
                    v.to_string()
                })
                .collect()
        })
        .collect()
}

/// The binary measured: this build's, or `HOOK_BENCH_BIN` (another build, to compare).
fn binary() -> std::path::PathBuf {
    std::env::var_os("HOOK_BENCH_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mpm-aggregate").into())
}

/// One process: (spawn to exit, its user+sys CPU).
fn one(dir: &Path, payload: &str) -> (Duration, Duration) {
    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below
    let mut child = Command::new(binary())
        .arg("--db")
        .arg(dir.join("agg.db"))
        .arg("--activity-dir")
        .arg(dir.join("activity"))
        .arg("hook")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(payload.as_bytes())
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out-pointers; it reaps the child.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "hook failed"
    );
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let cpu = Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime));
    (wall, cpu)
}

fn report(name: &str, runs: Vec<(Duration, Duration)>, dir: &Path) {
    let (mut times, mut cpu): (Vec<Duration>, Vec<Duration>) = runs.into_iter().unzip();
    times.sort();
    cpu.sort();
    let cpu_at = |q: f64| cpu[((cpu.len() as f64 - 1.0) * q).round() as usize];
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let spooled = std::fs::read_dir(dir.join("hook-spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!(
        "hook {name}: {} processes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU per process p50 {:.2} ms, p99 {:.2} ms; left in the spool: {spooled}",
        times.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        cpu_at(0.5).as_secs_f64() * 1e3,
        cpu_at(0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let n: usize = std::env::var("HOOK_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    let dir = tempfile::tempdir().unwrap();

    // One at a time (the first creates the database: not counted).
    let seq = payloads(n + 1, 1).remove(0);
    one(dir.path(), &seq[0]);
    let times: Vec<(Duration, Duration)> = seq[1..].iter().map(|p| one(dir.path(), p)).collect();
    report("one at a time", times, dir.path());

    // 16 at once, one session each.
    let sessions = payloads(n.max(16), 16);
    let times: Vec<(Duration, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|ps| s.spawn(|| ps.iter().map(|p| one(dir.path(), p)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    report("16 at once", times, dir.path());
}
