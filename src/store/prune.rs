//! Deleting old data: whole sessions (events, delegations, metrics, session
//! file, how far their transcripts were read) stored here longer ago than a number of days, plus session-less events
//! and rejected input of that age. The age is when the data was stored here
//! (SPEC section 6), so an old archive imported today is not deleted at the
//! next cleanup. Session files are deleted by the caller only after the
//! transaction that forgot their sessions has committed.

use std::path::Path;

use chrono::Utc;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::core::time::format_timestamp;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub sessions: u64,
    pub events: u64,
    pub delegations: u64,
    pub rejected: u64,
    pub files: u64,
    /// Session files to delete once the transaction has committed.
    #[serde(skip)]
    pub files_to_delete: Vec<std::path::PathBuf>,
}

impl PruneReport {
    /// Deletes the session files of the pruned sessions (call after COMMIT).
    pub fn delete_files(&mut self) {
        for file in std::mem::take(&mut self.files_to_delete) {
            if std::fs::remove_file(&file).is_ok() {
                self.files += 1;
            }
        }
    }
}

/// Deletes everything older than `days` days (`0` deletes nothing). Session
/// files are only removed when they lie inside `activity_dir`.
pub fn prune(conn: &Connection, days: u64, activity_dir: &Path) -> rusqlite::Result<PruneReport> {
    let mut report = PruneReport::default();
    if days == 0 {
        return Ok(report);
    }
    let cutoff = format_timestamp(&(Utc::now() - chrono::Duration::days(days.min(365_000) as i64)));
    let old: Vec<(String, Option<String>)> = conn
        .prepare("SELECT session_id, file_path FROM sessions s WHERE coalesce(stored_at,
                (SELECT min(received_at) FROM events e WHERE e.session_id = s.session_id), last_event_time) < ?1")?
        .query_map([&cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let canonical_dir = activity_dir.canonicalize().ok();
    for (id, file) in &old {
        report.events += conn.execute("DELETE FROM events WHERE session_id = ?1", [id])? as u64;
        report.delegations +=
            conn.execute("DELETE FROM delegations WHERE session_id = ?1", [id])? as u64;
        conn.execute("DELETE FROM metrics WHERE session_id = ?1", [id])?;
        report.sessions += conn.execute("DELETE FROM sessions WHERE session_id = ?1", [id])? as u64;
        // Its transcripts (named by the session id, sub-agents in a folder of
        // that name) are forgotten too: importing them again brings the
        // session back instead of being skipped as already read.
        conn.execute(
            "DELETE FROM transcript_offsets WHERE instr(path, ?1) > 0",
            [id],
        )?;
        if let (Some(file), Some(dir)) = (file, &canonical_dir) {
            let inside = Path::new(file)
                .canonicalize()
                .is_ok_and(|p| p.starts_with(dir));
            if inside {
                report.files_to_delete.push(file.into());
            }
        }
    }
    report.events += conn.execute(
        "DELETE FROM events WHERE session_id IS NULL AND received_at < ?1",
        params![cutoff],
    )? as u64;
    // Keys of observations merged into events that are gone now.
    if report.events > 0 {
        conn.execute(
            "DELETE FROM merged_observations WHERE event_id NOT IN (SELECT id FROM events)",
            [],
        )?;
    }
    report.rejected += conn.execute(
        "DELETE FROM rejected_events WHERE received_at < ?1",
        params![cutoff],
    )? as u64;
    if report.events > 0 {
        conn.execute_batch(
            "DELETE FROM event_type_counts;
             INSERT INTO event_type_counts (event_type, count) SELECT event_type, count(*) FROM events GROUP BY event_type;",
        )?;
    }
    Ok(report)
}
