//! Figures across sessions (`stats`): tokens and cost, tool calls and their
//! failures, delegations and their outcome, per day, project, agent, model or
//! tool. Read from the rows the writer keeps (`metrics`, `delegations`) and,
//! per tool, from the `events_tool_calls` index alone, never from a scan of
//! the events' data, so that it stays fast on a large store. Every group's
//! figures add up to the sessions' own metrics (the total row is read from
//! them directly).

use rusqlite::{Connection, Row};
use serde::Serialize;

use crate::core::event::Tokens;
use crate::core::pricing::PricingTable;
use crate::error::{AggregatorError, Result};

/// What `stats` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// The day (UTC) a session started.
    Day,
    /// A session's working directory.
    Project,
    /// The sub-agent type work was delegated to; the main thread is `(main)`.
    Agent,
    /// The model of each API call.
    Model,
    /// The tool of each call.
    Tool,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Day => "day",
            GroupBy::Project => "project",
            GroupBy::Agent => "agent",
            GroupBy::Model => "model",
            GroupBy::Tool => "tool",
        }
    }
}

/// The name of the main thread's row in `--by agent`.
pub const MAIN_THREAD: &str = "(main)";

/// One group's figures. A figure that has no meaning for the grouping (the
/// prompts of a tool, the tool calls of a model) is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsRow {
    pub group: String,
    /// Sessions with something in this group.
    pub sessions: u64,
    pub prompts: Option<i64>,
    pub tool_calls: Option<i64>,
    pub tool_failures: Option<i64>,
    /// `tool_failures / tool_calls`; `None` without calls.
    pub failure_rate: Option<f64>,
    pub delegations: Option<i64>,
    pub delegations_succeeded: Option<i64>,
    pub delegations_failed: Option<i64>,
    pub api_calls: Option<i64>,
    pub tokens: Option<Tokens>,
    /// The cost of what has a price; see `unpriced`.
    pub cost_usd: Option<f64>,
    /// Sessions (delegations, with `--by agent`) that made API calls with a
    /// model the price table does not know: their cost is not in `cost_usd`.
    pub unpriced: u64,
}

/// The groups and the total over the sessions of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub by: &'static str,
    /// Sessions started at or after this time are counted (`None`: all).
    pub since: Option<String>,
    pub groups: Vec<StatsRow>,
    pub total: StatsRow,
}

fn sql_err(e: rusqlite::Error) -> AggregatorError {
    AggregatorError::query(e)
}

fn tokens_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Tokens> {
    let n = |i: usize| -> rusqlite::Result<i64> {
        Ok(r.get::<_, Option<i64>>(first + i)?.unwrap_or(0))
    };
    Ok(Tokens {
        input: n(0)?,
        output: n(1)?,
        cache_creation: n(2)?,
        cache_read: n(3)?,
        cache_creation_1h: n(4)?,
    })
}

/// Sums of a JSON tokens column, in the order [`tokens_at`] reads them.
fn token_sums(column: &str) -> String {
    [
        "input",
        "output",
        "cache_creation",
        "cache_read",
        "cache_creation_1h",
    ]
    .iter()
    .map(|k| format!("sum(json_extract({column}, '$.{k}'))"))
    .collect::<Vec<_>>()
    .join(", ")
}

fn rate(failures: Option<i64>, calls: Option<i64>) -> Option<f64> {
    match (failures, calls) {
        (Some(f), Some(c)) if c > 0 => Some(f as f64 / c as f64),
        _ => None,
    }
}

/// Session-level figures from `metrics`, grouped by `key` (an SQL expression over `s`).
fn session_groups(conn: &Connection, key: &str, since: &str) -> Result<Vec<StatsRow>> {
    let sql = format!(
        "SELECT {key} AS g, count(*), sum(m.prompts), sum(m.tool_calls), sum(m.tool_failures),
                sum(m.total_delegations), sum(m.successful_delegations), sum(m.failed_delegations),
                sum(m.api_calls), {}, sum(m.cost_usd), sum(m.api_calls > 0 AND m.cost_usd IS NULL),
                sum(m.api_calls > 0)
         FROM sessions s LEFT JOIN metrics m USING (session_id)
         WHERE s.start_time >= ?1 GROUP BY g ORDER BY g",
        token_sums("m.tokens")
    );
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([since], |r| {
            let sum = |i: usize| -> rusqlite::Result<Option<i64>> {
                Ok(Some(r.get::<_, Option<i64>>(i)?.unwrap_or(0)))
            };
            let with_calls = r.get::<_, Option<i64>>(16)?.unwrap_or(0);
            Ok(StatsRow {
                group: r.get::<_, Option<String>>(0)?.unwrap_or_else(|| "-".into()),
                sessions: r.get::<_, i64>(1)? as u64,
                prompts: sum(2)?,
                tool_calls: sum(3)?,
                tool_failures: sum(4)?,
                failure_rate: None,
                delegations: sum(5)?,
                delegations_succeeded: sum(6)?,
                delegations_failed: sum(7)?,
                api_calls: sum(8)?,
                tokens: (with_calls > 0).then(|| tokens_at(r, 9)).transpose()?,
                cost_usd: r.get(14)?,
                unpriced: r.get::<_, Option<i64>>(15)?.unwrap_or(0) as u64,
            })
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    Ok(rows)
}

/// Per sub-agent type from `delegations`, and the main thread as what the
/// sessions' metrics hold beyond their delegations.
fn agent_groups(conn: &Connection, since: &str, total: &StatsRow) -> Result<Vec<StatsRow>> {
    let sql = format!(
        "SELECT d.agent_type, count(DISTINCT d.session_id), count(*), sum(d.success = 1), sum(d.success = 0),
                sum(d.tool_calls), sum(d.tool_failures), sum(d.api_calls), {}, sum(d.cost_usd),
                sum(d.api_calls > 0 AND d.cost_usd IS NULL), sum(d.api_calls > 0)
         FROM delegations d JOIN sessions s USING (session_id)
         WHERE s.start_time >= ?1 GROUP BY d.agent_type",
        token_sums("d.tokens")
    );
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let mut rows = stmt
        .query_map([since], |r| {
            let with_calls = r.get::<_, Option<i64>>(15)?.unwrap_or(0);
            Ok(StatsRow {
                group: r.get(0)?,
                sessions: r.get::<_, i64>(1)? as u64,
                prompts: Some(0),
                delegations: Some(r.get(2)?),
                delegations_succeeded: Some(r.get::<_, Option<i64>>(3)?.unwrap_or(0)),
                delegations_failed: Some(r.get::<_, Option<i64>>(4)?.unwrap_or(0)),
                tool_calls: Some(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
                tool_failures: Some(r.get::<_, Option<i64>>(6)?.unwrap_or(0)),
                api_calls: Some(r.get::<_, Option<i64>>(7)?.unwrap_or(0)),
                tokens: (with_calls > 0).then(|| tokens_at(r, 8)).transpose()?,
                cost_usd: r.get(13)?,
                unpriced: r.get::<_, Option<i64>>(14)?.unwrap_or(0) as u64,
                failure_rate: None,
            })
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    // The main thread: every event is counted once, toward the innermost
    // delegation it belongs to or toward the session alone.
    let minus = |all: Option<i64>, part: fn(&StatsRow) -> Option<i64>| {
        all.map(|a| a - rows.iter().filter_map(part).sum::<i64>())
    };
    let mut main_tokens = total.tokens;
    if let Some(t) = main_tokens.as_mut() {
        for d in rows.iter().filter_map(|r| r.tokens.as_ref()) {
            t.input -= d.input;
            t.output -= d.output;
            t.cache_creation -= d.cache_creation;
            t.cache_read -= d.cache_read;
            t.cache_creation_1h -= d.cache_creation_1h;
        }
    }
    let main = StatsRow {
        group: MAIN_THREAD.into(),
        sessions: total.sessions,
        prompts: total.prompts,
        tool_calls: minus(total.tool_calls, |r| r.tool_calls),
        tool_failures: minus(total.tool_failures, |r| r.tool_failures),
        failure_rate: None,
        delegations: Some(0),
        delegations_succeeded: Some(0),
        delegations_failed: Some(0),
        api_calls: minus(total.api_calls, |r| r.api_calls),
        tokens: main_tokens,
        cost_usd: total
            .cost_usd
            .map(|c| c - rows.iter().filter_map(|r| r.cost_usd).sum::<f64>()),
        unpriced: total.unpriced,
    };
    rows.insert(0, main);
    Ok(rows)
}

/// Per model, from the sessions' `tokens_by_model`, priced with `pricing`
/// (cost is linear in tokens, so the sum of the models is the sessions' cost).
fn model_groups(conn: &Connection, since: &str, pricing: &PricingTable) -> Result<Vec<StatsRow>> {
    let sql = format!(
        "SELECT j.key, count(DISTINCT s.session_id), {}
         FROM sessions s JOIN metrics m USING (session_id), json_each(m.tokens_by_model) j
         WHERE s.start_time >= ?1 AND m.tokens_by_model IS NOT NULL GROUP BY j.key",
        token_sums("j.value")
    );
    let mut stmt = conn.prepare(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([since], |r| {
            let model: String = r.get(0)?;
            let sessions = r.get::<_, i64>(1)? as u64;
            let tokens = tokens_at(r, 2)?;
            let cost = pricing.cost_usd(&model, &tokens);
            Ok(StatsRow {
                group: model,
                sessions,
                unpriced: if cost.is_none() { sessions } else { 0 },
                cost_usd: cost,
                tokens: Some(tokens),
                ..StatsRow::default()
            })
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    Ok(rows)
}

/// Per tool: calls (`PreToolUse`) and failures (`PostToolUseFailure`), as the
/// metrics count them, read from the `events_tool_calls` index.
fn tool_groups(conn: &Connection, since: &str) -> Result<Vec<StatsRow>> {
    // Without a window no session row needs reading.
    let sql = if since.is_empty() {
        "SELECT e.tool_name, count(DISTINCT e.session_id), sum(e.event_type = 'PreToolUse'),
                sum(e.event_type = 'PostToolUseFailure')
         FROM events e
         WHERE e.event_type IN ('PreToolUse', 'PostToolUseFailure') AND e.session_id IS NOT NULL
           AND ?1 = '' GROUP BY e.tool_name"
    } else {
        "SELECT e.tool_name, count(DISTINCT e.session_id), sum(e.event_type = 'PreToolUse'),
                sum(e.event_type = 'PostToolUseFailure')
         FROM events e JOIN sessions s ON s.session_id = e.session_id
         WHERE e.event_type IN ('PreToolUse', 'PostToolUseFailure') AND s.start_time >= ?1
         GROUP BY e.tool_name"
    };
    let mut stmt = conn.prepare(sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([since], |r| {
            Ok(StatsRow {
                group: r
                    .get::<_, Option<String>>(0)?
                    .unwrap_or_else(|| "(unnamed)".into()),
                sessions: r.get::<_, i64>(1)? as u64,
                tool_calls: Some(r.get(2)?),
                tool_failures: Some(r.get(3)?),
                ..StatsRow::default()
            })
        })
        .map_err(sql_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(sql_err)?;
    Ok(rows)
}

/// The figures of the sessions started at or after `since` (all when `None`), grouped `by`.
pub fn stats(
    conn: &Connection,
    by: GroupBy,
    since: Option<&str>,
    pricing: &PricingTable,
) -> Result<Stats> {
    let window = since.unwrap_or("");
    let mut total = session_groups(conn, "'total'", window)?
        .pop()
        .unwrap_or_else(|| StatsRow {
            prompts: Some(0),
            tool_calls: Some(0),
            tool_failures: Some(0),
            delegations: Some(0),
            delegations_succeeded: Some(0),
            delegations_failed: Some(0),
            api_calls: Some(0),
            ..StatsRow::default()
        });
    total.group = "total".into();
    let mut groups = match by {
        GroupBy::Day => session_groups(conn, "substr(s.start_time, 1, 10)", window)?,
        GroupBy::Project => session_groups(conn, "s.working_directory", window)?,
        GroupBy::Agent => agent_groups(conn, window, &total)?,
        GroupBy::Model => model_groups(conn, window, pricing)?,
        GroupBy::Tool => tool_groups(conn, window)?,
    };
    for row in groups.iter_mut().chain([&mut total]) {
        row.failure_rate = rate(row.tool_failures, row.tool_calls);
    }
    // Days in order; anything else largest first (cost, then calls), then by name.
    if by != GroupBy::Day {
        let weight = |r: &StatsRow| (r.cost_usd.unwrap_or(0.0), r.tool_calls.unwrap_or(0));
        groups.sort_by(|a, b| {
            let (wa, wb) = (weight(a), weight(b));
            wb.0.total_cmp(&wa.0)
                .then(wb.1.cmp(&wa.1))
                .then_with(|| a.group.cmp(&b.group))
        });
    }
    Ok(Stats {
        by: by.as_str(),
        since: since.map(str::to_string),
        groups,
        total,
    })
}
