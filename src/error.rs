//! The one error type of the crate. Every variant renders as a single line
//! fit to show a user; the CLI prints it after `error: ` and exits non-zero.

use std::path::PathBuf;

/// Errors of the aggregator, its store and its command-line tool.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    /// The Socket.IO monitor could not be reached.
    #[error("cannot connect to the monitor at {url}: {reason}")]
    Connection { url: String, reason: String },

    /// No session has this id (or id prefix).
    #[error("no session matches '{0}'")]
    SessionNotFound(String),

    /// A prefix that matches more than one session.
    #[error("session prefix '{prefix}' is ambiguous: it matches {}", .candidates.join(", "))]
    AmbiguousSession {
        prefix: String,
        candidates: Vec<String>,
    },

    /// An unknown export or output format, or input in a shape we cannot read.
    #[error("invalid format: {0}")]
    InvalidFormat(String),

    /// A file or directory we are not allowed to create or write.
    #[error("permission denied: {}: {reason}", .path.display())]
    Permission { path: PathBuf, reason: String },

    /// Any other I/O failure, with the path it concerns.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database is missing, corrupt, locked or refused a statement.
    #[error("database {}: {reason}", .path.display())]
    Database { path: PathBuf, reason: String },

    /// A SQL statement failed: SQLite's own message (syntax, unknown table…).
    #[error("query: {0}")]
    Query(String),

    /// A statement given to `query` that would write, or more than one.
    #[error("query refused: {0}")]
    QueryRefused(String),

    /// A configuration file or value that cannot be used.
    #[error("configuration: {0}")]
    Config(String),

    /// Another recorder already runs, or none runs when one is needed.
    #[error("{0}")]
    Recorder(String),
}

/// Result with [`AggregatorError`].
pub type Result<T, E = AggregatorError> = std::result::Result<T, E>;

impl AggregatorError {
    /// Wraps an I/O error, classifying permission problems as [`AggregatorError::Permission`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            AggregatorError::Permission {
                path,
                reason: source.to_string(),
            }
        } else {
            AggregatorError::Io { path, source }
        }
    }

    /// Wraps a SQLite error for the database at `path`.
    pub fn db(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        AggregatorError::Database {
            path: path.into(),
            reason: one_line(&err.to_string()),
        }
    }
}

/// Folds a multi-line message onto one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
