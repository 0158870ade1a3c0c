//! Live: a socketioxide server on loopback emits events as fast as it can to
//! the real recorder binary (`mpm-aggregate start`). Reports the emit rate,
//! how long after the last emit everything was stored, the recorder's CPU time
//! per event, and its RSS (peak, and after 100,000 and 1,000,000 events).
//!
//! cargo bench --bench live [-- EVENTS]     (default: a 200,000 run, then a 1,000,000 run)

mod common;

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;

/// The capture's non-control lines as (event name, data text).
fn base_events() -> Vec<(String, String)> {
    common::capture_text_lines()
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let name = v["event"].as_str()?.to_string();
            (!name.starts_with("dashboard:")).then(|| (name, v["data"].to_string()))
        })
        .collect()
}

fn proc_field(pid: u32, file: &str, name: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    common::cpu_seconds_of(&format!("/proc/{pid}/stat"))
}

fn stored(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn run(n: usize, checkpoints: &[usize]) {
    let dir = common::bench_dir();
    let db = dir.path().join("live.db");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (layer, io) = SocketIo::builder().max_buffer_size(1 << 16).build_layer();
    io.ns("/", async |_s: SocketRef| {});
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    runtime.spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().layer(layer)).await;
    });

    let mut child = common::spawn_recorder(&db, &dir.path().join("activity"), port);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while io.sockets().is_empty() {
        assert!(Instant::now() < deadline, "the recorder did not connect");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let cpu_before = cpu_seconds(pid);

    let base = base_events();
    let socket = io.sockets().remove(0);
    let start = Instant::now();
    let mut marks = Vec::new();
    let mut next_mark = 0;
    // The WAL's largest size while the stream runs (checkpoints keep it bounded).
    let wal = db.with_extension("db-wal");
    let mut wal_peak = 0u64;
    for i in 0..n {
        if i % 4096 == 0 {
            wal_peak = wal_peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let copy = i / base.len();
        let (name, data) = &base[i % base.len()];
        let data = data
            .replace(common::SESSION_A, &format!("{copy:08x}-live-{copy:012}-a"))
            .replace(common::SESSION_B, &format!("{copy:08x}-live-{copy:012}-b"));
        let raw = RawValue::from_string(common::shifted(&data, copy)).expect("json");
        while socket.emit(name.as_str(), &raw).is_err() {
            std::thread::sleep(Duration::from_micros(200));
        }
        if next_mark < checkpoints.len() && i + 1 == checkpoints[next_mark] {
            // Wait until the recorder has stored these, then read its memory.
            while (stored(&db) as usize) < i + 1 {
                std::thread::sleep(Duration::from_millis(5));
            }
            marks.push((i + 1, proc_field(pid, "status", "VmRSS:") / 1024.0));
            next_mark += 1;
        }
    }
    let emitted = start.elapsed();
    let last_emit = Instant::now();
    while (stored(&db) as usize) < n {
        assert!(
            last_emit.elapsed() < Duration::from_secs(60),
            "only {} of {n} stored",
            stored(&db)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let lag = last_emit.elapsed();
    wal_peak = wal_peak.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
    let db_size = std::fs::metadata(&db).map_or(0, |m| m.len());
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak = proc_field(pid, "status", "VmHWM:") / 1024.0;
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "recorder exit: {status}");

    println!("live: {n} events emitted by socketioxide on loopback to the recorder binary");
    println!(
        "  emit rate          : {:>9.0} events/s ({:.2} s)",
        n as f64 / emitted.as_secs_f64(),
        emitted.as_secs_f64()
    );
    println!(
        "  all stored         : {:>9.0} ms after the last emit",
        lag.as_secs_f64() * 1000.0
    );
    println!(
        "  recorder CPU       : {:>9.2} µs/event",
        cpu * 1e6 / n as f64
    );
    println!("  recorder peak RSS  : {:>9.1} MB", peak);
    println!(
        "  largest WAL        : {:>9.1} MB (the database: {:.1} MB)",
        wal_peak as f64 / 1e6,
        db_size as f64 / 1e6
    );
    for (at, rss) in marks {
        println!("  RSS after {at:>8}  : {rss:>9.1} MB");
    }
}

fn main() {
    match std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
    {
        Some(n) => run(n, &[]),
        None => {
            run(200_000, &[]);
            run(1_000_000, &[100_000, 1_000_000]);
        }
    }
}
