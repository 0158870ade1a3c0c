//! The reference's "custom event processing" example, in Rust: load a session
//! file (ours or the Python original's) and analyse it.
//!
//! cargo run --example custom_processing -- ../shared/fixtures/python-aggregator-session.json

use std::collections::BTreeMap;

use mpm_aggregate::{AgentSession, Category};

fn process_session(session: &AgentSession) -> BTreeMap<String, usize> {
    // Count tool usage.
    let mut tool_counts = BTreeMap::new();
    for event in &session.events {
        if matches!(event.category, Category::Tool | Category::File) {
            if let Some(tool) = event.tool_name() {
                *tool_counts.entry(tool.to_string()).or_insert(0) += 1;
            }
        }
    }
    // Analyse delegations.
    for delegation in &session.delegations {
        println!("Agent {}:", delegation.agent_type);
        println!(
            "  Duration: {} ms",
            delegation.duration().num_milliseconds()
        );
        println!("  Files: {:?}", delegation.files_modified);
    }
    tool_counts
}

fn main() -> Result<(), mpm_aggregate::AggregatorError> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| ".claude-mpm/activity/session_abc.json".into());
    let session = AgentSession::load(path.as_ref())?;
    let results = process_session(&session);
    println!("Tool calls: {results:?}");
    Ok(())
}
