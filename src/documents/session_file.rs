//! Session files as documents: the `full` document of a session rendered from
//! SQL into its file, and [`AgentSession::save`] / [`AgentSession::load`] of the
//! reference API.

use std::io::Read;
use std::path::Path;

use rusqlite::Connection;
use serde_json::Value;

use super::export::{write_export, ExportFormat};
use crate::core::model::AgentSession;
use crate::error::{AggregatorError, Result};
use crate::files::{create_private_dir, write_atomically};

/// Writes the session's `full` document to `path` (gzip when it ends in `.gz`).
pub fn write(conn: &Connection, session_id: &str, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    write_atomically(path, |out| {
        write_export(conn, session_id, ExportFormat::Full, out)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
}

impl AgentSession {
    /// Writes the `full` document to `path` (gzip when it ends in `.gz`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_vec_pretty(&self.to_dict())
            .map_err(|e| AggregatorError::InvalidFormat(e.to_string()))?;
        write_atomically(path, |w| w.write_all(&text))
    }

    /// Reads a session file: ours (`.json` or `.json.gz`) or the Python original's.
    pub fn load(path: &Path) -> Result<AgentSession> {
        let file = std::fs::File::open(path).map_err(|e| AggregatorError::io(path, e))?;
        let mut text = Vec::new();
        let read = if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file).read_to_end(&mut text)
        } else {
            std::io::BufReader::new(file).read_to_end(&mut text)
        };
        read.map_err(|e| AggregatorError::io(path, e))?;
        let value: Value = serde_json::from_slice(&text).map_err(|e| {
            AggregatorError::InvalidFormat(format!("{}: not JSON: {e}", path.display()))
        })?;
        Self::from_value(&value)
            .map_err(|e| AggregatorError::InvalidFormat(format!("{}: {e}", path.display())))
    }
}
