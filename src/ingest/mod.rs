//! Ingest: from a payload as it arrives (Socket.IO event, hook payload, capture
//! line, import file) to a canonical [`NormalizedEvent`] ready for the store.
//!
//! Nothing here touches SQLite; the normalizer runs on the socket task or the
//! import reader, and only compact, already-serialized events cross the channel
//! to the single writer.

mod normalize;
pub mod transcript;
pub mod transcript_files;

pub use crate::core::{Category, NormalizedEvent, Source};
pub use normalize::{
    normalize, split_capture_line, DedupSalt, NormalizeOptions, Outcome, Rejection,
    MAX_SESSION_ID_LEN,
};

/// An event read back from its stored row, its facts read again from its data:
/// how the store replays a session's events to rebuild it.
pub struct StoredEvent<'a> {
    pub session_id: &'a str,
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub category: &'a str,
    pub socket_event: &'a str,
    pub raw_type: Option<String>,
    pub subtype: Option<String>,
    pub correlation_id: Option<String>,
    pub data: &'a str,
    pub envelope: Option<&'a str>,
    pub identity: Option<String>,
    pub origin: Option<&'a str>,
}

impl StoredEvent<'_> {
    /// The canonical event, without its data (the facts hold what the projection needs).
    pub fn to_event(&self) -> NormalizedEvent {
        use serde_json::{Map, Value};
        let data: Option<Map<String, Value>> = serde_json::from_str(self.data).ok();
        let top: Option<Map<String, Value>> =
            self.envelope.and_then(|e| serde_json::from_str(e).ok());
        let facts = crate::core::Facts::extract(self.event_type, data.as_ref(), top.as_ref());
        let timestamp = crate::core::time::parse_stored(self.timestamp).unwrap_or_default();
        // The first source that observed it stands for it (sources are kept per session).
        let origin = self
            .origin
            .and_then(|o| o.split(',').next())
            .and_then(Source::parse)
            .unwrap_or_default();
        // An imported payload without a time of its own was stamped with the
        // import's; a merge with a timed observation brings one.
        let has_time = |o: Option<&Map<String, Value>>| {
            o.and_then(|o| o.get("timestamp"))
                .and_then(crate::core::time::parse_timestamp)
                .is_some()
        };
        let time_known =
            origin != Source::Import || has_time(data.as_ref()) || has_time(top.as_ref());
        NormalizedEvent {
            session_id: Some(self.session_id.to_string()),
            timestamp,
            kind: crate::core::HookEvent::parse(self.event_type),
            category: self.category.parse().unwrap_or(Category::Meta),
            socket_event: self.socket_event.to_string(),
            raw_type: self.raw_type.clone(),
            subtype: self.subtype.clone(),
            source: None,
            correlation_id: self.correlation_id.clone(),
            data: String::new(),
            envelope: None,
            facts,
            identity: self.identity.clone(),
            origin,
            dedup_key: [0; 24],
            received_at: timestamp,
            time_known,
            search_text: None,
        }
    }
}
