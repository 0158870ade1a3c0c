//! `stats`: tokens and cost, tool calls and their failure rate, delegations
//! and their success, per day, project, agent, model or tool, across sessions.

use std::io::Write;

use super::output::{cost, table, thousands};
use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::store::stats::{stats, GroupBy, StatsRow};

/// `--by` of `stats`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ByArg {
    /// The day (UTC) each session started
    Day,
    /// Each session's working directory
    Project,
    /// The sub-agent type work was delegated to; (main) is the main thread
    Agent,
    /// The model of the API calls (tokens and cost only)
    Model,
    /// The tool called (calls and failures only)
    Tool,
}

impl From<ByArg> for GroupBy {
    fn from(b: ByArg) -> Self {
        match b {
            ByArg::Day => GroupBy::Day,
            ByArg::Project => GroupBy::Project,
            ByArg::Agent => GroupBy::Agent,
            ByArg::Model => GroupBy::Model,
            ByArg::Tool => GroupBy::Tool,
        }
    }
}

/// Options of `stats`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  mpm-aggregate stats\n  mpm-aggregate stats --by agent --since 7d\n  mpm-aggregate stats --by tool --since 2026-11-01 --json"
)]
pub struct StatsArgs {
    /// Group by day, project, agent, model or tool
    #[arg(long, value_enum, default_value_t = ByArg::Day)]
    pub by: ByArg,
    /// Only sessions started since a date (2026-11-01), a time, or a duration ago (3d, 12h, 30m)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

fn n(v: Option<i64>) -> String {
    v.map_or("-".into(), thousands)
}

fn row_cells(r: &StatsRow) -> Vec<String> {
    let failed = match (r.tool_failures, r.failure_rate) {
        (Some(f), Some(rate)) => format!("{} ({:.1}%)", thousands(f), rate * 100.0),
        (f, _) => n(f),
    };
    let delegations = match (r.delegations, r.delegations_succeeded, r.delegations_failed) {
        (Some(0), _, _) => "0".into(),
        (Some(d), Some(ok), Some(bad)) => {
            let running = d - ok - bad;
            let mut s = format!("{d} ({ok} ok");
            if bad > 0 {
                s.push_str(&format!(", {bad} failed"));
            }
            if running > 0 {
                s.push_str(&format!(", {running} running"));
            }
            s + ")"
        }
        (d, _, _) => n(d),
    };
    let tok = |f: fn(&crate::core::event::Tokens) -> i64| {
        r.tokens.as_ref().map_or("-".into(), |t| thousands(f(t)))
    };
    let priced = r.tokens.is_some() || r.cost_usd.is_some() || r.unpriced > 0;
    let money = if !priced {
        "-".into()
    } else if r.unpriced > 0 && r.cost_usd.is_some_and(|c| c > 0.0) {
        format!("{} + ?", cost(r.cost_usd))
    } else if r.unpriced > 0 {
        cost(None)
    } else {
        cost(r.cost_usd.or(Some(0.0)))
    };
    vec![
        r.group.clone(),
        r.sessions.to_string(),
        n(r.prompts),
        n(r.tool_calls),
        failed,
        delegations,
        n(r.api_calls),
        tok(|t| t.input),
        tok(|t| t.output),
        tok(|t| t.cache_creation),
        tok(|t| t.cache_read),
        money,
    ]
}

pub fn run(config: &Config, args: &StatsArgs, out: &mut dyn Write) -> Result<()> {
    let since = super::output::since_timestamp(args.since.as_deref())?;
    let pricing = crate::config::load_pricing(&config.pricing_file)?;
    let conn = crate::store::open_read_only(&config.database)?;
    let figures = stats(&conn, args.by.into(), since.as_deref(), &pricing)?;
    if args.json {
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&figures).unwrap_or_default()
        );
        return Ok(());
    }
    if figures.total.sessions == 0 {
        say!(
            out,
            "no sessions{}",
            since.map_or(String::new(), |s| format!(" started since {s}"))
        );
        return Ok(());
    }
    let header = [
        figures.by.to_uppercase(),
        "SESSIONS".into(),
        "PROMPTS".into(),
        "TOOL CALLS".into(),
        "FAILED".into(),
        "DELEGATIONS".into(),
        "API CALLS".into(),
        "IN".into(),
        "OUT".into(),
        "CACHE WRITE".into(),
        "CACHE READ".into(),
        "COST".into(),
    ];
    // A model has no tool calls, a tool no tokens: those columns are left out.
    let shown: Vec<usize> = match args.by {
        ByArg::Model => vec![0, 1, 7, 8, 9, 10, 11],
        ByArg::Tool => vec![0, 1, 3, 4],
        _ => (0..header.len()).collect(),
    };
    let pick =
        |cells: Vec<String>| -> Vec<String> { shown.iter().map(|&i| cells[i].clone()).collect() };
    let names: Vec<String> = pick(header.to_vec());
    let mut t = table(&names.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &figures.groups {
        t.add_row(pick(row_cells(r)));
    }
    t.add_row(pick(row_cells(&figures.total)));
    say!(out, "{t}");
    Ok(())
}
