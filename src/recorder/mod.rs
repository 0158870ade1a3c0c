//! The live recorder: the connection to the monitor under supervision
//! ([`client`], over a Socket.IO layer of its own: `socketio`), the periodic work around it (heartbeat, session timeout sweeper, cleanup,
//! status lines: `tasks`), the daemon and its PID file ([`daemon`]) and the
//! status other processes read ([`status`]).

pub mod client;
pub mod daemon;
pub mod follower;
pub mod listener;
mod socketio;
pub mod status;
mod tasks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use crate::config::Config;
use crate::core::event::RecorderState;
use crate::error::{AggregatorError, Result};
use crate::store::writer::{RecorderStateUpdate, Writer, WriterMsg, WriterStats};

/// State shared by the connection supervisor (which reads the socket), the
/// periodic tasks and the stopping code; the library's handle reads it too.
pub struct Shared {
    /// The writer's bounded channel: the only way to the database.
    pub writer_tx: flume::Sender<WriterMsg>,
    /// Copied from the configuration, read by the normalizer.
    pub max_event_bytes: usize,
    pub host: String,
    pub port: u16,
    pub started_at: DateTime<Utc>,
    /// Items received from the monitor (an event, a history element, a packet
    /// that could not be parsed), each later stored, counted as control or
    /// duplicate, or rejected. Written by the supervisor only.
    pub events_received: AtomicU64,
    /// Successful connections so far. Written by the supervisor only.
    pub connections: AtomicU64,
    /// Written by the supervisor; read by the heartbeat and status lines.
    connected: AtomicBool,
    /// Set once by `run` when shutdown begins, so the last heartbeat says "stopped".
    stopping: AtomicBool,
    /// Why the last connection attempt failed or the connection ended, while
    /// disconnected; cleared on connection.
    last_error: Mutex<Option<String>>,
    /// The http hook listener's figures (`start --listen`), once it listens.
    pub listener: std::sync::OnceLock<Arc<listener::ListenerStats>>,
}

impl Shared {
    fn new(config: &Config, writer_tx: flume::Sender<WriterMsg>) -> Self {
        Shared {
            writer_tx,
            max_event_bytes: config.max_event_bytes,
            host: config.dashboard_host.clone(),
            port: config.dashboard_port,
            started_at: Utc::now(),
            events_received: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_error: Mutex::new(None),
            listener: std::sync::OnceLock::new(),
        }
    }

    /// Whether the socket is connected now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool, error: Option<String>) {
        self.connected.store(connected, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            if connected {
                *e = None;
            } else if error.is_some() {
                *e = error;
            }
        }
    }

    /// The last connection error, while disconnected.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The row written to `recorder_state`.
    pub fn state_update(&self) -> RecorderStateUpdate {
        let stopping = self.stopping.load(Ordering::Relaxed);
        let connected = self.is_connected();
        RecorderStateUpdate {
            pid: std::process::id(),
            state: if stopping {
                RecorderState::Stopped
            } else if connected {
                RecorderState::Connected
            } else {
                RecorderState::Disconnected
            },
            connected: connected && !stopping,
            host: self.host.clone(),
            port: self.port,
            started_at: Some(self.started_at),
            stopped: stopping,
            events_received: self.events_received.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            last_error: self.last_error(),
            listen_address: self.listener.get().map(|l| l.address.clone()),
            http_payloads: self
                .listener
                .get()
                .map_or(0, |l| l.payloads.load(Ordering::Relaxed)),
        }
    }
}

/// How to run the recorder.
#[derive(Debug, Clone, Default)]
pub struct RecorderOptions {
    /// Start even when the monitor is unreachable, and keep retrying.
    pub force: bool,
    /// Print a status line every `status_interval_seconds`.
    pub status_lines: bool,
    /// Run without the Socket.IO client (`start --no-monitor`).
    pub no_monitor: bool,
    /// Follow Claude Code's transcripts in this folder (`start --transcripts`).
    pub transcripts: Option<std::path::PathBuf>,
    /// Accept Claude Code http hooks on this address (`start --listen`).
    pub listen: Option<std::net::SocketAddr>,
    /// Allow a non-loopback `listen` address (`--listen-any`, `listen_any`).
    pub listen_any: bool,
}

/// What a recorder run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub stats: WriterStats,
    pub events_received: u64,
    /// Sessions still active at stop, finalized then.
    pub finalized_at_stop: usize,
}

/// Checks that the activity directory can be created and written.
pub fn check_activity_dir(dir: &std::path::Path) -> Result<()> {
    crate::store::create_private_dir(dir)?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| AggregatorError::io(dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Sends a request to the writer and waits for the answer; `None` when the
/// writer is gone (a request queued as it died would otherwise wait forever).
async fn ask<T>(
    tx: &flume::Sender<WriterMsg>,
    make: impl FnOnce(flume::Sender<T>) -> WriterMsg,
) -> Option<T> {
    let (reply, rx) = flume::bounded(1);
    tx.send_async(make(reply)).await.ok()?;
    loop {
        tokio::select! {
            answer = rx.recv_async() => return answer.ok(),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if tx.is_disconnected() {
                    return None;
                }
            }
        }
    }
}

/// Runs the recorder until `shutdown` turns true. `ready` is told once it is
/// recording (connected, or started with `force`), or why it could not start.
pub async fn run(
    config: Config,
    options: RecorderOptions,
    mut shutdown: watch::Receiver<bool>,
    ready: oneshot::Sender<Result<Arc<Shared>>>,
) -> Result<RunReport> {
    let setup = (|| {
        config.validate()?;
        if let Some(addr) = &options.listen {
            listener::check_address(addr, options.listen_any || config.listen_any)?;
        }
        if !config.enabled {
            return Err(AggregatorError::Config(
                "event_aggregator.enabled is false: recording is switched off".into(),
            ));
        }
        check_activity_dir(&config.activity_directory)?;
        Writer::spawn(crate::documents::recorder_writer_config(&config))
    })();
    let writer = match setup {
        Ok(w) => w,
        Err(e) => {
            let message = e.to_string();
            let _ = ready.send(Err(e));
            return Err(AggregatorError::Recorder(message));
        }
    };
    let tx = writer.sender();
    let shared = Arc::new(Shared::new(&config, tx.clone()));
    let hook_listener = match options.listen {
        Some(addr) => match listener::bind(addr).await {
            Ok(l) => {
                let address = l
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| addr.to_string());
                let stats = Arc::new(listener::ListenerStats {
                    address,
                    ..Default::default()
                });
                let _ = shared.listener.set(stats.clone());
                Some((l, stats))
            }
            Err(e) => {
                let message = e.to_string();
                let _ = ready.send(Err(e));
                let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
                return Err(AggregatorError::Recorder(message));
            }
        },
        None => None,
    };
    if config.auto_cleanup_days > 0 {
        tasks::cleanup(&tx, config.auto_cleanup_days).await;
    }

    let _ = tx
        .send_async(WriterMsg::Sources(Box::new(
            crate::store::writer::SourcesUpdate {
                pid: std::process::id(),
                monitor_enabled: !options.no_monitor,
                transcripts_dir: options
                    .transcripts
                    .as_ref()
                    .map(|d| d.display().to_string()),
                transcripts_waiting: options.transcripts.as_ref().is_some_and(|d| !d.is_dir()),
                ..Default::default()
            },
        )))
        .await;
    let follower_stop = Arc::new(AtomicBool::new(false));
    let follower = match &options.transcripts {
        Some(dir) => match follower::spawn(
            follower::FollowerConfig {
                dir: dir.clone(),
                database: config.database.clone(),
                max_event_bytes: config.max_event_bytes,
                monitor_enabled: !options.no_monitor,
            },
            shared.clone(),
            follower_stop.clone(),
        ) {
            Ok(handle) => Some(handle),
            Err(e) => {
                let message = format!("cannot start the transcript follower: {e}");
                let _ = ready.send(Err(AggregatorError::Recorder(message.clone())));
                let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
                return Err(AggregatorError::Recorder(message));
            }
        },
        None => None,
    };
    let supervisor = if options.no_monitor {
        let _ = ready.send(Ok(shared.clone()));
        None
    } else {
        let url = client::monitor_url(&config.dashboard_host, config.dashboard_port);
        let (client_ready_tx, client_ready) = oneshot::channel();
        let supervisor = tokio::spawn(client::supervise(
            shared.clone(),
            url,
            config.history_limit,
            options.force,
            shutdown.clone(),
            client_ready_tx,
        ));
        match client_ready.await {
            Ok(Ok(())) => {
                let _ = ready.send(Ok(shared.clone()));
            }
            Ok(Err(e)) => {
                let message = e.to_string();
                let _ = ready.send(Err(e));
                let _ = supervisor.await;
                follower_stop.store(true, Ordering::Relaxed);
                if let Some(f) = follower {
                    let _ = tokio::task::spawn_blocking(move || f.join()).await;
                }
                let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
                return Err(AggregatorError::Recorder(message));
            }
            Err(_) => {
                let _ = ready.send(Err(AggregatorError::Recorder(
                    "the connection task ended unexpectedly".into(),
                )));
            }
        }
        Some(supervisor)
    };
    let server = hook_listener.map(|(l, stats)| {
        tokio::spawn(listener::serve(
            l,
            shared.clone(),
            stats,
            config.max_event_bytes,
            shutdown.clone(),
        ))
    });
    let periodic = tokio::spawn(tasks::periodic(
        shared.clone(),
        config.clone(),
        options.clone(),
        shutdown.clone(),
    ));

    // Run until asked to stop (or until the writer fails).
    let writer_failed = loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { break false; }
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if tx.is_disconnected() { break true; }
            }
        }
    };
    shared.stopping.store(true, Ordering::Relaxed);
    periodic.abort();
    // The listener answers the requests it has begun, then stops accepting.
    if let Some(server) = server {
        if writer_failed {
            server.abort();
        } else if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            tracing::warn!("the hook listener did not stop within 5 s");
        }
    }
    // The supervisor sees the same shutdown signal and disconnects; a failed
    // writer stops it through a closed channel.
    if let Some(supervisor) = supervisor {
        if writer_failed {
            supervisor.abort();
        } else {
            let _ = supervisor.await;
        }
    }
    // The follower sends what its readers still hold before the sessions are finalized.
    follower_stop.store(true, Ordering::Relaxed);
    if let Some(f) = follower {
        if !matches!(
            tokio::task::spawn_blocking(move || f.join()).await,
            Ok(Ok(()))
        ) {
            tracing::error!("the transcript follower failed (see the log above)");
        }
    }
    let finalized = ask(&tx, |reply| WriterMsg::FinalizeActive {
        idle_for: None,
        reply: Some(reply),
    })
    .await
    .unwrap_or_default();
    let _ = tx
        .send_async(WriterMsg::RecorderState(Box::new(shared.state_update())))
        .await;
    let stats = tokio::task::spawn_blocking(move || writer.shutdown())
        .await
        .map_err(|e| AggregatorError::Recorder(format!("writer shutdown failed: {e}")))??;
    Ok(RunReport {
        stats,
        events_received: shared.events_received.load(Ordering::Relaxed),
        finalized_at_stop: finalized.len(),
    })
}

/// A recorder running on a thread of its own, for library use.
pub struct RecorderHandle {
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<Result<RunReport>>>,
    pub shared: Arc<Shared>,
}

impl RecorderHandle {
    /// Starts a recorder on its own thread and runtime; returns once it records.
    pub fn start(config: Config, options: RecorderOptions) -> Result<RecorderHandle> {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("mpm-aggregate-recorder".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        AggregatorError::Recorder(format!("cannot start the async runtime: {e}"))
                    })?;
                runtime.block_on(run(config, options, shutdown_rx, ready_tx))
            })
            .map_err(|e| {
                AggregatorError::Recorder(format!("cannot start the recorder thread: {e}"))
            })?;
        match ready_rx.blocking_recv() {
            Ok(Ok(shared)) => Ok(RecorderHandle {
                shutdown: shutdown_tx,
                thread: Some(thread),
                shared,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(AggregatorError::Recorder(
                    "the recorder stopped before it started".into(),
                )),
            },
        }
    }

    /// Stops the recorder: disconnects, drains the channel, finalizes every
    /// active session (files written) and returns what it did.
    pub fn stop(mut self) -> Result<RunReport> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<RunReport> {
        let _ = self.shutdown.send(true);
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(AggregatorError::Recorder(
                    "the recorder thread panicked".into(),
                ))
            }),
            None => Ok(RunReport::default()),
        }
    }
}

impl Drop for RecorderHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop_inner() {
                tracing::error!("{e}");
            }
        }
    }
}
