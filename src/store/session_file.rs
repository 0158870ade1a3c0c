//! Session files: `session_<first 8 chars of id>_<YYYYMMDD_HHMMSS>.json[.gz]`
//! in the activity directory, written from SQL when a session is finalized.
//!
//! Session ids come from the network, so they never reach a path raw: every
//! character outside `[A-Za-z0-9_-]` becomes `_`, and a name that was altered or
//! is already taken by another session gets a hash of the full id appended.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};

use crate::error::Result;

fn safe_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
        c
    } else {
        '_'
    }
}

fn id_hash(session_id: &str) -> String {
    format!(
        "{:08x}",
        xxhash_rust::xxh3::xxh3_64(session_id.as_bytes()) as u32
    )
}

/// A session id fit for a log line or a file name: sanitized, at most 64 characters.
pub fn display_id(session_id: &str) -> String {
    let safe: String = session_id.chars().take(64).map(safe_char).collect();
    if safe == session_id {
        safe
    } else {
        format!("{safe}~{}", id_hash(session_id))
    }
}

/// The file name a session gets, before the uniqueness check.
pub fn file_name(
    session_id: &str,
    start: &DateTime<Utc>,
    compress: bool,
    disambiguate: bool,
) -> String {
    let raw8: String = session_id.chars().take(8).collect();
    let safe8: String = raw8.chars().map(safe_char).collect();
    let mut name = format!("session_{safe8}_{}", start.format("%Y%m%d_%H%M%S"));
    if disambiguate || safe8 != raw8 || safe8.is_empty() {
        name.push('_');
        name.push_str(&id_hash(session_id));
    }
    name.push_str(if compress { ".json.gz" } else { ".json" });
    name
}

/// A path in `dir` for the session's file that no other session uses
/// (`taken` also reports names given but not yet stored).
pub fn unique_path(
    conn: &Connection,
    dir: &Path,
    session_id: &str,
    start: &DateTime<Utc>,
    compress: bool,
    taken: impl Fn(&str) -> bool,
) -> rusqlite::Result<PathBuf> {
    let plain = dir.join(file_name(session_id, start, compress, false));
    let plain_text = plain.to_string_lossy();
    let stored: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE file_path = ?1 AND session_id <> ?2)",
        )?
        .query_row(rusqlite::params![plain_text, session_id], |r| r.get(0))?;
    Ok(if stored || taken(&plain_text) {
        dir.join(file_name(session_id, start, compress, true))
    } else {
        plain
    })
}

/// The session file path recorded for a session.
pub fn stored_path(conn: &Connection, session_id: &str) -> Option<String> {
    conn.query_row(
        "SELECT file_path FROM sessions WHERE session_id = ?1",
        [session_id],
        |r| r.get(0),
    )
    .optional()
    .ok()
    .flatten()
    .flatten()
}

/// Renders the session file of a session from SQL to a path.
pub type SessionFileRenderer = fn(&Connection, &str, &Path) -> Result<()>;

/// Counters of the session file thread.
#[derive(Debug, Default)]
pub struct FileCounters {
    pub written: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
}

/// Writes session files on a thread of its own, from its own read connection,
/// so the writer never waits on the file system. A session finalized again
/// while its file is queued is written once.
pub struct FileWriter {
    tx: Option<flume::Sender<String>>,
    handle: Option<std::thread::JoinHandle<()>>,
    pub counters: std::sync::Arc<FileCounters>,
}

impl FileWriter {
    /// Starts the thread; it reads the sessions from `database` and renders
    /// each file with `render` (the documents layer's, passed down so that the
    /// store never depends on the output formats).
    pub fn spawn(
        database: PathBuf,
        render: Option<SessionFileRenderer>,
    ) -> std::io::Result<FileWriter> {
        let Some(render) = render else {
            return Ok(FileWriter {
                tx: None,
                handle: None,
                counters: Default::default(),
            });
        };
        let (tx, rx) = flume::unbounded::<String>();
        let counters = std::sync::Arc::new(FileCounters::default());
        let c = counters.clone();
        let handle = std::thread::Builder::new()
            .name("mpm-aggregate-files".into())
            .spawn(move || {
                use std::sync::atomic::Ordering::Relaxed;
                let mut conn = None;
                while let Ok(first) = rx.recv() {
                    let mut pending = vec![first];
                    pending.extend(rx.try_iter());
                    pending.sort_unstable();
                    pending.dedup();
                    if conn.is_none() {
                        match super::open_read_only(&database) {
                            Ok(c) => conn = Some(c),
                            Err(e) => {
                                tracing::error!("cannot write session files: {e}");
                                c.errors.fetch_add(pending.len() as u64, Relaxed);
                                continue;
                            }
                        }
                    }
                    let Some(db) = conn.as_ref() else { continue };
                    for id in pending {
                        let Some(path) = stored_path(db, &id) else {
                            continue;
                        };
                        match render(db, &id, Path::new(&path)) {
                            Ok(()) => c.written.fetch_add(1, Relaxed),
                            Err(e) => {
                                tracing::error!(
                                    "cannot write the session file of {}: {e}",
                                    display_id(&id)
                                );
                                c.errors.fetch_add(1, Relaxed)
                            }
                        };
                    }
                }
            })?;
        Ok(FileWriter {
            tx: Some(tx),
            handle: Some(handle),
            counters,
        })
    }

    /// Queues the file of a session finalized in a committed transaction.
    pub fn queue(&self, session_id: String) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(session_id);
        }
    }

    /// Writes what is queued and stops the thread.
    pub fn finish(&mut self) {
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        self.finish();
    }
}
