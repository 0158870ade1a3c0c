//! `status`: the recorder and store at a glance, or as JSON.

use std::io::Write;

use super::say;
use crate::config::Config;
use crate::error::Result;
use crate::recorder::status::read_status;

pub fn run(config: &Config, json: bool, out: &mut dyn Write) -> Result<()> {
    let s = read_status(config)?;
    // Payloads a hook's background writer could not store yet.
    let spool = crate::import::hook::spool_figures(&config.database);
    if json {
        #[derive(serde::Serialize)]
        struct WithSpool<'a> {
            #[serde(flatten)]
            status: &'a crate::recorder::status::AggregatorStatus,
            hook_spool: Option<crate::import::hook::SpoolFigures>,
        }
        let shown = WithSpool {
            status: &s,
            hook_spool: spool,
        };
        say!(
            out,
            "{}",
            serde_json::to_string_pretty(&shown).unwrap_or_default()
        );
        return Ok(());
    }
    let recorder = if s.running {
        format!(
            "running (pid {}, up {}), {}",
            s.pid.unwrap_or_default(),
            super::output::duration(s.uptime_seconds.unwrap_or(0) * 1000),
            if !s.monitor_enabled {
                "monitor disabled"
            } else if s.connected {
                "connected"
            } else {
                "disconnected, retrying"
            }
        )
    } else {
        "not running".to_string()
    };
    say!(out, "recorder:        {recorder}");
    if s.monitor_enabled {
        say!(
            out,
            "monitor:         {}:{}",
            s.dashboard_host,
            s.dashboard_port
        );
    } else {
        say!(out, "monitor:         disabled (--no-monitor)");
    }
    if let Some(t) = &s.transcripts {
        say!(
            out,
            "transcripts:     {}{}, {} files followed, last read {}",
            t.folder,
            if t.waiting {
                " (waiting for it to exist)"
            } else {
                ""
            },
            t.files_followed,
            t.last_read_at.as_deref().unwrap_or("-")
        );
    }
    if let Some(l) = &s.listener {
        say!(
            out,
            "http hooks:      listening on {}, {} payloads received",
            l.address,
            l.payloads_received
        );
    }
    say!(out, "database:        {}", s.database.display());
    say!(out, "session files:   {}", s.save_directory.display());
    say!(
        out,
        "sessions:        {} ({} active)",
        s.sessions,
        s.active_sessions
    );
    say!(
        out,
        "events:          {} (last at {})",
        s.total_events,
        s.last_event_time.as_deref().unwrap_or("-")
    );
    if s.rejected_events > 0 {
        say!(out, "rejected input:  {}", s.rejected_events);
    }
    if let Some(spool) = &spool {
        say!(
            out,
            "hook spool:      {} payload{} waiting since {} in {} (the next hook stores {}, or `mpm-aggregate import {}`; why: {})",
            spool.waiting,
            if spool.waiting == 1 { "" } else { "s" },
            spool.oldest_received_at.as_deref().unwrap_or("-"),
            spool.folder.display(),
            if spool.waiting == 1 { "it" } else { "them" },
            spool.folder.display(),
            crate::import::hook::log_path(&config.database).display()
        );
    }
    if let Some(e) = s
        .last_error
        .as_deref()
        .filter(|_| s.running && s.monitor_enabled && !s.connected)
    {
        say!(out, "last error:      {e}");
    }
    if !s.events_by_type.is_empty() {
        let mut by_type: Vec<_> = s.events_by_type.iter().collect();
        by_type.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        say!(out, "by type:         {}", shown.join(", "));
    }
    Ok(())
}
