//! Push, end to end: the real binary pushes a store of 100,000 events in
//! 1,000 sessions (the fixture capture replicated) to a real PostgreSQL server
//! started here (as `tests/it/push_postgres.rs` does), then pushes again
//! (nothing new: the cost of finding that out), then sends the same store as
//! OTLP traces to a receiver on loopback that decodes every request. Prints
//! events/s (spans/s), CPU per event and the pushing process's peak RSS.
//!
//! cargo bench --bench push [-- EVENTS]

mod common;

#[path = "../tests/it/common/apt.rs"]
mod apt;
#[path = "../tests/it/common/postgres.rs"]
mod postgres_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message;

fn push(db: &std::path::Path, args: &[&str]) -> (f64, f64, f64, String) {
    let (wall, cpu, rss, out) = common::run_measured(
        std::process::Command::new(common::binary())
            .arg("--db")
            .arg(db)
            .arg("push")
            .args(args),
    );
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        rss,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// An OTLP/HTTP receiver that decodes each request and counts its spans.
fn receiver(runtime: &tokio::runtime::Runtime) -> (String, Arc<AtomicU64>) {
    let spans = Arc::new(AtomicU64::new(0));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counted = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let request =
                opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                    body,
                )
                .expect("OTLP protobuf");
            let n: usize = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            counted.fetch_add(n as u64, Ordering::Relaxed);
            ""
        }),
    );
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let sessions = (n / 100).max(2);
    let dir = common::bench_dir();
    let lines = common::lines_in_sessions(n, sessions);
    common::import_with_binary(dir.path(), "push.db", &lines);
    let db = dir.path().join("push.db");
    // Each session ends (OTLP sends ended sessions): a SessionEnd hook payload each.
    let ids: Vec<String> = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = c.prepare("SELECT session_id FROM sessions").unwrap();
        let ids = stmt.query_map([], |r| r.get(0)).unwrap();
        ids.map(Result::unwrap).collect()
    };
    let ends: Vec<String> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"hook_event_name": "SessionEnd", "session_id": id, "reason": "other"})
                .to_string()
        })
        .collect();
    common::import_with_binary(dir.path(), "push.db", &ends);
    let n = n + ends.len();
    let server = postgres_server::PgServer::start();
    let url = server.create_db("bench");

    let (wall, cpu, rss, said) = push(&db, &[&url, "--host-id", "bench"]);
    println!(
        "push to PostgreSQL: {n} events in {sessions} sessions, real binary, server on loopback"
    );
    println!("  {said}");
    println!(
        "  throughput : {:>9.0} events/s ({wall:.2} s)",
        n as f64 / wall
    );
    println!(
        "  CPU        : {:>9.2} µs/event (the pushing process)",
        cpu * 1e6 / n as f64
    );
    println!("  peak RSS   : {:>9.1} MB", rss);
    let (wall, _, rss, said) = push(&db, &[&url, "--host-id", "bench"]);
    println!(
        "  again      : {:>9.1} ms, {rss:.1} MB ({said})",
        wall * 1e3
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (otlp, spans) = receiver(&runtime);
    let (wall, cpu, rss, said) = push(&db, &["--otlp", &otlp, "--host-id", "bench"]);
    let spans = spans.load(Ordering::Relaxed);
    println!("push to OTLP/HTTP: the same store, receiver on loopback decoding every request");
    println!("  {said}");
    println!(
        "  throughput : {:>9.0} spans/s, {:.0} events/s ({wall:.2} s)",
        spans as f64 / wall,
        n as f64 / wall
    );
    println!("  CPU        : {:>9.2} µs/event", cpu * 1e6 / n as f64);
    println!("  peak RSS   : {:>9.1} MB", rss);
}
