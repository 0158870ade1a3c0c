//! `sessions`: the recorded sessions as a table or JSON.

use std::io::Write;

use super::output::{clip, duration, short_time, table};
use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::queries::{list_sessions, SessionSort};

/// Sessions shown by the table when `--limit` is not given.
const TABLE_DEFAULT_LIMIT: u64 = 50;

pub fn run(
    config: &Config,
    limit: Option<u64>,
    sort: SessionSort,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let conn = crate::store::open_read_only(&config.database)?;
    // A table is for reading: the newest few unless asked for more. JSON is
    // for programs: everything unless limited.
    let shown = if json {
        limit
    } else {
        Some(limit.unwrap_or(TABLE_DEFAULT_LIMIT))
    };
    let sessions = list_sessions(&conn, sort, shown)?;
    if json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&sessions).unwrap_or_default()
        );
        return Ok(());
    }
    let total: u64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .unwrap_or(0);
    if total == 0 {
        say!(out, "no sessions recorded yet");
        return Ok(());
    }
    let mut t = table(&[
        "ID",
        "STARTED",
        "DURATION",
        "EVENTS",
        "DELEG",
        "STATUS",
        "FIRST PROMPT",
    ]);
    for s in &sessions {
        t.add_row(vec![
            s.session_id.chars().take(8).collect::<String>(),
            short_time(&s.start_time),
            duration(s.duration_ms),
            s.event_count.to_string(),
            s.delegation_count.to_string(),
            s.status.clone(),
            clip(s.initial_prompt.as_deref().unwrap_or("-"), 50),
        ]);
    }
    say!(out, "{t}");
    let more = total.saturating_sub(sessions.len() as u64);
    if more > 0 {
        say!(out, "… {more} more (use --limit N, or --json for all)");
    }
    Ok(())
}
