//! `export`: a session document (or its HTML page) streamed from SQL to a file
//! or standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::documents::export::{
    default_file_name, write_export_priced, write_shared_file, ExportFormat,
};
use crate::error::{AggregatorError, Result};
use crate::store::queries::resolve_session;

pub fn run(
    config: &Config,
    session: &str,
    output: Option<&Path>,
    format: ExportFormat,
    force: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let conn = crate::store::open_read_only(&config.database)?;
    let id = resolve_session(&conn, session)?;
    // The page prices each API call with the configured table, as the store did.
    let pricing = match format {
        // Only the page prices anything: a JSON export needs no price file.
        ExportFormat::Html => crate::config::load_pricing(&config.pricing_file)?,
        _ => crate::core::pricing::PricingTable::builtin().clone(),
    };
    let write = |out: &mut dyn Write| write_export_priced(&conn, &id, format, &pricing, out);
    if output == Some(Path::new("-")) {
        write(out)?;
        return Ok(());
    }
    let default_name = default_file_name(&id, format);
    let path = match output {
        // A directory is where to put the file, under its usual name.
        Some(dir) if dir.is_dir() => dir.join(&default_name),
        Some(file) => file.to_path_buf(),
        None => PathBuf::from(&default_name),
    };
    if !force && std::fs::symlink_metadata(&path).is_ok() {
        return Err(AggregatorError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists; pass --force to replace it",
            ),
        });
    }
    if path.is_dir() {
        return Err(AggregatorError::InvalidFormat(format!(
            "{} is a directory; give a file name",
            path.display()
        )));
    }
    let n = write_shared_file(&path, write)?;
    let events = if format == ExportFormat::Summary {
        String::new()
    } else {
        format!(", {n} events")
    };
    // A status note, not the output: a closed standard error loses only it.
    let _ = writeln!(
        std::io::stderr(),
        "exported session {} ({}{events}) to {}",
        id,
        format.as_str(),
        path.display()
    );
    Ok(())
}
