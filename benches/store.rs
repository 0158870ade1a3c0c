//! Store path: normalize + write + session/delegation/metrics upkeep, for the
//! capture's mix replicated across many sessions, against a bare rusqlite
//! batched insert of the same payload bytes into a one-column table, in the
//! same run. Prints medians of 3 runs and the ratio.
//!
//! cargo bench --bench store [-- EVENTS]

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use chrono::Utc;
use mpm_aggregate::ingest::{normalize, split_capture_line, DedupSalt, NormalizeOptions, Outcome};
use mpm_aggregate::store::writer::{Writer, WriterConfig, WriterMsg};
use serde_json::Value;

/// A writer for the store path alone: session files are the file thread's
/// work, measured by the import bench.
fn store_writer(dir: &std::path::Path, name: &str) -> Writer {
    Writer::spawn(WriterConfig {
        database: dir.join(format!("{name}.db")),
        activity_directory: dir.join(format!("activity-{name}")),
        compress_sessions: false,
        capture: Default::default(),
        session_files: None,
        channel_capacity: mpm_aggregate::store::writer::CHANNEL_CAPACITY,
        cache_kib: 16 * 1024,
        pricing_file: Default::default(),
        busy_timeout: mpm_aggregate::store::BUSY_TIMEOUT,
        linger: std::time::Duration::from_millis(2),
        short_lived: false,
    })
    .expect("writer")
}

/// A capture line parsed and normalized, as the recorder's import does.
fn normalized(line: &str, opts: &NormalizeOptions) -> Vec<Outcome> {
    let value: Value = serde_json::from_str(line).expect("json");
    let (name, payload) = split_capture_line(value);
    normalize(
        name.as_deref().unwrap_or("import"),
        payload,
        Utc::now(),
        opts,
        &mut DedupSalt::ReceivedAt,
    )
}

/// CPU seconds (user + system) of this process so far, all its threads
/// (ended ones included): steadier than a rate on a shared machine.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The store path's rate, and its CPU per event in µs (every thread).
fn ours(lines: &[String], dir: &std::path::Path, run: usize) -> (f64, f64) {
    let writer = store_writer(dir, &format!("ours-{run}"));
    let tx = writer.sender();
    let opts = NormalizeOptions::default();
    let cpu = cpu_seconds();
    let start = Instant::now();
    for line in lines {
        for outcome in normalized(line, &opts) {
            mpm_aggregate::store::writer::send_blocking(&tx, WriterMsg::from(outcome))
                .map_err(|_| ())
                .expect("send");
        }
    }
    let stats = writer.flush().expect("flush");
    let elapsed = start.elapsed().as_secs_f64();
    writer.shutdown().expect("shutdown");
    let cpu = cpu_seconds() - cpu;
    assert_eq!(stats.stored + stats.control, lines.len() as u64);
    (lines.len() as f64 / elapsed, cpu * 1e6 / lines.len() as f64)
}

fn bare(lines: &[String], dir: &std::path::Path, run: usize) -> f64 {
    let conn = rusqlite::Connection::open(dir.join(format!("bare-{run}.db"))).expect("open");
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; CREATE TABLE t (payload TEXT NOT NULL);").expect("setup");
    let start = Instant::now();
    for chunk in lines.chunks(4096) {
        let tx = conn.unchecked_transaction().expect("tx");
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO t (payload) VALUES (?1)")
                .expect("prepare");
            for line in chunk {
                stmt.execute([line]).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    lines.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let lines = common::replicated_lines(n);
    let bytes: usize = lines.iter().map(String::len).sum();
    let dir = common::bench_dir();
    println!(
        "store path: {n} events ({:.1} MB of payload), capture mix in {} sessions",
        bytes as f64 / 1e6,
        n / 61 * 2
    );
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    // BENCH_ONLY=writer: the breakdown alone; BENCH_ONLY=ours: the store path
    // alone, once (to profile it).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only == "ours" {
        let (rate, cpu) = ours(&lines, dir.path(), 0);
        println!(
            "  mpm-aggregate store path : {rate:>9.0} events/s, {cpu:.2} µs CPU/event (one run)"
        );
        return;
    }
    if only == "normalize" {
        let opts = NormalizeOptions::default();
        let cpu = cpu_seconds();
        let start = Instant::now();
        let mut kept = 0usize;
        for line in &lines {
            kept += normalized(line, &opts).len();
        }
        let rate = kept as f64 / start.elapsed().as_secs_f64();
        let cpu = (cpu_seconds() - cpu) * 1e6 / kept as f64;
        println!(
            "  parse+normalize, each event dropped: {rate:.0} events/s, {cpu:.2} µs CPU/event"
        );
        return;
    }
    let only_writer = only == "writer";
    for run in 0..if only_writer { 0 } else { 3 } {
        b.push(bare(&lines, dir.path(), run));
        let (rate, cpu) = ours(&lines, dir.path(), run);
        a.push(rate);
        c.push(cpu);
    }
    if !only_writer {
        let (a, b, c) = (common::median(a), common::median(b), common::median(c));
        println!(
            "  mpm-aggregate store path : {:>9.0} events/s (median of 3), {c:.2} µs CPU/event",
            a
        );
        println!(
            "  bare rusqlite insert     : {:>9.0} events/s (median of 3)",
            b
        );
        println!("  ratio                    : {:>9.2}x", b / a);
    }
    // Where the time goes: the two halves of the pipeline on their own.
    let opts = NormalizeOptions::default();
    let start = Instant::now();
    let mut events = Vec::with_capacity(lines.len());
    for line in &lines {
        events.extend(normalized(line, &opts));
    }
    let normalize_rate = lines.len() as f64 / start.elapsed().as_secs_f64();
    let writer = store_writer(dir.path(), "writer-only");
    let tx = writer.sender();
    let cpu = cpu_seconds();
    let start = Instant::now();
    for outcome in events {
        mpm_aggregate::store::writer::send_blocking(&tx, WriterMsg::from(outcome))
            .map_err(|_| ())
            .expect("send");
    }
    writer.flush().expect("flush");
    let writer_rate = lines.len() as f64 / start.elapsed().as_secs_f64();
    writer.shutdown().expect("shutdown");
    let writer_cpu = (cpu_seconds() - cpu) * 1e6 / lines.len() as f64;
    println!("  breakdown: parse+normalize alone {normalize_rate:.0} events/s; writer alone {writer_rate:.0} events/s, {writer_cpu:.2} µs CPU/event");
}
