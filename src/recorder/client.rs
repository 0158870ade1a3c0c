//! The connection to the monitor and its supervision: [`supervise`] connects,
//! reads every packet until the connection ends, backs off (1 s doubling to
//! 30 s, with jitter), reconnects, forever until shutdown. Each (re)connection
//! asks the monitor for its history both ways monitors answer (`get_history`,
//! and claude-mpm 5.x's `hook:history:get`) and logs what came back, or that
//! nothing did; the store drops what it already has.
//!
//! Every packet the server sends becomes writer messages here (an event, a
//! control marker or a rejection with its reason): the invariant
//! `stored + rejected (+ control, duplicates) = received` holds whatever the
//! Socket.IO layer could parse. Nothing here touches SQLite.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::socketio::{Connection, Ended, Received};
use super::Shared;
use crate::error::{AggregatorError, Result};
use crate::ingest::{
    normalize, split_capture_line, DedupSalt, NormalizeOptions, Outcome, Rejection,
};
use crate::store::writer::WriterMsg;

/// First and largest delay between connection attempts.
const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long opening a connection may take, up to the server's acknowledgement.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a monitor has to answer a history request before the log says it did not.
pub const HISTORY_WAIT: Duration = Duration::from_secs(5);
/// The history requests sent on every connection, and the answer each gets.
/// Older monitors (claude-mpm's Socket.IO server) answer `get_history` with
/// `history`; claude-mpm 5.x's monitor has no handler for it and answers
/// `hook:history:get` with `hook:history:response` instead.
const HISTORY_REQUESTS: [(&str, &str); 2] = [
    ("hook:history:get", "hook:history:response"),
    ("get_history", "history"),
];
/// The socket event name claude-mpm's monitor broadcast the events of its
/// history under (its history holds bare payloads, without their names).
const MPM_HISTORY_EVENT_NAME: &str = "claude_event";

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

/// Rejection of a value the JSON parser could not take.
fn unparsable(
    name: Option<&str>,
    raw: &RawValue,
    e: &serde_json::Error,
    at: DateTime<Utc>,
) -> Outcome {
    let why = e.to_string();
    let reason = if why.starts_with("recursion limit exceeded") {
        "payload nested deeper than 128 levels, the JSON parser's limit".to_string()
    } else {
        format!("payload cannot be parsed as JSON: {why}")
    };
    Outcome::Rejected(Rejection::of_text(name, reason, raw.get(), at))
}

/// One event: its first argument, parsed and normalized.
fn event_outcomes(
    name: &str,
    arg: Option<&RawValue>,
    at: DateTime<Utc>,
    opts: &NormalizeOptions,
) -> Vec<Outcome> {
    let value = match arg.map(|raw| (raw, serde_json::from_str::<Value>(raw.get()))) {
        None => Value::Null,
        Some((_, Ok(v))) => v,
        Some((raw, Err(e))) => return vec![unparsable(Some(name), raw, &e, at)],
    };
    normalize(name, value, at, opts, &mut DedupSalt::ReceivedAt)
}

/// A history answer as an object: `{"events": [...], ...}`.
#[derive(Deserialize)]
struct HistoryObject<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// A history answer: its elements parsed one by one, so that an element the
/// parser cannot take costs that element only. Returns the outcomes and the
/// number of elements (`None` when the answer has no list of events).
fn history_outcomes(
    name: &str,
    arg: Option<&RawValue>,
    at: DateTime<Utc>,
    opts: &NormalizeOptions,
) -> (Vec<Outcome>, Option<usize>) {
    let items = arg.and_then(|raw| {
        serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .ok()
            .or_else(|| {
                serde_json::from_str::<HistoryObject>(raw.get())
                    .ok()
                    .map(|o| o.events)
            })
    });
    let Some(items) = items else {
        // The normalizer says what is wrong with it.
        let mut outcomes = event_outcomes("history", arg, at, opts);
        for o in &mut outcomes {
            if let Outcome::Rejected(r) = o {
                r.socket_event = Some(name.to_string());
            }
        }
        return (outcomes, None);
    };
    let bare_means_mpm = name == HISTORY_REQUESTS[0].1;
    let mut good = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for item in &items {
        match serde_json::from_str::<Value>(item.get()) {
            Ok(v) if bare_means_mpm => {
                let (event, data) = split_capture_line(v);
                let event = event.unwrap_or_else(|| MPM_HISTORY_EVENT_NAME.to_string());
                good.push(json!({"event": event, "data": data}));
            }
            Ok(v) => good.push(v),
            Err(e) => bad.push(unparsable(Some(name), item, &e, at)),
        }
    }
    let mut outcomes = normalize(
        "history",
        json!({ "events": good }),
        at,
        opts,
        &mut DedupSalt::ReceivedAt,
    );
    outcomes.extend(bad);
    (outcomes, Some(items.len()))
}

/// Whether history was asked for on this connection and answered.
struct HistoryWait {
    deadline: Option<Instant>,
    reconnection: bool,
}

impl HistoryWait {
    /// The answer to `request` brought `items` events.
    fn answered(&mut self, answer: &str, items: Option<usize>) {
        self.deadline = None;
        let request = HISTORY_REQUESTS
            .iter()
            .find(|(_, a)| *a == answer)
            .map_or("history", |(r, _)| r);
        match items {
            Some(n) => tracing::info!(
                "history: the monitor sent {n} events in answer to {request} (those already stored are skipped)"
            ),
            None => tracing::warn!(
                "history: the monitor's answer to {request} holds no list of events; rejected"
            ),
        }
    }

    fn give_up(&mut self) {
        self.deadline = None;
        let asked = HISTORY_REQUESTS.map(|(r, _)| r).join(" and ");
        if self.reconnection {
            tracing::warn!(
                "history: no answer from the monitor within {}s (asked with {asked}); what it broadcast while the recorder was disconnected is not recorded",
                HISTORY_WAIT.as_secs()
            );
        } else {
            tracing::info!(
                "history: no answer from the monitor within {}s (asked with {asked}); recording from now on",
                HISTORY_WAIT.as_secs()
            );
        }
    }
}

/// Turns one received item into writer messages; `false` once the writer is gone.
async fn on_received(shared: &Shared, item: Received, history: &mut HistoryWait) -> bool {
    let at = Utc::now();
    let opts = NormalizeOptions {
        max_event_bytes: shared.max_event_bytes,
        ..NormalizeOptions::default()
    };
    let is_history_answer = |name: &str| HISTORY_REQUESTS.iter().any(|(_, a)| *a == name);
    let outcomes =
        match item {
            Received::Event { name, args } if is_history_answer(&name) => {
                let (outcomes, items) =
                    history_outcomes(&name, args.first().map(|b| &**b), at, &opts);
                history.answered(&name, items);
                outcomes
            }
            Received::Event { name, args } => {
                event_outcomes(&name, args.first().map(|b| &**b), at, &opts)
            }
            // Rare: read as raw text like any history answer.
            Received::Parsed { name, first } if is_history_answer(&name) => {
                match first
                    .map(|v| serde_json::value::to_raw_value(&v))
                    .transpose()
                {
                    Ok(raw) => {
                        let (outcomes, items) = history_outcomes(&name, raw.as_deref(), at, &opts);
                        history.answered(&name, items);
                        outcomes
                    }
                    Err(e) => vec![Outcome::Rejected(Rejection::of_text(
                        Some(&name),
                        format!("payload cannot be written back as JSON: {e}"),
                        "",
                        at,
                    ))],
                }
            }
            Received::Parsed { name, first } => normalize(
                &name,
                first.unwrap_or(Value::Null),
                at,
                &opts,
                &mut DedupSalt::ReceivedAt,
            ),
            Received::Binary { name, bytes } => vec![Outcome::Rejected(Rejection {
                socket_event: name,
                reason: format!("binary payload of {bytes} bytes (events are JSON)"),
                payload: String::new(),
                payload_bytes: bytes,
                received_at: at,
            })],
            Received::Unusable { name, reason, text } => vec![Outcome::Rejected(
                Rejection::of_text(name.as_deref(), reason, &text, at),
            )],
        };
    record(shared, outcomes).await
}

/// Counts `outcomes` as received and hands them to the writer; `false` once
/// the writer is gone.
async fn record(shared: &Shared, outcomes: Vec<Outcome>) -> bool {
    // Items received: one per event, one per element of a history answer.
    shared
        .events_received
        .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
    for outcome in outcomes {
        if let Outcome::Rejected(r) = &outcome {
            let event = r.socket_event.as_deref().unwrap_or("-");
            tracing::warn!(event, "rejected an event: {}", r.reason);
        }
        // Waiting here is the backpressure: the socket is not read while the
        // writer's channel is full.
        if crate::store::writer::send_async(&shared.writer_tx, WriterMsg::from(outcome))
            .await
            .is_err()
        {
            tracing::error!("the writer stopped; events are no longer recorded");
            return false;
        }
    }
    true
}

/// How reading a connection ended.
enum Pumped {
    Shutdown,
    WriterGone,
    Ended(Ended),
}

/// Reads `conn` until it ends, shutdown is asked, or the writer is gone.
async fn pump(
    shared: &Shared,
    conn: &mut Connection,
    history: &mut HistoryWait,
    shutdown: &mut watch::Receiver<bool>,
) -> Pumped {
    loop {
        let deadline = history.deadline;
        let history_timeout = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => return Pumped::Shutdown,
            _ = history_timeout => history.give_up(),
            next = conn.next() => match next {
                Ok(item) => {
                    if !on_received(shared, item, history).await {
                        return Pumped::WriterGone;
                    }
                }
                Err(end) => return Pumped::Ended(end),
            },
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
    // Whoever started the recorder announces the outcome of the first
    // attempt (told through `ready`); from then on this loop logs each change
    // of state, so that no state is reported twice.
    let mut ready = Some(ready);
    let mut backoff = Backoff::default();
    let mut attempts: u64 = 0;
    let mut was_connected = false;
    // Set when the last connection ended on a frame the transport could not
    // decode: the monitor's history likely holds it too, and asking for it
    // would end the next connection the same way.
    let mut skip_history = false;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let opened = tokio::select! {
            opened = Connection::open(&url, CONNECT_TIMEOUT) => opened,
            _ = shutdown.changed() => return Ok(()),
        };
        match opened {
            Ok(mut conn) => {
                attempts = 0;
                backoff.reset();
                shared.set_connected(true, None);
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                } else if was_connected {
                    tracing::info!("reconnected to the monitor at {url}");
                } else {
                    tracing::info!("connected to the monitor at {url}");
                }
                let mut history = HistoryWait {
                    deadline: None,
                    reconnection: was_connected,
                };
                was_connected = true;
                if skip_history {
                    tracing::warn!("history not asked: the last connection ended on a frame the transport could not decode, which the history would send again; events sent while reconnecting may be missing");
                } else if history_limit > 0 {
                    let request = json!({ "limit": history_limit });
                    for (name, _) in HISTORY_REQUESTS {
                        if let Err(e) = conn.emit(name, &request).await {
                            tracing::debug!("{name} not sent: {e}");
                        }
                    }
                    history.deadline = Some(Instant::now() + HISTORY_WAIT);
                }
                skip_history = false;
                let pumped = pump(&shared, &mut conn, &mut history, &mut shutdown).await;
                conn.close().await;
                let why = match pumped {
                    Pumped::Shutdown | Pumped::WriterGone => {
                        shared.set_connected(false, None);
                        return Ok(());
                    }
                    Pumped::Ended(Ended::Lost(why)) => why,
                    Pumped::Ended(Ended::Unparseable { reason, reported }) => {
                        let rejection = Rejection::of_text(
                            None,
                            format!("a frame the transport could not decode: {reason}"),
                            "",
                            Utc::now(),
                        );
                        if !reported && !record(&shared, vec![Outcome::Rejected(rejection)]).await {
                            return Ok(());
                        }
                        skip_history = true;
                        reason
                    }
                };
                shared.set_connected(false, Some(format!("connection lost: {why}")));
                tracing::warn!("lost the connection to the monitor at {url} ({why}); reconnecting");
            }
            Err(reason) => {
                attempts += 1;
                if let Some(r) = ready.take() {
                    if force {
                        // Started anyway: the caller says it is waiting.
                        let _ = r.send(Ok(()));
                    } else {
                        let e = AggregatorError::Connection {
                            url: url.clone(),
                            reason: format!("{reason} (is claude-mpm's monitor running there? --force starts anyway and keeps retrying)"),
                        };
                        let message = e.to_string();
                        let _ = r.send(Err(e));
                        return Err(AggregatorError::Recorder(message));
                    }
                }
                let e = AggregatorError::Connection {
                    url: url.clone(),
                    reason,
                };
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
