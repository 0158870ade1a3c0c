//! The Socket.IO client and its supervision.
//!
//! rust_socketio's own reconnect is switched off: it does not retry a failed
//! first connection, and a manual disconnect does not stop it (upstream issue
//! #374). Instead [`supervise`] owns the loop: connect, watch for the
//! connection's end, back off (1 s doubling to 30 s, with jitter), reconnect,
//! forever until shutdown. Every (re)connection asks the monitor for its
//! history; the store drops what it already has.
//!
//! The socket callback only normalizes and hands events to the writer's
//! bounded channel; it never touches SQLite.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::Shared;
use crate::error::{AggregatorError, Result};
use crate::ingest::{normalize, DedupSalt, NormalizeOptions, Outcome, Rejection};
use crate::store::writer::WriterMsg;

/// First and largest delay between connection attempts.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection silent this long is probed, to notice a peer that closed cleanly.
const PROBE_AFTER: Duration = Duration::from_secs(5);
/// How long the server has to acknowledge a connection.
const CONNECT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Event name of the probe; monitors ignore events they have no handler for.
const PROBE_EVENT: &str = "mpm_aggregate:probe";

/// Exponential backoff with ±20% jitter.
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        base.mul_f64(0.8 + fastrand::f64() * 0.4)
    }

    /// Starts again from the shortest delay (after a successful connection).
    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// The monitor's URL.
pub fn monitor_url(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    format!("http://{host}:{port}")
}

/// Turns one received Socket.IO event into writer messages.
async fn on_event(shared: &Shared, event: Event, payload: Payload) {
    let received_at = Utc::now();
    shared.mark_activity();
    let name = match &event {
        Event::Custom(name) => name.clone(),
        other => other.as_str().to_string(),
    };
    let outcomes = match payload {
        Payload::Text(mut args) => {
            let first = if args.is_empty() {
                Value::Null
            } else {
                args.swap_remove(0)
            };
            let opts = NormalizeOptions {
                max_event_bytes: shared.max_event_bytes,
            };
            normalize(&name, first, received_at, &opts, &mut DedupSalt::ReceivedAt)
        }
        #[allow(deprecated)]
        Payload::String(text) => {
            let opts = NormalizeOptions {
                max_event_bytes: shared.max_event_bytes,
            };
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => normalize(&name, v, received_at, &opts, &mut DedupSalt::ReceivedAt),
                Err(e) => vec![Outcome::Rejected(Rejection::of_text(
                    Some(&name),
                    format!("not JSON: {e}"),
                    &text,
                    received_at,
                ))],
            }
        }
        Payload::Binary(bytes) => vec![Outcome::Rejected(Rejection {
            socket_event: Some(name.clone()),
            reason: format!("binary payload of {} bytes (events are JSON)", bytes.len()),
            payload: String::new(),
            payload_bytes: bytes.len(),
            received_at,
        })],
    };
    // Items received: one per event, one per element of a `history` batch.
    shared
        .events_received
        .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
    for outcome in outcomes {
        if let Outcome::Rejected(r) = &outcome {
            tracing::warn!(event = %name, "rejected an event: {}", r.reason);
        }
        let msg = WriterMsg::from(outcome);
        // Waiting here is the backpressure: the socket is not read while the
        // writer's channel is full.
        if crate::store::writer::send_async(&shared.writer_tx, msg)
            .await
            .is_err()
        {
            tracing::error!("the writer stopped; events are no longer recorded");
            shared.lost.notify_one();
            return;
        }
    }
}

/// Why a connection failed, in words: rust_socketio's own message ("EngineIO
/// Error") hides the cause in its source chain.
fn connect_reason(e: &rust_socketio::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    crate::error::one_line(&parts.last().cloned().unwrap_or_default())
}

/// Opens one connection with every callback in place.
async fn connect(shared: &Arc<Shared>, url: &str, generation: u64) -> Result<Client> {
    let on_any = {
        let shared = shared.clone();
        move |event: Event, payload: Payload, _client: Client| {
            let shared = shared.clone();
            async move { on_event(&shared, event, payload).await }.boxed()
        }
    };
    let on_lost = |what: &'static str| {
        let shared = shared.clone();
        move |payload: Payload, _client: Client| {
            let shared = shared.clone();
            async move {
                let detail = match payload {
                    Payload::Text(v) => v
                        .first()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .unwrap_or_default(),
                    #[allow(deprecated)]
                    Payload::String(s) => s,
                    Payload::Binary(_) => String::new(),
                };
                let detail = crate::error::one_line(&detail);
                tracing::debug!("socket {what}: {detail}");
                if detail.contains("JSON") || detail.contains("json") {
                    // rust_socketio could not parse a packet (serde_json's
                    // depth limit of 128, say) and ended its stream: the event
                    // is gone, so record that something was dropped.
                    let rejection = Rejection::of_text(
                        None,
                        format!("payload dropped by the Socket.IO client library: {detail}"),
                        "",
                        Utc::now(),
                    );
                    shared.events_received.fetch_add(1, Ordering::Relaxed);
                    let msg = WriterMsg::Rejected(Box::new(rejection));
                    let _ = crate::store::writer::send_async(&shared.writer_tx, msg).await;
                    shared.unparseable.store(generation, Ordering::Relaxed);
                }
                shared.lost_generation.store(generation, Ordering::Relaxed);
                shared.lost.notify_waiters();
            }
            .boxed()
        }
    };
    let on_ack = {
        let shared = shared.clone();
        move |_: Payload, _: Client| {
            shared.acks.send_modify(|n| *n += 1);
            async {}.boxed()
        }
    };
    // WebSocket only: rust_engineio's long-polling transport (used by `Any`
    // until it upgrades, and for good when the upgrade fails) was seen to cut
    // a packet in two and stall. claude-mpm's monitor (aiohttp) and any
    // Socket.IO v4+ server accept a direct WebSocket connection.
    ClientBuilder::new(url)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .on_any(on_any)
        .on(Event::Connect, on_ack)
        .on(Event::Error, on_lost("error"))
        .on(Event::Close, on_lost("closed"))
        .connect()
        .await
        .map_err(|e| AggregatorError::Connection {
            url: url.to_string(),
            reason: connect_reason(&e),
        })
}

/// Waits until connection `generation` is lost or shutdown is asked.
/// Returns `true` on shutdown.
///
/// Every error the client library reports ends the connection: its receive
/// stream may be over (a packet it cannot parse ends it for good) while the
/// socket itself still accepts writes.
async fn watch_connection(
    shared: &Shared,
    client: &Client,
    generation: u64,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut tick = tokio::time::interval(PROBE_AFTER);
    tick.tick().await;
    loop {
        let lost = shared.lost.notified();
        if shared.lost_generation.load(Ordering::Relaxed) == generation {
            return false;
        }
        tokio::select! {
            _ = shutdown.changed() => return true,
            _ = lost => {
                if shared.lost_generation.load(Ordering::Relaxed) == generation {
                    return false;
                }
            }
            _ = tick.tick() => {
                if shared.idle_for() >= PROBE_AFTER && client.emit(PROBE_EVENT, json!({})).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Connects and stays connected until shutdown. With `force` false, a failed
/// first connection ends it with [`AggregatorError::Connection`]; `ready` is
/// told once the first connection succeeded (or at once with `force`).
pub async fn supervise(
    shared: Arc<Shared>,
    url: String,
    history_limit: u64,
    force: bool,
    mut shutdown: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
) -> Result<()> {
    let mut ready = Some(ready);
    if force {
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        }
    }
    let mut backoff = Backoff::default();
    let mut attempts: u64 = 0;
    let mut was_connected = false;
    let mut generation = 0u64;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let mut acks = shared.acks.subscribe();
        acks.mark_unchanged();
        generation += 1;
        let connected = match connect(&shared, &url, generation).await {
            // Nothing may be emitted before the server acknowledges the
            // namespace: a strict server drops such a client.
            Ok(client) => match tokio::time::timeout(CONNECT_ACK_TIMEOUT, acks.changed()).await {
                Ok(Ok(())) => Ok(client),
                _ => {
                    let _ = client.disconnect().await;
                    Err(AggregatorError::Connection {
                        url: url.clone(),
                        reason: "the server did not acknowledge the connection".into(),
                    })
                }
            },
            Err(e) => Err(e),
        };
        match connected {
            Ok(client) => {
                attempts = 0;
                backoff.reset();
                shared.set_connected(true, None);
                let n = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                if was_connected || n > 1 {
                    tracing::info!("reconnected to the monitor at {url}");
                } else {
                    tracing::info!("connected to the monitor at {url}");
                }
                was_connected = true;
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                }
                // After a packet the client library could not parse, the
                // monitor's history holds it too: asking for it would end the
                // new connection the same way.
                let skip_history =
                    generation > 1 && shared.unparseable.load(Ordering::Relaxed) == generation - 1;
                if skip_history {
                    tracing::warn!("reconnected without history: the monitor sent a payload the Socket.IO client cannot parse; events sent while reconnecting may be missing");
                } else if history_limit > 0 {
                    if let Err(e) = client
                        .emit("get_history", json!({ "limit": history_limit }))
                        .await
                    {
                        tracing::debug!("get_history not sent: {e}");
                    }
                }
                let stopping = watch_connection(&shared, &client, generation, &mut shutdown).await;
                let _ = client.disconnect().await;
                shared.set_connected(false, (!stopping).then(|| "connection lost".to_string()));
                if stopping {
                    return Ok(());
                }
                tracing::warn!("lost the connection to the monitor at {url}; reconnecting");
            }
            Err(e) => {
                if let Some(r) = ready.take() {
                    let e = match e {
                        AggregatorError::Connection { url, reason } => AggregatorError::Connection {
                            url,
                            reason: format!("{reason} (is claude-mpm's monitor running there? --force starts anyway and keeps retrying)"),
                        },
                        other => other,
                    };
                    let message = e.to_string();
                    let _ = r.send(Err(e));
                    return Err(AggregatorError::Recorder(message));
                }
                attempts += 1;
                if attempts == 1 && !was_connected {
                    tracing::warn!("monitor at {url} not reachable yet; retrying with backoff");
                }
                tracing::debug!("connection attempt {attempts} failed: {e}");
                shared.set_connected(false, Some(e.to_string()));
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
