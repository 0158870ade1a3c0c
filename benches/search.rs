//! The search index's cost and speed: the same events imported with the real
//! binary into a database with the index (its triggers) and into one without
//! (the triggers dropped before the import), in the same run; then `search`
//! and `stats` timed on the indexed one. Two mixes: claude-mpm's monitor
//! capture, and the real Claude Code hook payloads of
//! `claude-code-2.1/a-mpm-fast` (prompts, tool inputs and outputs, errors).
//! Prints medians of 3 imports, the cost per event, the index's size, and
//! query times (medians of 20).
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

/// A database whose search index is not kept: migrated, then the triggers dropped.
fn without_index(path: &Path) {
    let conn = mpm_aggregate::store::open_writable(path).expect("open");
    conn.execute_batch(
        "DROP TRIGGER event_search_insert; DROP TRIGGER event_search_update;
         DROP TRIGGER event_search_delete;",
    )
    .expect("drop triggers");
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
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut with_cpu, mut without_cpu) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let plain = format!("{name}-plain-{run}.db");
        without_index(&dir.join(&plain));
        let (wall, cpu, _) = common::import_with_binary(dir, &plain, lines);
        without.push(wall.as_secs_f64());
        without_cpu.push(cpu.as_secs_f64());
        let indexed = format!("{name}-indexed-{run}.db");
        let (wall, cpu, _) = common::import_with_binary(dir, &indexed, lines);
        with.push(wall.as_secs_f64());
        with_cpu.push(cpu.as_secs_f64());
    }
    let (w, wo) = (common::median(with), common::median(without));
    let (wc, woc) = (common::median(with_cpu), common::median(without_cpu));
    let db = dir.join(format!("{name}-indexed-0.db"));
    let conn = mpm_aggregate::store::open_read_only(&db).expect("open");
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count");
    let indexed: i64 = conn
        .query_row("SELECT count(*) FROM event_search", [], |r| r.get(0))
        .expect("count");
    println!("{name}: {events} lines, {stored} events stored, {indexed} with searchable text");
    println!(
        "  import without the index : {:>8.0} events/s ({:.2} s wall, {:.2} s CPU)",
        stored as f64 / wo,
        wo,
        woc
    );
    println!(
        "  import with the index    : {:>8.0} events/s ({:.2} s wall, {:.2} s CPU)",
        stored as f64 / w,
        w,
        wc
    );
    println!(
        "  index cost               : {:>8.2} µs CPU per event stored; database {:.1} MB vs {:.1} MB",
        (wc - woc) / stored as f64 * 1e6,
        size_mb(&db),
        size_mb(&dir.join(format!("{name}-plain-0.db")))
    );
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
