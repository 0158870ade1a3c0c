//! The pure core: what an event is and what it means for a session, with no
//! I/O, no SQLite and no async runtime. Everything above (ingest, store,
//! documents, sources, CLI) asks this module and applies its answers, so every
//! rule of SPEC sections 4 and 7 exists exactly once and is unit-tested here on
//! small tables of events.
//!
//! - [`time`]: every timestamp form in, ISO-8601 milliseconds `Z` out.
//! - [`category`]: Claude Code's hook event kinds and the category of an event.
//! - [`event`]: the canonical event every source is turned into.
//! - [`facts`]: what an event's payload tells, read once.
//! - [`delegation`]: the delegation state machine (ids first, heuristic halves for id-less sources).
//! - [`delegations`]: a session's delegations in memory, indexed for the state machine.
//! - [`session`]: the session projection: what an event changes in a session and its metrics.
//! - [`model`]: the document value types of the reference API.

pub mod category;
pub mod delegation;
pub mod delegations;
pub mod event;
pub mod facts;
pub mod model;
pub mod pricing;
pub mod searchable;
pub mod session;
pub mod time;

pub use category::{category_for, Category, HookEvent};
pub use event::{Facts, NormalizedEvent, Source};
