//! # mpm-aggregate
//!
//! A recorder and embedded-database event store for the activity of Claude
//! Code agents orchestrated by claude-mpm. It connects to claude-mpm's
//! Socket.IO monitor, writes every event into SQLite as it arrives, and
//! rebuilds each Claude session (prompts, delegations, tool calls, files,
//! responses, metrics) from SQL.
//!
//! Data flows one way:
//! Socket.IO client ([`recorder`]) → normalizer ([`ingest`]) → single writer
//! ([`store::writer`]) → tables → queries and streaming exports ([`store`]).
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
pub mod error;
pub mod ingest;
pub mod model;
pub mod pricing;
pub mod recorder;
pub mod store;

pub use aggregator::{AggregatorStatus, EventAggregator};
pub use config::Config;
pub use error::{AggregatorError, Result};
pub use ingest::Category;
pub use model::{AgentDelegation, AgentSession, SessionEvent, SessionMetrics};
pub use store::export::ExportFormat;
pub use store::queries::{SessionSort, SessionSummary};
