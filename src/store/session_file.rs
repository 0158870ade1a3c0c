//! Session files: `session_<first 8 chars of id>_<YYYYMMDD_HHMMSS>.json[.gz]`
//! in the activity directory, written from SQL shortly after a session is
//! finalized (see [`FileWriter`] for when).
//!
//! Session ids come from the network, so they never reach a path raw: every
//! character outside `[A-Za-z0-9_-]` becomes `_`, and a name that was altered or
//! is already taken by another session gets a hash of the full id appended.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    conn.prepare_cached("SELECT file_path FROM sessions WHERE session_id = ?1")
        .and_then(|mut s| s.query_row([session_id], |r| r.get(0)).optional())
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

/// A session file is written this long after the finalization that asks for
/// it: the finalizations of a burst (a `Stop` and its bookkeeping, a batch of
/// sessions) meanwhile are one write.
const WRITE_DELAY: Duration = Duration::from_millis(500);
/// A session's file is rewritten at most once per this many times its last
/// write took: a session that keeps finalizing (a `Stop` every turn) costs at
/// most 1% of a core in rewrites whatever its size, so recording stays linear
/// over a long session instead of rewriting a growing file at every turn.
const REWRITE_SPACING: u32 = 100;

/// When each session's file is due, and how long its last write took.
struct Schedule {
    due: BinaryHeap<Reverse<(Instant, String)>>,
    queued: HashSet<String>,
    /// Sessions written lately: when the write ended and how long it took.
    last: HashMap<String, (Instant, Duration)>,
}

impl Schedule {
    fn new() -> Self {
        Schedule {
            due: BinaryHeap::new(),
            queued: HashSet::new(),
            last: HashMap::new(),
        }
    }

    /// Asks for the file of `id`; one already asked for keeps its time.
    fn ask(&mut self, id: String, now: Instant) {
        if self.queued.contains(&id) {
            return;
        }
        let mut at = now + WRITE_DELAY;
        if let Some((ended, took)) = self.last.get(&id) {
            at = at.max(*ended + *took * REWRITE_SPACING);
        }
        self.queued.insert(id.clone());
        self.due.push(Reverse((at, id)));
    }

    fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// The sessions due by `now` (all of them when `now` is `None`).
    fn take_due(&mut self, now: Option<Instant>) -> Vec<String> {
        let mut ids = Vec::new();
        while let Some(Reverse((at, _))) = self.due.peek() {
            if now.is_some_and(|now| *at > now) {
                break;
            }
            if let Some(Reverse((_, id))) = self.due.pop() {
                self.queued.remove(&id);
                ids.push(id);
            }
        }
        ids
    }

    fn wrote(&mut self, id: String, took: Duration) {
        let now = Instant::now();
        if self.last.len() > 4096 {
            // Forget the sessions no longer held back, so memory stays flat.
            self.last
                .retain(|_, (ended, took)| *ended + *took * REWRITE_SPACING > now);
        }
        self.last.insert(id, (now, took));
    }
}

/// Writes session files on a thread of its own, from its own read connection,
/// so the writer never waits on the file system. A file is written
/// [`WRITE_DELAY`] after its session is finalized (finalizations meanwhile are
/// that one write), and a session's file is not rewritten sooner than
/// [`REWRITE_SPACING`] times its last write took. Everything asked for is
/// written when the thread stops.
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
                let mut schedule = Schedule::new();
                let mut open = true;
                while open {
                    let got = match schedule.next_due() {
                        None => rx.recv().map_err(|_| flume::RecvTimeoutError::Disconnected),
                        Some(at) => rx.recv_deadline(at),
                    };
                    match got {
                        Ok(id) => {
                            let now = Instant::now();
                            schedule.ask(id, now);
                            for id in rx.try_iter() {
                                schedule.ask(id, now);
                            }
                        }
                        Err(flume::RecvTimeoutError::Timeout) => {}
                        Err(flume::RecvTimeoutError::Disconnected) => open = false,
                    }
                    let mut pending = schedule.take_due(open.then(Instant::now));
                    if pending.is_empty() {
                        continue;
                    }
                    pending.sort_unstable();
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
                        let began = Instant::now();
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
                        schedule.wrote(id, began.elapsed());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finalization_burst_is_one_write_after_the_delay() {
        let mut s = Schedule::new();
        let t0 = Instant::now();
        s.ask("a".into(), t0);
        s.ask("a".into(), t0 + Duration::from_millis(300));
        s.ask("b".into(), t0 + Duration::from_millis(100));
        assert!(s.take_due(Some(t0 + WRITE_DELAY / 2)).is_empty());
        assert_eq!(
            s.next_due(),
            Some(t0 + WRITE_DELAY),
            "the first ask sets the time"
        );
        assert_eq!(s.take_due(Some(t0 + WRITE_DELAY)), ["a"]);
        assert_eq!(
            s.take_due(Some(t0 + WRITE_DELAY + Duration::from_millis(100))),
            ["b"]
        );
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn a_long_session_is_rewritten_no_sooner_than_its_write_cost_allows() {
        let mut s = Schedule::new();
        s.wrote("long".into(), Duration::from_millis(40));
        let written = Instant::now();
        s.ask("long".into(), written);
        let due = s.next_due().expect("asked");
        assert!(
            due >= written + Duration::from_millis(40) * REWRITE_SPACING
                - Duration::from_millis(50)
        );
        assert!(s
            .take_due(Some(written + Duration::from_secs(1)))
            .is_empty());
        assert_eq!(
            s.take_due(None),
            ["long"],
            "stopping writes everything asked for"
        );
    }
}
