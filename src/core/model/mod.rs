//! The session document types of the reference API: [`AgentSession`],
//! [`SessionEvent`], [`AgentDelegation`] and [`SessionMetrics`].
//!
//! These are values built from SQL (or from a session file) for reading,
//! exporting and custom processing; the recorder itself never keeps them.

mod delegation;
mod event;
mod metrics;
mod session;

pub use delegation::AgentDelegation;
pub use event::SessionEvent;
pub use metrics::SessionMetrics;
pub use session::AgentSession;

pub use crate::core::event::{ClaudeCodeAccount, Tokens};

use chrono::{DateTime, Utc};
use serde::Serializer;
use serde_json::Value;

use crate::core::time::{format_timestamp, parse_timestamp};

pub(crate) fn ser_ts<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(t))
}

pub(crate) fn ser_opt_ts<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_timestamp(t)),
        None => s.serialize_none(),
    }
}

/// Reads a timestamp field leniently (any accepted form; absent or bad = None).
pub(crate) fn ts_field(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.get(key).and_then(parse_timestamp)
}

pub(crate) fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// Reads a token count object (`input`, `output`, `cache_creation`,
/// `cache_read`; a missing kind is zero). `None` unless it is an object.
pub(crate) fn tokens_field(v: Option<&Value>) -> Option<crate::core::event::Tokens> {
    let obj = v?.as_object()?;
    let n = |k: &str| obj.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(crate::core::event::Tokens {
        input: n("input"),
        output: n("output"),
        cache_creation: n("cache_creation"),
        cache_read: n("cache_read"),
        cache_creation_1h: 0,
    })
}

pub(crate) fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}
