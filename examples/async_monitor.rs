//! The reference's async example, in Rust with tokio: the recorder runs on its
//! own threads, so an async program only polls it.
//!
//! cargo run --example async_monitor

use std::time::Duration;

use mpm_aggregate::{AggregatorError, EventAggregator};

#[tokio::main]
async fn main() -> Result<(), AggregatorError> {
    let aggregator = EventAggregator::new("localhost", 8765, None);
    // start() blocks until connected; keep it off the async workers.
    let aggregator = tokio::task::spawn_blocking(move || aggregator.start().map(|()| aggregator))
        .await
        .map_err(|e| AggregatorError::Recorder(e.to_string()))??;
    loop {
        let status = aggregator.get_status()?;
        println!("Events captured: {}", status.total_events);
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Check for completed sessions.
        for session_id in aggregator.get_completed_sessions()? {
            aggregator.export_session(&session_id, None, "full")?;
        }
    }
}
