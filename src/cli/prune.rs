//! `prune`: delete sessions older than N days, with their events, delegations,
//! metrics and session files.

use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::store::writer::{Writer, WriterConfig};

pub fn run(config: &Config, days: u64) -> Result<()> {
    if days == 0 {
        return Err(AggregatorError::InvalidFormat(
            "--older-than-days must be at least 1".into(),
        ));
    }
    if !config.database.exists() {
        return Err(AggregatorError::Database {
            path: config.database.clone(),
            reason: "no database here yet".into(),
        });
    }
    let writer = Writer::spawn(WriterConfig::from_config(config))?;
    let report = writer.prune(days);
    writer.shutdown()?;
    let r = report?;
    println!(
        "pruned {} sessions ({} events, {} delegations, {} session files) and {} rejected inputs older than {days} days",
        r.sessions, r.events, r.delegations, r.files, r.rejected
    );
    Ok(())
}
