//! `view`: one session in detail, or as JSON.

use std::io::Write;

use serde_json::{json, Value};

use super::output::{clip, cost, duration, short_time, thousands, tokens};
use super::{say, ViewArgs};
use crate::config::Config;
use crate::documents::export::{for_each_event, load_header};
use crate::error::Result;
use crate::store::queries::resolve_session;

pub fn run(config: &Config, args: &ViewArgs, out: &mut dyn Write) -> Result<()> {
    let conn = crate::store::open_read_only(&config.database)?;
    let id = resolve_session(&conn, &args.session)?;
    let session = load_header(&conn, &id)?;
    let mut events = Vec::new();
    if args.show_events {
        for_each_event(&conn, &id, Some(args.event_limit), |row| {
            events.push(row.to_event());
            Ok(())
        })?;
    }

    if args.json {
        let mut doc = session.summary_header();
        doc["delegations_summary"] = session.delegations_summary();
        if args.show_events {
            doc["events"] = Value::Array(events.iter().map(|e| e.to_dict()).collect());
        }
        if args.no_response {
            if let Value::Object(map) = &mut doc {
                map.remove("final_response");
            }
        }
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        );
        return Ok(());
    }

    let text = |s: Option<&str>, max: usize| match s {
        Some(s) if args.verbose => s.to_string(),
        Some(s) => clip(s, max),
        None => "-".into(),
    };
    let m = &session.metrics;
    let status = session
        .metadata
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("active");
    say!(out, "Session {}", session.session_id);
    say!(out, "  status:      {status}");
    say!(
        out,
        "  started:     {}",
        short_time(&crate::core::time::format_timestamp(&session.start_time))
    );
    if let Some(end) = &session.end_time {
        say!(
            out,
            "  ended:       {}",
            short_time(&crate::core::time::format_timestamp(end))
        );
    }
    say!(out, "  duration:    {}", duration(m.session_duration_ms));
    say!(
        out,
        "  directory:   {}",
        session.working_directory.as_deref().unwrap_or("-")
    );
    say!(
        out,
        "  git branch:  {}",
        session.git_branch.as_deref().unwrap_or("-")
    );
    if let Some(v) = &session.claude_version {
        say!(out, "  claude code: {v}");
    }
    if let Some(l) = &session.launch_method {
        say!(out, "  launched:    {l}");
    }
    say!(
        out,
        "  sources:     {}",
        if session.sources.is_empty() {
            "-".into()
        } else {
            session.sources.join(", ")
        }
    );
    if let Some(f) = session.metadata.get("file_path").and_then(Value::as_str) {
        say!(out, "  file:        {f}");
    }
    say!(
        out,
        "  prompt:      {}",
        text(session.initial_prompt.as_deref(), 100)
    );
    say!(out);
    say!(out, "Metrics");
    say!(out, "  events:      {}", m.total_events);
    let breakdown: Vec<String> = m
        .event_breakdown
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    say!(
        out,
        "  by category: {}",
        if breakdown.is_empty() {
            "-".into()
        } else {
            breakdown.join(", ")
        }
    );
    if m.prompts > 0 {
        say!(out, "  prompts:     {}", m.prompts);
    }
    if m.tool_calls > 0 {
        say!(
            out,
            "  tool calls:  {} ({} failed)",
            m.tool_calls,
            m.tool_failures
        );
    }
    say!(
        out,
        "  tools:       {}",
        if m.tools_used.is_empty() {
            "-".into()
        } else {
            m.tools_used.join(", ")
        }
    );
    say!(
        out,
        "  files:       {}",
        if m.files_modified.is_empty() {
            "-".into()
        } else {
            m.files_modified.join(", ")
        }
    );
    say!(
        out,
        "  delegations: {} ({} succeeded, {} failed)",
        m.total_delegations,
        m.successful_delegations,
        m.failed_delegations
    );
    // Ours, from the API calls of the transcripts; Claude Code's own account
    // beside it, never mixed in.
    if let Some(t) = &m.tokens {
        say!(
            out,
            "  API calls:   {} ({})",
            thousands(m.api_calls as i64),
            if m.models.is_empty() {
                "model unknown".into()
            } else {
                m.models.join(", ")
            }
        );
        say!(out, "  tokens:      {}", tokens(t));
    }
    let pricing = crate::config::load_pricing(&config.pricing_file)?;
    let unpriced: Vec<&str> = m
        .tokens_by_model
        .iter()
        .filter(|(model, t)| !model.is_empty() && pricing.cost_usd(model, t).is_none())
        .map(|(model, _)| model.as_str())
        .collect();
    let ours = match (&m.tokens, m.cost_usd) {
        (None, _) => None,
        (Some(_), Some(c)) => Some(cost(Some(c))),
        (Some(_), None) if !unpriced.is_empty() => {
            Some(format!("— (no price for {})", unpriced.join(", ")))
        }
        (Some(_), None) => Some(cost(None)),
    };
    let claude_code = m
        .claude_code
        .as_ref()
        .map(|cc| format!("Claude Code's own account {}", cost(cc.cost_usd)));
    match (ours, &claude_code) {
        (Some(o), Some(c)) => say!(out, "  cost:        {o} · {c}"),
        (Some(o), None) => say!(out, "  cost:        {o}"),
        (None, Some(c)) => say!(out, "  cost:        - · {c}"),
        (None, None) => {}
    }
    if let Some(cc) = &m.claude_code {
        let lines = match (cc.lines_added, cc.lines_removed) {
            (None, None) => String::new(),
            (a, r) => format!(
                " · lines +{} -{}",
                a.unwrap_or_default(),
                r.unwrap_or_default()
            ),
        };
        say!(out, "  Claude Code: {}{lines}", tokens(&cc.tokens));
    }
    if !session.delegations.is_empty() {
        say!(out);
        say!(out, "Delegations");
        for (i, d) in session.delegations.iter().enumerate() {
            let state = match (d.end_time, d.success) {
                (None, _) => "running".to_string(),
                (Some(_), true) => "success".to_string(),
                (Some(_), false) => format!(
                    "failed{}",
                    d.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            };
            let took = d
                .end_time
                .map(|e| duration((e - d.start_time).num_milliseconds()))
                .unwrap_or_else(|| "-".into());
            say!(out, "  {}. {} ({took}, {state})", i + 1, d.agent_type);
            if let Some(agent) = &d.agent_id {
                let mut about = Vec::new();
                if let Some(call) = &d.tool_use_id {
                    about.push(format!("call {call}"));
                }
                if d.background {
                    about.push("background".into());
                }
                if let Some(parent) = &d.parent_agent_id {
                    about.push(format!("started by {parent}"));
                }
                let about = if about.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", about.join(", "))
                };
                say!(out, "     agent:   {agent}{about}");
            }
            if let Some(desc) = &d.description {
                say!(out, "     task:    {}", text(Some(desc), 90));
            }
            say!(
                out,
                "     asked:   {}",
                text(
                    Some(&d.instructions)
                        .filter(|s| !s.is_empty())
                        .map(String::as_str),
                    90
                )
            );
            let calls = if d.tool_calls > 0 {
                format!(" ({} calls, {} failed)", d.tool_calls, d.tool_failures)
            } else {
                String::new()
            };
            say!(
                out,
                "     tools:   {}{calls}",
                if d.tool_operations.is_empty() {
                    "-".into()
                } else {
                    d.tool_operations.join(", ")
                }
            );
            say!(
                out,
                "     files:   {}",
                if d.files_modified.is_empty() {
                    "-".into()
                } else {
                    d.files_modified.join(", ")
                }
            );
            say!(out, "     events:  {}", d.event_count);
            if let Some(t) = &d.tokens {
                say!(out, "     tokens:  {}", tokens(t));
                say!(
                    out,
                    "     cost:    {} ({} API calls, {})",
                    cost(d.cost_usd),
                    d.api_calls,
                    d.model.as_deref().unwrap_or("model unknown")
                );
            }
            if let Some(r) = &d.response_preview {
                say!(out, "     answer:  {}", text(Some(r), 90));
            }
        }
    }
    if args.show_events {
        say!(out);
        say!(out, "Events (first {} of {})", events.len(), m.total_events);
        for e in &events {
            let detail = e
                .tool_name()
                .map(str::to_string)
                .or_else(|| {
                    e.data
                        .get("prompt")
                        .or_else(|| e.data.get("prompt_text"))
                        .and_then(Value::as_str)
                        .map(|p| clip(p, 60))
                })
                .unwrap_or_default();
            say!(
                out,
                "  {}  {:<10} {:<18} {detail}",
                e.timestamp.get(11..23).unwrap_or(&e.timestamp),
                e.category.as_str(),
                e.event_type
            );
            if args.verbose {
                say!(out, "      {}", json!(e.data));
            }
        }
    }
    if !args.no_response {
        if let Some(r) = &session.final_response {
            say!(out);
            say!(out, "Final response");
            say!(out, "  {}", text(Some(r), 300));
        }
    }
    Ok(())
}
