//! `import`: reads capture JSONL (`{"event", "data"}` lines or bare payloads),
//! our exports (`full`, `summary`, `events`) and the Python original's session
//! files, and sends everything through the same normalizer and writer as live
//! events. Files are streamed line by line; gzip (`.gz`) is read transparently.
//! `-` is standard input.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::core::model::AgentSession;
use crate::error::{AggregatorError, Result};
use crate::ingest::{
    normalize, split_capture_line, DedupSalt, NormalizeOptions, Outcome, Rejection,
};
use crate::store::writer::{DocumentImport, Writer, WriterMsg};

pub mod hook;

/// Rejected inputs logged one by one; past this many only their number is
/// told (every one of them is in `rejected_events`).
const WARNINGS_SHOWN: u64 = 5;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub files: u64,
    pub stored: u64,
    pub duplicates: u64,
    /// Observations merged into events already stored (the same happening
    /// from another source: SPEC section 7).
    pub merged: u64,
    pub rejected: u64,
    pub control: u64,
    pub filtered: u64,
    pub documents: u64,
    pub sessions: u64,
    /// Files that yielded rejected input and not one event: (name, rejected inputs).
    #[serde(skip)]
    pub unreadable: Vec<(String, u64)>,
    /// The newest event time of each session the files named.
    #[serde(skip)]
    pub newest_by_session: HashMap<String, DateTime<Utc>>,
    /// Transcript lines read.
    pub transcript_lines: u64,
    /// What of the transcripts became no event (bookkeeping lines, thinking
    /// blocks, …), by kind: counted, so that nothing is dropped without a word.
    pub transcript_not_stored: std::collections::BTreeMap<String, u64>,
    /// Transcript files not read: their size is what an earlier read (an
    /// import, the follower, a hook) recorded in `transcript_offsets`.
    pub transcripts_unchanged: u64,
}

impl ImportReport {
    /// How many imported sessions have no event newer than `days` days before `now`.
    pub fn sessions_older_than(&self, days: u64, now: DateTime<Utc>) -> u64 {
        let cutoff = now - chrono::Duration::days(days.min(i32::MAX as u64) as i64);
        self.newest_by_session
            .values()
            .filter(|t| **t < cutoff)
            .count() as u64
    }
}

/// What the files of an import sent to the writer, counted as it is sent.
#[derive(Default)]
struct Tally {
    newest_by_session: HashMap<String, DateTime<Utc>>,
    transcript_lines: u64,
    transcript_not_stored: std::collections::BTreeMap<String, u64>,
    transcripts_unchanged: u64,
    /// Events and session documents of the file being read.
    file_events: u64,
    /// Rejected inputs of the file being read.
    file_rejected: u64,
    /// Rejected inputs of the whole import (the first few are logged).
    rejected: u64,
}

impl Tally {
    fn session(&mut self, id: &str, time: DateTime<Utc>) {
        match self.newest_by_session.get_mut(id) {
            Some(t) => *t = (*t).max(time),
            None => {
                self.newest_by_session.insert(id.to_string(), time);
            }
        }
    }

    fn count(&mut self, path: &Path, msg: &WriterMsg) {
        match msg {
            WriterMsg::Event(e) => {
                self.file_events += 1;
                if let Some(id) = &e.session_id {
                    self.session(id, e.timestamp);
                }
            }
            WriterMsg::Document(d) => {
                self.file_events += 1;
                let newest = d
                    .events
                    .iter()
                    .map(|e| e.timestamp)
                    .max()
                    .or(d.session.end_time)
                    .unwrap_or(d.session.start_time);
                self.session(&d.session.session_id, newest);
            }
            WriterMsg::Rejected(r) => {
                self.file_rejected += 1;
                self.rejected += 1;
                if self.rejected <= WARNINGS_SHOWN {
                    tracing::warn!("{}: rejected: {}", display_name(path), r.reason);
                }
            }
            _ => {}
        }
    }
}

/// The name of an input as the user knows it.
fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "imported {} ({}) from {}: {} skipped as duplicate, {} rejected, {} control skipped",
            plural(self.stored, "event"),
            plural(self.sessions, "session"),
            plural(self.files, "file"),
            self.duplicates,
            self.rejected,
            self.control,
        )?;
        if self.merged > 0 {
            write!(f, ", {} merged into events already stored", self.merged)?;
        }
        if self.filtered > 0 {
            write!(f, ", {} filtered by capture settings", self.filtered)?;
        }
        if self.transcript_lines > 0 {
            let mut kinds: Vec<(&String, &u64)> = self.transcript_not_stored.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let total: u64 = kinds.iter().map(|(_, n)| **n).sum();
            let shown: Vec<String> = kinds
                .iter()
                .take(6)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let more = if kinds.len() > 6 { ", …" } else { "" };
            write!(
                f,
                "\n{} transcript lines read; {total} lines and blocks tell no event (counted, not stored: {}{more})",
                self.transcript_lines,
                shown.join(", "),
            )?;
        }
        if self.transcripts_unchanged > 0 {
            write!(
                f,
                "\n{} unchanged since they were last read (not read again)",
                plural(self.transcripts_unchanged, "transcript file"),
            )?;
        }
        Ok(())
    }
}

/// Imports `paths` through `writer`. `progress` shows a bar on a terminal.
pub fn import_files(
    writer: &Writer,
    paths: &[PathBuf],
    opts: &NormalizeOptions,
    progress: bool,
) -> Result<ImportReport> {
    // What is read from a file was not observed live.
    let opts = &NormalizeOptions {
        origin: crate::ingest::Source::Import,
        ..*opts
    };
    let before = writer.flush()?;
    let mut tally = Tally::default();
    let mut documents = 0;
    let mut unreadable = Vec::new();
    for path in paths {
        tally.file_events = 0;
        tally.file_rejected = 0;
        if crate::import::hook::is_spool_dir(path) {
            // Problems go to `hook.log` beside the spool folder.
            let log_anchor = path.parent().unwrap_or(path).join("any.db");
            crate::import::hook::drain_spool(writer, path, &log_anchor)?;
        } else if path.is_dir() || looks_like_transcript(path) {
            import_transcripts(writer, path, opts, &mut tally)?;
        } else {
            documents += import_file(writer, path, opts, progress, &mut tally)?;
        }
        if tally.file_events == 0 && tally.file_rejected > 0 {
            unreadable.push((display_name(path), tally.file_rejected));
        }
    }
    if tally.rejected > WARNINGS_SHOWN {
        tracing::warn!(
            "{} more rejected inputs not shown ({} in all; each is in the rejected_events table with its reason)",
            tally.rejected - WARNINGS_SHOWN,
            tally.rejected
        );
    }
    let after = writer.flush()?;
    Ok(ImportReport {
        files: paths.len() as u64,
        stored: after.stored - before.stored,
        duplicates: after.duplicates - before.duplicates,
        merged: after.merged - before.merged,
        rejected: after.rejected - before.rejected,
        control: after.control - before.control,
        filtered: after.filtered - before.filtered,
        documents,
        sessions: tally.newest_by_session.len() as u64,
        unreadable,
        newest_by_session: tally.newest_by_session,
        transcript_lines: tally.transcript_lines,
        transcript_not_stored: tally.transcript_not_stored,
        transcripts_unchanged: tally.transcripts_unchanged,
    })
}

fn open(path: &Path) -> Result<Box<dyn BufRead>> {
    if is_stdin(path) {
        // No name to tell gzip by: look at its magic number.
        let mut input = BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
        let gzip = input
            .fill_buf()
            .map_err(|e| AggregatorError::io("<stdin>", e))?
            .starts_with(&[0x1f, 0x8b]);
        return Ok(if gzip {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::bufread::GzDecoder::new(input),
            ))
        } else {
            Box::new(input)
        });
    }
    let file = File::open(path).map_err(|e| AggregatorError::io(path, e))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::GzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, file))
    })
}

fn progress_bar(path: &Path, show: bool) -> indicatif::ProgressBar {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if !show || len < 4 * 1024 * 1024 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}

/// Sends one message, counted in `tally` (rejections logged, the first few).
fn send(writer: &Writer, path: &Path, tally: &mut Tally, msg: WriterMsg) -> Result<()> {
    tally.count(path, &msg);
    crate::store::writer::send_blocking(&writer.sender(), msg).map_err(|_| writer.failure())
}

fn send_outcomes(
    writer: &Writer,
    path: &Path,
    outcomes: Vec<Outcome>,
    tally: &mut Tally,
) -> Result<()> {
    for outcome in outcomes {
        send(writer, path, tally, outcome.into())?;
    }
    Ok(())
}

/// Whether a file is a Claude Code transcript: its first line is a transcript
/// line (a `type` and a `sessionId`), not a hook payload or a capture line.
fn looks_like_transcript(path: &Path) -> bool {
    if path.extension().is_none_or(|e| e != "jsonl") {
        return false;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    if BufReader::new(file).read_line(&mut first).is_err() {
        return false;
    }
    serde_json::from_str::<Value>(first.trim()).is_ok_and(|v| {
        v.get("type").is_some_and(Value::is_string)
            && v.get("sessionId").is_some()
            && v.get("hook_event_name").is_none()
            && v.get("event").is_none()
    })
}

/// Imports Claude Code transcripts: a transcript file, a session folder or a
/// projects folder, sub-agent files and their `.meta.json` included. Each line
/// becomes hook-shaped payloads (see `ingest::transcript`) that go through the
/// same normalizer as everything else, so they merge with what hooks or the
/// monitor already stored of the same happenings.
fn import_transcripts(
    writer: &Writer,
    path: &Path,
    opts: &NormalizeOptions,
    tally: &mut Tally,
) -> Result<()> {
    use crate::ingest::transcript::{FileKind, TranscriptReader};
    let found = crate::ingest::transcript_files::discover(path)?;
    // What earlier reads recorded: a file of that size is not read again.
    let offsets = crate::store::open_read_only(writer.database())
        .and_then(|conn| crate::store::queries::transcript_offsets(&conn))?;
    let mut line = Vec::new();
    for session in &found.sessions {
        for sub in session.subagents.iter().filter(|s| s.meta_error.is_some()) {
            tracing::warn!(
                "{}: its .meta.json cannot be used ({}); the sub-agent is read with its id alone",
                sub.path.display(),
                sub.meta_error.as_deref().unwrap_or_default()
            );
        }
        for (file, kind) in session.files() {
            let key = std::path::absolute(&file)
                .unwrap_or_else(|_| file.clone())
                .display()
                .to_string();
            let size = std::fs::metadata(&file)
                .map_err(|e| AggregatorError::io(&file, e))?
                .len();
            if offsets.get(&key) == Some(&size) {
                tally.transcripts_unchanged += 1;
                continue;
            }
            // A running sub-agent ends later in its `.meta.json` (`finished`),
            // not in its file: read it again next time.
            let complete = !matches!(&kind, FileKind::Subagent(m) if m.finished == Some(false));
            let mut reader = TranscriptReader::new(kind).with_session_id(&session.session_id);
            let mut seen = HashMap::new();
            let mut input = BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(&file).map_err(|e| AggregatorError::io(&file, e))?,
            );
            let emit = |payloads: Vec<Value>,
                        seen: &mut HashMap<u128, u32>,
                        tally: &mut Tally|
             -> Result<()> {
                for payload in payloads {
                    let outcomes = normalize(
                        "transcript",
                        payload,
                        Utc::now(),
                        opts,
                        &mut DedupSalt::Occurrences(seen),
                    );
                    send_outcomes(writer, &file, outcomes, tally)?;
                }
                Ok(())
            };
            // Bytes up to the end of the last whole line (a partial last line
            // is read, and read again next time).
            let mut whole_lines = 0u64;
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| AggregatorError::io(&file, e))?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    whole_lines += n as u64;
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match reader.feed_bytes(&line) {
                    Ok(payloads) => emit(payloads, &mut seen, tally)?,
                    Err(e) => {
                        let text = String::from_utf8_lossy(&line);
                        let reason = format!("{}: {e}", file.display());
                        send(
                            writer,
                            &file,
                            tally,
                            WriterMsg::Rejected(Box::new(Rejection::of_text(
                                Some("transcript"),
                                reason,
                                &text,
                                Utc::now(),
                            ))),
                        )?;
                    }
                }
            }
            let last = reader.finish();
            emit(last, &mut seen, tally)?;
            let stats = reader.stats();
            tally.transcript_lines += stats.lines;
            for (kind, n) in &stats.not_emitted {
                *tally.transcript_not_stored.entry(kind.clone()).or_default() += n;
            }
            if complete && whole_lines > 0 {
                // After the file's events: committed with them or after them.
                send(
                    writer,
                    &file,
                    tally,
                    WriterMsg::TranscriptOffset {
                        path: key,
                        offset: Some(whole_lines),
                    },
                )?;
            }
        }
    }
    for skipped in &found.skipped {
        tracing::warn!("not a transcript: {skipped:?}");
    }
    Ok(())
}

/// Imports one file; returns the number of session documents it held.
fn import_file(
    writer: &Writer,
    path: &Path,
    opts: &NormalizeOptions,
    progress: bool,
    tally: &mut Tally,
) -> Result<u64> {
    let mut reader = open(path)?;
    // Decide the shape from the first line: a complete JSON value on its own
    // line means JSON lines; anything else is one JSON document.
    let mut first = String::new();
    reader
        .read_line(&mut first)
        .map_err(|e| AggregatorError::io(path, e))?;
    let first_value = serde_json::from_str::<Value>(first.trim()).ok();
    let is_document = match &first_value {
        Some(Value::Object(map)) => is_session_document(map),
        // A whole array on one line is an `events` document (`jq -c`) only
        // when nothing follows; otherwise it is one more (bad) JSON line.
        Some(Value::Array(_)) => {
            rest_is_blank(&mut reader).map_err(|e| AggregatorError::io(path, e))?
        }
        Some(_) => false,
        // A pretty-printed document opens with a lone bracket. Any other
        // line that is not JSON is a bad line of a JSON-lines file: it is
        // rejected and the lines after it still count.
        None => matches!(first.trim(), "{" | "["),
    };
    if is_document {
        let mut text = first;
        reader
            .read_to_string(&mut text)
            .map_err(|e| AggregatorError::io(path, e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => return import_document(writer, path, value, opts, tally),
            Err(e) => {
                // Not a document after all: read it line by line, so that each
                // bad line is rejected with its reason and no valid one is lost.
                tracing::warn!(
                    "{}: not a JSON document ({e}); reading it as JSON lines",
                    display_name(path)
                );
                let mut lines = std::io::Cursor::new(text.into_bytes());
                let mut first = String::new();
                lines
                    .read_line(&mut first)
                    .map_err(|e| AggregatorError::io(path, e))?;
                return import_lines(writer, path, &mut lines, first, opts, false, tally);
            }
        }
    }
    import_lines(writer, path, &mut *reader, first, opts, progress, tally)
}

/// Imports JSON lines: `first` (already read) and the rest of `reader`.
fn import_lines(
    writer: &Writer,
    path: &Path,
    reader: &mut dyn BufRead,
    first: String,
    opts: &NormalizeOptions,
    progress: bool,
    tally: &mut Tally,
) -> Result<u64> {
    let bar = progress_bar(path, progress);
    let mut seen = HashMap::new();
    let mut line = first;
    let mut line_no = 1u64;
    loop {
        bar.inc(line.len() as u64);
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            let now = Utc::now();
            if trimmed.len() > opts.max_event_bytes {
                let reason = format!(
                    "line {line_no}: {} bytes exceeds max_event_bytes ({})",
                    trimmed.len(),
                    opts.max_event_bytes
                );
                send(
                    writer,
                    path,
                    tally,
                    WriterMsg::Rejected(Box::new(Rejection::of_text(None, reason, trimmed, now))),
                )?;
            } else {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(value) => {
                        let (name, payload) = split_capture_line(value);
                        let name = name
                            .or_else(|| {
                                payload
                                    .get("event")
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                            .unwrap_or_else(|| "import".to_string());
                        let outcomes = normalize(
                            &name,
                            payload,
                            now,
                            opts,
                            &mut DedupSalt::Occurrences(&mut seen),
                        );
                        send_outcomes(writer, path, outcomes, tally)?;
                    }
                    Err(e) => {
                        let reason = format!("line {line_no}: not JSON: {e}");
                        send(
                            writer,
                            path,
                            tally,
                            WriterMsg::Rejected(Box::new(Rejection::of_text(
                                None, reason, trimmed, now,
                            ))),
                        )?;
                    }
                }
            }
        }
        line.clear();
        line_no += 1;
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // Not UTF-8: `read_line` has consumed the line already; reject
                // it and go on with the next one.
                let reason = format!("line {line_no}: not UTF-8 text");
                send(
                    writer,
                    path,
                    tally,
                    WriterMsg::Rejected(Box::new(Rejection::of_text(None, reason, "", Utc::now()))),
                )?;
                line.clear();
            }
            Err(e) => return Err(AggregatorError::io(path, e)),
        }
    }
    bar.finish_and_clear();
    Ok(0)
}

/// Whether only white space is left to read (consuming it).
fn rest_is_blank(reader: &mut dyn BufRead) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(true);
        }
        if !buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(false);
        }
        let n = buf.len();
        reader.consume(n);
    }
}

fn is_session_document(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("session_id")
        && (map.contains_key("delegations")
            || map.contains_key("metrics")
            || map.get("events").is_some_and(Value::is_array))
}

fn import_document(
    writer: &Writer,
    path: &Path,
    value: Value,
    opts: &NormalizeOptions,
    tally: &mut Tally,
) -> Result<u64> {
    let mut seen = HashMap::new();
    match value {
        // The `events` export format: an array of events.
        Value::Array(items) => {
            for item in items {
                let outcomes = normalize(
                    "session_document",
                    item,
                    Utc::now(),
                    opts,
                    &mut DedupSalt::Occurrences(&mut seen),
                );
                send_outcomes(writer, path, outcomes, tally)?;
            }
            Ok(0)
        }
        Value::Object(ref map) if is_session_document(map) => {
            let mut session = AgentSession::from_value(&value).map_err(|e| {
                AggregatorError::InvalidFormat(format!("{}: {e}", display_name(path)))
            })?;
            let mut events = Vec::with_capacity(session.events.len());
            for e in std::mem::take(&mut session.events) {
                let payload = json!({
                    "session_id": e.session_id.as_deref().unwrap_or(&session.session_id),
                    "timestamp": e.timestamp,
                    "event_type": e.event_type,
                    "category": e.category,
                    "data": e.data,
                    "correlation_id": e.correlation_id,
                });
                for outcome in normalize(
                    "session_document",
                    payload,
                    Utc::now(),
                    opts,
                    &mut DedupSalt::Occurrences(&mut seen),
                ) {
                    match outcome {
                        Outcome::Event(ev) => events.push(*ev),
                        Outcome::Rejected(r) => {
                            send(writer, path, tally, WriterMsg::Rejected(Box::new(r)))?
                        }
                        Outcome::Control(_) => send(writer, path, tally, WriterMsg::Control)?,
                    }
                }
            }
            session.metadata.remove("status");
            session.metadata.remove("file_path");
            send(
                writer,
                path,
                tally,
                WriterMsg::Document(Box::new(DocumentImport { session, events })),
            )?;
            Ok(1)
        }
        other => {
            // A single payload object in a file of its own.
            let (name, payload) = split_capture_line(other);
            let outcomes = normalize(
                name.as_deref().unwrap_or("import"),
                payload,
                Utc::now(),
                opts,
                &mut DedupSalt::Occurrences(&mut seen),
            );
            send_outcomes(writer, path, outcomes, tally)?;
            Ok(0)
        }
    }
}
