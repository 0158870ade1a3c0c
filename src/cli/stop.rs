//! `stop`: signal the running recorder and wait until it has saved everything.

use std::time::Duration;

use std::io::Write;

use rusqlite::OptionalExtension;

use super::say;
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::recorder::daemon;

/// How long a recorder gets to drain, finalize and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(config: &Config, out: &mut dyn Write) -> Result<()> {
    let dir = &config.activity_directory;
    let had_file = daemon::pid_file(dir).exists();
    let Some(pid) = daemon::running_pid(dir) else {
        let detail = if had_file {
            " (removed a stale PID file)"
        } else {
            ""
        };
        return Err(AggregatorError::Recorder(format!(
            "no recorder is running for {}{detail}",
            dir.display()
        )));
    };
    daemon::terminate_and_wait(pid, STOP_TIMEOUT)?;
    let summary = crate::store::open_read_only(&config.database).ok().and_then(|conn| {
        conn.query_row(
            "SELECT events_stored, duplicates, rejected, (SELECT count(*) FROM sessions WHERE status = 'completed') FROM recorder_state WHERE id = 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()
        .ok()
        .flatten()
    });
    match summary {
        Some((stored, duplicates, rejected, completed)) => say!(out,
            "stopped recorder (pid {pid}): {stored} events stored this run ({duplicates} duplicates, {rejected} rejected); {completed} completed sessions, files in {}",
            dir.display()
        ),
        None => say!(out, "stopped recorder (pid {pid})"),
    }
    Ok(())
}
