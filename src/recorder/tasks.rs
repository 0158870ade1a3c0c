//! Periodic work inside the recorder: the heartbeat row other processes read,
//! the session timeout sweeper, the daily cleanup, and the status line of a
//! foreground recorder.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{ask, RecorderOptions, Shared};
use std::io::Write;

use crate::config::Config;
use crate::store::writer::WriterMsg;

/// How often the recorder's row is refreshed.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const CLEANUP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Deletes data older than `days` days (`auto_cleanup_days`).
pub async fn cleanup(tx: &flume::Sender<WriterMsg>, days: u64) {
    match ask(tx, |reply| WriterMsg::Prune {
        older_than_days: days,
        reply,
    })
    .await
    {
        Some(Ok(r)) if r.sessions > 0 || r.events > 0 => {
            tracing::info!(
                "cleanup: removed {} sessions and {} events older than {days} days",
                r.sessions,
                r.events
            )
        }
        Some(Err(e)) => tracing::error!("cleanup failed: {e}"),
        _ => {}
    }
}

fn status_line(shared: &Shared, config: &Config, monitor: bool) -> String {
    let figures = crate::store::open_read_only(&config.database)
        .and_then(|c| crate::store::queries::store_figures(&c));
    let (events, active) = figures
        .map(|f| (f.total_events, f.active_sessions))
        .unwrap_or_default();
    let hooks = shared
        .listener
        .get()
        .map(|l| {
            format!(
                " · {} http hook payloads",
                l.payloads.load(Ordering::Relaxed)
            )
        })
        .unwrap_or_default();
    format!(
        "[{}] {} · {events} events recorded · {active} active sessions · {} received this run{hooks}",
        chrono::Local::now().format("%H:%M:%S"),
        if !monitor {
            "monitor disabled"
        } else if shared.is_connected() {
            "connected"
        } else {
            "disconnected, retrying"
        },
        shared.events_received.load(Ordering::Relaxed),
    )
}

/// Runs until shutdown: heartbeat, sweeper, cleanup and status lines.
pub async fn periodic(
    shared: Arc<Shared>,
    config: Config,
    options: RecorderOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let tx = shared.writer_tx.clone();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let timeout_secs = config.session_timeout_minutes * 60.0;
    let sweeping = timeout_secs > 0.0;
    // Short timeouts are swept more often, so a session never waits much past its timeout.
    let sweep_every = if sweeping {
        SWEEP_EVERY.min(Duration::from_secs_f64((timeout_secs / 2.0).max(0.2)))
    } else {
        SWEEP_EVERY
    };
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.tick().await;
    let mut clean = tokio::time::interval(CLEANUP_EVERY);
    clean.tick().await; // the first cleanup ran at start
    let status_every = Duration::from_secs(config.status_interval_seconds.max(1));
    let mut status = tokio::time::interval(status_every);
    status.tick().await;
    let timeout = chrono::Duration::milliseconds((timeout_secs * 1000.0).min(1e15) as i64);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = heartbeat.tick() => {
                if tx.send_async(WriterMsg::RecorderState(Box::new(shared.state_update()))).await.is_err() {
                    return;
                }
            }
            _ = sweep.tick(), if sweeping => {
                if let Some(ids) = ask(&tx, |reply| WriterMsg::FinalizeActive { idle_for: Some(timeout), reply: Some(reply) }).await {
                    if !ids.is_empty() {
                        tracing::info!("finalized {} idle session(s) after {} minutes without events", ids.len(), config.session_timeout_minutes);
                    }
                }
            }
            _ = clean.tick(), if config.auto_cleanup_days > 0 => cleanup(&tx, config.auto_cleanup_days).await,
            _ = status.tick(), if options.status_lines && config.status_interval_seconds > 0 => {
                let line = {
                    let shared = shared.clone();
                    let config = config.clone();
                    let monitor = !options.no_monitor;
                    tokio::task::spawn_blocking(move || status_line(&shared, &config, monitor)).await.unwrap_or_default()
                };
                // A closed output must not stop the recording (nor panic as println! would).
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        }
    }
}
