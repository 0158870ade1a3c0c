//! `export`: a session document streamed from SQL to a file or standard output.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::documents::export::{default_file_name, export_to_file, write_export, ExportFormat};
use crate::error::{AggregatorError, Result};
use crate::store::queries::resolve_session;

pub fn run(config: &Config, session: &str, output: Option<&Path>, format: &str) -> Result<()> {
    let format: ExportFormat = format.parse()?;
    let conn = crate::store::open_read_only(&config.database)?;
    let id = resolve_session(&conn, session)?;
    if output == Some(Path::new("-")) {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
        let result = write_export(&conn, &id, format, &mut out);
        let flushed = out.flush();
        return match (result, flushed) {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            (Err(AggregatorError::Io { source, .. }), _) | (Ok(_), Err(source))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Ok(())
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(AggregatorError::io("<stdout>", e)),
            (Ok(_), Ok(())) => Ok(()),
        };
    }
    let path = output.map_or_else(
        || PathBuf::from(default_file_name(&id, format)),
        Path::to_path_buf,
    );
    if path.is_dir() {
        return Err(AggregatorError::InvalidFormat(format!(
            "{} is a directory; give a file name",
            path.display()
        )));
    }
    let n = export_to_file(&conn, &id, format, &path)?;
    let events = if format == ExportFormat::Summary {
        String::new()
    } else {
        format!(", {n} events")
    };
    eprintln!(
        "exported session {} ({}{events}) to {}",
        id,
        format.as_str(),
        path.display()
    );
    Ok(())
}
