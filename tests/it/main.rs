//! The integration tests, in one binary: one link of the library and its
//! dev-dependencies instead of one per file. Each module is one surface;
//! `common` holds the fixtures, a real Socket.IO monitor, database inspection
//! and the Python virtualenv the interoperability test runs in.
//!
//! Run one surface with `cargo test --test it store::`, one test by its path.

mod common;

mod bad_input;
mod claude_code;
mod cli;
mod cli_comforts;
mod config;
mod daemon;
mod follower;
mod fuzz;
mod hook;
mod hooks_install;
mod html;
mod http_hooks;
mod interop_python;
mod layers;
mod push_otlp;
mod push_postgres;
mod real_claude;
mod real_claude_sources;
mod recorder;
mod reliability;
mod search;
mod session_filters;
mod stats;
mod store;
mod tail;
mod writers;
