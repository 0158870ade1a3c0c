//! `sessions`: the recorded sessions as a table or JSON.

use std::io::Write;

use super::output::{clip, cost, duration, short_time, table};
use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::queries::{count_sessions, list_sessions_filtered, SessionFilter};

/// Sessions shown by the table when `--limit` is not given.
const TABLE_DEFAULT_LIMIT: u64 = 50;

/// Width the table fits in when the terminal's is unknown (output piped).
const TABLE_WIDTH: usize = 100;

/// Characters of the first prompt shown at most (and at least, however narrow).
const PROMPT_MAX: usize = 50;
const PROMPT_MIN: usize = 12;

/// The filter the options describe (`--project` made absolute from here).
fn filter(args: &super::SessionsArgs) -> Result<SessionFilter> {
    let project = args
        .project
        .as_deref()
        .map(|p| {
            std::path::absolute(p)
                .map(|a| a.to_string_lossy().into_owned())
                .map_err(|e| crate::error::AggregatorError::io(p, e))
        })
        .transpose()?;
    Ok(SessionFilter {
        since: super::output::since_timestamp(args.since.as_deref())?,
        project,
        status: args.status.map(|s| {
            match s {
                super::StatusArg::Active => "active",
                super::StatusArg::Completed => "completed",
            }
            .to_string()
        }),
        agent: args.agent.clone(),
    })
}

pub fn run(config: &Config, args: &super::SessionsArgs, out: &mut dyn Write) -> Result<()> {
    let (limit, sort, json) = (args.limit, args.sort.into(), args.json);
    let filter = filter(args)?;
    let conn = crate::store::open_read_only(&config.database)?;
    // A table is for reading: the newest few unless asked for more. JSON is
    // for programs: everything unless limited.
    let shown = if json {
        limit
    } else {
        Some(limit.unwrap_or(TABLE_DEFAULT_LIMIT))
    };
    let sessions = list_sessions_filtered(&conn, sort, shown, &filter)?;
    if json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&sessions).unwrap_or_default()
        );
        return Ok(());
    }
    let total = count_sessions(&conn, &filter)?;
    if total == 0 {
        if filter == SessionFilter::default() {
            say!(out, "no sessions recorded yet");
        } else {
            say!(out, "no session passes these filters");
        }
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
