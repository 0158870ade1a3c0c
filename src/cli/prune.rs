//! `prune`: delete sessions older than N days, with their events, delegations,
//! metrics and session files.

use std::io::Write;

use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::writer::{Writer, WriterConfig};

/// `days` is at least 1 (the argument parser refuses 0 as a usage error).
pub fn run(config: &Config, days: u64, out: &mut dyn Write) -> Result<()> {
    let writer = Writer::spawn(WriterConfig::from_config(config))?;
    let report = writer.prune(days);
    writer.shutdown()?;
    let r = report?;
    say!(out,
        "pruned {} sessions ({} events, {} delegations, {} session files) and {} rejected inputs older than {days} days",
        r.sessions, r.events, r.delegations, r.files, r.rejected
    );
    Ok(())
}
