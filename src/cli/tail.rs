//! `tail`: follow events as they are stored, by any process, one line each,
//! until interrupted. It polls the store read-only by row id, and reads only
//! when `PRAGMA data_version` says another connection committed.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use super::output::{clip, stdout_error, terminal_width};
use super::say;
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::store::queries::{
    events_after, events_up_to, last_event_id, resolve_session, TailEvent,
};

/// Rows read per query: a burst is printed in pieces, none is skipped.
const BATCH: u64 = 500;

/// Options of `tail`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  mpm-aggregate tail\n  mpm-aggregate tail 1a6c -n 20\n  mpm-aggregate tail | grep PostToolUseFailure"
)]
pub struct TailArgs {
    /// Follow one session only (id or unique prefix)
    pub session: Option<String>,
    /// Show the last N events stored before following
    #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
    pub lines: u64,
    /// How often to look for new events, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub interval_ms: u64,
}

/// Whether standard output is a pipe whose reader has gone (`| head` done):
/// found without writing, since a quiet store gives nothing to write.
fn reader_gone() -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// What the event says, in a few words.
fn summary(e: &TailEvent) -> String {
    let Ok(whole @ Value::Object(_)) = serde_json::from_str::<Value>(&e.data) else {
        return String::new();
    };
    let top = Some(&whole);
    let data = |key: &str| whole.get(key);
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let first = |obj: Option<&Value>, keys: &[&str]| -> Option<String> {
        let obj = obj?.as_object()?;
        keys.iter().find_map(|k| text(obj.get(*k)))
    };
    let input_keys = [
        "command",
        "file_path",
        "notebook_path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
    ];
    match e.event_type.as_str() {
        "UserPromptSubmit" => first(top, &["prompt", "prompt_text"]),
        "PreToolUse" => first(data("tool_input"), &input_keys)
            .or_else(|| first(data("tool_parameters"), &input_keys)),
        "PostToolUse" => first(data("tool_input"), &input_keys)
            .or_else(|| first(data("tool_parameters"), &input_keys))
            .map(|s| format!("done: {s}")),
        "PostToolUseFailure" => {
            first(top, &["error", "error_message"]).map(|s| format!("FAILED: {s}"))
        }
        "SubagentStart" => first(top, &["description", "prompt"]),
        "Stop" | "SubagentStop" | "SessionEnd" => first(
            top,
            &[
                "last_assistant_message",
                "response",
                "final_response",
                "reason",
            ],
        ),
        "StopFailure" => {
            first(top, &["error", "reason", "message"]).map(|s| format!("FAILED: {s}"))
        }
        "ApiCall" => {
            let out = data("usage")
                .and_then(|u| u.get("output_tokens"))
                .and_then(Value::as_i64);
            first(top, &["model"]).map(|m| match out {
                Some(o) => format!("{m}, {o} tokens out"),
                None => m,
            })
        }
        _ => first(
            top,
            &["message", "delta", "prompt", "file_path", "result_summary"],
        ),
    }
    .unwrap_or_default()
}

fn line(e: &TailEvent, width: usize) -> String {
    let time = e.timestamp.get(11..23).unwrap_or(&e.timestamp);
    let session: String = e
        .session_id
        .as_deref()
        .map_or("-".into(), |s| s.chars().take(8).collect());
    let head = format!(
        "{time}  {session:<8}  {:<12} {:<18} {:<10}",
        clip(e.agent_type.as_deref().unwrap_or("main"), 12),
        e.event_type,
        e.tool_name.as_deref().unwrap_or("")
    );
    let room = width.saturating_sub(head.chars().count() + 1).max(20);
    let text = clip(&summary(e), room);
    format!("{head} {text}").trim_end().to_string()
}

pub fn run(config: &Config, args: &TailArgs, out: &mut dyn Write) -> Result<()> {
    let stop = super::output::stop_on_signal()?;
    let conn = crate::store::open_read_only(&config.database)?;
    let session = args
        .session
        .as_deref()
        .map(|s| resolve_session(&conn, s))
        .transpose()?;
    let width = terminal_width().unwrap_or(120);
    // The last N events first, as `tail` does.
    let mut after = last_event_id(&conn)?;
    for e in events_up_to(&conn, after, session.as_deref(), args.lines)? {
        say!(out, "{}", line(&e, width));
    }
    out.flush().map_err(stdout_error)?;
    let mut version: i64 = -1;
    while !stop.load(Ordering::SeqCst) && !reader_gone() {
        let now: i64 = conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(AggregatorError::query)?;
        if now != version {
            version = now;
            loop {
                let events = events_after(&conn, after, session.as_deref(), BATCH)?;
                for e in &events {
                    say!(out, "{}", line(e, width));
                }
                out.flush().map_err(stdout_error)?;
                match events.last() {
                    Some(last) => after = last.id,
                    None => break,
                }
                if (events.len() as u64) < BATCH {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
    out.flush().map_err(stdout_error)
}
