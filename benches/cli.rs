//! CLI latency on a database of 1,000,000 events in 10,000 sessions: the real
//! binary running `sessions`, `status` and `view <id>`, median of 11 runs each.
//!
//! cargo bench --bench cli [-- EVENTS SESSIONS]

mod common;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(1_000_000);
    let sessions = args.next().unwrap_or(10_000);
    let dir = common::bench_dir();
    let (wall, _, _) = common::import_with_binary(
        dir.path(),
        "cli.db",
        &common::lines_in_sessions(n, sessions),
    );
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(dir.path().join("cli.db"))
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    println!(
        "CLI latency: {} events in {} sessions (built by import in {:.1} s), real binary, median of 11",
        count("SELECT count(*) FROM events"),
        count("SELECT count(*) FROM sessions"),
        wall.as_secs_f64()
    );
    let id: String = rusqlite::Connection::open(dir.path().join("cli.db"))
        .unwrap()
        .query_row(
            "SELECT session_id FROM sessions ORDER BY event_count DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let prefix = id.as_str();
    for (label, cmd) in [
        ("sessions", vec!["sessions"]),
        ("sessions --json", vec!["sessions", "--json"]),
        ("status", vec!["status"]),
        ("view <id>", vec!["view", prefix]),
        (
            "view <id> --show-events",
            vec!["view", prefix, "--show-events"],
        ),
    ] {
        let ms = common::median_wall(&dir.path().join("cli.db"), &cmd, 11) * 1000.0;
        println!("  {label:<24} {ms:>6.1} ms");
    }
}
