//! `search`: full-text search over prompts, responses, tool inputs and
//! outputs, errors and file paths, each hit with its session, time, event
//! and a snippet.

use std::io::Write;

use super::output::{clip, short_time, terminal_width};
use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::queries::resolve_session;
use crate::store::search::{quote_words, search};

/// Options of `search`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  mpm-aggregate search nonexistent-qa-dir\n  mpm-aggregate search 'greet(name)' --session 1a6c --limit 5\n  mpm-aggregate search --raw 'greet NOT test*' --json"
)]
pub struct SearchArgs {
    /// Words to find, all of them (each is searched as written; a trailing * finds words starting so)
    #[arg(required = true, num_args = 1..)]
    pub text: Vec<String>,
    /// Search one session (id or unique prefix)
    #[arg(long, value_name = "S")]
    pub session: Option<String>,
    /// Show at most N hits, best first
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u64,
    /// Take TEXT as an SQLite FTS5 query (AND, OR, NOT, NEAR, "phrases", prefix*)
    #[arg(long)]
    pub raw: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(config: &Config, args: &SearchArgs, out: &mut dyn Write) -> Result<()> {
    let conn = crate::store::open_read_only(&config.database)?;
    let session = args
        .session
        .as_deref()
        .map(|s| resolve_session(&conn, s))
        .transpose()?;
    let text = args.text.join(" ");
    let query = if args.raw {
        Some(text.clone())
    } else {
        quote_words(&text)
    };
    let hits = match &query {
        Some(q) => search(&conn, q, session.as_deref(), args.limit)?,
        None => Vec::new(),
    };
    if args.json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&hits).unwrap_or_default()
        );
        return Ok(());
    }
    if query.is_none() {
        say!(
            out,
            "no event matches {text} (words without a letter or digit are not searched)"
        );
        return Ok(());
    }
    if hits.is_empty() {
        say!(out, "no event matches {text}");
        return Ok(());
    }
    let width = terminal_width().unwrap_or(100);
    for hit in &hits {
        let tool = hit
            .tool_name
            .as_deref()
            .map_or(String::new(), |t| format!(" {t}"));
        say!(
            out,
            "{}  {}  {}  {}{tool}  (event {})",
            short_time(&hit.timestamp),
            hit.session_id
                .as_deref()
                .map_or("-".to_string(), |s| s.chars().take(8).collect()),
            hit.agent_type.as_deref().unwrap_or("main"),
            hit.event_type,
            hit.event_id
        );
        say!(
            out,
            "    {}",
            clip(&hit.snippet, width.saturating_sub(4).max(20))
        );
    }
    let shown = hits.len() as u64;
    let s = if shown == 1 { "" } else { "s" };
    if shown == args.limit {
        say!(out, "{shown} hit{s} shown, best first (--limit N for more)");
    } else {
        say!(out, "{shown} hit{s}");
    }
    Ok(())
}
