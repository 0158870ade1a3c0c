//! The reference's integration example, in Rust: record in the background,
//! report, export what completed, stop.
//!
//! cargo run --example embed_recorder -- [host] [port]

use std::time::Duration;

use mpm_aggregate::EventAggregator;

fn main() -> Result<(), mpm_aggregate::AggregatorError> {
    let host = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "localhost".into());
    let port = std::env::args()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8765);

    // Create the aggregator and start capturing (an unreachable monitor is an error).
    let aggregator = EventAggregator::new(&host, port, None);
    aggregator.start()?;

    // Check status.
    let status = aggregator.get_status()?;
    println!("Active sessions: {}", status.active_sessions);

    // Monitor for a while; export sessions as they complete.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(10));
        let status = aggregator.get_status()?;
        println!(
            "Events captured: {} (connected: {})",
            status.total_events, status.connected
        );
        for session_id in aggregator.get_completed_sessions()? {
            let path = aggregator.export_session(&session_id, None, "summary")?;
            println!("Exported {session_id} to {}", path.display());
        }
    }

    // List sessions.
    for info in aggregator.list_sessions()? {
        println!("Session {}: {} events", info.session_id, info.event_count);
    }

    // Stop: active sessions are finalized and their files written.
    let report = aggregator.stop()?;
    println!("Stored {} events this run", report.stats.stored);
    Ok(())
}
