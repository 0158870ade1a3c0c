//! File-system helpers shared by every layer: files written atomically with
//! private permissions, and private directories.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{AggregatorError, Result};

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| AggregatorError::io(dir, e))
}

/// Writes through a temporary file renamed into place, so a reader never sees
/// half a file. Created readable by the owner only; `.gz` paths are compressed.
pub fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "session".into());
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file: File = opts.open(&tmp)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        if path.extension().is_some_and(|e| e == "gz") {
            let mut gz = flate2::write::GzEncoder::new(&mut out, flate2::Compression::default());
            fill(&mut gz)?;
            gz.finish()?;
        } else {
            fill(&mut out)?;
        }
        out.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AggregatorError::io(path, e)
    })
}
