//! Export: a session of 1,000,000 events exported in `full` format by the real
//! binary. Prints the time and the process's peak RSS.
//!
//! cargo bench --bench export [-- EVENTS]

mod common;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = common::bench_dir();
    let session = "bench-one-long-session";
    let (import_wall, _, import_rss) = common::import_with_binary(
        dir.path(),
        "export.db",
        &common::one_session_lines(n, session),
    );
    println!(
        "export: one session of {n} events (imported in {:.1} s, peak RSS {import_rss:.1} MB)",
        import_wall.as_secs_f64()
    );
    let (mut times, mut rss, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        let out = dir.path().join(format!("out-{run}.json"));
        let (wall, _, peak, output) = common::run_measured(
            std::process::Command::new(common::binary())
                .arg("--db")
                .arg(dir.path().join("export.db"))
                .args(["export", session, "--format", "full", "-o"])
                .arg(&out),
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        times.push(wall.as_secs_f64());
        rss.push(peak);
        sizes.push(std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6);
        let _ = std::fs::remove_file(&out);
    }
    println!(
        "  time       : {:>7.2} s (median of 3), {:.0} MB written",
        common::median(times),
        common::median(sizes)
    );
    println!("  peak RSS   : {:>7.1} MB", common::median(rss));
}
