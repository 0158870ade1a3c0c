//! `start --listen ADDR`: Claude Code `http` hooks. Each POST carries one hook
//! payload as JSON, stored as the `hook` command stores it (origin hook,
//! arrival time). The answer comes at once, 200 with an empty body (success,
//! no decision): the payload goes to the writer's channel and the response
//! does not wait for the commit. A body over the limit is answered 413, one
//! that is not a JSON object 400 (and a row in `rejected_events`), any other
//! method 405.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::watch;

use super::Shared;
use crate::error::{AggregatorError, Result};
use crate::ingest::{normalize, DedupSalt, NormalizeOptions, Outcome, Rejection, Source};
use crate::store::writer::WriterMsg;

/// The largest request body accepted; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The listener's figures, for `status`.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub address: String,
    /// Requests whose body reached the writer (stored, or rejected as not JSON).
    pub payloads: AtomicU64,
}

/// Refuses a non-loopback address unless `any`.
pub fn check_address(addr: &SocketAddr, any: bool) -> Result<()> {
    if addr.ip().is_loopback() || any {
        Ok(())
    } else {
        Err(AggregatorError::Config(format!(
            "--listen {addr}: not a loopback address; the listener has no authentication (allow it with --listen-any or listen_any = true)"
        )))
    }
}

/// Binds `addr`; the server then runs until `shutdown`.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| AggregatorError::Recorder(format!("cannot listen on {addr}: {e}")))
}

/// Serves hook requests on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stats: Arc<ListenerStats>,
    max_event_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let shared = shared.clone();
        let stats = stats.clone();
        async move { handle(req, &shared, &stats, max_event_bytes).await }
    });
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!("the hook listener failed: {e}");
    }
}

async fn handle(
    req: Request<Body>,
    shared: &Shared,
    stats: &ListenerStats,
    max_event_bytes: usize,
) -> axum::response::Response {
    if req.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, [("allow", "POST")]).into_response();
    }
    let received_at = Utc::now();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("hook request refused: {e}");
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
    };
    let (outcomes, status) = match serde_json::from_slice::<Value>(&body) {
        Ok(v) if v.is_object() => (
            normalize(
                "hook",
                v,
                received_at,
                &NormalizeOptions {
                    max_event_bytes,
                    origin: Source::Hook,
                },
                &mut DedupSalt::ReceivedAt,
            ),
            StatusCode::OK,
        ),
        other => {
            let reason = match other {
                Ok(_) => "hook payload is not a JSON object".to_string(),
                Err(e) => format!("hook payload is not JSON: {e}"),
            };
            tracing::warn!(event = "hook", "rejected an http hook payload: {reason}");
            let text = String::from_utf8_lossy(&body);
            (
                vec![Outcome::Rejected(Rejection::of_text(
                    Some("hook"),
                    reason,
                    &text,
                    received_at,
                ))],
                StatusCode::BAD_REQUEST,
            )
        }
    };
    stats.payloads.fetch_add(1, Ordering::Relaxed);
    shared
        .events_received
        .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
    for outcome in outcomes {
        // Queued, not committed: only a full channel makes this wait.
        if crate::store::writer::send_async(&shared.writer_tx, WriterMsg::from(outcome))
            .await
            .is_err()
        {
            tracing::error!("the writer stopped; hook payloads are no longer recorded");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    status.into_response()
}
