//! `push` (SPEC section 8): this store's sessions sent to a place a team
//! already runs, a PostgreSQL database ([`postgres`]) or an OpenTelemetry
//! collector over OTLP/HTTP ([`otlp`]). Incremental, idempotent and
//! resumable: what each target was sent is kept in the local tables of
//! migration V8 ([`local`]), advanced after every batch the target accepted,
//! and the target is written so that a batch sent twice changes nothing.
//!
//! A push only reads the store (its own read-only connection) and writes its
//! own bookkeeping tables, so it never slows recording: the recorder runs it
//! on a thread of its own ([`spawn_background`]).

pub mod local;
pub mod otlp;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::{AggregatorError, Result};

/// Where a push goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `postgres://USER@HOST:PORT/DB` (or `postgresql://`), as given.
    Postgres { url: String },
    /// An OTLP/HTTP traces endpoint (`…/v1/traces`) and the headers to send.
    Otlp {
        endpoint: String,
        headers: Vec<(String, String)>,
    },
}

impl Target {
    /// A PostgreSQL URL or an `http(s)://` OTLP collector.
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            url.parse::<::postgres::Config>()
                .map_err(|e| AggregatorError::Config(format!("push URL {}: {e}", redact(url))))?;
            Ok(Target::Postgres { url: url.into() })
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            Target::otlp(url, &[])
        } else {
            Err(AggregatorError::Config(format!(
                "push URL {}: expected postgres://USER@HOST:PORT/DB, postgresql://… or (for OTLP) http://HOST:4318",
                redact(url)
            )))
        }
    }

    /// An OTLP/HTTP collector: a URL without a path gets the traces path
    /// (`/v1/traces`), as OTEL_EXPORTER_OTLP_ENDPOINT does.
    pub fn otlp(url: &str, headers: &[(String, String)]) -> Result<Target> {
        let mut parsed = url::Url::parse(url.trim())
            .map_err(|e| AggregatorError::Config(format!("OTLP URL {}: {e}", redact(url))))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AggregatorError::Config(format!(
                "OTLP URL {}: expected http:// or https:// (OTLP/HTTP)",
                redact(url)
            )));
        }
        if parsed.path() == "/" || parsed.path().is_empty() {
            parsed.set_path("/v1/traces");
        }
        Ok(Target::Otlp {
            endpoint: parsed.to_string(),
            headers: headers.to_vec(),
        })
    }

    /// The name progress is kept under: the URL without a password (a changed
    /// password is the same target), `postgresql://` spelt `postgres://` (the
    /// same database either way).
    pub fn key(&self) -> String {
        match self {
            Target::Postgres { url } => {
                let url = redact(url);
                match url.get(..13) {
                    Some(scheme) if scheme.eq_ignore_ascii_case("postgresql://") => {
                        format!("postgres://{}", &url[13..])
                    }
                    _ => url,
                }
            }
            Target::Otlp { endpoint, .. } => format!("otlp:{}", redact(endpoint)),
        }
    }

    /// How the target is named to the user (never with a password).
    pub fn display(&self) -> String {
        match self {
            Target::Postgres { url } => redact(url),
            Target::Otlp { endpoint, .. } => redact(endpoint),
        }
    }
}

/// `url` without its password.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `k=v,k2=v2` (values may be percent-encoded, as OTEL_EXPORTER_OTLP_HEADERS).
pub fn parse_headers(text: &str) -> Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(AggregatorError::Config(format!(
                "--otlp-headers: {part:?} is not key=value"
            )));
        };
        let value = url::form_urlencoded::parse(format!("v={}", v.trim()).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        headers.push((k.trim().to_string(), value));
    }
    Ok(headers)
}

/// The host id of this machine when none is configured: `USER@HOSTNAME`, so
/// that the team's rows say whose machine sent them.
pub fn default_host_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    match std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(user) => format!("{user}@{host}"),
        None => host,
    }
}

/// The configured host id, else [`default_host_id`].
pub fn host_id(config: &Config) -> String {
    if config.host_id.trim().is_empty() {
        default_host_id()
    } else {
        config.host_id.trim().to_string()
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    pub host_id: String,
    /// Events per batch (each committed on its own); sessions go 100 at a time.
    pub batch_size: usize,
}

/// What one push sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    pub target: String,
    pub events: u64,
    /// Events sent again because a later observation changed them.
    pub changed_events: u64,
    pub sessions: u64,
    pub delegations: u64,
    /// OTLP: traces (one per session) and spans.
    pub traces: u64,
    pub spans: u64,
    /// OTLP: spans the collector said it rejected.
    pub rejected_spans: u64,
    /// OTLP: sessions still active, sent once they end.
    pub waiting: u64,
}

impl PushReport {
    pub fn sent_anything(&self) -> bool {
        self.events + self.changed_events + self.sessions + self.traces > 0
    }
}

impl std::fmt::Display for PushReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        if !self.sent_anything() {
            write!(f, "nothing new to push to {}", self.target)?;
        } else if self.traces > 0 || self.spans > 0 {
            write!(
                f,
                "pushed {} ({}) to {}",
                plural(self.traces, "trace", "traces"),
                plural(self.spans, "span", "spans"),
                self.target
            )?;
            if self.rejected_spans > 0 {
                write!(f, "; the collector rejected {} spans", self.rejected_spans)?;
            }
        } else {
            write!(
                f,
                "pushed {} ({} changed), {}, {} to {}",
                plural(self.events, "event", "events"),
                self.changed_events,
                plural(self.sessions, "session", "sessions"),
                plural(self.delegations, "delegation", "delegations"),
                self.target
            )?;
        }
        if self.waiting > 0 {
            write!(
                f,
                "; {} still active, sent when they end",
                plural(self.waiting, "session", "sessions")
            )?;
        }
        Ok(())
    }
}

/// Progress of a push, for a progress bar: `done` of `total` items.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// One push of what is new in the store at `db` to `target`.
pub fn push_once(
    db: &Path,
    target: &Target,
    opts: &PushOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<PushReport> {
    let mut local = local::Local::open(db, &target.key())?;
    let mut report = match target {
        Target::Postgres { url } => postgres::push(&mut local, url, opts, progress)?,
        Target::Otlp { endpoint, headers } => {
            otlp::push(&mut local, endpoint, headers, opts, progress)?
        }
    };
    local.forget_sent_changes()?;
    report.target = target.display();
    Ok(report)
}

/// How long `--watch` and the recorder wait between pushes, and the longest
/// wait after failures (doubling from `WATCH_INTERVAL`).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Pushes again and again until `stop` is set: every [`WATCH_INTERVAL`] while
/// the target answers, backing off to [`MAX_BACKOFF`] while it fails. Each
/// push that sent something, and each change between failing and working, is
/// handed to `tell`. While the store's [`local::signature`] holds, the push
/// (a scan of every session) is skipped, except every [`FULL_EVERY`] rounds:
/// a change the signature cannot see waits at most that long.
pub fn watch(
    db: &Path,
    target: &Target,
    opts: &PushOptions,
    stop: &AtomicBool,
    tell: &mut dyn FnMut(std::result::Result<&PushReport, &AggregatorError>),
) {
    let mut wait = WATCH_INTERVAL;
    let mut failing = false;
    let mut seen = None;
    let mut round: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        // Taken before the push: what changes during it is pushed next round.
        let signature = local::signature(db).ok();
        let unchanged =
            signature.is_some() && signature == seen && !round.is_multiple_of(FULL_EVERY);
        if !unchanged {
            match push_once(db, target, opts, &mut |_| {}) {
                Ok(report) => {
                    if report.sent_anything() || failing {
                        tell(Ok(&report));
                    }
                    failing = false;
                    wait = WATCH_INTERVAL;
                    seen = signature;
                }
                Err(e) => {
                    if !failing {
                        tell(Err(&e));
                    }
                    failing = true;
                    wait = (wait * 2).min(MAX_BACKOFF);
                    seen = None;
                }
            }
        }
        sleep_unless(stop, wait);
    }
}

/// Rounds of `watch` between two full pushes whatever the signature says.
pub const FULL_EVERY: u64 = 15;

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(100);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        slept += step;
    }
}

/// The recorder's pusher: a thread that pushes to `push_url` while the
/// recorder runs, stopped when this is dropped.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A push in flight may wait on a slow target; the recorder does not.
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Starts pushing in the background when `push_url` is configured. Failures
/// are logged once per change and retried with backoff; recording goes on.
pub fn spawn_background(config: &Config) -> Result<Option<Background>> {
    if config.push_url.trim().is_empty() {
        return Ok(None);
    }
    let target = Target::parse(&config.push_url)?;
    let opts = PushOptions {
        host_id: host_id(config),
        batch_size: 1000,
    };
    let db: PathBuf = config.database.clone();
    let shown = target.display();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("push".into())
        .spawn(move || {
            watch(&db, &target, &opts, &flag, &mut |outcome| match outcome {
                Ok(report) => tracing::info!("{report}"),
                Err(e) => tracing::warn!(
                    "push to {} failed (retrying with backoff; recording goes on): {e}",
                    target.display()
                ),
            })
        })
        .map_err(|e| AggregatorError::Recorder(format!("cannot start the push thread: {e}")))?;
    tracing::info!("pushing to {shown} as it records");
    Ok(Some(Background {
        stop,
        thread: Some(thread),
    }))
}

/// An error with its causes, `a: b: c` (a client library's own message alone
/// says "error connecting to server", its cause says why).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// `parts` hashed, each ended by a NUL (so that `["ab", "c"]` and `["a", "bc"]` differ).
fn hasher(parts: &[&str]) -> xxhash_rust::xxh3::Xxh3 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h
}

/// A stable non-zero 64-bit id of `parts` (span ids, keys).
pub(crate) fn hash64(parts: &[&str]) -> u64 {
    hasher(parts).digest().max(1)
}

/// A stable 128-bit id of `parts` (trace ids, event keys).
pub(crate) fn hash128(parts: &[&str]) -> u128 {
    hasher(parts).digest128().max(1)
}

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_their_keys() {
        let t = Target::parse("postgres://me:secret@db.example:5433/team").unwrap();
        assert_eq!(t.key(), "postgres://me@db.example:5433/team");
        assert!(matches!(
            Target::parse("postgresql://me@h/db"),
            Ok(Target::Postgres { .. })
        ));
        // Either spelling of the scheme is one target: pushing with the other sends nothing again.
        assert_eq!(
            Target::parse("postgresql://me:secret@db.example:5433/team")
                .unwrap()
                .key(),
            t.key()
        );
        let o = Target::otlp("http://localhost:4318", &[]).unwrap();
        assert_eq!(o.display(), "http://localhost:4318/v1/traces");
        assert_eq!(o.key(), "otlp:http://localhost:4318/v1/traces");
        let kept = Target::otlp("https://c.example/otlp/v1/traces", &[]).unwrap();
        assert_eq!(kept.display(), "https://c.example/otlp/v1/traces");
        assert!(Target::parse("mysql://x").is_err());
        assert!(Target::otlp("grpc://x:4317", &[]).is_err());
    }

    #[test]
    fn headers_are_key_value_pairs() {
        let h = parse_headers("authorization=Bearer%20abc, x-team=core").unwrap();
        assert_eq!(
            h,
            vec![
                ("authorization".to_string(), "Bearer abc".to_string()),
                ("x-team".to_string(), "core".to_string())
            ]
        );
        assert!(parse_headers("novalue").is_err());
    }

    #[test]
    fn the_report_says_what_was_sent() {
        let mut r = PushReport {
            target: "postgres://me@h/db".into(),
            ..Default::default()
        };
        assert_eq!(r.to_string(), "nothing new to push to postgres://me@h/db");
        r.events = 91;
        r.sessions = 1;
        r.delegations = 2;
        assert_eq!(
            r.to_string(),
            "pushed 91 events (0 changed), 1 session, 2 delegations to postgres://me@h/db"
        );
    }
}
