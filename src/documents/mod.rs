//! Documents: what the store's read model is turned into for people and other
//! tools: the `full`, `summary` and `events` exports streamed from SQL, and the
//! session files of the activity directory, and the shareable HTML page.

pub mod export;
pub mod html;
pub mod session_file;

pub use export::ExportFormat;

use crate::config::Config;
use crate::store::writer::WriterConfig;

/// The writer settings of a configuration, with session files rendered as `full` documents.
pub fn writer_config(config: &Config) -> WriterConfig {
    WriterConfig {
        session_files: Some(session_file::write),
        ..WriterConfig::from_config(config)
    }
}

/// [`writer_config`] for the live recorder (short queue, small cache).
pub fn recorder_writer_config(config: &Config) -> WriterConfig {
    WriterConfig {
        session_files: Some(session_file::write),
        ..WriterConfig::for_recorder(config)
    }
}
