//! # mpm-aggregate
//!
//! A recorder and embedded-database event store for the activity of Claude
//! Code agents orchestrated by claude-mpm. It connects to claude-mpm's
//! Socket.IO monitor, writes every event into SQLite as it arrives, and
//! rebuilds each Claude session (prompts, delegations, tool calls, files,
//! responses, metrics) from SQL.
//!
//! Data flows one way. Each layer uses only the layers above it in this list
//! (a test, `tests/it/layers.rs`, checks it):
//!
//! 1. [`error`], [`files`]: the error type; files written atomically and privately.
//! 2. [`core`]: pure rules: timestamps, event kinds and categories, the canonical
//!    event, the delegation state machine, the session projection and its
//!    metrics, pricing, the document value types. No I/O.
//! 3. [`config`]: defaults < file < environment < flags.
//! 4. [`ingest`]: a payload (monitor, hook, transcript, import line) → canonical events. No database.
//! 5. [`store`]: SQLite: open and migrate, the one writer per process (safe beside
//!    other writing processes), the read model.
//! 6. [`documents`]: exports and session files generated from the read model.
//! 7. [`import`] (files, and the `hook` command's payloads: [`import::hook`]), [`recorder`]: the sources
//!    that feed the writer; [`push`]: the store sent on to PostgreSQL or OTLP.
//! 8. [`aggregator`]: the library API of the reference.
//! 9. [`cli`]: one module per command.
//!
//! ```no_run
//! use mpm_aggregate::EventAggregator;
//!
//! let aggregator = EventAggregator::new("localhost", 8765, None);
//! for info in aggregator.list_sessions()? {
//!     println!("{}: {} events", info.session_id, info.event_count);
//! }
//! # Ok::<(), mpm_aggregate::AggregatorError>(())
//! ```

pub mod aggregator;
pub mod cli;
pub mod config;
pub mod core;
pub mod documents;
pub mod error;
pub mod files;
pub mod import;
pub mod ingest;
pub mod push;
pub mod recorder;
pub mod store;

pub use crate::core::model::{AgentDelegation, AgentSession, SessionEvent, SessionMetrics};
pub use crate::core::Category;
pub use aggregator::{AggregatorStatus, EventAggregator};
pub use config::Config;
pub use documents::ExportFormat;
pub use error::{AggregatorError, Result};
pub use store::queries::{SessionSort, SessionSummary};
