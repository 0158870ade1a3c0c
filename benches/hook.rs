//! The `hook` command: one process per Claude Code hook payload, as Claude
//! Code runs it. Prints p50/p99 latency (spawn to exit) one at a time, 16 at
//! once (16 sessions, each running its next hook as soon as the last exits)
//! and in bursts of 16 started together, the CPU (user+sys) each process
//! used, and how many payloads were left in the spool.
//!
//! The hook hands its payload to a background drainer it forks (see
//! `src/import/hook.rs`): this process is the drainers' subreaper, so it reaps
//! them too and adds their CPU; "stored" is when the last drainer ended after
//! the last hook exited, and the events stored are counted.
//!
//! `HOOK_BENCH_COUNT` payloads per phase (default 160); `HOOK_BENCH_BIN` the
//! program measured (default `mpm-aggregate-hook`; `mpm-aggregate`, or a build
//! before a change, runs as `… hook`); `HOOK_BENCH_ARGS` more arguments
//! (`--wait`: stored before the process exits).

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

/// The program measured: this build's `mpm-aggregate-hook` (what `hooks
/// install` gives Claude Code), or `HOOK_BENCH_BIN` (`mpm-aggregate`, run as
/// `mpm-aggregate hook`, or another build, to compare).
fn binary() -> std::path::PathBuf {
    std::env::var_os("HOOK_BENCH_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_mpm-aggregate-hook").into())
}

/// `hook` for `mpm-aggregate`, nothing for the hook's own program.
fn subcommand() -> Option<&'static str> {
    (binary().file_name().and_then(|n| n.to_str()) != Some("mpm-aggregate-hook")).then_some("hook")
}

fn hook_args() -> Vec<String> {
    std::env::var("HOOK_BENCH_ARGS")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn us(t: libc::timeval) -> u64 {
    t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64
}

/// Waits for the drainers of the phase and reaps them (our children as their
/// subreaper): (how many, their CPU, when the last one ended).
fn reap_drainers(dir: &Path) -> (usize, Duration, Instant) {
    assert!(
        mpm_aggregate::import::hook::wait_for_drainers(
            &dir.join("agg.db"),
            Duration::from_secs(60)
        ),
        "drainers still running after 60 s"
    );
    let ended = Instant::now();
    let (mut n, mut cpu) = (0, Duration::ZERO);
    loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for any child (only drainers are left), valid out-pointers.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage) };
        if pid == 0 {
            // A drainer that let go of its locks and is still exiting.
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if pid < 0 {
            break; // no child left
        }
        n += 1;
        cpu += Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime));
    }
    (n, cpu, ended)
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
        .args(subcommand())
        .args(hook_args())
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
    let cpu = Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime));
    (wall, cpu)
}

fn report(name: &str, runs: Vec<(Duration, Duration)>, dir: &Path, last_exit: Instant) {
    let (drainers, drainer_cpu, ended) = reap_drainers(dir);
    let (mut times, mut cpu): (Vec<Duration>, Vec<Duration>) = runs.into_iter().unzip();
    let total_cpu: Duration = cpu.iter().sum::<Duration>() + drainer_cpu;
    times.sort();
    cpu.sort();
    let cpu_at = |q: f64| cpu[((cpu.len() as f64 - 1.0) * q).round() as usize];
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    // What `status` shows as waiting (every drainer has ended by now).
    let spooled =
        mpm_aggregate::import::hook::spool_figures(&dir.join("agg.db")).map_or(0, |f| f.waiting);
    let conn = rusqlite::Connection::open(dir.join("agg.db")).unwrap();
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    println!(
        "hook {name}: {} processes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU per process p50 {:.2} ms, p99 {:.2} ms; \
         {drainers} drainers, {:.1} ms of CPU; all processes {:.2} ms of CPU per payload; \
         stored {:.1} ms after the last hook exited; {events} events in the store; left in the spool: {spooled}",
        times.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        cpu_at(0.5).as_secs_f64() * 1e3,
        cpu_at(0.99).as_secs_f64() * 1e3,
        drainer_cpu.as_secs_f64() * 1e3,
        total_cpu.as_secs_f64() * 1e3 / times.len() as f64,
        ended.saturating_duration_since(last_exit).as_secs_f64() * 1e3,
    );
}

fn main() {
    let n: usize = std::env::var("HOOK_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(160);
    // SAFETY: prctl with integer arguments; the drainers (orphaned when their
    // hook exits) become this process's children, so their CPU is counted.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let dir = tempfile::tempdir().unwrap();

    // One at a time (the first creates the database: not counted).
    let seq = payloads(n + 1, 1).remove(0);
    one(dir.path(), &seq[0]);
    reap_drainers(dir.path());
    let times: Vec<(Duration, Duration)> = seq[1..].iter().map(|p| one(dir.path(), p)).collect();
    report("one at a time", times, dir.path(), Instant::now());

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
    report("16 at once", times, dir.path(), Instant::now());

    // Bursts: 16 sessions firing one hook each at the same moment (16 parallel
    // sub-agents calling a tool together), 50 ms apart; the phase above keeps 16
    // running all the time instead.
    let mut times = Vec::new();
    let path = dir.path();
    for round in 0..sessions[0].len() {
        let barrier = std::sync::Barrier::new(16);
        let burst: Vec<(Duration, Duration)> = std::thread::scope(|s| {
            let handles: Vec<_> = sessions
                .iter()
                .map(|ps| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        one(path, &ps[round])
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        times.extend(burst);
        std::thread::sleep(Duration::from_millis(50));
    }
    report(
        "16 in one burst, every 50 ms",
        times,
        dir.path(),
        Instant::now(),
    );
}
