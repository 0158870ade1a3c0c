//! `sessions`: the recorded sessions as a table or JSON.

use std::io::Write;

use super::output::{clip, cost, duration, short_time, table};
use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::queries::{list_sessions, SessionSort};

/// Sessions shown by the table when `--limit` is not given.
const TABLE_DEFAULT_LIMIT: u64 = 50;

/// Width the table fits in when the terminal's is unknown (output piped).
const TABLE_WIDTH: usize = 100;

/// Characters of the first prompt shown at most (and at least, however narrow).
const PROMPT_MAX: usize = 50;
const PROMPT_MIN: usize = 12;

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
    let header = [
        "ID",
        "STARTED",
        "DURATION",
        "EVENTS",
        "DELEG",
        "COST",
        "STATUS",
        "FIRST PROMPT",
    ];
    let mut t = table(&header);
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.session_id.chars().take(8).collect::<String>(),
                short_time(&s.start_time),
                duration(s.duration_ms),
                s.event_count.to_string(),
                s.delegation_count.to_string(),
                // `-`: no API call known (no transcript); `—`: a model without a price.
                if s.tokens.is_none() {
                    "-".into()
                } else {
                    cost(s.cost_usd)
                },
                s.status.clone(),
            ]
        })
        .collect();
    // Each session on one line: the first prompt gets what the other columns
    // leave of the terminal's width (of 100 columns when it is unknown).
    let fixed: usize = (0..header.len() - 1)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .sum();
    let width = t.width().map_or(TABLE_WIDTH, usize::from);
    let prompt_max = width
        .saturating_sub(fixed + 2)
        .clamp(PROMPT_MIN, PROMPT_MAX);
    for (s, mut row) in sessions.iter().zip(rows) {
        row.push(clip(s.initial_prompt.as_deref().unwrap_or("-"), prompt_max));
        t.add_row(row);
    }
    say!(out, "{t}");
    let more = total.saturating_sub(sessions.len() as u64);
    if more > 0 {
        say!(out, "… {more} more (use --limit N, or --json for all)");
    }
    Ok(())
}
