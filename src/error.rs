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

    /// The database is missing, corrupt, locked, full or refused a statement.
    /// `source` keeps SQLite's own error, so that a caller can tell a busy
    /// database from a full disk ([`AggregatorError::sqlite_code`]).
    #[error("database {}: {reason}", .path.display())]
    Database {
        path: PathBuf,
        reason: String,
        #[source]
        source: Option<rusqlite::Error>,
    },

    /// A SQL statement failed: SQLite's own message (syntax, unknown table,
    /// busy…), with SQLite's error as the source when it gave one.
    #[error("query: {reason}")]
    Query {
        reason: String,
        #[source]
        source: Option<rusqlite::Error>,
    },

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

    /// Wraps a SQLite error for the database at `path`, keeping it as the source.
    pub fn db(path: impl Into<PathBuf>, err: rusqlite::Error) -> Self {
        AggregatorError::Database {
            path: path.into(),
            reason: one_line(&err.to_string()),
            source: Some(err),
        }
    }

    /// A problem with the database at `path` that SQLite did not report.
    pub fn db_message(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        AggregatorError::Database {
            path: path.into(),
            reason: one_line(&reason.to_string()),
            source: None,
        }
    }

    /// A failed SQL statement, SQLite's error kept as the source.
    pub fn query(err: rusqlite::Error) -> Self {
        AggregatorError::Query {
            reason: one_line(&err.to_string()),
            source: Some(err),
        }
    }

    /// SQLite's error code, when SQLite caused this error (`DatabaseBusy`,
    /// `DiskFull`, `NotADatabase`, `ReadOnly`, …).
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            AggregatorError::Database {
                source: Some(e), ..
            }
            | AggregatorError::Query {
                source: Some(e), ..
            } => e.sqlite_error_code(),
            _ => None,
        }
    }
}

/// Folds a multi-line message onto one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
