//! `import`: files through the same normalizer and writer as live events.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use super::say;
use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::import::import_files;
use crate::ingest::NormalizeOptions;
use crate::store::writer::Writer;

pub fn run(config: &Config, files: &[PathBuf], out: &mut dyn Write) -> Result<()> {
    let projects;
    let files = if files.is_empty() {
        projects = [claude_code_projects()?];
        &projects[..]
    } else {
        files
    };
    // Session files go there: fail now, not after the import.
    crate::recorder::check_activity_dir(&config.activity_directory)?;
    let writer = Writer::spawn(crate::documents::writer_config(config))?;
    let opts = NormalizeOptions {
        max_event_bytes: config.max_event_bytes,
        ..NormalizeOptions::default()
    };
    let report = import_files(&writer, files, &opts, std::io::stderr().is_terminal());
    let stats = writer.shutdown();
    let report = report?;
    stats?;
    say!(out, "{report}");
    let days = config.auto_cleanup_days;
    let old = if days > 0 {
        report.sessions_older_than(days, chrono::Utc::now())
    } else {
        0
    };
    if old > 0 {
        let (sessions, it) = if old == 1 {
            ("session is", "it is")
        } else {
            ("sessions are", "they are")
        };
        // A note beside the report, not part of it: scripts read stdout.
        let _ = writeln!(
            std::io::stderr(),
            "note: {old} imported {sessions} older than auto_cleanup_days ({days} days); {it} kept: cleanup counts from when data was stored here"
        );
    }
    if !report.unreadable.is_empty() {
        let files: Vec<String> = report
            .unreadable
            .iter()
            .map(|(name, n)| format!("{name} ({n} rejected)"))
            .collect();
        return Err(AggregatorError::InvalidFormat(format!(
            "no event could be read from {}; the rejected inputs are in the rejected_events table",
            files.join(", ")
        )));
    }
    Ok(())
}

/// Claude Code's projects folder, when no file is named.
fn claude_code_projects() -> Result<PathBuf> {
    match crate::ingest::transcript_files::default_projects_dir() {
        Some(dir) if dir.is_dir() => Ok(dir),
        Some(dir) => Err(AggregatorError::InvalidFormat(format!(
            "no file given, and no Claude Code transcripts at {} (name the files to import)",
            dir.display()
        ))),
        None => Err(AggregatorError::InvalidFormat(
            "no file given, and no home folder to find Claude Code's transcripts in".into(),
        )),
    }
}
