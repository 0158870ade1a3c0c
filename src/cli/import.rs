//! `import`: files through the same normalizer and writer as live events.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::config::Config;
use crate::error::Result;
use crate::import::import_files;
use crate::ingest::NormalizeOptions;
use crate::store::writer::Writer;

pub fn run(config: &Config, files: &[PathBuf]) -> Result<()> {
    // Session files go there: fail now, not after the import.
    crate::recorder::check_activity_dir(&config.activity_directory)?;
    let writer = Writer::spawn(crate::documents::writer_config(config))?;
    let opts = NormalizeOptions {
        max_event_bytes: config.max_event_bytes,
    };
    let report = import_files(&writer, files, &opts, std::io::stderr().is_terminal());
    let stats = writer.shutdown();
    let report = report?;
    stats?;
    println!("{report}");
    Ok(())
}
