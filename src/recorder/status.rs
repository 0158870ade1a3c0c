//! `status`: what the recorder is doing, read from the database (its
//! heartbeat row and the store's counters), so any process can ask.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::daemon;
use crate::config::Config;
use crate::core::event::RecorderState;
use crate::core::time::parse_stored;
use crate::error::Result;
use crate::store::queries::store_figures;

/// A heartbeat older than this means the recorder is gone.
const HEARTBEAT_STALE_SECS: i64 = 15;

/// Status of the recorder and the store (the reference's `get_status`, and more).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AggregatorStatus {
    pub running: bool,
    pub connected: bool,
    pub state: RecorderState,
    pub pid: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub started_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub active_sessions: u64,
    pub sessions: u64,
    pub total_events: u64,
    pub events_by_type: BTreeMap<String, u64>,
    pub last_event_time: Option<String>,
    pub rejected_events: u64,
    pub events_received: u64,
    pub connections: u64,
    pub last_error: Option<String>,
    pub save_directory: PathBuf,
    pub database: PathBuf,
    pub dashboard_host: String,
    pub dashboard_port: u16,
    /// Whether the running recorder connects to the monitor (`start --no-monitor`: false).
    pub monitor_enabled: bool,
    /// The running recorder's transcript follower, when it has one.
    pub transcripts: Option<FollowerStatus>,
    /// The running recorder's http hook listener (`start --listen`), when it has one.
    pub listener: Option<ListenerStatus>,
}

/// What the http hook listener (`start --listen`) does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListenerStatus {
    pub address: String,
    /// Hook requests received with a body (stored or rejected).
    pub payloads_received: u64,
}

/// What the transcript follower (`start --transcripts`) does.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FollowerStatus {
    pub folder: String,
    /// The folder does not exist yet: it is waited for.
    pub waiting: bool,
    pub files_followed: u64,
    /// When it last read a line.
    pub last_read_at: Option<String>,
}

/// Reads the status for the database and activity directory of `config`.
pub fn read_status(config: &Config) -> Result<AggregatorStatus> {
    let mut status = AggregatorStatus {
        state: RecorderState::Stopped,
        save_directory: config.activity_directory.clone(),
        database: config.database.clone(),
        dashboard_host: config.dashboard_host.clone(),
        dashboard_port: config.dashboard_port,
        monitor_enabled: true,
        ..AggregatorStatus::default()
    };
    if !config.database.exists() {
        return Ok(status);
    }
    let conn = crate::store::open_read_only(&config.database)?;
    let figures = store_figures(&conn)?;
    status.active_sessions = figures.active_sessions;
    status.sessions = figures.sessions;
    status.total_events = figures.total_events;
    status.events_by_type = figures.events_by_type;
    status.rejected_events = figures.rejected_events;
    status.last_event_time = figures.last_event_time;

    #[allow(clippy::type_complexity)]
    let row: Option<(Option<i64>, String, bool, Option<String>, Option<i64>, Option<String>, Option<String>, i64, i64, Option<String>, Option<String>, i64)> = conn
        .query_row(
            "SELECT pid, state, connected, host, port, started_at, heartbeat_at, events_received, connections, last_error,
                    listen_address, http_payloads
             FROM recorder_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?)),
        )
        .optional()
        .map_err(|e| crate::error::AggregatorError::db(&config.database, e))?;
    if let Some((
        pid,
        state,
        connected,
        host,
        port,
        started_at,
        heartbeat_at,
        received,
        connections,
        last_error,
        listen_address,
        http_payloads,
    )) = row
    {
        let fresh = heartbeat_at
            .as_deref()
            .and_then(parse_stored)
            .is_some_and(|t| (Utc::now() - t).num_seconds() < HEARTBEAT_STALE_SECS);
        let alive = pid
            .is_some_and(|p| p == i64::from(std::process::id()) || daemon::process_alive(p as i32));
        let state = RecorderState::parse(&state);
        status.running = state != RecorderState::Stopped && fresh && alive;
        status.connected = status.running && connected;
        status.state = if status.running {
            state
        } else {
            RecorderState::Stopped
        };
        status.pid = pid.filter(|_| status.running);
        status.uptime_seconds = started_at
            .as_deref()
            .and_then(parse_stored)
            .filter(|_| status.running)
            .map(|t| (Utc::now() - t).num_seconds());
        status.started_at = started_at;
        status.heartbeat_at = heartbeat_at;
        status.events_received = received as u64;
        status.connections = connections as u64;
        status.last_error = last_error;
        if status.running {
            if let Some(h) = host {
                status.dashboard_host = h;
            }
            if let Some(p) = port {
                status.dashboard_port = p as u16;
            }
            read_sources(&conn, pid, &mut status);
            status.listener = listen_address.map(|address| ListenerStatus {
                address,
                payloads_received: http_payloads.max(0) as u64,
            });
        }
    }
    Ok(status)
}

/// The running recorder's sources (`recorder_sources`, written by that
/// recorder); absent from a database older than the table.
fn read_sources(conn: &rusqlite::Connection, pid: Option<i64>, status: &mut AggregatorStatus) {
    #[allow(clippy::type_complexity)]
    let row: Option<(Option<i64>, bool, Option<String>, bool, i64, Option<String>)> = conn
        .query_row(
            "SELECT pid, monitor_enabled, transcripts_dir, transcripts_waiting, files_followed, last_read_at
             FROM recorder_sources WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .optional()
        .ok()
        .flatten();
    let Some((row_pid, monitor, dir, waiting, files, last_read_at)) = row else {
        return;
    };
    if row_pid != pid {
        return;
    }
    status.monitor_enabled = monitor;
    status.transcripts = dir.map(|folder| FollowerStatus {
        folder,
        waiting,
        files_followed: files.max(0) as u64,
        last_read_at,
    });
}
