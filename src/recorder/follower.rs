//! The transcript follower (`start --transcripts [DIR]`): follows Claude
//! Code's transcript files as they are written (file-system notifications,
//! with a periodic rescan as a safety net) and feeds each new whole line to
//! that file's [`TranscriptReader`], kept across appends, then through the
//! same normalizer and writer as every other source.
//!
//! How far each file was read is kept in `transcript_offsets`: the offset
//! just past the last whole line whose events are all stored (saved once the
//! file is idle and its reader was told so, since some events are told only
//! then). At start a file whose size equals its saved offset is left alone
//! until it grows; any other file is read from its start again, which
//! rebuilds its reader's state, and the store drops what it already holds
//! (the n-th identical payload of a file is the n-th event: the same salt as
//! an import's). A file shorter than its offset was truncated and is read
//! again from 0; a deleted file is forgotten. A folder that does not exist
//! yet is waited for. A sub-agent's file is read once its `.meta.json` is
//! there (or after [`META_GRACE`] without it); a later change of the
//! `.meta.json` (its `finished` flag) is given to the reader.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use notify::Watcher;

use crate::core::event::Source;
use crate::ingest::transcript::{FileKind, TranscriptReader};
use crate::ingest::transcript_files::discover;
use crate::ingest::{normalize, DedupSalt, NormalizeOptions, Rejection};
use crate::store::writer::{send_blocking, SourcesUpdate, WriterMsg};

/// A full rescan of the folder at least this often, notifications or not.
const RESCAN: Duration = Duration::from_secs(2);
/// A file with no new line for this long is idle: its reader is told so.
const IDLE: Duration = Duration::from_millis(500);
/// How long a sub-agent's file waits for its `.meta.json` before it is read
/// with its agent id alone.
const META_GRACE: Duration = Duration::from_secs(3);
/// Full scans asked for by notifications are at least this far apart.
const SCAN_GAP: Duration = Duration::from_millis(200);
/// A reader idle this long is dropped (memory stays bounded over thousands
/// of files); should its file grow again, it is read again from its start.
const READER_KEPT: Duration = Duration::from_secs(15 * 60);
/// The loop's longest sleep.
const TICK: Duration = Duration::from_millis(100);

/// What the follower follows and where it reports.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    pub dir: PathBuf,
    pub database: PathBuf,
    pub max_event_bytes: usize,
    pub monitor_enabled: bool,
}

struct Followed {
    session_id: String,
    kind: FileKind,
    /// The sub-agent's `.meta.json` (its modification time when last read).
    meta_mtime: Option<SystemTime>,
    first_seen: Instant,
    reader: Option<TranscriptReader>,
    seen: HashMap<u128, u32>,
    /// Bytes of whole lines fed to the reader.
    offset: u64,
    /// The offset saved in the database.
    saved: Option<u64>,
    /// Whether the reader was told the file is idle since its last line.
    idle_told: bool,
    last_growth: Instant,
}

impl Followed {
    fn waits_for_meta(&self) -> bool {
        matches!(self.kind, FileKind::Subagent(_))
            && self.meta_mtime.is_none()
            && self.first_seen.elapsed() < META_GRACE
    }
}

struct Follower {
    config: FollowerConfig,
    tx: flume::Sender<WriterMsg>,
    /// Its `events_received` counts what the follower sends too, so that the
    /// heartbeat's stored + duplicates + merged + rejected + control = received holds.
    shared: Arc<super::Shared>,
    opts: NormalizeOptions,
    files: HashMap<PathBuf, Followed>,
    /// Offsets saved by an earlier run, used for files not yet seen this run.
    saved: HashMap<String, u64>,
    last_read_at: Option<DateTime<Utc>>,
    last_sources: Option<SourcesUpdate>,
    /// The writer is gone.
    broken: bool,
}

/// Runs the follower on a thread of its own until `stop` is set or the
/// writer goes away; what was read is flushed (readers told the files are
/// idle, offsets saved) before it returns.
pub fn spawn(
    config: FollowerConfig,
    shared: Arc<super::Shared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mpm-aggregate-follower".into())
        .spawn(move || {
            let saved = load_offsets(&config.database);
            let mut f = Follower {
                opts: NormalizeOptions {
                    max_event_bytes: config.max_event_bytes,
                    origin: Source::Transcript,
                },
                config,
                tx: shared.writer_tx.clone(),
                shared,
                files: HashMap::new(),
                saved,
                last_read_at: None,
                last_sources: None,
                broken: false,
            };
            f.run(&stop);
        })
}

fn load_offsets(database: &Path) -> HashMap<String, u64> {
    crate::store::open_read_only(database)
        .and_then(|conn| crate::store::queries::transcript_offsets(&conn))
        .unwrap_or_else(|e| {
            tracing::warn!("transcript follower: cannot read the saved offsets ({e}); every file is read from its start");
            HashMap::new()
        })
}

impl Follower {
    fn run(&mut self, stop: &AtomicBool) {
        let (ev_tx, ev_rx) = std::sync::mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher: Option<notify::RecommendedWatcher> = None;
        let mut last_scan: Option<Instant> = None;
        // A full scan asked for by a notification (a new file, a .meta.json).
        let mut scan_wanted = false;
        let mut last_sources_at = Instant::now();
        tracing::info!(
            "following Claude Code transcripts in {}",
            self.config.dir.display()
        );
        while !stop.load(Ordering::Relaxed) && !self.broken {
            let exists = self.config.dir.is_dir();
            if exists && watcher.is_none() {
                let tx = ev_tx.clone();
                match notify::recommended_watcher(move |e| {
                    let _ = tx.send(e);
                }) {
                    Ok(mut w) => {
                        match w.watch(&self.config.dir, notify::RecursiveMode::Recursive) {
                            Ok(()) => watcher = Some(w),
                            Err(e) => tracing::warn!(
                                "cannot watch {} ({e}); it is rescanned every {}s",
                                self.config.dir.display(),
                                RESCAN.as_secs()
                            ),
                        }
                    }
                    Err(e) => tracing::warn!("cannot watch files ({e}); rescanning instead"),
                }
                last_scan = None;
            } else if !exists && watcher.is_some() {
                watcher = None;
            }
            let mut dirty: Vec<PathBuf> = Vec::new();
            let mut note = |event: notify::Result<notify::Event>, wanted: &mut bool| match event {
                Ok(e) => {
                    if e.need_rescan() {
                        *wanted = true;
                    }
                    for p in e.paths {
                        if p.extension().is_some_and(|x| x == "jsonl") && !e.kind.is_remove() {
                            dirty.push(p);
                        } else {
                            *wanted = true;
                        }
                    }
                }
                Err(_) => *wanted = true,
            };
            if let Ok(e) = ev_rx.recv_timeout(TICK) {
                note(e, &mut scan_wanted);
            }
            while let Ok(e) = ev_rx.try_recv() {
                note(e, &mut scan_wanted);
            }
            dirty.sort();
            dirty.dedup();
            for p in dirty {
                if self.files.contains_key(&p) {
                    self.poll(&p);
                } else {
                    // A new file: discovery places it.
                    scan_wanted = true;
                }
            }
            let since = last_scan.map(|t| t.elapsed());
            if since.is_none_or(|t| t >= RESCAN || (scan_wanted && t >= SCAN_GAP)) {
                self.scan();
                last_scan = Some(Instant::now());
                scan_wanted = false;
            }
            self.tell_idle(false);
            if last_sources_at.elapsed() >= Duration::from_secs(1) {
                self.report(!exists);
                last_sources_at = Instant::now();
            }
        }
        self.tell_idle(true);
        self.report(!self.config.dir.is_dir());
    }

    /// Sends the `recorder_sources` row when it changed.
    fn report(&mut self, waiting: bool) {
        let update = SourcesUpdate {
            pid: std::process::id(),
            monitor_enabled: self.config.monitor_enabled,
            transcripts_dir: Some(self.config.dir.display().to_string()),
            transcripts_waiting: waiting,
            files_followed: self.files.len() as u64,
            last_read_at: self.last_read_at,
        };
        if self.last_sources.as_ref() != Some(&update) {
            self.last_sources = Some(update.clone());
            self.send(WriterMsg::Sources(Box::new(update)));
        }
    }

    fn send(&mut self, msg: WriterMsg) {
        if !self.broken && send_blocking(&self.tx, msg).is_err() {
            self.broken = true;
        }
    }

    /// Lists the folder's transcript files: new ones are followed, changed
    /// `.meta.json` given to their reader, deleted ones forgotten; then every
    /// file is read.
    fn scan(&mut self) {
        let found = if self.config.dir.is_dir() {
            match discover(&self.config.dir) {
                Ok(found) => Some(found),
                Err(e) => {
                    tracing::debug!("transcript follower: {e}");
                    return;
                }
            }
        } else {
            None
        };
        let mut present: std::collections::HashSet<PathBuf> = Default::default();
        for session in found.iter().flat_map(|f| &f.sessions) {
            let mut files: Vec<(PathBuf, FileKind, Option<SystemTime>)> = Vec::new();
            if let Some(m) = &session.main {
                files.push((m.clone(), FileKind::Main, None));
            }
            for s in &session.subagents {
                // A .meta.json still being written is as good as absent.
                let mtime = s
                    .meta_path
                    .as_ref()
                    .filter(|_| s.meta_error.is_none())
                    .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
                files.push((s.path.clone(), FileKind::Subagent(s.meta.clone()), mtime));
            }
            for (path, kind, meta_mtime) in files {
                present.insert(path.clone());
                match self.files.get_mut(&path) {
                    Some(f) => {
                        if meta_mtime.is_some() && meta_mtime != f.meta_mtime {
                            f.meta_mtime = meta_mtime;
                            if let (Some(r), FileKind::Subagent(meta)) = (&mut f.reader, &kind) {
                                r.set_meta(meta.clone());
                                // The reader may now know the sub-agent ended.
                                f.idle_told = false;
                            }
                            f.kind = kind;
                        }
                    }
                    None => {
                        let key = path.display().to_string();
                        let saved = self.saved.remove(&key);
                        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                        // Unchanged since an earlier run: nothing to read until it grows.
                        let offset = saved.filter(|o| *o == size).unwrap_or(0);
                        self.files.insert(
                            path.clone(),
                            Followed {
                                session_id: session.session_id.clone(),
                                kind,
                                meta_mtime,
                                first_seen: Instant::now(),
                                reader: None,
                                seen: HashMap::new(),
                                offset,
                                saved,
                                idle_told: true,
                                last_growth: Instant::now(),
                            },
                        );
                    }
                }
            }
        }
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(mut f) = self.files.remove(&path) {
                if let Some(r) = &mut f.reader {
                    let last = r.finish();
                    self.emit(&path, &mut f.seen, last);
                }
                self.send(WriterMsg::TranscriptOffset {
                    path: path.display().to_string(),
                    offset: None,
                });
            }
        }
        let mut paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        // Main files first, as an import reads them.
        paths.sort_by_key(|p| {
            (
                matches!(self.files[p].kind, FileKind::Subagent(_)),
                p.clone(),
            )
        });
        for p in paths {
            self.poll(&p);
        }
    }

    /// Reads what was appended to `path` since last time (whole lines only).
    fn poll(&mut self, path: &Path) {
        let Some(mut f) = self.files.remove(path) else {
            return;
        };
        if !f.waits_for_meta() {
            self.read_new(path, &mut f);
        }
        self.files.insert(path.to_path_buf(), f);
    }

    fn read_new(&mut self, path: &Path, f: &mut Followed) {
        let Ok(size) = std::fs::metadata(path).map(|m| m.len()) else {
            return; // deleted: the next scan forgets it
        };
        if size < f.offset {
            tracing::info!(
                "{} was truncated: read again from its start",
                path.display()
            );
            f.reader = None;
            f.offset = 0;
            // Its lines are new: none of them was rejected before.
            f.saved = None;
        }
        if size == f.offset {
            return;
        }
        if f.reader.is_none() {
            // Read from the start: the reader's state is rebuilt, and what
            // the store already holds is dropped as duplicate.
            f.reader = Some(TranscriptReader::new(f.kind.clone()).with_session_id(&f.session_id));
            f.seen.clear();
            f.offset = 0;
        }
        let mut buf = Vec::new();
        let read = std::fs::File::open(path).and_then(|mut file| {
            file.seek(SeekFrom::Start(f.offset))?;
            file.take(size - f.offset).read_to_end(&mut buf)
        });
        if let Err(e) = read {
            tracing::debug!("{}: {e}", path.display());
            return;
        }
        // A partial last line is left for later.
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let reader = f.reader.as_mut().expect("reader set above");
        let mut payloads = Vec::new();
        let mut rejected = Vec::new();
        // Lines an earlier run read (and rejected, if bad) are read again for
        // the reader's state: their events are dropped as duplicates, their
        // rejections are not told twice.
        let told_upto = f.saved.unwrap_or(0);
        let mut line_end = f.offset;
        for line in buf[..end].split(|b| *b == b'\n') {
            line_end += line.len() as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match reader.feed_bytes(line) {
                Ok(p) => payloads.extend(p),
                Err(_) if line_end <= told_upto => {}
                Err(e) => rejected.push(Rejection::of_text(
                    Some("transcript"),
                    format!("{}: {e}", path.display()),
                    &String::from_utf8_lossy(line),
                    Utc::now(),
                )),
            }
        }
        f.offset += end as u64 + 1;
        f.idle_told = false;
        f.last_growth = Instant::now();
        self.last_read_at = Some(Utc::now());
        self.emit(path, &mut f.seen, payloads);
        for r in rejected {
            self.shared.events_received.fetch_add(1, Ordering::Relaxed);
            self.send(WriterMsg::Rejected(Box::new(r)));
        }
    }

    fn emit(
        &mut self,
        _path: &Path,
        seen: &mut HashMap<u128, u32>,
        payloads: Vec<serde_json::Value>,
    ) {
        for payload in payloads {
            let outcomes = normalize(
                "transcript",
                payload,
                Utc::now(),
                &self.opts,
                &mut DedupSalt::Occurrences(seen),
            );
            for o in outcomes {
                self.shared.events_received.fetch_add(1, Ordering::Relaxed);
                self.send(o.into());
            }
        }
    }

    /// Tells the reader of each file idle for [`IDLE`] (every file when
    /// `all`), then saves its offset: every event of its lines is then sent.
    fn tell_idle(&mut self, all: bool) {
        for f in self.files.values_mut() {
            if f.idle_told && f.reader.is_some() && f.last_growth.elapsed() >= READER_KEPT {
                f.reader = None;
                f.seen = HashMap::new();
            }
        }
        let paths: Vec<PathBuf> = self
            .files
            .iter()
            .filter(|(_, f)| !f.idle_told && (all || f.last_growth.elapsed() >= IDLE))
            .map(|(p, _)| p.clone())
            .collect();
        for path in paths {
            let Some(mut f) = self.files.remove(&path) else {
                continue;
            };
            if let Some(r) = &mut f.reader {
                let last = r.finish();
                self.emit(&path, &mut f.seen, last);
            }
            f.idle_told = true;
            if f.reader.is_some() && f.saved != Some(f.offset) {
                self.send(WriterMsg::TranscriptOffset {
                    path: path.display().to_string(),
                    offset: Some(f.offset),
                });
                f.saved = Some(f.offset);
            }
            self.files.insert(path, f);
        }
    }
}
