//! The single writer: a dedicated thread that owns the writing connection,
//! fed by a bounded channel. It takes what is waiting (up to a batch), writes it
//! in one transaction, and commits: a quiet stream commits each event at once,
//! a busy one in large batches. Session files are written after the commit
//! that finalized their session, from SQL.

use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use super::upkeep::{self, SessionCache};
use super::{prune, session_file};
use crate::config::CaptureConfig;
use crate::core::delegation::Transition;
use crate::core::model::AgentSession;
use crate::core::session::{self, SessionState};
use crate::core::time::format_timestamp;
use crate::core::Source;
use crate::error::{AggregatorError, Result};
use crate::ingest::{NormalizedEvent, Outcome, Rejection};

/// Messages between the channel's bound and this many per transaction.
const BATCH_MAX: usize = 4096;
/// How long the writer waits for a burst to gather before a transaction.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// The live recorder's linger: a transaction's fixed cost (the 16 KiB pages
/// of the table and its indexes written to the WAL) is shared by the events of
/// up to 50 ms instead of 2 ms at moderate rates (a few thousand events per
/// second), looking at the queue every [`LINGER`].
const RECORDER_LINGER: std::time::Duration = std::time::Duration::from_millis(50);
/// Below this many queued messages the writer lingers before a transaction.
const LINGER_BELOW: usize = 512;
/// Fewer new messages than this in a [`LINGER`] step (and fewer than four
/// times this queued) make a slow stream.
const LINGER_SLOW: usize = 4;
/// Two stamps of one happening by two sources are this close (see
/// `WriterState::counterpart`): claude-mpm's full handler stamps a tool call
/// well under a second after its transcript line, its end just before the
/// result line; identical calls this close pair up in order.
const PAIRING_WINDOW: chrono::Duration = chrono::Duration::seconds(1);
/// Indexes of `WriterState::waiting`.
const WITH_IDS: usize = 0;
const WITHOUT_IDS: usize = 1;
/// Capacity of the channel: producers wait (backpressure) when it is full.
pub const CHANNEL_CAPACITY: usize = 4096;

/// What the writer needs to know.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub database: PathBuf,
    pub activity_directory: PathBuf,
    pub compress_sessions: bool,
    pub capture: CaptureConfig,
    /// Renders session files at finalization: the documents layer's renderer
    /// (see `documents::writer_config`); `None` writes none (benchmarks of the
    /// store path alone, prune).
    pub session_files: Option<session_file::SessionFileRenderer>,
    /// Events the channel holds before producers wait.
    pub channel_capacity: usize,
    /// SQLite page cache of the writing connection, in KiB.
    pub cache_kib: u32,
    /// The user's price table, laid over the built-in one ("" = none).
    pub pricing_file: PathBuf,
    /// How long the writing connection waits for another process's lock
    /// before failing (short for the `hook` command, which must not wait).
    pub busy_timeout: std::time::Duration,
    /// How long the writer lets a short queue fill before a transaction.
    pub linger: std::time::Duration,
    /// A process that writes a few events and exits (the `hook` command):
    /// no checkpoint thread, and no checkpoint
    /// when it closes unless the WAL has grown past
    /// [`SHORT_LIVED_CHECKPOINT_BYTES`] (see `end_short_lived`).
    pub short_lived: bool,
}

/// The WAL size past which a short-lived writer checkpoints when it ends.
pub const SHORT_LIVED_CHECKPOINT_BYTES: u64 = 1 << 20;

/// The end of a short-lived writer. SQLite's last connection to close would
/// checkpoint and delete the WAL, and the next process create it again: four
/// fsyncs for a write of a few pages. Instead the WAL is left as it is until
/// it passes [`SHORT_LIVED_CHECKPOINT_BYTES`] (about eight hooks); then it is
/// copied back and truncated (TRUNCATE: a WAL left with frames already copied
/// would be copied again by every later process, which rebuilds its index
/// from the file). Never waits: when another connection is busy, it (the
/// recorder's checkpoint thread) or a later process does it.
fn end_short_lived(conn: &Connection, path: &std::path::Path) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    if size < SHORT_LIVED_CHECKPOINT_BYTES {
        return;
    }
    let _ = conn.busy_timeout(std::time::Duration::ZERO);
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!("checkpoint: {e}");
    }
}

impl WriterConfig {
    /// The writer settings of a configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        WriterConfig {
            database: config.database.clone(),
            // Stored in `sessions.file_path`: absolute, so that a prune run
            // from another directory finds the files an import named.
            activity_directory: std::path::absolute(&config.activity_directory)
                .unwrap_or_else(|_| config.activity_directory.clone()),
            compress_sessions: config.compress_sessions,
            capture: config.capture,
            session_files: None,
            channel_capacity: CHANNEL_CAPACITY,
            cache_kib: 16 * 1024,
            pricing_file: config.pricing_file.clone(),
            busy_timeout: super::BUSY_TIMEOUT,
            linger: LINGER,
            short_lived: false,
        }
    }

    /// Settings for the live recorder: a short queue (the socket gives
    /// backpressure) and a smaller cache keep its memory low.
    pub fn for_recorder(config: &crate::config::Config) -> Self {
        WriterConfig {
            channel_capacity: 1024,
            cache_kib: 4 * 1024,
            linger: RECORDER_LINGER,
            ..Self::from_config(config)
        }
    }
}

/// One attempt to send: `Ok(None)` sent, `Ok(Some(msg))` the channel is full,
/// `Err(msg)` the writer is gone.
fn try_send(
    tx: &flume::Sender<WriterMsg>,
    msg: WriterMsg,
) -> std::result::Result<Option<WriterMsg>, WriterMsg> {
    match tx.try_send(msg) {
        Ok(()) => Ok(None),
        Err(flume::TrySendError::Full(m)) => Ok(Some(m)),
        Err(flume::TrySendError::Disconnected(m)) => Err(m),
    }
}

/// Sends to the writer, waiting while its channel is full. Producers sleep
/// briefly instead of parking on the channel: a parked sender would have to be
/// woken by the writer once per message, which costs more than the write.
pub fn send_blocking(
    tx: &flume::Sender<WriterMsg>,
    mut msg: WriterMsg,
) -> std::result::Result<(), WriterMsg> {
    while let Some(full) = try_send(tx, msg)? {
        msg = full;
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    Ok(())
}

/// [`send_blocking`] for async producers.
pub async fn send_async(
    tx: &flume::Sender<WriterMsg>,
    mut msg: WriterMsg,
) -> std::result::Result<(), WriterMsg> {
    while let Some(full) = try_send(tx, msg)? {
        msg = full;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    Ok(())
}

impl From<Outcome> for WriterMsg {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Event(e) => WriterMsg::Event(e),
            Outcome::Control(_) => WriterMsg::Control,
            Outcome::Rejected(r) => WriterMsg::Rejected(Box::new(r)),
        }
    }
}

/// A session document to import: its header (no events) and its events, normalized.
#[derive(Debug)]
pub struct DocumentImport {
    pub session: AgentSession,
    pub events: Vec<NormalizedEvent>,
}

/// The recorder's state, written to the `recorder_state` row.
#[derive(Debug, Clone, Default)]
pub struct RecorderStateUpdate {
    pub pid: u32,
    pub state: crate::core::event::RecorderState,
    pub connected: bool,
    pub host: String,
    pub port: u16,
    pub started_at: Option<DateTime<Utc>>,
    pub stopped: bool,
    pub events_received: u64,
    pub connections: u64,
    pub last_error: Option<String>,
    /// The HTTP hook listener's address (`None`: no listener) and the payloads it received.
    pub listen_address: Option<String>,
    pub http_payloads: u64,
}

/// Messages to the writer.
#[derive(Debug)]
pub enum WriterMsg {
    /// An event to store.
    Event(Box<NormalizedEvent>),
    /// Input to record in `rejected_events`.
    Rejected(Box<Rejection>),
    /// Control traffic: counted only.
    Control,
    /// A session document to import whole.
    Document(Box<DocumentImport>),
    /// Commit now and answer with the counters.
    Flush(flume::Sender<WriterStats>),
    /// Finalize active sessions idle for at least this long (`None`: all of them).
    FinalizeActive {
        idle_for: Option<chrono::Duration>,
        reply: Option<flume::Sender<Vec<String>>>,
    },
    /// Delete data older than a number of days.
    Prune {
        older_than_days: u64,
        reply: flume::Sender<std::result::Result<prune::PruneReport, String>>,
    },
    /// The recorder's state, for its `recorder_state` row.
    RecorderState(Box<RecorderStateUpdate>),
    /// The transcript follower read `path` up to `offset` (`None`: the file
    /// is gone, forget it). Sent after the events of those lines, so it is
    /// committed with them or after them.
    TranscriptOffset { path: String, offset: Option<u64> },
    /// The recorder's sources, for `status` (`recorder_sources`).
    Sources(Box<SourcesUpdate>),
    /// Commit what came before and stop, even if producers are still alive.
    Shutdown,
}

/// The row of `recorder_sources`: what the recorder reads from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcesUpdate {
    pub pid: u32,
    pub monitor_enabled: bool,
    pub transcripts_dir: Option<String>,
    /// The transcripts folder does not exist yet.
    pub transcripts_waiting: bool,
    pub files_followed: u64,
    pub last_read_at: Option<DateTime<Utc>>,
}

/// Counters since the writer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub stored: u64,
    pub duplicates: u64,
    /// Observations merged into an event already stored (one happening seen by
    /// several sources: SPEC section 7). Counted apart from exact duplicates.
    pub merged: u64,
    pub rejected: u64,
    pub control: u64,
    pub filtered: u64,
    pub sessions_finalized: u64,
    pub session_files_written: u64,
    pub session_file_errors: u64,
}

/// Handle to the writer thread.
pub struct Writer {
    tx: flume::Sender<WriterMsg>,
    handle: Option<JoinHandle<Result<WriterStats>>>,
    database: PathBuf,
    /// Why the thread stopped, when it failed (read by requests that wait on it).
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Writer {
    /// Opens (and migrates) the database, then starts the writer thread.
    pub fn spawn(config: WriterConfig) -> Result<Writer> {
        let pricing = crate::config::load_pricing(&config.pricing_file)?;
        let conn = super::open_writable_waiting(&config.database, config.busy_timeout)?;
        conn.execute_batch(&format!("PRAGMA cache_size = -{}", config.cache_kib))
            .map_err(|e| AggregatorError::db(&config.database, e))?;
        let (tx, rx) = flume::bounded(config.channel_capacity);
        let database = config.database.clone();
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let failed_slot = failed.clone();
        let handle = std::thread::Builder::new()
            .name("mpm-aggregate-writer".into())
            .spawn(move || {
                let result = Self::thread_main(conn, config, pricing, rx);
                if let (Err(e), Ok(mut slot)) = (&result, failed_slot.lock()) {
                    *slot = Some(e.to_string());
                }
                result
            })
            .map_err(|e| AggregatorError::io(&database, e))?;
        Ok(Writer {
            tx,
            handle: Some(handle),
            database,
            failed,
        })
    }

    fn thread_main(
        conn: Connection,
        config: WriterConfig,
        pricing: crate::core::pricing::PricingTable,
        rx: flume::Receiver<WriterMsg>,
    ) -> Result<WriterStats> {
        let path = config.database.clone();
        // Every statement of the write path stays prepared (rusqlite keeps 16
        // by default, fewer than the path uses: it would prepare them anew).
        conn.set_prepared_statement_cache_capacity(64);
        let files = session_file::FileWriter::spawn(path.clone(), config.session_files)
            .map_err(|e| AggregatorError::io(&path, e))?;
        // The writer never checkpoints as it commits: a helper thread does, or a
        // short-lived writer when it ends, past a WAL size (see `end_short_lived`).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(|e| AggregatorError::db(&path, e))?;
        let checkpointer = if config.short_lived {
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .map_err(|e| AggregatorError::db(&path, e))?;
            super::checkpoint::Checkpointer::none()
        } else {
            super::checkpoint::Checkpointer::spawn(path.clone(), config.busy_timeout)
                .map_err(|e| AggregatorError::io(&path, e))?
        };
        let mut state = WriterState::new(conn, config, pricing, files, checkpointer)
            .map_err(|e| AggregatorError::db(&path, e))?;
        let result = state.run(rx).map_err(|e| AggregatorError::db(&path, e));
        // Session files finalized so far are written before the writer reports back.
        state.files.finish();
        // After them: a file being rendered holds a read snapshot that the
        // checkpoint (which never waits) would fail on.
        if state.config.short_lived {
            end_short_lived(&state.conn, &path);
        }
        state.checkpointer.finish();
        result?;
        Ok(state.current_stats())
    }

    /// A sender for producers (socket task, importer, sweeper).
    pub fn sender(&self) -> flume::Sender<WriterMsg> {
        self.tx.clone()
    }

    /// Sends a request and waits for its answer, or for the writer to fail.
    fn request<T>(&self, make: impl FnOnce(flume::Sender<T>) -> WriterMsg) -> Result<T> {
        let (reply, rx) = flume::bounded(1);
        if self.tx.send(make(reply)).is_err() {
            return Err(self.failure());
        }
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(answer) => return Ok(answer),
                // A request queued when the thread died keeps its reply
                // sender alive in the channel: look at the thread itself.
                Err(flume::RecvTimeoutError::Timeout)
                    if self.handle.as_ref().is_some_and(|h| !h.is_finished()) => {}
                Err(_) => return Err(self.failure()),
            }
        }
    }

    /// Commits what was sent so far and returns the counters.
    pub fn flush(&self) -> Result<WriterStats> {
        self.request(WriterMsg::Flush)
    }

    /// Finalizes every active session (files written) and returns their ids.
    pub fn finalize_all(&self) -> Result<Vec<String>> {
        self.request(|reply| WriterMsg::FinalizeActive {
            idle_for: None,
            reply: Some(reply),
        })
    }

    /// Deletes sessions older than `days` days (see [`prune`]).
    pub fn prune(&self, days: u64) -> Result<prune::PruneReport> {
        self.request(|reply| WriterMsg::Prune {
            older_than_days: days,
            reply,
        })?
        .map_err(|e| AggregatorError::db_message(&self.database, e))
    }

    /// The database it writes.
    pub fn database(&self) -> &std::path::Path {
        &self.database
    }

    /// The error that stopped the writer (for producers whose send failed).
    pub fn failure(&self) -> AggregatorError {
        match self.failed.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => AggregatorError::Recorder(reason),
            None => AggregatorError::db_message(&self.database, "the writer stopped"),
        }
    }

    /// Drains the channel, commits, stops the thread and returns the final
    /// counters, or the error that stopped the writer.
    pub fn shutdown(mut self) -> Result<WriterStats> {
        self.join()
    }

    fn join(&mut self) -> Result<WriterStats> {
        // Producers may still hold senders (a socket task winding down), so
        // ask the thread to stop rather than waiting for the channel to close.
        let _ = self.tx.send(WriterMsg::Shutdown);
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| {
                Err(AggregatorError::db_message(
                    &self.database,
                    "the writer thread panicked",
                ))
            }),
            None => Ok(WriterStats::default()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.handle.is_some() {
            if let Err(e) = self.join() {
                tracing::error!("{e}");
            }
        }
    }
}

/// The statement every stored event runs, and the search index's, taken from
/// the statement cache once per batch instead of once per event: a cache
/// lookup hashes, compares and copies the whole SQL text, and returning the
/// statement hashes it again (a few percent of the writer, measured).
struct BatchStatements<'c> {
    insert_event: CachedStatement<'c>,
    insert_search: CachedStatement<'c>,
}

const INSERT_EVENT: &str = "INSERT OR IGNORE INTO events (session_id, timestamp, event_type, category, tool_name,
        socket_event, raw_type, subtype, source, correlation_id, delegation_id, data, envelope, received_at,
        dedup_key, identity, origin, agent_id, match_key)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)";

impl<'c> BatchStatements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(BatchStatements {
            insert_event: conn.prepare_cached(INSERT_EVENT)?,
            insert_search: conn.prepare_cached(super::search_index::INSERT)?,
        })
    }
}

/// Everything the writer thread owns (nothing here is shared with another
/// thread: producers reach it only through the channel).
struct WriterState {
    /// The one connection that writes, inside a transaction per batch
    /// (counted: a batch's statements borrow it while the state is changed).
    conn: Rc<Connection>,
    config: WriterConfig,
    /// The projection of the sessions touched lately (see `upkeep`).
    cache: SessionCache,
    /// Counters since the writer started (what `flush` answers).
    stats: WriterStats,
    /// Number of the current batch (cache eviction keeps this batch's sessions).
    batch: u64,
    /// The next `sessions.completed_seq`: the order in which sessions ended
    /// (`get_completed_sessions` reads it).
    next_completed_seq: i64,
    /// Stored events by type, added to `event_type_counts` at the end of a batch.
    type_counts: HashMap<String, i64>,
    /// Sessions whose file is to be written once this batch commits.
    finalized: Vec<String>,
    /// `flush` requests answered once this batch commits.
    replies: Vec<flume::Sender<WriterStats>>,
    /// The recorder's latest state, written to its row at the end of a batch.
    recorder: Option<RecorderStateUpdate>,
    /// The newest event time stored by this writer (for the recorder's row).
    last_event_time: Option<DateTime<Utc>>,
    /// A session is being rebuilt from its events: its finalizations are not new.
    replaying: bool,
    /// Sessions to rebuild from their events before this batch commits
    /// (an observation was merged into an event already stored).
    rebuild: std::collections::BTreeSet<String>,
    /// The event holding the last prompt each source without ids sent in a
    /// session (by session and origin): the turn its next `Stop` ends.
    last_unidentified_prompt: HashMap<(String, Source), i64>,
    /// Per session, whether observations with ids ([`WITH_IDS`]) and without
    /// ([`WITHOUT_IDS`]) may be waiting for their counterparts: a session
    /// fed by one kind of source never looks for the other. Read from the
    /// database on first use; forgotten when another process writes.
    waiting: HashMap<String, [bool; 2]>,
    /// `PRAGMA data_version` when this connection last looked: a change means
    /// another process (a hook, an import, a prune) committed, so the cache is stale.
    data_version: i64,
    /// Prunes to answer, with their session files to delete, once committed.
    prunes: Vec<(
        flume::Sender<std::result::Result<prune::PruneReport, String>>,
        prune::PruneReport,
    )>,
    /// A shutdown was asked: commit what came before it and stop.
    stop: bool,
    /// The thread that writes session files from SQL after commits.
    files: session_file::FileWriter,
    /// The thread that copies the WAL back into the database.
    checkpointer: super::checkpoint::Checkpointer,
}

impl WriterState {
    fn new(
        conn: Connection,
        config: WriterConfig,
        pricing: crate::core::pricing::PricingTable,
        files: session_file::FileWriter,
        checkpointer: super::checkpoint::Checkpointer,
    ) -> rusqlite::Result<Self> {
        let max_seq: i64 = conn.query_row(
            "SELECT coalesce(max(completed_seq), 0) FROM sessions",
            [],
            |r| r.get(0),
        )?;
        Ok(WriterState {
            conn: Rc::new(conn),
            config,
            cache: SessionCache::new(pricing),
            stats: WriterStats::default(),
            batch: 0,
            next_completed_seq: max_seq + 1,
            type_counts: HashMap::new(),
            finalized: Vec::new(),
            replies: Vec::new(),
            recorder: None,
            last_event_time: None,
            replaying: false,
            rebuild: Default::default(),
            last_unidentified_prompt: HashMap::new(),
            waiting: HashMap::new(),
            data_version: 0,
            prunes: Vec::new(),
            stop: false,
            files,
            checkpointer,
        })
    }

    fn run(&mut self, rx: flume::Receiver<WriterMsg>) -> rusqlite::Result<()> {
        while let Ok(first) = rx.recv() {
            // A short queue: let a burst of events gather so that producers
            // need not wake this thread once per event. A quiet stream still
            // commits within `linger`; a busy one stops waiting once the queue
            // is long; anything else (a heartbeat, a flush) commits at once.
            // A slow stream (few events in the first step) waits out the rest
            // in one sleep: one wakeup per batch instead of one per step.
            let lingered = std::time::Instant::now();
            let events = matches!(first, WriterMsg::Event(_) | WriterMsg::Rejected(_));
            let mut step = LINGER.min(self.config.linger);
            while events && rx.len() < LINGER_BELOW && lingered.elapsed() < self.config.linger {
                let before = rx.len();
                std::thread::sleep(step);
                if rx.len() < (before + LINGER_SLOW).min(LINGER_SLOW * 4) {
                    step = self.config.linger.saturating_sub(lingered.elapsed());
                }
            }
            self.batch += 1;
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.notice_other_writers()?;
            let conn = Rc::clone(&self.conn);
            let result = (|| {
                let mut replies_after = Vec::new();
                let mut statements = BatchStatements::prepare(&conn)?;
                self.handle(first, &mut replies_after, &mut statements)?;
                let mut taken = 1;
                while taken < BATCH_MAX && !self.stop {
                    match rx.try_recv() {
                        Ok(msg) => self.handle(msg, &mut replies_after, &mut statements)?,
                        Err(_) => break,
                    }
                    taken += 1;
                }
                drop(statements);
                self.end_batch()?;
                Ok::<_, rusqlite::Error>(replies_after)
            })();
            match result {
                Ok(after) => {
                    self.conn.execute_batch("COMMIT")?;
                    self.after_commit();
                    for (reply, payload) in after {
                        let _ = reply.send(payload);
                    }
                    if self.stop {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    for (reply, _) in self.prunes.drain(..) {
                        let _ = reply.send(Err(e.to_string()));
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Handles one message inside the open transaction. Replies that must wait
    /// for the commit are queued in `after`.
    fn handle(
        &mut self,
        msg: WriterMsg,
        after: &mut Vec<(flume::Sender<Vec<String>>, Vec<String>)>,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<()> {
        match msg {
            WriterMsg::Event(event) => self.store_event(&event, true, statements)?,
            WriterMsg::Rejected(r) => self.store_rejection(&r)?,
            WriterMsg::Control => self.stats.control += 1,
            WriterMsg::Document(doc) => self.import_document(*doc, statements)?,
            WriterMsg::Flush(reply) => self.replies.push(reply),
            WriterMsg::FinalizeActive { idle_for, reply } => {
                let ids = self.finalize_active(idle_for)?;
                if let Some(reply) = reply {
                    after.push((reply, ids));
                }
            }
            WriterMsg::Prune {
                older_than_days,
                reply,
            } => {
                self.cache.flush_all(&self.conn)?;
                self.flush_type_counts()?;
                let report =
                    prune::prune(&self.conn, older_than_days, &self.config.activity_directory);
                self.cache.sessions.clear();
                match report {
                    // Answered, and files deleted, only once the deletion is committed.
                    Ok(report) => self.prunes.push((reply, report)),
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                        return Err(e);
                    }
                }
            }
            WriterMsg::RecorderState(update) => self.recorder = Some(*update),
            WriterMsg::TranscriptOffset { path, offset } => match offset {
                Some(offset) => {
                    self.conn
                        .prepare_cached(
                            "INSERT INTO transcript_offsets (path, offset, updated_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT(path) DO UPDATE SET offset = excluded.offset, updated_at = excluded.updated_at",
                        )?
                        .execute(params![path, offset as i64, format_timestamp(&Utc::now())])?;
                }
                None => {
                    self.conn
                        .prepare_cached("DELETE FROM transcript_offsets WHERE path = ?1")?
                        .execute(params![path])?;
                }
            },
            WriterMsg::Sources(s) => {
                self.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO recorder_sources (id, pid, monitor_enabled, transcripts_dir, transcripts_waiting,
                                files_followed, last_read_at, updated_at)
                         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        s.pid,
                        s.monitor_enabled,
                        s.transcripts_dir,
                        s.transcripts_waiting,
                        s.files_followed as i64,
                        s.last_read_at.as_ref().map(format_timestamp),
                        format_timestamp(&Utc::now()),
                    ])?;
            }
            WriterMsg::Shutdown => self.stop = true,
        }
        Ok(())
    }

    fn store_rejection(&mut self, r: &Rejection) -> rusqlite::Result<()> {
        self.stats.rejected += 1;
        self.conn
            .prepare_cached(
                "INSERT INTO rejected_events (received_at, socket_event, reason, payload, payload_bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![format_timestamp(&r.received_at), r.socket_event, r.reason, r.payload, r.payload_bytes as i64])?;
        Ok(())
    }

    /// Stores one event and keeps its session, delegations and metrics up to date.
    /// `track_delegations` is off for imported documents, which bring their own.
    fn store_event(
        &mut self,
        event: &NormalizedEvent,
        track_delegations: bool,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<()> {
        if !self.config.capture.allows(event.category) {
            self.stats.filtered += 1;
            if session::finalizes(event) {
                if let Some(id) = &event.session_id {
                    self.finalize_session_at(id, event.timestamp, session::ends_turn_only(event))?;
                }
            }
            return Ok(());
        }
        let match_key = self.match_key(event)?;
        if let Some(key) = &match_key {
            match self.content_match(event, key, statements)? {
                ContentMatch::Merged => {
                    self.stats.merged += 1;
                    return Ok(());
                }
                ContentMatch::None => {}
            }
        }
        let batch = self.batch;
        let session = match &event.session_id {
            Some(id) => self.cache.get_or_load(&self.conn, id)?,
            None => None,
        };
        let track = track_delegations && self.config.capture.agent_delegations;
        let decision = session::decide(session.as_deref(), event, track);
        let attributed = decision
            .attributed
            .and_then(|i| session.as_deref().map(|s| s.delegations[i].id));

        let inserted = statements.insert_event.execute(params![
            event.session_id,
            event.timestamp_text(),
            event.kind.as_str(),
            event.category.as_str(),
            event.facts.tool_name,
            event.socket_event,
            event.raw_type,
            event.subtype,
            event.source,
            event.correlation_id,
            attributed,
            event.data,
            event.envelope,
            format_timestamp(&event.received_at),
            &event.dedup_key[..],
            event.identity,
            event.origin.as_str(),
            event.facts.agent_id,
            match_key,
        ])?;
        if inserted == 0 {
            if self.merge_observation(event, statements)? {
                self.stats.merged += 1;
            } else {
                self.stats.duplicates += 1;
            }
            return Ok(());
        }
        self.stats.stored += 1;
        let stored_row = self.conn.last_insert_rowid();
        super::search_index::index_stored(&mut statements.insert_search, stored_row, event)?;
        if match_key.is_some() {
            self.note_prompt(event, stored_row);
            if let Some(w) = event
                .session_id
                .as_ref()
                .and_then(|id| self.waiting.get_mut(id))
            {
                w[if event.identity.is_some() {
                    WITH_IDS
                } else {
                    WITHOUT_IDS
                }] = true;
            }
        }
        // Looked up before inserting: no new key string per event.
        match self.type_counts.get_mut(event.kind.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.type_counts.insert(event.kind.as_str().to_string(), 1);
            }
        }
        if self.last_event_time.is_none_or(|t| event.timestamp > t) {
            self.last_event_time = Some(event.timestamp);
        }
        let Some(session_id) = &event.session_id else {
            return Ok(());
        };
        if self.rebuild.contains(session_id) {
            // Rebuilt from its events at the end of the batch anyway.
            return Ok(());
        }
        self.project(session_id, event, stored_row, decision, batch)
    }

    /// Applies a stored event to its session's projection (delegation rows
    /// allocated as the decision says), and finalizes the session when the
    /// event ends it.
    fn project(
        &mut self,
        session_id: &str,
        event: &NormalizedEvent,
        event_row: i64,
        decision: session::Decision,
        batch: u64,
    ) -> rusqlite::Result<()> {
        let new_delegation = if decision.transition == Transition::Open {
            let id = upkeep::insert_delegation(&self.conn, session_id, event, decision.half)?;
            self.conn
                .prepare_cached("UPDATE events SET delegation_id = ?1 WHERE id = ?2")?
                .execute(params![id, event_row])?;
            Some(id)
        } else {
            None
        };
        let state = self
            .cache
            .sessions
            .entry(session_id.to_string())
            .or_insert_with(|| SessionState::new(event.timestamp));
        state.touched_batch = batch;
        if session::reopens(state, event) {
            state.completed = false;
            state.end_time = None;
        }
        for (gone, kept) in session::apply_event(state, event, decision, new_delegation) {
            self.conn
                .prepare_cached("UPDATE events SET delegation_id = ?2 WHERE delegation_id = ?1")?
                .execute(params![gone, kept])?;
            self.conn
                .prepare_cached("DELETE FROM delegations WHERE id = ?1")?
                .execute([gone])?;
        }
        if session::finalizes(event) {
            let end = session::end_time_of(state, event);
            self.finalize_session_at(session_id, end, session::ends_turn_only(event))?;
        } else if state.completed
            && !self.replaying
            && !self.finalized.iter().any(|id| id == session_id)
        {
            // Stored after the end without reopening (a Stop's bookkeeping): the
            // session file is written again, so that it holds every event.
            self.finalized.push(session_id.to_string());
        }
        Ok(())
    }

    /// A second observation of a happening already stored (same identity, other
    /// content): what it adds is merged into the stored event, and its session
    /// is rebuilt at the end of the batch. Returns false for an exact duplicate.
    fn merge_observation(
        &mut self,
        event: &NormalizedEvent,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<bool> {
        let (Some(session_id), Some(identity)) = (&event.session_id, &event.identity) else {
            return Ok(false);
        };
        let existing = self
            .conn
            .prepare_cached(
                "SELECT id, data, origin, timestamp, dedup_key, event_type, category, socket_event,
                        raw_type, subtype, correlation_id, envelope
                 FROM events WHERE session_id = ?1 AND identity = ?2",
            )?
            .query_row(params![session_id, identity], |r| {
                Ok(MergeTarget {
                    row: r.get(0)?,
                    data: r.get(1)?,
                    origin: r.get(2)?,
                    timestamp: r.get(3)?,
                    key: r.get(4)?,
                    identity: identity.clone(),
                    event_type: r.get(5)?,
                    category: r.get(6)?,
                    socket_event: r.get(7)?,
                    raw_type: r.get(8)?,
                    subtype: r.get(9)?,
                    correlation_id: r.get(10)?,
                    envelope: r.get(11)?,
                })
            })
            .optional()?;
        let Some(stored) = existing else {
            return Ok(false);
        };
        let (row, key) = (stored.row, &stored.key);
        if *key == event.dedup_key
            || !self.remember_observation(&event.dedup_key, session_id, row)?
        {
            return Ok(false);
        }
        let merged = merge_data(&stored.data, &event.data);
        let origins = merge_origins(stored.origin.as_deref(), event.origin.as_str());
        // A transcript's time is the true time of the happening; the others
        // are arrival times (SPEC section 7).
        let timestamp = if event.origin == Source::Transcript {
            event.timestamp_text()
        } else {
            stored.timestamp.clone()
        };
        self.conn
            .prepare_cached("UPDATE events SET data = ?2, origin = ?3, timestamp = ?4, agent_id = coalesce(agent_id, ?5) WHERE id = ?1")?
            .execute(params![row, merged, origins, timestamp, event.facts.agent_id])?;
        super::search_index::reindex(
            &self.conn,
            &mut statements.insert_search,
            row,
            &stored.event_type,
            &merged,
        )?;
        // A live observation (hook, monitor, transcript) that changes nothing
        // the projection reads (the new fields are not facts, the time is the
        // same) leaves the session as it is: no replay of the whole session,
        // which made a long session followed beside its hooks quadratic. An
        // imported file's merge still replays: only a replay sets aside the
        // times of imported payloads that had none (`ignore_unknown_times`).
        let rebuild = event.origin == Source::Import || {
            let before = stored.as_event(
                session_id,
                &stored.data,
                stored.origin.as_deref(),
                &stored.timestamp,
            );
            let after = stored.as_event(session_id, &merged, Some(&origins), &timestamp);
            projected(&before) != projected(&after)
        };
        self.rebuild_with_source(session_id, event.origin.as_str(), rebuild)?;
        Ok(true)
    }

    /// Marks a session for rebuilding at the end of the batch (`rebuild`),
    /// after an observation from `origin` was merged into one of its events:
    /// that source contributed, though it added no event of its own.
    fn rebuild_with_source(
        &mut self,
        session_id: &str,
        origin: &str,
        rebuild: bool,
    ) -> rusqlite::Result<()> {
        if let Some(state) = self.cache.get_or_load(&self.conn, session_id)? {
            if !state.sources.iter().any(|s| s == origin) {
                state.sources.push(origin.to_string());
                state.dirty = true;
            }
        }
        if rebuild {
            self.rebuild.insert(session_id.to_string());
        }
        Ok(())
    }

    /// The key under which an observation meets its counterpart of the other
    /// kind (with ids / without), or `None`: events that are not tool calls,
    /// prompts or stops, and events of a transcript without ids (a transcript
    /// identifies every happening it tells; what it leaves without an id is
    /// its own bookkeeping). A `Stop` is keyed by its turn's prompt row: the
    /// one of its `prompt_id`, or, without one, the last prompt before it.
    fn match_key(&mut self, event: &NormalizedEvent) -> rusqlite::Result<Option<String>> {
        let (Some(key), Some(session_id)) = (&event.facts.content_key, &event.session_id) else {
            return Ok(None);
        };
        if event.identity.is_none() && event.origin == Source::Transcript {
            return Ok(None);
        }
        if key != "stop" {
            return Ok(Some(key.clone()));
        }
        let prompt_row: Option<i64> = match (&event.identity, &event.facts.prompt_id) {
            (Some(_), Some(prompt_id)) => self
                .conn
                .prepare_cached("SELECT id FROM events WHERE session_id = ?1 AND identity = ?2")?
                .query_row(params![session_id, format!("prompt:{prompt_id}")], |r| {
                    r.get(0)
                })
                .optional()?,
            (None, _) => match self
                .last_unidentified_prompt
                .get(&(session_id.clone(), event.origin))
            {
                Some(row) => Some(*row),
                // Not seen by this writer (it started since): the last prompt before it.
                None => self
                    .conn
                    .prepare_cached(
                        "SELECT id FROM events
                     WHERE session_id = ?1 AND event_type = 'UserPromptSubmit' AND timestamp <= ?2
                       AND (identity IS NOT NULL OR match_key IS NOT NULL)
                     ORDER BY timestamp DESC, id DESC LIMIT 1",
                    )?
                    .query_row(params![session_id, event.timestamp_text()], |r| r.get(0))
                    .optional()?,
            },
            _ => None,
        };
        Ok(prompt_row.map(|row| format!("stop:{row}")))
    }

    /// One happening seen by a source with ids and by one without (SPEC section
    /// 7): an observation is merged into a stored observation of the other kind
    /// with the same key that has not met its counterpart yet (which one: see
    /// [`Self::counterpart`]). Two observations without ids never merge (they
    /// are two happenings), nor two with ids (their ids decide), nor an
    /// observation with ids into an event that already has other ids. An
    /// observation without ids delivered again is a duplicate, even once
    /// merged: the merged event carries its duplicate key.
    fn content_match(
        &mut self,
        event: &NormalizedEvent,
        key: &str,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<ContentMatch> {
        let Some(session_id) = &event.session_id else {
            return Ok(ContentMatch::None);
        };
        let identified = event.identity.is_some();
        let other = if identified { WITHOUT_IDS } else { WITH_IDS };
        if !self.waiting_in(session_id)?[other] {
            return Ok(ContentMatch::None);
        }
        let Some(row) = self.counterpart(session_id, key, !identified, event)? else {
            return Ok(ContentMatch::None);
        };
        let known: bool = match &event.identity {
            None => self
                .conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE dedup_key = ?1)")?
                .query_row([&event.dedup_key[..]], |r| r.get(0))?,
            // Already stored: it merges by identity (the normal path).
            Some(identity) => self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1 AND identity = ?2)",
                )?
                .query_row(params![session_id, identity], |r| r.get(0))?,
        };
        if known {
            return Ok(ContentMatch::None);
        }
        self.pair(row, event, statements)?;
        self.note_prompt(event, row);
        Ok(ContentMatch::Merged)
    }

    /// The stored observation `event` meets: one with ids (`identified`) or
    /// one without, of the same key in the session, that has not met its
    /// counterpart yet. When `event` carries its own time (a transcript line,
    /// claude-mpm's stamped events), the earliest within [`PAIRING_WINDOW`] of
    /// it, else the nearest in time: repeated identical calls pair up in order
    /// when close together, and with their own when far apart, whatever order
    /// the sources arrive in. Without its own time (a hook payload, stamped on
    /// arrival) the earliest, so that identical calls pair up in order.
    fn counterpart(
        &mut self,
        session_id: &str,
        key: &str,
        identified: bool,
        event: &NormalizedEvent,
    ) -> rusqlite::Result<Option<i64>> {
        let kind = if identified { "NOT NULL" } else { "NULL" };
        let own_time = event.timestamp.timestamp_millis() != event.received_at.timestamp_millis();
        // One statement, two index probes: the earliest candidate from ?3 on,
        // and the latest before it.
        let sql = format!(
            "SELECT id, timestamp FROM (
                 SELECT id, timestamp FROM events
                 WHERE session_id = ?1 AND match_key = ?2 AND identity IS {kind} AND timestamp >= ?3
                 ORDER BY timestamp, id LIMIT 1)
             UNION ALL
             SELECT id, timestamp FROM (
                 SELECT id, timestamp FROM events
                 WHERE session_id = ?1 AND match_key = ?2 AND identity IS {kind} AND timestamp < ?3
                 ORDER BY timestamp DESC, id LIMIT 1)"
        );
        let from = if own_time {
            format_timestamp(&(event.timestamp - PAIRING_WINDOW))
        } else {
            String::new()
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let found: Vec<(i64, String)> = stmt
            .query_map(params![session_id, key, from], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let time = |t: &str| crate::core::time::parse_stored(t);
        let mut later = None;
        let mut earlier = None;
        for (id, t) in found {
            if t.as_str() >= from.as_str() {
                later = Some((id, time(&t)));
            } else {
                earlier = Some((id, time(&t)));
            }
        }
        if !own_time {
            return Ok(later.map(|(id, _)| id));
        }
        let distance = |t: Option<DateTime<Utc>>| {
            t.map_or(i64::MAX, |t| (t - event.timestamp).num_milliseconds().abs())
        };
        Ok(match (later, earlier) {
            (Some((id, t)), _) if t.is_some_and(|t| t <= event.timestamp + PAIRING_WINDOW) => {
                Some(id)
            }
            (Some((a, at)), Some((b, bt))) => Some(if distance(at) < distance(bt) { a } else { b }),
            (a, b) => a.or(b).map(|(id, _)| id),
        })
    }

    /// Whether observations with ids and without may be waiting in a session
    /// (see `waiting`).
    fn waiting_in(&mut self, session_id: &str) -> rusqlite::Result<[bool; 2]> {
        if let Some(w) = self.waiting.get(session_id) {
            return Ok(*w);
        }
        let w: [bool; 2] = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1 AND match_key IS NOT NULL AND identity IS NOT NULL),
                        EXISTS (SELECT 1 FROM events WHERE session_id = ?1 AND match_key IS NOT NULL AND identity IS NULL)",
            )?
            .query_row([session_id], |r| Ok([r.get(0)?, r.get(1)?]))?;
        if self.waiting.len() >= 10_000 {
            self.waiting.clear();
        }
        self.waiting.insert(session_id.to_string(), w);
        Ok(w)
    }

    /// Remembers where a prompt without ids went (see `last_unidentified_prompt`).
    fn note_prompt(&mut self, event: &NormalizedEvent, row: i64) {
        let (None, Some(session_id), "UserPromptSubmit") =
            (&event.identity, &event.session_id, event.kind.as_str())
        else {
            return;
        };
        if self.last_unidentified_prompt.len() >= 10_000 {
            // Bounded: a session not in it finds its turn by time.
            self.last_unidentified_prompt.clear();
        }
        self.last_unidentified_prompt
            .insert((session_id.clone(), event.origin), row);
    }

    /// Merges an observation into the stored event `row` of the same
    /// happening met by content: what it adds to the data and envelope (what is
    /// stored wins), its ids, its source, and a transcript's true time. The
    /// event has then met its counterpart (no key any more). The event keeps
    /// the duplicate key of its observation without ids (so that a second
    /// delivery of it is found by the unique index); the other one's is kept
    /// in `merged_observations`.
    fn pair(
        &mut self,
        row: i64,
        event: &NormalizedEvent,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<()> {
        type Stored = (
            String,
            Option<String>,
            Option<String>,
            String,
            Vec<u8>,
            String,
        );
        let (data, envelope, origin, timestamp, stored_key, event_type): Stored = self
            .conn
            .prepare_cached(
                "SELECT data, envelope, origin, timestamp, dedup_key, event_type FROM events WHERE id = ?1",
            )?
            .query_row([row], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?;
        let data = merge_data(&data, &event.data);
        let envelope = match (envelope, &event.envelope) {
            (Some(stored), Some(new)) => Some(merge_data(&stored, new)),
            (stored, new) => stored.or_else(|| new.clone()),
        };
        let origin = merge_origins(origin.as_deref(), event.origin.as_str());
        let timestamp = if event.origin == Source::Transcript {
            event.timestamp_text()
        } else {
            timestamp
        };
        let (key, other_key) = if event.identity.is_none() {
            (event.dedup_key.to_vec(), stored_key)
        } else {
            (stored_key, event.dedup_key.to_vec())
        };
        self.conn
            .prepare_cached(
                "UPDATE events SET data = ?2, envelope = ?3, origin = ?4, timestamp = ?5,
                        identity = coalesce(identity, ?6), agent_id = coalesce(agent_id, ?7),
                        correlation_id = coalesce(correlation_id, ?8), tool_name = coalesce(tool_name, ?9),
                        match_key = NULL, dedup_key = ?10
                 WHERE id = ?1",
            )?
            .execute(params![
                row,
                data,
                envelope,
                origin,
                timestamp,
                event.identity,
                event.facts.agent_id,
                event.correlation_id,
                event.facts.tool_name,
                key,
            ])?;
        super::search_index::reindex(
            &self.conn,
            &mut statements.insert_search,
            row,
            &event_type,
            &data,
        )?;
        if let Some(session_id) = &event.session_id {
            self.remember_observation(&other_key, session_id, row)?;
            self.rebuild_with_source(session_id, event.origin.as_str(), true)?;
        }
        Ok(())
    }

    /// Whether an observation with this duplicate key was merged into an event
    /// of the session before.
    fn merged_before(&mut self, key: &[u8], session_id: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM merged_observations m JOIN events e ON e.id = m.event_id
                                WHERE m.dedup_key = ?1 AND m.session_id = ?2 AND e.session_id = ?2)",
            )?
            .query_row(params![key, session_id], |r| r.get(0))
    }

    /// Records the duplicate key of an observation merged into `row`; false
    /// when it was merged before (a second delivery: a duplicate).
    fn remember_observation(
        &mut self,
        key: &[u8],
        session_id: &str,
        row: i64,
    ) -> rusqlite::Result<bool> {
        if self.merged_before(key, session_id)? {
            return Ok(false);
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO merged_observations (dedup_key, session_id, event_id) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![key, session_id, row])?;
        Ok(true)
    }

    /// Rebuilds a session's projection from its stored events, in time order:
    /// the same rules as live, so any order of arrival gives the same session.
    fn rebuild_session(&mut self, session_id: &str) -> rusqlite::Result<()> {
        let Some(old) = self.cache.get_or_load(&self.conn, session_id)?.cloned() else {
            return Ok(());
        };
        tracing::debug!("session {session_id}: rebuilt from its events after a merge");
        self.cache.sessions.remove(session_id);
        self.conn
            .prepare_cached("DELETE FROM delegations WHERE session_id = ?1")?
            .execute([session_id])?;
        self.conn
            .prepare_cached("UPDATE events SET delegation_id = NULL WHERE session_id = ?1 AND delegation_id IS NOT NULL")?
            .execute([session_id])?;
        let (order, any_timed) = super::queries::replay_order(&self.conn, session_id)?;
        // What kinds of id the whole session carries is known before the
        // replay: attribution of its first events depends on it. What is not
        // rebuilt from events (its file, its metadata, its place among the
        // completed sessions, the sources merged in) carries over.
        if let Some(&first) = order.first() {
            let first = super::queries::stored_event(&self.conn, session_id, first)?;
            let mut fresh = SessionState::new(first.timestamp);
            fresh.ids_seen = old.ids_seen;
            fresh.ignore_unknown_times = any_timed;
            fresh.file_path.clone_from(&old.file_path);
            fresh.metadata.clone_from(&old.metadata);
            fresh.completed_seq = old.completed_seq;
            fresh.sources.clone_from(&old.sources);
            self.cache.sessions.insert(session_id.to_string(), fresh);
        }
        let batch = self.batch;
        self.replaying = true;
        let replayed = self.replay(session_id, order, batch);
        self.replaying = false;
        replayed?;
        let Some(state) = self.cache.sessions.get_mut(session_id) else {
            return Ok(());
        };
        state.dirty = true;
        let still_ended = old.completed
            && !state.completed
            && old.end_time.is_some_and(|e| e >= state.last_event_time);
        if still_ended {
            // Ended by the sweeper or a stop, not by an event: still ended.
            let end = old.end_time.unwrap_or(state.last_event_time);
            self.replaying = true;
            let ended = self.finalize_session_at(session_id, end, false);
            self.replaying = false;
            ended?;
        }
        if self
            .cache
            .sessions
            .get(session_id)
            .is_some_and(|s| s.completed)
        {
            // Its file shows the rebuilt session.
            self.finalized.push(session_id.to_string());
        }
        Ok(())
    }

    /// Feeds a session's stored events (`order`: their ids in time order)
    /// to its projection again, one at a time.
    fn replay(&mut self, session_id: &str, order: Vec<i64>, batch: u64) -> rusqlite::Result<()> {
        for row in order {
            let event = super::queries::stored_event(&self.conn, session_id, row)?;
            let decision = {
                let state = self.cache.sessions.get(session_id);
                session::decide(state, &event, self.config.capture.agent_delegations)
            };
            if let Some(i) = decision.attributed {
                let id = self
                    .cache
                    .sessions
                    .get(session_id)
                    .map(|s| s.delegations[i].id);
                self.conn
                    .prepare_cached("UPDATE events SET delegation_id = ?1 WHERE id = ?2")?
                    .execute(params![id, row])?;
            }
            self.project(session_id, &event, row, decision, batch)?;
        }
        Ok(())
    }

    fn finalize_session_at(
        &mut self,
        session_id: &str,
        end: DateTime<Utc>,
        turn_only: bool,
    ) -> rusqlite::Result<()> {
        let Some(state) = self.cache.get_or_load(&self.conn, session_id)? else {
            return Ok(());
        };
        // A replay ends the session where it ended before: same place among
        // the completed ones, no new report, no file until the replay is over.
        let seq = match (self.replaying, state.completed_seq) {
            (true, Some(seq)) => seq,
            _ => {
                self.next_completed_seq += 1;
                self.next_completed_seq - 1
            }
        };
        session::finalize(state, end, seq, turn_only);
        state.touched_batch = self.batch;
        if state.file_path.is_none() {
            let start = state.start_time;
            // Taken by a stored session, or by one named in this batch and not flushed yet.
            let cache = &self.cache.sessions;
            let taken_in_cache = |path: &str| {
                cache
                    .iter()
                    .any(|(id, s)| id != session_id && s.file_path.as_deref() == Some(path))
            };
            let path = session_file::unique_path(
                &self.conn,
                &self.config.activity_directory,
                session_id,
                &start,
                self.config.compress_sessions,
                taken_in_cache,
            )?;
            if let Some(state) = self.cache.sessions.get_mut(session_id) {
                state.file_path = Some(path.to_string_lossy().into_owned());
            }
        }
        if !self.replaying {
            self.stats.sessions_finalized += 1;
            self.finalized.push(session_id.to_string());
        }
        Ok(())
    }

    fn finalize_active(
        &mut self,
        idle_for: Option<chrono::Duration>,
    ) -> rusqlite::Result<Vec<String>> {
        self.cache.flush_all(&self.conn)?;
        let now = Utc::now();
        let mut stmt = self.conn.prepare_cached(
            "SELECT session_id, last_event_time FROM sessions WHERE status = 'active'",
        )?;
        let rows: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut ids = Vec::new();
        for (id, last) in rows {
            let last = crate::core::time::parse_stored(&last).unwrap_or(now);
            if idle_for.is_none_or(|idle| now - last >= idle) {
                self.finalize_session_at(&id, last, false)?;
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// A session known only from a `summary` document has its counts from that
    /// document and no events. When its events come (a `full` document of it),
    /// they are counted one by one: the summary's counts would count them twice.
    fn forget_summary_counts(&mut self, session_id: &str) -> rusqlite::Result<()> {
        let has_events: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE session_id = ?1)")?
            .query_row([session_id], |r| r.get(0))?;
        if has_events {
            return Ok(());
        }
        if let Some(state) = self.cache.get_or_load(&self.conn, session_id)? {
            state.event_count = 0;
            state.metrics.breakdown.clear();
            state.dirty = true;
        }
        Ok(())
    }

    fn import_document(
        &mut self,
        doc: DocumentImport,
        statements: &mut BatchStatements<'_>,
    ) -> rusqlite::Result<()> {
        let DocumentImport {
            session: header,
            events,
        } = doc;
        let id = header.session_id.clone();
        if !events.is_empty() {
            self.forget_summary_counts(&id)?;
        }
        let known_before = self.cache.get_or_load(&self.conn, &id)?.is_some();
        let new_before = self.stats.stored;
        for event in &events {
            self.store_event(event, false, statements)?;
        }
        let stored_any = self.stats.stored > new_before;
        let existing = self.cache.get_or_load(&self.conn, &id)?.is_some();
        if !existing {
            self.cache
                .sessions
                .insert(id.clone(), SessionState::new(header.start_time));
        }
        let has_delegations: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM delegations WHERE session_id = ?1)")?
            .query_row([&id], |r| r.get(0))?;
        if existing && !stored_any && (has_delegations || header.delegations.is_empty()) {
            // The same document again: nothing new to record.
            return Ok(());
        }
        let mut inserted = Vec::new();
        if !has_delegations {
            for d in &header.delegations {
                self.conn
                    .prepare_cached(
                        "INSERT INTO delegations (session_id, agent_type, instructions, description, start_time, end_time, success, error,
                                event_count, tool_operations, files_modified, response_preview, halves,
                                agent_id, start_ref, parent_agent_id, background, tool_calls, tool_failures, api_calls,
                                tokens, model, cost_usd)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
                                 ?20, ?21, ?22, ?23)",
                    )?
                    .execute(params![
                        id,
                        d.agent_type,
                        d.instructions,
                        d.description,
                        format_timestamp(&d.start_time),
                        d.end_time.as_ref().map(format_timestamp),
                        d.end_time.map(|_| d.success),
                        d.error,
                        d.event_count as i64,
                        serde_json::to_string(&d.tool_operations).unwrap_or_default(),
                        serde_json::to_string(&d.files_modified).unwrap_or_default(),
                        d.response_preview,
                        crate::core::delegation::ALL_HALVES,
                        d.agent_id,
                        d.tool_use_id,
                        d.parent_agent_id,
                        d.background,
                        d.tool_calls as i64,
                        d.tool_failures as i64,
                        d.api_calls as i64,
                        d.tokens
                            .filter(|_| d.api_calls > 0)
                            .and_then(|t| serde_json::to_string(&t).ok()),
                        d.model,
                        d.cost_usd,
                    ])?;
                inserted.push(d);
            }
        }
        let batch = self.batch;
        let Some(state) = self.cache.sessions.get_mut(&id) else {
            return Ok(());
        };
        state.touched_batch = batch;
        state.dirty = true;
        state.start_time = header.start_time;
        macro_rules! take {
            ($field:ident) => {
                if header.$field.is_some() {
                    state.$field = header.$field.clone();
                }
            };
        }
        take!(working_directory);
        take!(git_branch);
        take!(launch_method);
        take!(claude_pid);
        take!(claude_version);
        take!(initial_prompt);
        take!(final_response);
        // The document says which sources made the session: for a session
        // new to this store they are its sources (its events arrive here as
        // `import`); otherwise they join those already known.
        if !header.sources.is_empty() {
            if known_before {
                for source in &header.sources {
                    if !state.sources.contains(source) {
                        state.sources.push(source.clone());
                    }
                }
            } else {
                state.sources.clone_from(&header.sources);
            }
        }
        if !header.metadata.is_empty() {
            state.metadata =
                serde_json::to_string(&header.metadata).unwrap_or_else(|_| "{}".into());
        }
        if events.is_empty() {
            let m = &header.metrics;
            state.event_count = m.total_events as i64;
            state.metrics.breakdown = m
                .event_breakdown
                .iter()
                .map(|(k, v)| (k.clone(), *v as i64))
                .collect();
            state.metrics.tools_used.clone_from(&m.tools_used);
            state.metrics.files_modified.clone_from(&m.files_modified);
            // Without events, the figures of SPEC section 7 are the document's.
            let to = &mut state.metrics;
            to.prompts = m.prompts as i64;
            to.tool_calls = m.tool_calls as i64;
            to.tool_failures = m.tool_failures as i64;
            to.api_calls = m.api_calls as i64;
            to.tokens = m.tokens.unwrap_or_default();
            to.models.clone_from(&m.models);
            to.tokens_by_model.clone_from(&m.tokens_by_model);
            if to.tokens_by_model.is_empty() && m.api_calls > 0 {
                // The cost is computed from tokens by model: a document
                // without them names its only model, or leaves the cost
                // unknown (a model without a price), never made up.
                let model = match m.models.as_slice() {
                    [one] => one.clone(),
                    _ => String::new(),
                };
                to.tokens_by_model.insert(model, to.tokens);
            }
            to.claude_code.clone_from(&m.claude_code);
        }
        if !inserted.is_empty() {
            let metrics = &mut state.metrics;
            for d in &inserted {
                if !metrics.agents_used.contains(&d.agent_type) {
                    metrics.agents_used.push(d.agent_type.clone());
                }
            }
            metrics.total_delegations = inserted.len() as i64;
            metrics.successful_delegations = inserted
                .iter()
                .filter(|d| d.end_time.is_some() && d.success)
                .count() as i64;
            metrics.failed_delegations = inserted
                .iter()
                .filter(|d| d.end_time.is_some() && !d.success)
                .count() as i64;
            // The delegations are in SQL, not in the cached state: reload running ones lazily.
            state.delegations.clear();
        }
        match header.end_time {
            Some(end) => {
                self.cache.flush_all(&self.conn)?;
                self.cache.sessions.remove(&id);
                self.finalize_session_at(&id, end, false)?;
            }
            None => {
                if let Some(state) = self.cache.sessions.get_mut(&id) {
                    state.completed = false;
                    state.end_time = None;
                }
            }
        }
        Ok(())
    }

    /// Another process may have written since this connection's last
    /// transaction (a hook, an import, a prune): then every cached session may
    /// be stale, and flushing it would overwrite that process's counts. Called
    /// with the write lock held, so nothing can change between this look and
    /// the commit.
    fn notice_other_writers(&mut self) -> rusqlite::Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if version != self.data_version {
            self.data_version = version;
            self.cache.sessions.clear();
            self.waiting.clear();
            self.next_completed_seq = self
                .conn
                .query_row(
                    "SELECT coalesce(max(completed_seq), 0) FROM sessions",
                    [],
                    |r| r.get::<_, i64>(0),
                )?
                .max(self.next_completed_seq - 1)
                + 1;
        }
        Ok(())
    }

    fn flush_type_counts(&mut self) -> rusqlite::Result<()> {
        if self.type_counts.is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO event_type_counts (event_type, count) VALUES (?1, ?2)
             ON CONFLICT(event_type) DO UPDATE SET count = count + excluded.count",
        )?;
        for (event_type, n) in self.type_counts.drain() {
            stmt.execute(params![event_type, n])?;
        }
        Ok(())
    }

    fn end_batch(&mut self) -> rusqlite::Result<()> {
        for id in std::mem::take(&mut self.rebuild) {
            self.rebuild_session(&id)?;
        }
        self.cache.flush_all(&self.conn)?;
        self.flush_type_counts()?;
        if let Some(r) = self.recorder.take() {
            let now = format_timestamp(&Utc::now());
            let s = self.stats;
            self.conn
                .prepare_cached(
                    "INSERT INTO recorder_state (id, pid, state, connected, host, port, activity_directory, started_at, heartbeat_at,
                            stopped_at, events_received, events_stored, duplicates, rejected, control_events, filtered,
                            last_event_time, last_error, connections, merged, listen_address, http_payloads)
                     VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
                     ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, state = excluded.state, connected = excluded.connected,
                            host = excluded.host, port = excluded.port, activity_directory = excluded.activity_directory,
                            started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = excluded.stopped_at,
                            events_received = excluded.events_received, events_stored = excluded.events_stored,
                            duplicates = excluded.duplicates, rejected = excluded.rejected, control_events = excluded.control_events,
                            filtered = excluded.filtered,
                            last_event_time = coalesce(excluded.last_event_time, recorder_state.last_event_time),
                            last_error = excluded.last_error, connections = excluded.connections,
                            merged = excluded.merged, listen_address = excluded.listen_address,
                            http_payloads = excluded.http_payloads",
                )?
                .execute(params![
                    r.pid,
                    r.state.as_str(),
                    r.connected,
                    r.host,
                    r.port,
                    self.config.activity_directory.to_string_lossy(),
                    r.started_at.as_ref().map(format_timestamp),
                    now,
                    r.stopped.then(|| now.clone()),
                    r.events_received as i64,
                    s.stored as i64,
                    s.duplicates as i64,
                    s.rejected as i64,
                    s.control as i64,
                    s.filtered as i64,
                    self.last_event_time.as_ref().map(format_timestamp),
                    r.last_error,
                    r.connections as i64,
                    s.merged as i64,
                    r.listen_address,
                    r.http_payloads as i64,
                ])?;
        }
        Ok(())
    }

    /// The checkpointer's passive checkpoints never let the WAL start over
    /// while this writer keeps committing (each copies what was there when it
    /// began, and more has come by then): under a sustained stream the WAL
    /// grew to 1.5 GB beside a 0.9 GB database. Past twice
    /// [`super::WAL_SIZE_LIMIT`], between two transactions, a RESTART
    /// checkpoint (most frames are copied already) lets the next transaction
    /// write the WAL from its start, and `journal_size_limit` cuts the file
    /// back. It waits briefly for readers of older snapshots, then gives up
    /// until the next time.
    fn bound_wal(&mut self) {
        let mut wal = self.config.database.as_os_str().to_owned();
        wal.push("-wal");
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        if size < 2 * super::WAL_SIZE_LIMIT as u64 {
            return;
        }
        let _ = self.conn.busy_timeout(std::time::Duration::from_millis(50));
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        {
            tracing::debug!("restart checkpoint: {e}");
        }
        let _ = self.conn.busy_timeout(self.config.busy_timeout);
    }

    fn current_stats(&self) -> WriterStats {
        use std::sync::atomic::Ordering::Relaxed;
        WriterStats {
            session_files_written: self.files.counters.written.load(Relaxed),
            session_file_errors: self.files.counters.errors.load(Relaxed),
            ..self.stats
        }
    }

    fn after_commit(&mut self) {
        self.checkpointer.committed();
        if self.batch.is_multiple_of(16) && !self.config.short_lived {
            self.bound_wal();
        }
        for (reply, mut report) in self.prunes.drain(..) {
            report.delete_files();
            let _ = reply.send(Ok(report));
        }
        for id in self.finalized.drain(..) {
            self.files.queue(id);
        }
        let stats = self.current_stats();
        for reply in self.replies.drain(..) {
            let _ = reply.send(stats);
        }
        self.cache.evict(self.batch);
    }
}

/// What the session projection (`core::session`) reads of a stored event: two
/// events alike in these project alike.
#[allow(clippy::type_complexity)]
fn projected(
    e: &NormalizedEvent,
) -> (
    &crate::core::HookEvent,
    &crate::core::Facts,
    DateTime<Utc>,
    bool,
    Source,
    crate::core::Category,
    (&Option<String>, &str, &Option<String>, &Option<String>),
) {
    (
        &e.kind,
        &e.facts,
        e.timestamp,
        e.time_known,
        e.origin,
        e.category,
        (&e.subtype, &e.socket_event, &e.raw_type, &e.correlation_id),
    )
}

/// What [`WriterState::content_match`] did with an observation.
enum ContentMatch {
    /// Merged into the stored observation of the same happening.
    Merged,
    /// No counterpart waiting, or seen before: the normal path stores it, or
    /// finds it a duplicate or merges it by identity.
    None,
}

/// Adds to a stored event's data what another observation tells and it lacks
/// (top-level keys; nested objects merged the same way). What is stored wins.
/// The stored event an observation with its identity is merged into: what the
/// merge changes (data, sources, time) and what the session's projection reads
/// of it, read in one query.
struct MergeTarget {
    row: i64,
    data: String,
    origin: Option<String>,
    timestamp: String,
    key: Vec<u8>,
    /// The identity it was found by (the observation's).
    identity: String,
    event_type: String,
    category: String,
    socket_event: String,
    raw_type: Option<String>,
    subtype: Option<String>,
    correlation_id: Option<String>,
    envelope: Option<String>,
}

impl MergeTarget {
    /// The event as the projection reads it, with `data`, `origin` and
    /// `timestamp` as they are before or after the merge (as
    /// [`super::queries::stored_event`] reads a row).
    fn as_event(
        &self,
        session_id: &str,
        data: &str,
        origin: Option<&str>,
        timestamp: &str,
    ) -> NormalizedEvent {
        crate::ingest::StoredEvent {
            session_id,
            timestamp,
            event_type: &self.event_type,
            category: &self.category,
            socket_event: &self.socket_event,
            raw_type: self.raw_type.clone(),
            subtype: self.subtype.clone(),
            correlation_id: self.correlation_id.clone(),
            data,
            envelope: self.envelope.as_deref(),
            identity: Some(self.identity.clone()),
            origin,
        }
        .to_event()
    }
}

fn merge_data(stored: &str, new: &str) -> String {
    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(existing) => merge(existing, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot @ serde_json::Value::Null, v) => *slot = v,
            _ => {}
        }
    }
    match (
        serde_json::from_str::<serde_json::Value>(stored),
        serde_json::from_str::<serde_json::Value>(new),
    ) {
        (Ok(mut a), Ok(b)) => {
            merge(&mut a, b);
            serde_json::to_string(&a).unwrap_or_else(|_| stored.to_string())
        }
        _ => stored.to_string(),
    }
}

/// The sources of an event, comma-separated, each once.
fn merge_origins(stored: Option<&str>, new: &str) -> String {
    match stored {
        Some(s) if s.split(',').any(|o| o == new) => s.to_string(),
        Some(s) if !s.is_empty() => format!("{s},{new}"),
        _ => new.to_string(),
    }
}
