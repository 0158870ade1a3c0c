//! The search index's cost and speed. Events are imported with the real
//! binary (median of 3); then the index's own work, the searchable text of
//! every event and its FTS5 insert, is timed alone on that database (what the
//! writer adds per event, and what V7 does to a database made before it);
//! then `search` and `stats` are timed (medians of 20). Two mixes: the real
//! Claude Code hook payloads of `claude-code-2.1/a-mpm-fast` (prompts, tool
//! inputs and outputs, errors), and claude-mpm's monitor capture.
//!
//! cargo bench --bench search [-- EVENTS]

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::time::Instant;

use mpm_aggregate::store::search::{quote_words, search};
use mpm_aggregate::store::stats::{stats, GroupBy};

const HOOKS_SESSION: &str = "1a6c62fb-bc6c-5284-a701-147209c3d822";

/// The run's hook payloads, each copy a session of its own.
fn hook_lines(n: usize) -> Vec<String> {
    let base: Vec<String> =
        std::fs::read_to_string(common::fixture("claude-code-2.1/a-mpm-fast/hooks.jsonl"))
            .expect("fixture")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
    let mut out = Vec::with_capacity(n);
    let mut copy = 0usize;
    while out.len() < n {
        let id = format!("{copy:08x}-bc6c-5284-a701-147209c3d822");
        for line in &base {
            if out.len() == n {
                break;
            }
            out.push(line.replace(HOOKS_SESSION, &id));
        }
        copy += 1;
    }
    out
}

fn size_mb(path: &Path) -> f64 {
    let mut total = 0u64;
    for suffix in ["", "-wal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    total as f64 / 1e6
}

/// The searchable text the index keeps, in MB (its terms come on top).
fn conn_text_mb(db: &Path) -> f64 {
    let conn = mpm_aggregate::store::open_read_only(db).expect("open");
    conn.query_row(
        "SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) FROM event_search",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("sum") as f64
        / 1e6
}

fn timed_ms(mut f: impl FnMut()) -> f64 {
    let mut v = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        f();
        v.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    common::median(v)
}

fn mix(name: &str, lines: &[String], dir: &Path) {
    let events = lines.len();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let (w, c, _) = common::import_with_binary(dir, &format!("{name}-{run}.db"), lines);
        wall.push(w.as_secs_f64());
        cpu.push(c.as_secs_f64());
    }
    let (w, c) = (common::median(wall), common::median(cpu));
    let db = dir.join(format!("{name}-0.db"));
    let writable = mpm_aggregate::store::open_writable(&db).expect("open");
    mpm_aggregate::store::register_search_text(&writable).expect("mpm_search_text");
    let stored: i64 = writable
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    let indexed: i64 = writable
        .query_row("SELECT count(*) FROM event_search", [], |r| r.get(0))
        .expect("count");
    let with_index = size_mb(&db);
    println!("{name}: {events} lines, {stored} events stored, {indexed} with searchable text");
    println!(
        "  import (with the index)  : {:>8.0} events/s ({:.2} s wall, {:.2} s CPU: {:.1} µs per event)",
        stored as f64 / w,
        w,
        c,
        c / stored as f64 * 1e6
    );
    // The index's work alone: emptied, then every event's text made and inserted, in one transaction.
    writable
        .execute_batch("DELETE FROM event_search")
        .expect("empty");
    let start = Instant::now();
    writable
        .execute_batch(
            "INSERT INTO event_search (rowid, body)
             SELECT id, t FROM (SELECT id, mpm_search_text(event_type, data) AS t FROM events) WHERE t <> ''",
        )
        .expect("index");
    let work = start.elapsed().as_secs_f64();
    drop(writable);
    println!(
        "  index work alone         : {:>8.2} µs per event stored ({:.2} s for all: V7's backfill rate, {:.0} events/s)",
        work / stored as f64 * 1e6,
        work,
        stored as f64 / work
    );
    let text_mb: f64 = conn_text_mb(&db);
    println!("  database                 : {with_index:.1} MB, of which {text_mb:.1} MB is the index's copy of the text");
    let conn = mpm_aggregate::store::open_read_only(&db).expect("open");
    for words in [
        "nonexistent-qa-dir",
        "greet",
        "Hello, World!",
        "authentication",
    ] {
        let q = quote_words(words).expect("words");
        let mut hits = 0;
        let ms = timed_ms(|| hits = search(&conn, &q, None, 20).expect("search").len());
        println!("  search {words:<20}     : {ms:>8.2} ms ({hits} hits shown)");
    }
    let pricing = mpm_aggregate::core::pricing::PricingTable::builtin();
    for by in [
        GroupBy::Day,
        GroupBy::Project,
        GroupBy::Agent,
        GroupBy::Model,
        GroupBy::Tool,
    ] {
        let ms = timed_ms(|| {
            stats(&conn, by, None, pricing).expect("stats");
        });
        println!("  stats --by {:<8}          : {ms:>8.2} ms", by.as_str());
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = common::bench_dir();
    mix("hooks", &hook_lines(n), dir.path());
    mix("capture", &common::replicated_lines(n), dir.path());
}
