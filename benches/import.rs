//! Import, end to end: the real binary imports a generated capture file of
//! 100,000 events (the fixture mix, many sessions, session files written).
//! Prints events/s and the process's peak RSS, median of 3.
//!
//! cargo bench --bench import [-- EVENTS]

mod common;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let lines = common::replicated_lines(n);
    let dir = common::bench_dir();
    let (mut rates, mut rss, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        let (wall, cpu_time, peak) =
            common::import_with_binary(dir.path(), &format!("import-{run}.db"), &lines);
        rates.push(n as f64 / wall.as_secs_f64());
        cpu.push(cpu_time.as_secs_f64() * 1e6 / n as f64);
        rss.push(peak);
    }
    println!(
        "import: {n} events from a capture file ({} sessions, session files written), real binary",
        n / 61 * 2
    );
    println!(
        "  throughput : {:>9.0} events/s (median of 3)",
        common::median(rates)
    );
    println!("  CPU        : {:>9.2} µs/event", common::median(cpu));
    println!("  peak RSS   : {:>9.1} MB", common::median(rss));
}
