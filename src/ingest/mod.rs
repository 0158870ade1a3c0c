//! Ingest: from a payload as it arrives (Socket.IO event, capture line, import
//! file) to a canonical [`NormalizedEvent`] ready for the store.
//!
//! Nothing here touches SQLite; the normalizer runs on the socket task or the
//! import reader, and only compact, already-serialized events cross the channel
//! to the single writer.

pub mod category;
mod facts;
pub mod import;
mod normalize;
pub mod timestamp;
pub mod transcript;
pub mod transcript_files;

pub use category::{category_for, Category};
pub use facts::Facts;
pub use normalize::{
    normalize, split_capture_line, DedupSalt, NormalizeOptions, NormalizedEvent, Outcome,
    Rejection, MAX_SESSION_ID_LEN,
};
