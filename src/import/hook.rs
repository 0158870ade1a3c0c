//! The `hook` source: one Claude Code `command` hook payload per process.
//!
//! Claude Code acts on a hook's exit status and standard output, so nothing
//! here fails outward: every problem becomes one line of `hook.log` next to
//! the database (and, where the database can be written, a row of
//! `rejected_events`).
//!
//! Claude Code waits for each hook before it goes on, so by default
//! ([`hand_off`]) the process only writes the payload to the spool folder
//! (`hook-spool/` next to the database, one file per payload, written under a
//! temporary name and renamed, its arrival time inside) and exits; the first
//! process to find no drainer running forks one, which stores the spool in
//! arrival order through the normal [`Writer`] (many payloads in one
//! transaction when they come in a burst) and exits when the spool is empty.
//! Two locks in the spool folder keep that exact: `.drain.lock`, held by the
//! one drainer, and `.drainers`, held shared by every drainer while it lives
//! ([`wait_for_drainers`] takes it exclusively to know they are all done).
//! `--wait` ([`handle`]) stores the payload before the process exits, with a
//! short busy wait ([`BUSY_WAIT`]), spooling it when the database stays busy.
//! A drainer tries a busy database again for [`DRAIN_PATIENCE`]; files it
//! could not store stay in the spool for the next hook, or `mpm-aggregate
//! import <db dir>/hook-spool` ([`spool_figures`] tells `status` of them).
//!
//! At `Stop`, `StopFailure` and `SessionEnd` the main transcript
//! (`transcript_path`) and the rest of its sub-agents' (Claude Code writes a
//! sub-agent's last message after its `SubagentStop`), at `SubagentStop` the
//! sub-agent's (`agent_transcript_path`), are read from where the last read stopped (table `transcript_offsets`; a partial last line is left for
//! next time) through the same transcript reader as `import`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{AggregatorError, Result};
use crate::ingest::transcript::{FileKind, SubagentMeta, TranscriptReader};
use crate::ingest::{normalize, DedupSalt, NormalizeOptions, Rejection, Source};
use crate::store::writer::{send_blocking, Writer, WriterConfig, WriterMsg};

/// How long a hook waits for another process's lock before spooling (`--wait`).
pub const BUSY_WAIT: Duration = Duration::from_millis(200);
/// How long a background drainer waits for another process's lock in one
/// try (SQLite's busy handler).
pub const DRAIN_BUSY_WAIT: Duration = Duration::from_secs(2);
/// How long a background drainer keeps trying a busy database (a long
/// import, a prune, a migration): nothing waits on it, and a payload that
/// stays in the spool waits for the next hook, which may be hours away.
/// Past this the payloads wait there (`status` shows them).
pub const DRAIN_PATIENCE: Duration = Duration::from_secs(120);
/// Held (exclusively) by the one process draining the spool.
const DRAIN_LOCK: &str = ".drain.lock";
/// Held shared by every drainer while it lives (see [`wait_for_drainers`]).
const DRAINERS_LOCK: &str = ".drainers";
/// The spool folder's name, next to the database.
pub const SPOOL_DIR: &str = "hook-spool";
/// The log file's name, next to the database.
pub const LOG_FILE: &str = "hook.log";
/// Spool files end so; a file being drained ends `.<pid>.draining`.
const SPOOL_EXT: &str = ".hook.json";
const DRAINING_EXT: &str = ".draining";

/// What became of one hook payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// Stored in the database (or rejected there, with its reason).
    Stored,
    /// Written to the spool folder for the next writer.
    Spooled,
    /// Neither: only the log tells of it.
    Lost,
}

/// The spool folder of a database.
pub fn spool_dir(database: &Path) -> PathBuf {
    dir_of(database).join(SPOOL_DIR)
}

/// The hook log of a database.
pub fn log_path(database: &Path) -> PathBuf {
    dir_of(database).join(LOG_FILE)
}

fn dir_of(database: &Path) -> PathBuf {
    match database.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `path` is a hook spool folder (import drains it).
pub fn is_spool_dir(path: &Path) -> bool {
    path.is_dir() && path.file_name().is_some_and(|n| n == SPOOL_DIR)
}

/// Appends one line to the hook log next to `database`; when that cannot be
/// written, to `mpm-aggregate-hook.log` in the temporary folder. Never fails.
pub fn log_line(database: &Path, message: &str) {
    let line = format!(
        "{} pid {}: {}\n",
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        std::process::id(),
        message.replace('\n', " ")
    );
    let append = |path: &Path| -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(line.as_bytes())
    };
    if append(&log_path(database)).is_err() {
        let _ = append(&std::env::temp_dir().join("mpm-aggregate-hook.log"));
    }
}

/// One payload as received: JSON, or text that is not.
enum Input {
    Json(Value),
    Text(String, String),
}

fn parse(input: &[u8], max_bytes: usize) -> Input {
    let text = String::from_utf8_lossy(input);
    if input.len() > max_bytes {
        return Input::Text(
            text.into_owned(),
            format!(
                "hook payload of {} bytes exceeds max_event_bytes ({max_bytes})",
                input.len()
            ),
        );
    }
    match serde_json::from_slice::<Value>(input) {
        Ok(v) if v.is_object() => Input::Json(v),
        Ok(_) => Input::Text(
            text.into_owned(),
            "hook payload is not a JSON object".into(),
        ),
        Err(e) => Input::Text(text.into_owned(), format!("hook payload is not JSON: {e}")),
    }
}

fn hook_options(config: &Config) -> NormalizeOptions {
    NormalizeOptions {
        max_event_bytes: config.max_event_bytes,
        origin: Source::Hook,
    }
}

/// The messages one payload becomes.
fn messages(input: &Input, received_at: DateTime<Utc>, opts: &NormalizeOptions) -> Vec<WriterMsg> {
    match input {
        Input::Json(v) => normalize(
            "hook",
            v.clone(),
            received_at,
            opts,
            &mut DedupSalt::ReceivedAt,
        )
        .into_iter()
        .map(Into::into)
        .collect(),
        Input::Text(text, reason) => vec![WriterMsg::Rejected(Box::new(Rejection::of_text(
            Some("hook"),
            reason.clone(),
            text,
            received_at,
        )))],
    }
}

fn send_all(writer: &Writer, msgs: Vec<WriterMsg>) -> Result<()> {
    let tx = writer.sender();
    for msg in msgs {
        send_blocking(&tx, msg).map_err(|_| writer.failure())?;
    }
    Ok(())
}

/// Handles one hook payload read from standard input: stores it (draining
/// the spool first, reading the transcripts at a stop), or spools it. Never
/// fails and never prints; problems go to the log.
pub fn handle(config: &Config, input: &[u8], received_at: DateTime<Utc>) -> HookOutcome {
    let parsed = parse_logged(config, input);
    store_or_spool(config, &parsed, received_at)
}

/// The payload read from standard input; why it is no JSON, logged.
fn parse_logged(config: &Config, input: &[u8]) -> Input {
    let parsed = parse(input, config.max_event_bytes);
    if let Input::Text(_, reason) = &parsed {
        log_line(&config.database, reason);
    }
    parsed
}

fn store_or_spool(config: &Config, parsed: &Input, received_at: DateTime<Utc>) -> HookOutcome {
    match store(config, parsed, received_at) {
        Ok(()) => HookOutcome::Stored,
        Err(e) => {
            let why = e.to_string();
            match spool(&config.database, parsed, received_at, true) {
                Ok(file) => {
                    log_line(
                        &config.database,
                        &format!("not stored ({why}); spooled to {}", file.display()),
                    );
                    HookOutcome::Spooled
                }
                Err(e2) => {
                    log_line(
                        &config.database,
                        &format!("not stored ({why}) and not spooled ({e2}): payload lost"),
                    );
                    HookOutcome::Lost
                }
            }
        }
    }
}

/// Stores the payload (after what the spool holds), with a short busy wait.
fn store(config: &Config, parsed: &Input, received_at: DateTime<Utc>) -> Result<()> {
    store_spool_then(config, BUSY_WAIT, Some((parsed, received_at)))
}

/// Stores through one writer, oldest first: the spool, round after round
/// (each round claims what is there, commits it and removes its files) until
/// a round finds nothing, then `last`, a payload that is not in the spool.
/// Transcripts are read at each stop; their offsets are saved once committed.
fn store_spool_then(
    config: &Config,
    busy_timeout: Duration,
    last: Option<(&Input, DateTime<Utc>)>,
) -> Result<()> {
    let opts = hook_options(config);
    let dir = spool_dir(&config.database);
    let writer = Writer::spawn(WriterConfig {
        busy_timeout,
        // Each round is one transaction already.
        linger: Duration::ZERO,
        short_lived: true,
        ..crate::documents::writer_config(config)
    })?;
    let mut offsets = None;
    let result = (|| {
        loop {
            let claimed = claim_spool(&dir);
            if claimed.is_empty() {
                break;
            }
            let mut reads = Vec::new();
            let sent = (|| {
                for file in &claimed {
                    if let Some((input, at)) = read_spool_file(&config.database, file) {
                        send_payload(config, &writer, &input, at, &opts, &mut offsets, &mut reads)?;
                    }
                }
                writer.flush()
            })();
            if let Err(e) = sent {
                unclaim(&claimed);
                return Err(e);
            }
            for file in &claimed {
                let _ = std::fs::remove_file(file);
            }
            remember_reads(config, &reads, &mut offsets);
        }
        if let Some((input, at)) = last {
            let mut reads = Vec::new();
            send_payload(config, &writer, input, at, &opts, &mut offsets, &mut reads)?;
            writer.flush()?;
            remember_reads(config, &reads, &mut offsets);
        }
        Ok(())
    })();
    let stats = writer.shutdown();
    result.and(stats.map(|_| ()))
}

/// Sends one payload, and at a stop what its transcripts gained (the reads
/// are added to `reads`, to be saved once committed).
fn send_payload(
    config: &Config,
    writer: &Writer,
    input: &Input,
    received_at: DateTime<Utc>,
    opts: &NormalizeOptions,
    offsets: &mut Option<HashMap<String, u64>>,
    reads: &mut Vec<OffsetRead>,
) -> Result<()> {
    send_all(writer, messages(input, received_at, opts))?;
    if let Input::Json(v) = input {
        if is_stop(v) {
            match read_transcripts(config, writer, v, opts, offsets) {
                Ok(r) => reads.extend(r),
                Err(e) => log_line(&config.database, &format!("transcripts not read: {e}")),
            }
        }
    }
    Ok(())
}

/// Saves the offsets of committed transcript reads.
fn remember_reads(
    config: &Config,
    reads: &[OffsetRead],
    offsets: &mut Option<HashMap<String, u64>>,
) {
    if reads.is_empty() {
        return;
    }
    if let Err(e) = save_offsets(&config.database, reads) {
        // Read again next time: the events are recognized as duplicates.
        log_line(
            &config.database,
            &format!("transcript offsets not saved: {e}"),
        );
        *offsets = None;
    }
}

// ---- hand-off: the default `hook` ----

/// The default `hook`: spools the payload and returns at once; when no
/// drainer is running, forks one first, which stores the spool (this
/// payload and any that arrive meanwhile) and returns when it is empty. The
/// caller exits either way. Never fails and never prints.
pub fn hand_off(config: &Config, input: &[u8], received_at: DateTime<Utc>) {
    let parsed = parse_logged(config, input);
    if let Err(e) = spool(&config.database, &parsed, received_at, false) {
        log_line(
            &config.database,
            &format!("not spooled ({e}); storing it at once"),
        );
        store_or_spool(config, &parsed, received_at);
        return;
    }
    let dir = spool_dir(&config.database);
    let locks = match DrainLocks::try_take(&dir) {
        Ok(Some(locks)) => locks,
        // A drainer is running: it finds this payload before it ends.
        Ok(None) => return,
        Err(e) => {
            log_line(
                &config.database,
                &format!("{}: {e}; draining the spool at once", dir.display()),
            );
            drain_while_spooled(config, None);
            return;
        }
    };
    // SAFETY: the `hook` command has not started a thread yet (configuration
    // and standard input are read on this one), so the child may run anything.
    match unsafe { nix::unistd::fork() } {
        // The locks stay held: the child shares them. Closing this process's
        // descriptors at its exit does not release them (flock(2)).
        Ok(nix::unistd::ForkResult::Parent { .. }) => {}
        Ok(nix::unistd::ForkResult::Child) => {
            detach();
            drain_while_spooled(config, Some(locks));
        }
        Err(e) => {
            log_line(
                &config.database,
                &format!("no background writer ({e}); draining the spool at once"),
            );
            drain_while_spooled(config, Some(locks));
        }
    }
}

/// Leaves Claude Code's session and pipes (it waits for them to close), and
/// yields the processor to the hooks it runs next.
fn detach() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which stay open.
            unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: nice(2) changes this process's priority only.
    unsafe { nix::libc::nice(10) };
    // `ps` tells it from the hooks.
    let _ = nix::sys::prctl::set_name(c"mpm-agg-drain");
}

/// The two locks of a drainer (see the module's doc).
struct DrainLocks {
    drain: std::fs::File,
    /// Held shared until the process ends.
    _drainers: std::fs::File,
}

impl DrainLocks {
    /// The locks, or `None` when another process is draining.
    fn try_take(dir: &Path) -> std::io::Result<Option<DrainLocks>> {
        let open = |name: &str| {
            let mut opts = std::fs::OpenOptions::new();
            opts.read(true).write(true).create(true).truncate(false);
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            opts.open(dir.join(name))
        };
        // Shared first: a waiter that finds `.drainers` free knows that no
        // process holds the drain lock either.
        let drainers = open(DRAINERS_LOCK)?;
        drainers.lock_shared()?;
        let drain = open(DRAIN_LOCK)?;
        match drain.try_lock() {
            Ok(()) => Ok(Some(DrainLocks {
                drain,
                _drainers: drainers,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Drains until the spool is empty. Without `locks` (they could not be
/// taken) it drains once, racing nobody's rename (claims are renames).
fn drain_while_spooled(config: &Config, locks: Option<DrainLocks>) {
    let dir = spool_dir(&config.database);
    let started = std::time::Instant::now();
    loop {
        let result = store_spool_then(config, DRAIN_BUSY_WAIT, None);
        if let Err(e) = &result {
            if is_busy(e) && started.elapsed() < DRAIN_PATIENCE {
                // Still ours (the lock is kept): try again.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        if let Some(l) = &locks {
            let _ = l.drain.unlock();
        }
        if let Err(e) = result {
            log_line(
                &config.database,
                &format!(
                    "not stored ({e}); spooled in {} for the next writer",
                    dir.display()
                ),
            );
            return;
        }
        // A payload spooled while this process held the lock was left to it:
        // look once more after letting go, and drain again unless another
        // process took the lock (then that one finds it).
        let Some(l) = &locks else { return };
        if !has_spooled(&dir) || l.drain.try_lock().is_err() {
            return;
        }
    }
}

/// Whether `e` is another process holding the database longer than we
/// waited (worth trying again), not a database we cannot write.
fn is_busy(e: &AggregatorError) -> bool {
    matches!(
        e.sqlite_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    ) || e.to_string().contains("database is locked")
}

/// Payloads waiting in a database's hook spool (not yet stored, nor being
/// stored by a live process), and when the oldest arrived.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpoolFigures {
    pub folder: PathBuf,
    pub waiting: u64,
    /// The oldest one's arrival time (RFC 3339), when it can be read.
    pub oldest_received_at: Option<String>,
}

/// What waits in `database`'s hook spool; `None` when nothing does.
pub fn spool_figures(database: &Path) -> Option<SpoolFigures> {
    let folder = spool_dir(database);
    let mut waiting: Vec<PathBuf> = std::fs::read_dir(&folder)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| claimable(&p.file_name().unwrap_or_default().to_string_lossy()).is_some())
        .collect();
    if waiting.is_empty() {
        return None;
    }
    // Names begin with the arrival time (see `spool`).
    waiting.sort();
    let oldest_received_at = std::fs::read(&waiting[0])
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("received_at")?.as_str().map(str::to_string));
    Some(SpoolFigures {
        folder,
        waiting: waiting.len() as u64,
        oldest_received_at,
    })
}

/// Whether the spool folder holds a payload not yet claimed.
fn has_spooled(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().ends_with(SPOOL_EXT))
    })
}

/// Waits until no drainer of `database`'s spool is running (each holds
/// `.drainers` shared until it ends); false when `timeout` passed first.
/// For tests, benchmarks and scripts that read the database right after
/// running `hook`.
pub fn wait_for_drainers(database: &Path, timeout: Duration) -> bool {
    let Ok(file) = std::fs::File::open(spool_dir(database).join(DRAINERS_LOCK)) else {
        return true;
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return true;
            }
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(std::fs::TryLockError::WouldBlock) => return false,
            Err(std::fs::TryLockError::Error(_)) => return true,
        }
    }
}

fn is_stop(payload: &Value) -> bool {
    matches!(
        payload.get("hook_event_name").and_then(Value::as_str),
        Some("Stop" | "StopFailure" | "SubagentStop" | "SessionEnd")
    )
}

// ---- spool ----

/// Writes a payload to the spool folder: a temporary name, then a rename;
/// `durable`: synced to the disk before the rename (a payload the database
/// refused; a handed-off one is stored within milliseconds, and the database
/// itself does not sync each commit either, `synchronous = NORMAL`).
fn spool(
    database: &Path,
    parsed: &Input,
    received_at: DateTime<Utc>,
    durable: bool,
) -> Result<PathBuf> {
    let dir = spool_dir(database);
    crate::files::create_private_dir(&dir)?;
    let record = match parsed {
        Input::Json(v) => json!({"received_at": received_at.to_rfc3339(), "payload": v}),
        Input::Text(text, reason) => {
            json!({"received_at": received_at.to_rfc3339(), "text": text, "reason": reason})
        }
    };
    let stem = format!(
        "{}-{}-{:08x}",
        received_at.timestamp_nanos_opt().unwrap_or_default(),
        std::process::id(),
        rand_u32()
    );
    let tmp = dir.join(format!(".{stem}.tmp"));
    let file = dir.join(format!("{stem}{SPOOL_EXT}"));
    let body =
        serde_json::to_vec(&record).map_err(|e| AggregatorError::InvalidFormat(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &file)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AggregatorError::io(&file, e)
    })?;
    Ok(file)
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    h.finish() as u32
}

/// Claims the spool files for this process by renaming each (one rename
/// wins); files claimed by a process that is gone are claimed again.
fn claim_spool(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let pid = std::process::id();
    let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    let mut claimed = Vec::new();
    for path in names {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(base) = claimable(&name) else {
            continue;
        };
        let target = dir.join(format!("{base}.{pid}{DRAINING_EXT}"));
        if std::fs::rename(&path, &target).is_ok() {
            claimed.push(target);
        }
    }
    claimed
}

/// The spool name a file is claimed under, when it waits for a writer: a
/// payload not yet claimed, or `<base>.<pid>.draining` whose process is gone.
fn claimable(name: &str) -> Option<&str> {
    if name.ends_with(SPOOL_EXT) {
        return Some(name);
    }
    let (base, owner) = name.strip_suffix(DRAINING_EXT)?.rsplit_once('.')?;
    // An owner that cannot be read is taken for alive: its file is left alone.
    owner
        .parse::<u32>()
        .is_ok_and(|owner| !process_alive(owner))
        .then_some(base)
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    Path::new("/proc").is_dir() && Path::new(&format!("/proc/{pid}")).exists()
        || !Path::new("/proc").is_dir()
}

/// Gives claimed files back to the spool.
fn unclaim(claimed: &[PathBuf]) {
    for path in claimed {
        let name = path.to_string_lossy();
        if let Some(rest) = name.strip_suffix(DRAINING_EXT) {
            if let Some((base, _)) = rest.rsplit_once('.') {
                let _ = std::fs::rename(path, base);
            }
        }
    }
}

/// The payload of one spool file and its arrival time; `None` (logged) when
/// it cannot be read.
fn read_spool_file(database: &Path, file: &Path) -> Option<(Input, DateTime<Utc>)> {
    let record = std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()));
    let mut record = match record {
        Ok(r) => r,
        Err(e) => {
            log_line(
                database,
                &format!("{}: unreadable spool file: {e}", file.display()),
            );
            return None;
        }
    };
    let received_at = record["received_at"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let payload = record.get_mut("payload").map(Value::take);
    let input = match (payload, record.get("text")) {
        (Some(p), _) => Input::Json(p),
        (None, Some(Value::String(t))) => Input::Text(
            t.clone(),
            record["reason"]
                .as_str()
                .unwrap_or("bad hook payload")
                .to_string(),
        ),
        _ => Input::Text(record.to_string(), "spool file holds no payload".into()),
    };
    Some((input, received_at))
}

/// The messages of one spool file (none when it cannot be read: logged).
fn spooled_messages(database: &Path, file: &Path, opts: &NormalizeOptions) -> Vec<WriterMsg> {
    match read_spool_file(database, file) {
        Some((input, received_at)) => messages(&input, received_at, opts),
        None => Vec::new(),
    }
}

/// Drains a spool folder through `writer` (for `import`): each file claimed,
/// sent, and removed once the writer has committed it.
pub fn drain_spool(writer: &Writer, dir: &Path, database: &Path) -> Result<u64> {
    let opts = NormalizeOptions {
        origin: Source::Hook,
        ..NormalizeOptions::default()
    };
    let claimed = claim_spool(dir);
    let sent = (|| {
        for file in &claimed {
            send_all(writer, spooled_messages(database, file, &opts))?;
        }
        writer.flush()
    })();
    match sent {
        Ok(_) => {
            for file in &claimed {
                let _ = std::fs::remove_file(file);
            }
            Ok(claimed.len() as u64)
        }
        Err(e) => {
            unclaim(&claimed);
            Err(e)
        }
    }
}

// ---- transcripts ----

/// A transcript read: the file and the offset to save.
struct OffsetRead {
    path: String,
    offset: u64,
    /// Read again from the start: the file was shorter than the saved offset.
    restarted: bool,
}

/// `offsets`: where each transcript's last read ended, loaded from the
/// database at the first stop that needs them and kept up to date by the
/// reads (a drainer reads several stops before it saves them).
fn read_transcripts(
    config: &Config,
    writer: &Writer,
    payload: &Value,
    opts: &NormalizeOptions,
    offsets: &mut Option<HashMap<String, u64>>,
) -> Result<Vec<OffsetRead>> {
    let session_id = payload.get("session_id").and_then(Value::as_str);
    let mut files = Vec::new();
    // At a sub-agent's stop the main thread is mid-turn: its transcript is read
    // at the turn's end (the reader ends a turn where the text ends).
    let main_turn_ended =
        payload.get("hook_event_name").and_then(Value::as_str) != Some("SubagentStop");
    if let Some(p) = payload.get("agent_transcript_path").and_then(Value::as_str) {
        let path = PathBuf::from(p);
        let meta = subagent_meta(&path, payload);
        files.push((path, FileKind::Subagent(meta)));
    }
    if let Some(p) = payload
        .get("transcript_path")
        .and_then(Value::as_str)
        .filter(|_| main_turn_ended)
    {
        let main = PathBuf::from(p);
        // Claude Code fires `SubagentStop` before it writes the sub-agent's last message to the
        // sub-agent's transcript: at the main turn's end, the rest of every sub-agent transcript
        // of the session (`<session>/subagents/agent-*.jsonl`) is read too, before the main one.
        for sub in subagent_transcripts(&main) {
            if files.iter().all(|(f, _)| *f != sub) {
                let meta = subagent_meta(&sub, &Value::Null);
                files.push((sub, FileKind::Subagent(meta)));
            }
        }
        files.push((main, FileKind::Main));
    }
    let files: Vec<_> = files.into_iter().filter(|(p, _)| p.is_file()).collect();
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let offsets = match offsets {
        Some(o) => o,
        None => offsets.insert(load_offsets(&config.database)?),
    };
    let mut reads = Vec::new();
    for (path, kind) in files {
        let key = path.to_string_lossy().into_owned();
        let from = offsets.get(&key).copied().unwrap_or(0);
        match read_from(writer, &path, kind, session_id, from, opts) {
            Ok(Some((offset, restarted))) => {
                offsets.insert(key.clone(), offset);
                reads.push(OffsetRead {
                    path: key,
                    offset,
                    restarted,
                })
            }
            Ok(None) => {}
            Err(e) => log_line(&config.database, &format!("{}: {e}", path.display())),
        }
    }
    Ok(reads)
}

/// The sub-agent transcripts of a main transcript `DIR/SESSION.jsonl`: `DIR/SESSION/subagents/agent-*.jsonl`, sorted.
fn subagent_transcripts(main: &Path) -> Vec<PathBuf> {
    let dir = main.with_extension("").join("subagents");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("agent-") && n.ends_with(".jsonl"))
        })
        .collect();
    v.sort();
    v
}

fn subagent_meta(path: &Path, payload: &Value) -> SubagentMeta {
    let agent_id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".jsonl"))
        .and_then(|n| n.strip_prefix("agent-"))
        .map(str::to_string)
        .or_else(|| {
            payload
                .get("agent_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    let meta_path = path.with_file_name(format!("agent-{agent_id}.meta.json"));
    std::fs::read_to_string(meta_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .filter(Value::is_object)
        .map(|v| SubagentMeta::from_json(&agent_id, &v))
        .unwrap_or_else(|| SubagentMeta::bare(&agent_id))
}

/// Reads the complete lines of `path` after `from`; returns the offset past
/// the last complete line (and whether the file was read again from its
/// start, being shorter than `from`), or `None` when nothing new was there.
fn read_from(
    writer: &Writer,
    path: &Path,
    kind: FileKind,
    session_id: Option<&str>,
    from: u64,
    opts: &NormalizeOptions,
) -> Result<Option<(u64, bool)>> {
    let mut file = std::fs::File::open(path).map_err(|e| AggregatorError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AggregatorError::io(path, e))?
        .len();
    // A file shorter than what was read was replaced: read it from the start.
    let restarted = len < from;
    let from = if restarted { 0 } else { from };
    if len == from {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(from))
        .map_err(|e| AggregatorError::io(path, e))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| AggregatorError::io(path, e))?;
    let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
        return Ok(None);
    };
    let complete = &bytes[..=end];
    let is_main = matches!(kind, FileKind::Main);
    let mut reader = TranscriptReader::new(kind);
    if let Some(id) = session_id {
        reader = reader.with_session_id(id);
    }
    // Claude Code may write a turn's last lines after its `Stop` hook ran: the next read starts
    // inside that turn and must know its prompt.
    if from > 0 && is_main {
        if let Some(id) = last_prompt_id_before(&mut file, from) {
            reader = reader.in_turn(&id);
        }
    }
    let mut seen = HashMap::new();
    let mut msgs = Vec::new();
    let mut emit = |payloads: Vec<Value>, msgs: &mut Vec<WriterMsg>| {
        for payload in payloads {
            msgs.extend(
                normalize(
                    "transcript",
                    payload,
                    Utc::now(),
                    opts,
                    &mut DedupSalt::Occurrences(&mut seen),
                )
                .into_iter()
                .map(WriterMsg::from),
            );
        }
    };
    for line in complete.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match reader.feed_bytes(line) {
            Ok(p) => emit(p, &mut msgs),
            Err(e) => msgs.push(WriterMsg::Rejected(Box::new(Rejection::of_text(
                Some("transcript"),
                format!("{}: {e}", path.display()),
                &String::from_utf8_lossy(line),
                Utc::now(),
            )))),
        }
    }
    let last = reader.finish();
    emit(last, &mut msgs);
    send_all(writer, msgs)?;
    Ok(Some((from + complete.len() as u64, restarted)))
}

/// The `promptId` of the last line before `from` that has one (looked for in the 4 MiB before it).
fn last_prompt_id_before(file: &mut std::fs::File, from: u64) -> Option<String> {
    let start = from.saturating_sub(4 << 20);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut bytes = vec![0; (from - start) as usize];
    file.read_exact(&mut bytes).ok()?;
    bytes
        .split(|b| *b == b'\n')
        .rev()
        .filter(|l| l.windows(10).any(|w| w == b"\"promptId\""))
        .find_map(|l| {
            serde_json::from_slice::<Value>(l)
                .ok()?
                .get("promptId")?
                .as_str()
                .map(str::to_string)
        })
}

fn offsets_connection(database: &Path) -> Result<rusqlite::Connection> {
    let conn =
        rusqlite::Connection::open(database).map_err(|e| AggregatorError::db(database, e))?;
    conn.busy_timeout(BUSY_WAIT)
        .map_err(|e| AggregatorError::db(database, e))?;
    Ok(conn)
}

fn load_offsets(database: &Path) -> Result<HashMap<String, u64>> {
    crate::store::open_read_only(database)
        .and_then(|conn| crate::store::queries::transcript_offsets(&conn))
}

fn save_offsets(database: &Path, reads: &[OffsetRead]) -> Result<()> {
    let conn = offsets_connection(database)?;
    let now = Utc::now().to_rfc3339();
    for r in reads {
        // Never backwards (another hook may have read further meanwhile),
        // unless the file was replaced by a shorter one.
        conn.execute(
            "INSERT INTO transcript_offsets (path, offset, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET offset = excluded.offset, updated_at = excluded.updated_at
             WHERE excluded.offset > transcript_offsets.offset OR ?4",
            rusqlite::params![r.path, r.offset as i64, now, r.restarted],
        )
        .map_err(|e| AggregatorError::db(database, e))?;
    }
    Ok(())
}
