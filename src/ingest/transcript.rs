//! Transcript reader: turns the lines of one Claude Code 2.1 transcript file
//! (the main thread's `<session>.jsonl` or a sub-agent's `agent-<id>.jsonl`)
//! into **hook-shaped JSON payloads**, so that the normalizer treats them like
//! raw hook payloads and one happening seen by a hook and by a transcript gets
//! the same identity (`tool_use_id`, `prompt_id`, `agent_id`, `message_id`).
//!
//! A [`TranscriptReader`] keeps the per-file state (current prompt, tool names
//! by id, API responses already counted, the turn's last text), so a file can
//! be fed line by line as a follower reads it; [`TranscriptReader::finish`]
//! says what only the end of the written part can tell (the last API
//! response, a turn or sub-agent that ended). No I/O, no database.
//!
//! Every payload carries `hook_event_name`, `session_id`, `timestamp` (the
//! line's own time; the last seen time for lines without one), `"source":
//! "transcript"`, `cwd`, `git_branch`, `claude_version`, `transcript_uuid`,
//! `prompt_id` (the turn's, when known) and, in a sub-agent's file, `agent_id`
//! and `agent_type`. Events: `UserPromptSubmit`, `PreToolUse`, `PostToolUse`,
//! `PostToolUseFailure`, `Stop`, `StopFailure`, `SubagentStart`,
//! `SubagentStop`, `ApiCall`, `CostState`, `Compact`. Everything else is
//! counted in [`TranscriptStats`], never dropped silently.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

/// The `source` every payload of this reader carries.
pub const SOURCE: &str = "transcript";

/// A sub-agent's `agent-<id>.meta.json`, as far as we use it. Every field is
/// optional because the file may be missing, still being written, or from
/// another Claude Code version; `raw` keeps the whole object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubagentMeta {
    /// From the file name `agent-<id>.jsonl` (the meta file has no id).
    pub agent_id: String,
    /// `agentType`; `Some("")` marks compaction's hidden agent (not a delegation).
    pub agent_type: Option<String>,
    pub description: Option<String>,
    /// `toolUseId`: the parent's `Agent`/`Task` call that launched it.
    pub tool_use_id: Option<String>,
    pub model: Option<String>,
    /// `parentAgentId`: set when another sub-agent launched this one.
    pub parent_agent_id: Option<String>,
    pub spawn_depth: Option<u64>,
    /// `requestShape` (`foreground`, `background`).
    pub request_shape: Option<String>,
    /// `finished`: Claude Code sets it when the agent ended, successfully or not.
    pub finished: Option<bool>,
}

impl SubagentMeta {
    /// Reads the fields of a parsed `.meta.json`; unknown or mistyped fields
    /// are simply absent.
    pub fn from_json(agent_id: &str, meta: &Value) -> Self {
        let s = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_owned);
        SubagentMeta {
            agent_id: agent_id.to_owned(),
            agent_type: s("agentType"),
            description: s("description"),
            tool_use_id: s("toolUseId"),
            model: s("model"),
            parent_agent_id: s("parentAgentId"),
            spawn_depth: meta.get("spawnDepth").and_then(Value::as_u64),
            request_shape: s("requestShape"),
            finished: meta.get("finished").and_then(Value::as_bool),
        }
    }

    /// A sub-agent whose meta file is missing: only the id is known.
    pub fn bare(agent_id: &str) -> Self {
        SubagentMeta {
            agent_id: agent_id.to_owned(),
            ..SubagentMeta::default()
        }
    }
}

/// Which kind of transcript file a reader reads: the session's main thread,
/// or one sub-agent (whose payloads then all carry its `agent_id`).
// One value per file read: the size of the sub-agent variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum FileKind {
    Main,
    Subagent(SubagentMeta),
}

/// Why one line yielded no payloads. The caller records it as a rejection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("transcript line {line}: not UTF-8")]
    NotUtf8 { line: u64 },
    #[error("transcript line {line}: not JSON: {reason}")]
    NotJson { line: u64, reason: String },
    #[error("transcript line {line}: not a JSON object")]
    NotObject { line: u64 },
    #[error("transcript line {line}: {reason}")]
    Malformed { line: u64, reason: String },
}

impl LineError {
    /// The 1-based number of the line (counted over every line fed).
    pub fn line(&self) -> u64 {
        match self {
            LineError::NotUtf8 { line }
            | LineError::NotJson { line, .. }
            | LineError::NotObject { line }
            | LineError::Malformed { line, .. } => *line,
        }
    }
}

/// What a reader has seen: every line by type, what became payloads and what
/// did not (so nothing read is lost without a trace).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TranscriptStats {
    /// Lines fed, blank ones included.
    pub lines: u64,
    pub blank: u64,
    /// Lines returned as [`LineError`].
    pub rejected: u64,
    /// Every accepted line by `type` (`system:<subtype>`, `attachment:<type>`).
    pub line_types: BTreeMap<String, u64>,
    /// Lines and content blocks that produced no payload, by kind (e.g.
    /// `block:thinking`, `line:queue-operation`, `user:meta`).
    pub not_emitted: BTreeMap<String, u64>,
    /// Payloads returned, by `hook_event_name`.
    pub emitted: BTreeMap<String, u64>,
}

/// How a `user` line with text (not tool results) came about.
#[derive(Debug, Clone, PartialEq)]
enum PromptKind {
    /// Typed (or sent through the SDK) by a person: a user prompt, starts a turn.
    Person,
    /// Submitted by Claude Code itself but starting a turn of its own, e.g. a
    /// background agent's `<task-notification>` (its hook `UserPromptSubmit`
    /// shares the `prompt_id`).
    NonPersonTurn(String),
    /// A line that goes with a turn without starting one (meta reminders, the
    /// compaction summary, local command output, a slash command): no hook
    /// `UserPromptSubmit` exists for it, so it must not claim the `prompt_id`.
    Companion(String),
}

/// One API response being written (one line per content block): its usage is
/// taken from its last line and emitted once the response is complete.
#[derive(Debug, Clone)]
struct PendingApi {
    message_id: String,
    request_id: Option<String>,
    model: Option<String>,
    usage: Value,
    stop_reason: Option<String>,
    /// Common fields of the response's first line (time, uuid, context).
    base: Map<String, Value>,
}

/// The current turn of the main thread (or the whole life of a sub-agent).
#[derive(Debug, Clone, Default)]
struct Turn {
    prompt_id: Option<String>,
    /// The turn's last assistant text and the message it came from (texts of
    /// one message written over several lines are joined).
    last_text: Option<String>,
    last_text_message: Option<String>,
    /// The last response said the turn is over (`end_turn`/`stop_sequence`
    /// without tool calls): the time of its latest line.
    end_seen_at: Option<Value>,
    /// The last assistant line stood in for a failed API call: (error, text).
    api_error: Option<(Value, String)>,
    /// The turn's end was already emitted (reset by later activity, e.g. a
    /// Stop hook that made the model continue).
    ended: bool,
    /// The message id of the last assistant line seen in this turn.
    last_message: Option<String>,
}

/// The sticky context of a file: lines without these fields (bookkeeping
/// lines like `cost-state`) inherit the last seen values.
#[derive(Debug, Clone, Default)]
struct Context {
    session_id: Option<String>,
    timestamp: Option<Value>,
    cwd: Option<String>,
    git_branch: Option<String>,
    version: Option<String>,
}

/// Reads one transcript file, line by line. See the module documentation.
///
/// When a main-thread turn ends (`Stop`, with the turn's `prompt_id` and last
/// assistant text): at the `system` `stop_hook_summary` line (written after
/// the Stop hooks ran; its time is the Stop's); else, once the turn's last
/// response said `end_turn`, at the next prompt or at [`finish`](Self::finish).
/// A response is written over several lines and may still be growing, so an
/// `end_turn` line alone proves nothing yet. A turn that ends with an API
/// error (a `<synthetic>` `isApiErrorMessage` line) ends with `StopFailure`;
/// an interrupted turn (no ending response) gets no `Stop`, as with hooks.
/// A sub-agent ends (`SubagentStop` or `StopFailure`) at `finish`, when its
/// meta says `finished` or its last response ended; at its last line's time.
/// An `ApiCall` is emitted once its response is complete: when another
/// response begins, the turn ends, or at `finish`; its usage is the last
/// line's (the lines of one response repeat it).
#[derive(Debug, Clone)]
pub struct TranscriptReader {
    kind: FileKind,
    line_no: u64,
    ctx: Context,
    turn: Option<Turn>,
    /// name and input of each `tool_use` seen, by id, for the tool's result.
    tools: HashMap<String, (String, Value)>,
    /// message ids already emitted as `ApiCall`.
    counted: HashSet<String>,
    pending_api: Option<PendingApi>,
    subagent_started: bool,
    subagent_stopped: bool,
    stats: TranscriptStats,
}

impl TranscriptReader {
    pub fn new(kind: FileKind) -> Self {
        TranscriptReader {
            kind,
            line_no: 0,
            ctx: Context::default(),
            turn: None,
            tools: HashMap::new(),
            counted: HashSet::new(),
            pending_api: None,
            subagent_started: false,
            subagent_stopped: false,
            stats: TranscriptStats::default(),
        }
    }

    /// The session id to use until a line names one (discovery knows it from
    /// the file name; every conversation line repeats it anyway).
    pub fn with_session_id(mut self, session_id: &str) -> Self {
        if self.ctx.session_id.is_none() && !session_id.is_empty() {
            self.ctx.session_id = Some(session_id.to_owned());
        }
        self
    }

    /// A read that starts in the middle of a main file, inside the turn of
    /// `prompt_id` (the last `promptId` before where it starts): the turn's
    /// end then carries that prompt id, as when the file is read whole.
    pub fn in_turn(mut self, prompt_id: &str) -> Self {
        if matches!(self.kind, FileKind::Main) && self.turn.is_none() && !prompt_id.is_empty() {
            self.turn = Some(Turn {
                prompt_id: Some(prompt_id.to_owned()),
                ..Turn::default()
            });
        }
        self
    }

    /// Replaces a sub-agent's meta (a follower re-reads `.meta.json` when it
    /// changes, e.g. when `finished` appears). No effect on a main file.
    pub fn set_meta(&mut self, meta: SubagentMeta) {
        if let FileKind::Subagent(m) = &mut self.kind {
            *m = meta;
        }
    }

    pub fn kind(&self) -> &FileKind {
        &self.kind
    }

    pub fn stats(&self) -> &TranscriptStats {
        &self.stats
    }

    /// Like [`feed_line`](Self::feed_line) for raw bytes: a line that is not
    /// UTF-8 is rejected (and counted), never skipped silently.
    pub fn feed_bytes(&mut self, line: &[u8]) -> Result<Vec<Value>, LineError> {
        match std::str::from_utf8(line) {
            Ok(s) => self.feed_line(s),
            Err(_) => {
                self.line_no += 1;
                self.stats.lines += 1;
                self.stats.rejected += 1;
                Err(LineError::NotUtf8 { line: self.line_no })
            }
        }
    }

    /// Reads one line (a trailing newline is allowed) and returns the payloads
    /// it makes known, possibly including ones that only this line completes
    /// (the previous API response, the previous turn's `Stop`).
    pub fn feed_line(&mut self, line: &str) -> Result<Vec<Value>, LineError> {
        self.feed(line, true)
    }

    /// `peek`: bookkeeping lines are read without their tree (tests compare
    /// with the full reading of every line).
    fn feed(&mut self, line: &str, peek: bool) -> Result<Vec<Value>, LineError> {
        self.line_no += 1;
        self.stats.lines += 1;
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            self.stats.blank += 1;
            return Ok(Vec::new());
        }
        if peek {
            if let Some(none) = self.bookkeeping_line(text) {
                return Ok(none);
            }
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.stats.rejected += 1;
                return Err(LineError::NotJson {
                    line: self.line_no,
                    reason: e.to_string(),
                });
            }
        };
        let Value::Object(obj) = value else {
            self.stats.rejected += 1;
            return Err(LineError::NotObject { line: self.line_no });
        };
        // Validate before touching any state, so a rejected line leaves the
        // reader exactly as it was.
        if let Err(reason) = validate(&obj) {
            self.stats.rejected += 1;
            return Err(LineError::Malformed {
                line: self.line_no,
                reason,
            });
        }
        *self
            .stats
            .line_types
            .entry(line_type_key(&obj))
            .or_default() += 1;
        self.update_context(&obj);
        let mut out = Vec::new();
        self.dispatch(&obj, &mut out);
        self.count_emitted(&out);
        Ok(out)
    }

    /// A line that tells no happening (an attachment: context snapshots,
    /// reminders, hook output; `api-request-*` and other bookkeeping lines:
    /// most of a transcript's bytes), read without building its tree: only
    /// its type and the context every line updates. Anything else, or any
    /// doubt (a field of another type, a repeated field, not an object), is
    /// left to the full reading (`None`), so both give the same result.
    fn bookkeeping_line(&mut self, text: &str) -> Option<Vec<Value>> {
        if !text.starts_with('{') {
            return None;
        }
        let peek: Peek = serde_json::from_str(text).ok()?;
        let ty = peek.ty.as_deref()?;
        if matches!(ty, "" | "user" | "assistant" | "system" | "cost-state") {
            return None;
        }
        // The attachment's own type, when it is an object (a struct would
        // also read an array).
        let sub = match peek.attachment {
            Some(raw) if ty == "attachment" && raw.get().starts_with('{') => {
                serde_json::from_str::<PeekAttachment>(raw.get()).ok()?.ty
            }
            _ => None,
        };
        let key = match sub {
            Some(sub) => format!("{ty}:{sub}"),
            None => ty.to_owned(),
        };
        let set = |slot: &mut Option<String>, v: &Option<std::borrow::Cow<str>>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                *slot = Some(v.to_owned());
            }
        };
        set(&mut self.ctx.session_id, &peek.session_id);
        set(&mut self.ctx.cwd, &peek.cwd);
        set(&mut self.ctx.git_branch, &peek.git_branch);
        set(&mut self.ctx.version, &peek.version);
        // `null` reads as `None`: a null time leaves the context's, as below.
        if let Some(t) = peek.timestamp {
            self.ctx.timestamp = Some(t);
        }
        self.skip(format!("line:{key}"));
        *self.stats.line_types.entry(key).or_default() += 1;
        Some(Vec::new())
    }

    /// What the end of the written part of the file tells: the last API
    /// response, a main-thread turn whose response ended (`Stop`, or
    /// `StopFailure` after an API error), a sub-agent that ended
    /// (`SubagentStop` / `StopFailure`). Call it at the end of a file, or when
    /// a follower considers the file idle; feeding more lines afterwards is
    /// fine (nothing is emitted twice).
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        self.flush_api(&mut out);
        match &self.kind {
            FileKind::Main => self.end_turn(None, &mut out),
            FileKind::Subagent(meta) => {
                let finished = meta.finished == Some(true);
                let ended = self
                    .turn
                    .as_ref()
                    .is_some_and(|t| t.end_seen_at.is_some() || t.api_error.is_some());
                if !self.subagent_stopped && self.turn.is_some() && (finished || ended) {
                    self.subagent_stop(&mut out);
                }
            }
        }
        self.count_emitted(&out);
        out
    }

    // ------------------------------------------------------------ dispatch

    fn dispatch(&mut self, obj: &Map<String, Value>, out: &mut Vec<Value>) {
        let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
        match ty {
            "user" => self.on_user(obj, out),
            "assistant" => self.on_assistant(obj, out),
            "system" => self.on_system(obj, out),
            "cost-state" => {
                let mut p = self.base("CostState", obj);
                // A running account of the whole session, not of the turn.
                p.remove("prompt_id");
                p.insert("cost_state".into(), Value::Object(obj.clone()));
                out.push(Value::Object(p));
            }
            // Conversation lines that carry no happening of their own (hook
            // output, reminders, context snapshots) and bookkeeping lines.
            _ => {
                let key = match ty {
                    "attachment" => format!("line:{}", line_type_key(obj)),
                    "" => "line:(no type)".to_owned(),
                    other => format!("line:{other}"),
                };
                self.skip(key);
            }
        }
    }

    fn is_sidechain_in_main(&self, obj: &Map<String, Value>) -> bool {
        // Older Claude Code wrote sub-agent lines into the main file; such
        // lines must not move the main thread's turn.
        matches!(self.kind, FileKind::Main)
            && obj.get("isSidechain").and_then(Value::as_bool) == Some(true)
    }

    fn on_user(&mut self, obj: &Map<String, Value>, out: &mut Vec<Value>) {
        let message = obj.get("message").and_then(Value::as_object);
        let content = message.and_then(|m| m.get("content"));
        let blocks: Vec<&Value> = match content {
            Some(Value::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        };
        let has_results = blocks.iter().any(|b| block_type(b) == "tool_result");
        if has_results {
            let results = blocks
                .iter()
                .filter(|b| block_type(b) == "tool_result")
                .count();
            for b in &blocks {
                match block_type(b) {
                    "tool_result" => self.on_tool_result(obj, b, results == 1, out),
                    other => self.skip(format!("block:user:{other}")),
                }
            }
            return;
        }
        let text = match content {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(_)) => {
                let texts: Vec<&str> = blocks
                    .iter()
                    .filter(|b| block_type(b) == "text")
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect();
                for b in &blocks {
                    let t = block_type(b);
                    if t != "text" {
                        self.skip(format!("block:user:{t}"));
                    }
                }
                (!texts.is_empty()).then(|| texts.join("\n"))
            }
            _ => None,
        };
        let Some(text) = text else {
            self.skip("user:no text".into());
            return;
        };
        let prompt_id = str_of(obj, "promptId");
        if let FileKind::Subagent(_) = self.kind {
            // A sub-agent's first user line is the prompt it was given; later
            // text lines are reminders or messages sent to it.
            if !self.subagent_started {
                self.turn = Some(Turn {
                    prompt_id,
                    ..Turn::default()
                });
                self.subagent_start(obj, Some(text), out);
            } else {
                self.skip("user:subagent text".into());
            }
            return;
        }
        if self.is_sidechain_in_main(obj) {
            self.skip("user:sidechain text".into());
            return;
        }
        let kind = classify_prompt(obj, &text);
        if kind == PromptKind::Companion("interrupt".into()) {
            // "[Request interrupted by user]": the turn ended without a
            // response (Claude Code fires no Stop for it).
            if let Some(t) = &mut self.turn {
                t.end_seen_at = None;
                t.ended = true;
            }
            self.skip("user:interrupt".into());
            return;
        }
        let mut p = self.base("UserPromptSubmit", obj);
        p.insert("prompt".into(), Value::String(text));
        if let Some(m) = str_of(obj, "permissionMode") {
            p.insert("permission_mode".into(), Value::String(m));
        }
        match &kind {
            PromptKind::Person | PromptKind::NonPersonTurn(_) => {
                // A new turn: whatever ended the previous one is now known.
                self.flush_api(out);
                self.end_turn(None, out);
                self.turn = Some(Turn {
                    prompt_id: prompt_id.clone(),
                    ..Turn::default()
                });
                // base() already put the new prompt_id.
                set_opt(&mut p, "prompt_id", prompt_id);
                if let PromptKind::NonPersonTurn(origin) = &kind {
                    p.insert("prompt_origin".into(), Value::String(origin.clone()));
                    p.insert("not_a_person".into(), Value::Bool(true));
                }
            }
            PromptKind::Companion(origin) => {
                // Shares its promptId with the real prompt of the turn: keep it
                // under another name so it can never merge with that prompt.
                p.remove("prompt_id");
                set_opt(&mut p, "parent_prompt_id", prompt_id);
                p.insert("prompt_origin".into(), Value::String(origin.clone()));
                p.insert("not_a_person".into(), Value::Bool(true));
            }
        }
        out.push(Value::Object(p));
    }

    fn on_tool_result(
        &mut self,
        obj: &Map<String, Value>,
        block: &Value,
        only_result: bool,
        out: &mut Vec<Value>,
    ) {
        // validate() guarantees the id.
        let id = block
            .get("tool_use_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
        let known = self.tools.get(&id).cloned();
        let event = if is_error {
            "PostToolUseFailure"
        } else {
            "PostToolUse"
        };
        let mut p = self.base(event, obj);
        if let Some((name, input)) = known {
            p.insert("tool_name".into(), Value::String(name));
            p.insert("tool_input".into(), input);
        }
        p.insert("tool_use_id".into(), Value::String(id));
        let content = block.get("content").cloned().unwrap_or(Value::Null);
        if is_error {
            let text = result_text(&content);
            let interrupted = text.starts_with("[Request interrupted by user");
            p.insert("error".into(), Value::String(text));
            p.insert("is_interrupt".into(), Value::Bool(interrupted));
        } else {
            // toolUseResult belongs to the line; with several results on one
            // line (older versions) it cannot be told whose it is.
            let response = match obj.get("toolUseResult") {
                Some(r) if only_result => r.clone(),
                _ => content,
            };
            p.insert("tool_response".into(), response);
        }
        out.push(Value::Object(p));
    }

    fn on_assistant(&mut self, obj: &Map<String, Value>, out: &mut Vec<Value>) {
        if let FileKind::Subagent(_) = self.kind {
            if !self.subagent_started {
                // A file that opens with the agent's reply (its prompt line lost).
                self.turn.get_or_insert_with(Turn::default);
                self.subagent_start(obj, None, out);
            }
        }
        let message = obj.get("message").and_then(Value::as_object);
        let empty = Map::new();
        let message = message.unwrap_or(&empty);
        let message_id = message.get("id").and_then(Value::as_str).map(str::to_owned);
        let model = message.get("model").and_then(Value::as_str);
        let synthetic = model == Some("<synthetic>")
            || obj.get("isApiErrorMessage").and_then(Value::as_bool) == Some(true);

        // A different response begins: the previous one is complete.
        if let Some(p) = &self.pending_api {
            if message_id.as_deref() != Some(p.message_id.as_str()) {
                self.flush_api(out);
            }
        }

        let blocks: Vec<&Value> = match message.get("content") {
            Some(Value::Array(a)) => a.iter().collect(),
            // A plain string content (older versions) is read as text below.
            _ => Vec::new(),
        };
        let mut texts: Vec<String> = blocks
            .iter()
            .filter(|b| block_type(b) == "text")
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        if let Some(Value::String(s)) = message.get("content") {
            texts.push(s.clone());
        }
        let has_tool_use = blocks.iter().any(|b| block_type(b) == "tool_use");

        for b in &blocks {
            match block_type(b) {
                "tool_use" => {
                    let id = b.get("id").and_then(Value::as_str).unwrap_or_default();
                    let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
                    let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                    self.tools
                        .insert(id.to_owned(), (name.to_owned(), input.clone()));
                    let mut p = self.base("PreToolUse", obj);
                    p.insert("tool_name".into(), Value::String(name.to_owned()));
                    p.insert("tool_input".into(), input);
                    p.insert("tool_use_id".into(), Value::String(id.to_owned()));
                    out.push(Value::Object(p));
                }
                // The text becomes the turn's response (Stop / SubagentStop).
                "text" => {}
                other => self.skip(format!("block:{other}")),
            }
        }

        if synthetic {
            // A failed API call written as a message: no tokens, no API call.
            self.skip("assistant:synthetic".into());
        } else if let Some(id) = &message_id {
            if self.counted.contains(id) {
                // A late line of a response already counted: nothing to add.
                self.skip("assistant:late line of a counted response".into());
            } else {
                let usage = message.get("usage").cloned();
                match &mut self.pending_api {
                    Some(p) if &p.message_id == id => {
                        // Later lines of one response repeat its usage; the
                        // last one is the most complete.
                        if let Some(u) = usage {
                            p.usage = u;
                        }
                        if let Some(r) = message.get("stop_reason").and_then(Value::as_str) {
                            p.stop_reason = Some(r.to_owned());
                        }
                    }
                    _ => {
                        if let Some(u) = usage {
                            self.pending_api = Some(PendingApi {
                                message_id: id.clone(),
                                request_id: str_of(obj, "requestId"),
                                model: model.map(str::to_owned),
                                usage: u,
                                stop_reason: message
                                    .get("stop_reason")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned),
                                base: self.base("ApiCall", obj),
                            });
                        } else {
                            self.skip("assistant:no usage".into());
                        }
                    }
                }
            }
        } else {
            self.skip("assistant:no message id".into());
        }

        if self.is_sidechain_in_main(obj) {
            return;
        }
        // The turn's state: its last text and whether the response ended it.
        let timestamp = self.ctx.timestamp.clone().unwrap_or(Value::Null);
        let turn = self.turn.get_or_insert_with(Turn::default);
        let same_message = message_id.is_some() && turn.last_message == message_id;
        if !same_message {
            // New activity after an emitted end (a Stop hook that let the
            // model continue): the turn can end again.
            turn.ended = false;
            turn.end_seen_at = None;
            turn.api_error = None;
        }
        turn.last_message = message_id.clone();
        if synthetic {
            if obj.get("isApiErrorMessage").and_then(Value::as_bool) == Some(true) {
                let error = obj
                    .get("error")
                    .cloned()
                    .unwrap_or_else(|| Value::String("unknown".into()));
                turn.api_error = Some((error, texts.join("\n")));
                turn.end_seen_at = None;
            }
            return;
        }
        if !texts.is_empty() {
            let joined = texts.join("\n");
            match (
                &mut turn.last_text,
                same_message && turn.last_text_message == message_id,
            ) {
                (Some(prev), true) => {
                    prev.push('\n');
                    prev.push_str(&joined);
                }
                _ => turn.last_text = Some(joined),
            }
            turn.last_text_message = message_id.clone();
        }
        let stop_reason = message.get("stop_reason").and_then(Value::as_str);
        let ends = matches!(stop_reason, Some("end_turn") | Some("stop_sequence"));
        if ends && !has_tool_use {
            turn.end_seen_at = Some(timestamp);
        } else if has_tool_use || stop_reason == Some("tool_use") {
            turn.end_seen_at = None;
        }
    }

    fn on_system(&mut self, obj: &Map<String, Value>, out: &mut Vec<Value>) {
        let subtype = obj.get("subtype").and_then(Value::as_str).unwrap_or("");
        match subtype {
            // Written after the Stop hooks ran: the turn is over, at this time.
            "stop_hook_summary"
                if matches!(self.kind, FileKind::Main) && !self.is_sidechain_in_main(obj) =>
            {
                self.flush_api(out);
                let at = obj.get("timestamp").cloned();
                let had_turn = self.turn.as_ref().is_some_and(|t| !t.ended);
                if had_turn {
                    self.end_turn(Some(at.unwrap_or(Value::Null)), out);
                } else {
                    self.skip("system:stop_hook_summary without open turn".into());
                }
            }
            "compact_boundary" => {
                let mut p = self.base("Compact", obj);
                p.remove("prompt_id");
                if let Some(meta) = obj.get("compactMetadata") {
                    if let Some(t) = meta.get("trigger") {
                        p.insert("trigger".into(), t.clone());
                    }
                    p.insert("compact_metadata".into(), meta.clone());
                }
                out.push(Value::Object(p));
            }
            other => self.skip(format!("line:system:{other}")),
        }
    }

    // ------------------------------------------------------------ turn ends

    /// Emits the current turn's end if its response ended it: `Stop`, or
    /// `StopFailure` when an API error ended it. `at` = the time of the line
    /// that proves the end (stop hook summary); else the end's own time.
    fn end_turn(&mut self, at: Option<Value>, out: &mut Vec<Value>) {
        let Some(turn) = &mut self.turn else { return };
        if turn.ended {
            return;
        }
        let proven = at.is_some();
        if !proven && turn.end_seen_at.is_none() && turn.api_error.is_none() {
            // No evidence the turn ended normally (still running, interrupted
            // or cut off): no Stop, as no Stop hook fired.
            return;
        }
        turn.ended = true;
        let turn = turn.clone();
        let time = at
            .filter(|v| !v.is_null())
            .or(turn.end_seen_at.clone().filter(|v| !v.is_null()));
        let (event, error) = match &turn.api_error {
            Some((e, _)) if turn.end_seen_at.is_none() => ("StopFailure", Some(e.clone())),
            _ => ("Stop", None),
        };
        let mut p = self.base_at(event, None, time);
        set_opt(&mut p, "prompt_id", turn.prompt_id.clone());
        let message = match (&error, &turn.api_error) {
            (Some(_), Some((_, text))) => Some(text.clone()),
            _ => turn.last_text.clone(),
        };
        set_opt(&mut p, "last_assistant_message", message);
        if let Some(e) = error {
            p.insert("error".into(), e);
        }
        out.push(Value::Object(p));
    }

    fn subagent_start(
        &mut self,
        obj: &Map<String, Value>,
        prompt: Option<String>,
        out: &mut Vec<Value>,
    ) {
        self.subagent_started = true;
        let FileKind::Subagent(meta) = &self.kind else {
            return;
        };
        if meta.agent_type.as_deref() == Some("") {
            // Compaction's hidden agent: Claude Code announces no start for it.
            self.skip("subagent:hidden agent start".into());
            return;
        }
        let meta = meta.clone();
        let mut p = self.base("SubagentStart", obj);
        set_opt(&mut p, "tool_use_id", meta.tool_use_id);
        set_opt(&mut p, "description", meta.description);
        set_opt(&mut p, "prompt", prompt);
        set_opt(&mut p, "parent_agent_id", meta.parent_agent_id);
        if let Some(d) = meta.spawn_depth {
            p.insert("spawn_depth".into(), json!(d));
        }
        set_opt(&mut p, "model", meta.model);
        if meta.request_shape.as_deref() == Some("background") {
            p.insert("background".into(), Value::Bool(true));
        }
        out.push(Value::Object(p));
    }

    fn subagent_stop(&mut self, out: &mut Vec<Value>) {
        self.subagent_stopped = true;
        let turn = self.turn.clone().unwrap_or_default();
        // At the time of its last line.
        let time = self.ctx.timestamp.clone();
        let mut p;
        match &turn.api_error {
            Some((error, text)) if turn.end_seen_at.is_none() => {
                p = self.base_at("StopFailure", None, time);
                p.insert("error".into(), error.clone());
                p.insert("last_assistant_message".into(), Value::String(text.clone()));
            }
            _ => {
                p = self.base_at("SubagentStop", None, time);
                set_opt(&mut p, "last_assistant_message", turn.last_text.clone());
            }
        }
        set_opt(&mut p, "prompt_id", turn.prompt_id);
        out.push(Value::Object(p));
    }

    fn flush_api(&mut self, out: &mut Vec<Value>) {
        let Some(api) = self.pending_api.take() else {
            return;
        };
        self.counted.insert(api.message_id.clone());
        let mut p = api.base;
        p.insert("message_id".into(), Value::String(api.message_id));
        set_opt(&mut p, "request_id", api.request_id);
        set_opt(&mut p, "model", api.model);
        set_opt(&mut p, "stop_reason", api.stop_reason);
        p.insert("usage".into(), usage_of(&api.usage));
        out.push(Value::Object(p));
    }

    // ------------------------------------------------------------ payload helpers

    fn update_context(&mut self, obj: &Map<String, Value>) {
        let set = |slot: &mut Option<String>, key: &str| {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                if !v.is_empty() {
                    *slot = Some(v.to_owned());
                }
            }
        };
        set(&mut self.ctx.session_id, "sessionId");
        set(&mut self.ctx.cwd, "cwd");
        set(&mut self.ctx.git_branch, "gitBranch");
        set(&mut self.ctx.version, "version");
        if let Some(t) = obj.get("timestamp") {
            if !t.is_null() {
                self.ctx.timestamp = Some(t.clone());
            }
        }
    }

    /// The fields every payload carries, for an event read from `obj`.
    fn base(&self, event: &str, obj: &Map<String, Value>) -> Map<String, Value> {
        // update_context() ran for this line: the context holds its time.
        self.base_at(event, Some(obj), self.ctx.timestamp.clone())
    }

    fn base_at(
        &self,
        event: &str,
        obj: Option<&Map<String, Value>>,
        time: Option<Value>,
    ) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert("hook_event_name".into(), Value::String(event.to_owned()));
        set_opt(&mut p, "session_id", self.ctx.session_id.clone());
        // A payload without any known time has no "timestamp" at all: the
        // normalizer then stamps it, rather than trusting a null.
        if let Some(t) = time.filter(|t| !t.is_null()) {
            p.insert("timestamp".into(), t);
        }
        p.insert("source".into(), Value::String(SOURCE.into()));
        set_opt(&mut p, "cwd", self.ctx.cwd.clone());
        set_opt(&mut p, "git_branch", self.ctx.git_branch.clone());
        set_opt(&mut p, "claude_version", self.ctx.version.clone());
        if let Some(uuid) = obj.and_then(|o| str_of(o, "uuid")) {
            p.insert("transcript_uuid".into(), Value::String(uuid));
        }
        let prompt_id = obj
            .and_then(|o| str_of(o, "promptId"))
            .or_else(|| self.turn.as_ref().and_then(|t| t.prompt_id.clone()));
        set_opt(&mut p, "prompt_id", prompt_id);
        match &self.kind {
            FileKind::Subagent(meta) => {
                p.insert("agent_id".into(), Value::String(meta.agent_id.clone()));
                let agent_type = meta
                    .agent_type
                    .clone()
                    .or_else(|| obj.and_then(|o| str_of(o, "attributionAgent")));
                set_opt(&mut p, "agent_type", agent_type);
            }
            FileKind::Main => {
                // An older sidechain line in the main file names its agent.
                if let Some(o) = obj.filter(|o| o.get("isSidechain") == Some(&Value::Bool(true))) {
                    set_opt(&mut p, "agent_id", str_of(o, "agentId"));
                }
            }
        }
        p
    }

    fn skip(&mut self, key: String) {
        *self.stats.not_emitted.entry(key).or_default() += 1;
    }

    fn count_emitted(&mut self, out: &[Value]) {
        for p in out {
            let name = p
                .get("hook_event_name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            *self.stats.emitted.entry(name.to_owned()).or_default() += 1;
        }
    }
}

/// What [`TranscriptReader::bookkeeping_line`] reads of a line; every other
/// field is skipped unparsed. A field of another type fails the whole read.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    attachment: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "sessionId", borrow)]
    session_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    cwd: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "gitBranch", borrow)]
    git_branch: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<std::borrow::Cow<'a, str>>,
    timestamp: Option<Value>,
}

#[derive(serde::Deserialize)]
struct PeekAttachment<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<std::borrow::Cow<'a, str>>,
}

/// Refuses lines whose happening cannot be read: a conversation line without
/// its message, a tool call or result without its id.
fn validate(obj: &Map<String, Value>) -> Result<(), String> {
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if ty != "user" && ty != "assistant" {
        return Ok(());
    }
    let Some(message) = obj.get("message").and_then(Value::as_object) else {
        return Err(format!("{ty} line without a message object"));
    };
    let Some(Value::Array(blocks)) = message.get("content") else {
        return Ok(());
    };
    for b in blocks {
        match block_type(b) {
            "tool_use" if ty == "assistant" => {
                if b.get("id")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err("tool_use block without an id".into());
                }
                if b.get("name").and_then(Value::as_str).is_none() {
                    return Err("tool_use block without a name".into());
                }
            }
            "tool_result"
                if ty == "user"
                    && b.get("tool_use_id")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty) =>
            {
                return Err("tool_result block without a tool_use_id".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Tells a person's prompt from the text lines Claude Code writes itself.
/// Observed in 2.1: a person's prompt has `promptSource`/`turnOrigin` `sdk`
/// (or the CLI's) and no `origin`; a background agent's notification has
/// `origin.kind: "task-notification"`, `promptSource: "system"`, `turnOrigin:
/// "task_notification"`; reminders are `isMeta`; `/compact` writes a
/// `compact_summary` (`isCompactSummary`), a caveat, the command and its output.
fn classify_prompt(obj: &Map<String, Value>, text: &str) -> PromptKind {
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool) == Some(true);
    let head = text.trim_start();
    if flag("isCompactSummary") {
        return PromptKind::Companion("compact-summary".into());
    }
    if flag("isMeta") {
        return PromptKind::Companion("meta".into());
    }
    if head.starts_with("[Request interrupted by user") {
        return PromptKind::Companion("interrupt".into());
    }
    if head.starts_with("<local-command-") || head.starts_with("<bash-stdout>") {
        return PromptKind::Companion("local-command".into());
    }
    if head.starts_with("<command-name>") || head.starts_with("<command-message>") {
        // A slash command runs in Claude Code; no UserPromptSubmit fires for
        // it (observed with /compact), so it is not a prompt to the model.
        return PromptKind::Companion("slash-command".into());
    }
    if let Some(kind) = obj
        .get("origin")
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
    {
        if !matches!(kind, "user" | "human" | "person") {
            return PromptKind::NonPersonTurn(kind.to_owned());
        }
    }
    let source = obj.get("promptSource").and_then(Value::as_str);
    let turn_origin = obj.get("turnOrigin").and_then(Value::as_str);
    if source == Some("system") || turn_origin.is_some_and(|t| t.contains("notification")) {
        let origin = turn_origin.or(source).unwrap_or("system");
        return PromptKind::NonPersonTurn(origin.to_owned());
    }
    if head.starts_with("<task-notification>") {
        return PromptKind::NonPersonTurn("task-notification".into());
    }
    PromptKind::Person
}

/// The usage of one API response in the hook-shaped form: the four token
/// kinds, plus the 5-minute / 1-hour split of cache writes when known.
fn usage_of(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut usage = json!({
        "input_tokens": n("input_tokens"),
        "output_tokens": n("output_tokens"),
        "cache_creation_input_tokens": n("cache_creation_input_tokens"),
        "cache_read_input_tokens": n("cache_read_input_tokens"),
    });
    if let Some(cc) = u.get("cache_creation").and_then(Value::as_object) {
        let m = |k: &str| cc.get(k).and_then(Value::as_u64).unwrap_or(0);
        usage["cache_creation"] = json!({
            "ephemeral_5m_input_tokens": m("ephemeral_5m_input_tokens"),
            "ephemeral_1h_input_tokens": m("ephemeral_1h_input_tokens"),
        });
    }
    usage
}

/// The text of a tool result's content: a string, or its text blocks joined.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b {
                Value::String(s) => Some(s.as_str()),
                _ => b.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn line_type_key(obj: &Map<String, Value>) -> String {
    let ty = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("(no type)");
    let sub = match ty {
        "system" => obj.get("subtype").and_then(Value::as_str),
        "attachment" => obj
            .get("attachment")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str),
        _ => None,
    };
    match sub {
        Some(s) => format!("{ty}:{s}"),
        None => ty.to_owned(),
    }
}

fn block_type(b: &Value) -> &str {
    b.get("type").and_then(Value::as_str).unwrap_or("(no type)")
}

fn str_of(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn set_opt(p: &mut Map<String, Value>, key: &str, value: Option<String>) {
    match value {
        Some(v) => {
            p.insert(key.to_owned(), Value::String(v));
        }
        None => {
            p.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Over real Claude Code 2.1 runs: every transcript file goes through
    //! discovery and the reader, and what the payloads say must equal the
    //! run's `expected.json` (computed by truth.py from the hooks and the
    //! transcripts) and match the run's own hook payloads one for one.
    use super::*;
    use crate::core::event::Tokens;
    use crate::core::pricing::cost_usd;
    use crate::ingest::transcript_files::discover;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    const FILE_TOOLS: [&str; 4] = ["Write", "Edit", "MultiEdit", "NotebookEdit"];

    fn runs() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = root.join("../shared/fixtures/claude-code-2.1");
        vec![
            shared.join("a-mpm-fast"),
            shared.join("a-mpm-full"),
            // Our own run (tests/transcript-fixtures/*/scenario.patch): a
            // background agent and its <task-notification>, a sub-agent ended
            // by an API error, a /compact.
            root.join("tests/transcript-fixtures/t-background-error-compact"),
        ]
    }

    fn json_lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every payload of a run, per session, read file by file as `import` will.
    fn read_run(run: &Path) -> BTreeMap<String, Vec<Value>> {
        let found = discover(&run.join("transcripts")).unwrap();
        assert!(found.skipped.is_empty(), "{:?}", found.skipped);
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for session in &found.sessions {
            for (path, kind) in session.files() {
                let mut reader = TranscriptReader::new(kind).with_session_id(&session.session_id);
                let text = std::fs::read_to_string(&path).unwrap();
                let payloads = out.entry(session.session_id.clone()).or_default();
                for line in text.lines() {
                    match reader.feed_line(line) {
                        Ok(p) => payloads.extend(p),
                        Err(e) => panic!("{}: {e}", path.display()),
                    }
                }
                payloads.extend(reader.finish());
                let st = reader.stats();
                assert_eq!(st.rejected, 0);
                let counted: u64 = st.line_types.values().sum();
                assert_eq!(
                    counted + st.blank,
                    st.lines,
                    "every line is counted by type"
                );
            }
        }
        out
    }

    fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
        v.get(k).and_then(Value::as_str)
    }
    fn event<'a>(ps: &'a [Value], name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        ps.iter()
            .filter(move |p| s(p, "hook_event_name") == Some(name))
    }
    fn ids(ps: &[Value], name: &str) -> BTreeSet<String> {
        event(ps, name)
            .filter_map(|p| s(p, "tool_use_id").map(str::to_owned))
            .collect()
    }
    fn files(ps: &[Value]) -> Vec<String> {
        let set: BTreeSet<String> = event(ps, "PreToolUse")
            .filter(|p| FILE_TOOLS.contains(&s(p, "tool_name").unwrap_or("")))
            .filter_map(|p| p["tool_input"]["file_path"].as_str().map(str::to_owned))
            .collect();
        set.into_iter().collect()
    }
    fn tools(ps: &[Value]) -> Vec<String> {
        let set: BTreeSet<String> = event(ps, "PreToolUse")
            .filter_map(|p| s(p, "tool_name").map(str::to_owned))
            .collect();
        set.into_iter().collect()
    }
    /// (tokens as truth.py names them, number of API calls).
    fn tokens(ps: &[Value]) -> (Value, u64) {
        let mut t = [0u64; 4];
        let mut n = 0;
        let mut seen = BTreeSet::new();
        for p in event(ps, "ApiCall") {
            assert!(
                seen.insert(s(p, "message_id").unwrap().to_owned()),
                "one ApiCall per message id"
            );
            let u = &p["usage"];
            for (i, k) in [
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            ]
            .iter()
            .enumerate()
            {
                t[i] += u[k].as_u64().unwrap();
            }
            n += 1;
        }
        (
            json!({"input": t[0], "output": t[1], "cache_creation": t[2], "cache_read": t[3]}),
            n,
        )
    }

    #[test]
    fn real_runs_rebuild_their_expected_sessions() {
        for run in runs() {
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap())
                    .unwrap();
            let sessions = read_run(&run);
            let expected = expected.as_object().unwrap();
            assert_eq!(sessions.len(), expected.len(), "{}", run.display());
            for (sid, exp) in expected {
                let ctx = format!("{} {sid}", run.display());
                let ps = &sessions[sid];
                for p in ps {
                    assert_eq!(s(p, "source"), Some(SOURCE));
                    assert_eq!(s(p, "session_id"), Some(sid.as_str()), "{ctx}: {p}");
                    assert!(
                        p.get("timestamp").is_some_and(Value::is_string),
                        "{ctx}: {p}"
                    );
                }
                let main: Vec<Value> = ps
                    .iter()
                    .filter(|p| p.get("agent_id").is_none())
                    .cloned()
                    .collect();
                let prompts: Vec<&str> = event(&main, "UserPromptSubmit")
                    .filter(|p| p.get("not_a_person").is_none())
                    .map(|p| s(p, "prompt").unwrap())
                    .collect();
                let want: Vec<&str> = exp["prompts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(prompts, want, "{ctx}: prompts");
                let stops: Vec<&Value> = event(&main, "Stop").collect();
                assert_eq!(
                    stops.len() as u64,
                    exp["turns"].as_u64().unwrap(),
                    "{ctx}: turns"
                );
                assert_eq!(
                    stops.last().and_then(|p| p.get("last_assistant_message")),
                    Some(&exp["final_response"]),
                    "{ctx}: final response"
                );
                assert_eq!(
                    ids(ps, "PreToolUse").len() as u64,
                    exp["tool_calls"].as_u64().unwrap(),
                    "{ctx}"
                );
                assert_eq!(json!(tools(ps)), exp["tools_used"], "{ctx}");
                assert_eq!(
                    ids(ps, "PostToolUseFailure").len() as u64,
                    exp["tool_failures"].as_u64().unwrap(),
                    "{ctx}"
                );
                assert_eq!(json!(files(ps)), exp["files_modified"], "{ctx}");
                let (tok, calls) = tokens(ps);
                assert_eq!(tok, exp["tokens"], "{ctx}: tokens");
                assert_eq!(
                    calls,
                    exp["api_calls"].as_u64().unwrap(),
                    "{ctx}: api calls"
                );
                let mut models: Vec<&str> = Vec::new();
                for p in event(ps, "ApiCall") {
                    let m = s(p, "model").unwrap();
                    if !models.contains(&m) {
                        models.push(m);
                    }
                }
                assert_eq!(json!(models), exp["models"], "{ctx}");
                assert_eq!(
                    main.iter().rev().find_map(|p| s(p, "git_branch")),
                    exp["git_branch"].as_str()
                );

                // Claude Code's own account: the last cost-state, as is.
                let cs = event(&main, "CostState").last().expect("a cost-state");
                assert_eq!(
                    cs["cost_state"]["totalCostUSD"], exp["claude_code"]["cost_usd"],
                    "{ctx}"
                );

                // Cost: the public Sonnet 4.5 prices applied to the run's tokens.
                let cost: f64 = event(ps, "ApiCall")
                    .map(|p| {
                        cost_usd(s(p, "model").unwrap(), &Tokens::from_usage(&p["usage"])).unwrap()
                    })
                    .sum();
                let t = &exp["tokens"];
                let n = |k: &str| t[k].as_u64().unwrap() as f64;
                let want = (n("input") * 3.0
                    + n("output") * 15.0
                    + n("cache_creation") * 3.75
                    + n("cache_read") * 0.30)
                    / 1e6;
                assert!((cost - want).abs() < 1e-12, "{ctx}: cost {cost} != {want}");

                for d in exp["delegations"].as_array().unwrap() {
                    let aid = d["agent_id"].as_str().unwrap();
                    let mine: Vec<Value> = ps
                        .iter()
                        .filter(|p| s(p, "agent_id") == Some(aid))
                        .cloned()
                        .collect();
                    let dctx = format!("{ctx} agent {aid}");
                    let start: Vec<&Value> = event(&mine, "SubagentStart").collect();
                    assert_eq!(start.len(), 1, "{dctx}");
                    assert_eq!(start[0]["agent_type"], d["agent_type"], "{dctx}");
                    assert_eq!(start[0]["tool_use_id"], d["tool_use_id"], "{dctx}");
                    assert!(
                        s(start[0], "prompt").is_some_and(|p| p.starts_with("[sub:")),
                        "{dctx}"
                    );
                    assert!(
                        mine.iter().all(|p| p["agent_type"] == d["agent_type"]),
                        "{dctx}"
                    );
                    assert_eq!(json!(tools(&mine)), d["tools"], "{dctx}");
                    assert_eq!(
                        ids(&mine, "PreToolUse").len() as u64,
                        d["tool_calls"].as_u64().unwrap(),
                        "{dctx}"
                    );
                    assert_eq!(
                        ids(&mine, "PostToolUseFailure").len() as u64,
                        d["tool_failures"].as_u64().unwrap(),
                        "{dctx}"
                    );
                    assert_eq!(json!(files(&mine)), d["files_modified"], "{dctx}");
                    let stop = event(&mine, "SubagentStop").next();
                    assert_eq!(
                        stop.and_then(|p| p.get("last_assistant_message"))
                            .unwrap_or(&Value::Null),
                        &d["response"],
                        "{dctx}"
                    );
                    let (tok, calls) = tokens(&mine);
                    assert_eq!(tok, d["tokens"], "{dctx}");
                    assert_eq!(calls, d["api_calls"].as_u64().unwrap(), "{dctx}");
                }
            }
        }
    }

    /// Each hook payload with an identity has exactly one transcript payload
    /// with the same identity (and the transcript has no extra ones), so the
    /// store can merge the two sources into one event per happening.
    #[test]
    fn real_runs_match_their_hook_payloads_one_for_one() {
        for run in runs() {
            let sessions = read_run(&run);
            let hooks = json_lines(&run.join("hooks.jsonl"));
            // (event, identity key) -> (hook payloads, transcript payloads)
            let key = |p: &Value| -> Option<(String, String)> {
                let ev = s(p, "hook_event_name")?;
                let id = match ev {
                    "PreToolUse" | "PostToolUse" | "PostToolUseFailure" => {
                        s(p, "tool_use_id")?.to_owned()
                    }
                    "UserPromptSubmit" | "Stop" => {
                        if p.get("not_a_person").is_some() && p.get("prompt_id").is_none() {
                            return None; // companion lines: no hook counterpart by design
                        }
                        s(p, "prompt_id")?.to_owned()
                    }
                    "SubagentStop" | "StopFailure" if p.get("agent_id").is_some() => {
                        s(p, "agent_id")?.to_owned()
                    }
                    "SubagentStart" => s(p, "agent_id")?.to_owned(),
                    _ => return None,
                };
                Some((format!("{}/{ev}", s(p, "session_id")?), id))
            };
            type Pairs<'a> = (Vec<&'a Value>, Vec<&'a Value>);
            let mut table: BTreeMap<(String, String), Pairs> = BTreeMap::new();
            for h in &hooks {
                // compaction's hidden agent has no transcript file.
                if s(h, "hook_event_name") == Some("SubagentStop") && s(h, "agent_type") == Some("")
                {
                    continue;
                }
                if let Some(k) = key(h) {
                    table.entry(k).or_default().0.push(h);
                }
            }
            for ps in sessions.values() {
                for p in ps {
                    if let Some(k) = key(p) {
                        table.entry(k).or_default().1.push(p);
                    }
                }
            }
            assert!(table.len() > 20, "{}", run.display());
            for ((ev, id), (h, t)) in &table {
                let ctx = format!("{}: {ev} {id}", run.display());
                assert_eq!(h.len(), 1, "{ctx}: hook payloads {h:?}");
                assert_eq!(t.len(), 1, "{ctx}: transcript payloads {t:?}");
                let (h, t) = (h[0], t[0]);
                // Attribution and content agree.
                assert_eq!(h.get("agent_id"), t.get("agent_id"), "{ctx}");
                for field in [
                    "tool_name",
                    "prompt",
                    "last_assistant_message",
                    "agent_type",
                    "prompt_id",
                ] {
                    if let Some(v) = h.get(field) {
                        assert_eq!(Some(v), t.get(field), "{ctx}: {field}");
                    }
                }
                if ev.ends_with("/PreToolUse") {
                    assert_eq!(h.get("tool_input"), t.get("tool_input"), "{ctx}");
                }
                if ev.ends_with("/PostToolUseFailure") {
                    assert_eq!(h.get("error"), t.get("error"), "{ctx}");
                }
                if ev.ends_with("/UserPromptSubmit") {
                    let hook_person = !s(h, "prompt").unwrap().starts_with("<task-notification>");
                    assert_eq!(hook_person, t.get("not_a_person").is_none(), "{ctx}");
                }
            }
        }
    }

    // ------------------------------------------------------------ line-level behaviour

    fn feed(r: &mut TranscriptReader, lines: &[Value]) -> Vec<Value> {
        let mut out = Vec::new();
        for l in lines {
            out.extend(r.feed_line(&l.to_string()).unwrap());
        }
        out
    }
    fn names(ps: &[Value]) -> Vec<&str> {
        ps.iter()
            .map(|p| s(p, "hook_event_name").unwrap())
            .collect()
    }
    fn asst(id: &str, ts: &str, stop: &str, block: Value, out_tokens: u64) -> Value {
        json!({"type": "assistant", "uuid": format!("u-{ts}"), "timestamp": ts, "sessionId": "s",
            "message": {"id": id, "model": "claude-sonnet-4-5", "stop_reason": stop, "content": [block],
                "usage": {"input_tokens": 1, "output_tokens": out_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0}}})
    }
    fn prompt(pid: &str, ts: &str, text: &str) -> Value {
        json!({"type": "user", "uuid": format!("p-{ts}"), "timestamp": ts, "sessionId": "s", "promptId": pid,
            "promptSource": "sdk", "message": {"role": "user", "content": text}})
    }

    #[test]
    fn bookkeeping_lines_read_without_their_tree_give_what_the_full_reading_gives() {
        let mut files = Vec::new();
        for run in runs() {
            let mut stack = vec![run.join("transcripts")];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "jsonl") {
                        files.push(p);
                    }
                }
            }
        }
        assert!(files.len() >= 4);
        // Odd shapes too: each must take the full reading's way.
        let odd = [
            r#"{"type":"attachment","attachment":["x"],"timestamp":"2026-01-01T00:00:00.000Z"}"#,
            r#"{"type":"attachment","attachment":{"type":7}}"#,
            r#"{"type":"attachment","attachment":null,"cwd":"","timestamp":null}"#,
            r#"{"type":"last-prompt","type":"x"}"#,
            r#"{"type":"queue-operation","sessionId":5}"#,
            r#"{"type":"progress","timestamp":12,"gitBranch":"bé"}"#,
            r#"["type","attachment"]"#,
            r#"{"type":"api-request-blob","data":{"a":[1,2,{"b":null}]}"#,
        ];
        for file in files {
            let kind = if file.to_string_lossy().contains("/subagents/") {
                FileKind::Subagent(SubagentMeta::bare("a0"))
            } else {
                FileKind::Main
            };
            let (mut fast, mut full) = (
                TranscriptReader::new(kind.clone()),
                TranscriptReader::new(kind),
            );
            let text = std::fs::read_to_string(&file).unwrap();
            let mut peeked = 0;
            for line in text.lines().chain(odd) {
                let before = fast.stats.not_emitted.values().sum::<u64>();
                let a = fast.feed(line, true);
                if fast.stats.not_emitted.values().sum::<u64>() > before && a == Ok(Vec::new()) {
                    peeked += 1;
                }
                assert_eq!(a, full.feed(line, false), "{}: {line}", file.display());
                assert_eq!(
                    format!("{:?}", fast.ctx),
                    format!("{:?}", full.ctx),
                    "{line}"
                );
            }
            assert_eq!(fast.finish(), full.finish());
            assert_eq!(fast.stats, full.stats, "{}", file.display());
            assert!(peeked > 10, "{}: {peeked}", file.display());
        }
    }

    #[test]
    fn bad_lines_are_errors_and_leave_the_reader_usable() {
        let mut r = TranscriptReader::new(FileKind::Main);
        assert!(matches!(
            r.feed_line("{not json"),
            Err(LineError::NotJson { line: 1, .. })
        ));
        assert!(matches!(
            r.feed_line("[1,2]"),
            Err(LineError::NotObject { line: 2 })
        ));
        assert!(matches!(
            r.feed_bytes(b"\xff\xfe"),
            Err(LineError::NotUtf8 { line: 3 })
        ));
        let no_message = json!({"type": "assistant", "uuid": "x"}).to_string();
        assert!(matches!(
            r.feed_line(&no_message),
            Err(LineError::Malformed { line: 4, .. })
        ));
        let no_id = json!({"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash"}]}});
        assert!(r.feed_line(&no_id.to_string()).is_err());
        assert_eq!(r.feed_line("   \n").unwrap(), Vec::<Value>::new());
        let ok = feed(&mut r, &[prompt("p1", "2026-01-01T00:00:00Z", "hi")]);
        assert_eq!(names(&ok), ["UserPromptSubmit"]);
        assert_eq!(
            (r.stats().lines, r.stats().rejected, r.stats().blank),
            (7, 5, 1)
        );
    }

    #[test]
    fn one_response_over_several_lines_is_one_api_call_with_its_last_usage() {
        let mut r = TranscriptReader::new(FileKind::Main);
        let mut out = feed(
            &mut r,
            &[
                prompt("p1", "2026-01-01T00:00:00Z", "hi"),
                asst(
                    "m1",
                    "2026-01-01T00:00:01Z",
                    "tool_use",
                    json!({"type": "thinking", "thinking": "…"}),
                    5,
                ),
                asst(
                    "m1",
                    "2026-01-01T00:00:02Z",
                    "tool_use",
                    json!({"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}),
                    9,
                ),
            ],
        );
        // The response may still be written: no ApiCall yet.
        assert_eq!(names(&out), ["UserPromptSubmit", "PreToolUse"]);
        out = feed(
            &mut r,
            &[
                json!({"type": "user", "timestamp": "2026-01-01T00:00:03Z", "promptId": "p1",
                     "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x",
                                              "is_error": true}]}}),
                asst(
                    "m2",
                    "2026-01-01T00:00:04Z",
                    "end_turn",
                    json!({"type": "text", "text": "done"}),
                    3,
                ),
            ],
        );
        assert_eq!(names(&out), ["PostToolUseFailure", "ApiCall"]);
        assert_eq!(out[0]["tool_name"], "Bash");
        assert_eq!(out[0]["error"], "x");
        assert_eq!(out[1]["usage"]["output_tokens"], 9);
        assert_eq!(out[1]["timestamp"], "2026-01-01T00:00:01Z");
        assert_eq!(out[1]["prompt_id"], "p1");
        // The file ends: the last response and the turn's end become known.
        let end = r.finish();
        assert_eq!(names(&end), ["ApiCall", "Stop"]);
        assert_eq!(end[1]["last_assistant_message"], "done");
        assert_eq!(end[1]["prompt_id"], "p1");
        assert_eq!(end[1]["timestamp"], "2026-01-01T00:00:04Z");
        // finish() twice, or again after nothing new, emits nothing twice.
        assert!(r.finish().is_empty());
    }

    #[test]
    fn a_turn_without_an_ending_response_gets_no_stop() {
        let mut r = TranscriptReader::new(FileKind::Main);
        let out = feed(
            &mut r,
            &[
                prompt("p1", "2026-01-01T00:00:00Z", "hi"),
                asst(
                    "m1",
                    "2026-01-01T00:00:01Z",
                    "tool_use",
                    json!({"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}),
                    1,
                ),
                json!({"type": "user", "timestamp": "2026-01-01T00:00:02Z",
                       "message": {"content": [{"type": "text", "text": "[Request interrupted by user for tool use]"}]}}),
                prompt("p2", "2026-01-01T00:00:03Z", "again"),
            ],
        );
        assert_eq!(
            names(&out),
            [
                "UserPromptSubmit",
                "PreToolUse",
                "ApiCall",
                "UserPromptSubmit"
            ]
        );
        assert!(r.finish().is_empty(), "the second turn has no response yet");
        assert_eq!(r.stats().not_emitted["user:interrupt"], 1);
    }

    #[test]
    fn a_stop_hook_summary_ends_the_turn_at_its_time_and_a_next_prompt_ends_one_without_it() {
        let mut r = TranscriptReader::new(FileKind::Main);
        let out = feed(
            &mut r,
            &[
                prompt("p1", "2026-01-01T00:00:00Z", "one"),
                asst(
                    "m1",
                    "2026-01-01T00:00:01Z",
                    "end_turn",
                    json!({"type": "text", "text": "a"}),
                    1,
                ),
                asst(
                    "m1",
                    "2026-01-01T00:00:02Z",
                    "end_turn",
                    json!({"type": "text", "text": "b"}),
                    1,
                ),
                json!({"type": "system", "subtype": "stop_hook_summary", "timestamp": "2026-01-01T00:00:05Z"}),
                json!({"type": "cost-state", "sessionId": "s", "totalCostUSD": 0.5}),
                prompt("p2", "2026-01-01T00:00:06Z", "two"),
                asst(
                    "m2",
                    "2026-01-01T00:00:07Z",
                    "end_turn",
                    json!({"type": "text", "text": "c"}),
                    1,
                ),
                prompt("p3", "2026-01-01T00:00:08Z", "three"),
            ],
        );
        assert_eq!(
            names(&out),
            [
                "UserPromptSubmit",
                "ApiCall",
                "Stop",
                "CostState",
                "UserPromptSubmit",
                "ApiCall",
                "Stop",
                "UserPromptSubmit"
            ]
        );
        assert_eq!(out[2]["timestamp"], "2026-01-01T00:00:05Z");
        assert_eq!(out[2]["last_assistant_message"], "a\nb");
        assert_eq!(
            out[3]["timestamp"], "2026-01-01T00:00:05Z",
            "cost-state: last seen time"
        );
        assert_eq!(out[3]["cost_state"]["totalCostUSD"], 0.5);
        assert_eq!(
            (&out[6]["prompt_id"], &out[6]["last_assistant_message"]),
            (&json!("p2"), &json!("c"))
        );
    }

    #[test]
    fn synthetic_messages_are_no_api_calls_and_an_api_error_fails_the_turn() {
        let mut r = TranscriptReader::new(FileKind::Main);
        let mut err = asst(
            "e1",
            "2026-01-01T00:00:01Z",
            "stop_sequence",
            json!({"type": "text", "text": "API Error: 500"}),
            0,
        );
        err["message"]["model"] = json!("<synthetic>");
        err["isApiErrorMessage"] = json!(true);
        err["error"] = json!("server_error");
        let out = feed(&mut r, &[prompt("p1", "2026-01-01T00:00:00Z", "hi"), err]);
        assert_eq!(names(&out), ["UserPromptSubmit"]);
        let end = r.finish();
        assert_eq!(names(&end), ["StopFailure"]);
        assert_eq!(
            (&end[0]["error"], &end[0]["last_assistant_message"]),
            (&json!("server_error"), &json!("API Error: 500"))
        );
    }

    #[test]
    fn non_person_prompts_are_kept_but_marked() {
        let mut r = TranscriptReader::new(FileKind::Main);
        let mut meta = prompt(
            "p1",
            "2026-01-01T00:00:00Z",
            "<system-reminder>x</system-reminder>",
        );
        meta["isMeta"] = json!(true);
        let mut note = prompt(
            "p1",
            "2026-01-01T00:00:00Z",
            "<task-notification>\n<task-id>a</task-id>",
        );
        note["origin"] = json!({"kind": "task-notification"});
        note["promptSource"] = json!("system");
        let out = feed(
            &mut r,
            &[
                meta,
                note,
                prompt(
                    "p2",
                    "2026-01-01T00:00:01Z",
                    "<command-name>/compact</command-name>",
                ),
            ],
        );
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|p| p["not_a_person"] == json!(true)));
        assert_eq!(out[0]["prompt_origin"], "meta");
        assert_eq!(
            (out[0].get("prompt_id"), &out[0]["parent_prompt_id"]),
            (None, &json!("p1"))
        );
        assert_eq!(
            (&out[1]["prompt_origin"], &out[1]["prompt_id"]),
            (&json!("task-notification"), &json!("p1"))
        );
        assert_eq!(out[2]["prompt_origin"], "slash-command");
    }

    #[test]
    fn a_subagent_file_starts_and_stops_its_agent() {
        let meta = SubagentMeta::from_json(
            "a1",
            &json!({"agentType": "qa", "toolUseId": "toolu_x", "description": "d", "spawnDepth": 2,
                    "parentAgentId": "a0", "finished": true}),
        );
        let mut r = TranscriptReader::new(FileKind::Subagent(meta));
        let mut first = prompt("p1", "2026-01-01T00:00:00Z", "[sub] do it");
        first["isSidechain"] = json!(true);
        let out = feed(
            &mut r,
            &[
                first,
                asst(
                    "m1",
                    "2026-01-01T00:00:01Z",
                    "end_turn",
                    json!({"type": "text", "text": "report"}),
                    2,
                ),
            ],
        );
        assert_eq!(names(&out), ["SubagentStart"]);
        let p = &out[0];
        assert_eq!(
            (&p["agent_id"], &p["agent_type"], &p["tool_use_id"]),
            (&json!("a1"), &json!("qa"), &json!("toolu_x"))
        );
        assert_eq!(
            (&p["prompt"], &p["parent_agent_id"], &p["spawn_depth"]),
            (&json!("[sub] do it"), &json!("a0"), &json!(2))
        );
        let end = r.finish();
        assert_eq!(names(&end), ["ApiCall", "SubagentStop"]);
        assert!(end.iter().all(|p| p["agent_id"] == "a1"));
        assert_eq!(end[1]["last_assistant_message"], "report");
        assert_eq!(end[1]["timestamp"], "2026-01-01T00:00:01Z");
        // A still running sub-agent (no end, not finished) is not stopped.
        let mut r = TranscriptReader::new(FileKind::Subagent(SubagentMeta::bare("a2")));
        feed(
            &mut r,
            &[
                prompt("p1", "2026-01-01T00:00:00Z", "go"),
                asst(
                    "m1",
                    "2026-01-01T00:00:01Z",
                    "tool_use",
                    json!({"type": "tool_use", "id": "t", "name": "Read", "input": {}}),
                    1,
                ),
            ],
        );
        assert_eq!(names(&r.finish()), ["ApiCall"]);
    }

    /// A follower reads a file as it grows and calls finish() whenever it is
    /// idle (here: after every line), with the sub-agent's meta as it was
    /// while running. It must end with the same happenings and tokens as one
    /// read of the whole file, none twice.
    #[test]
    fn reading_incrementally_with_idle_finishes_gives_the_same_happenings() {
        for run in runs() {
            let whole = read_run(&run);
            let found = discover(&run.join("transcripts")).unwrap();
            for session in &found.sessions {
                let mut got = Vec::new();
                for (path, kind) in session.files() {
                    let running = match &kind {
                        FileKind::Subagent(m) => {
                            let mut m = m.clone();
                            m.finished = None;
                            FileKind::Subagent(m)
                        }
                        FileKind::Main => FileKind::Main,
                    };
                    let mut r = TranscriptReader::new(running).with_session_id(&session.session_id);
                    for line in std::fs::read_to_string(&path).unwrap().lines() {
                        got.extend(r.feed_line(line).unwrap());
                        got.extend(r.finish());
                    }
                    if let FileKind::Subagent(m) = kind {
                        r.set_meta(m);
                    }
                    got.extend(r.finish());
                }
                let identity = |ps: &[Value]| {
                    let mut v: Vec<String> = ps
                        .iter()
                        .map(|p| {
                            let mut q = p.clone();
                            let o = q.as_object_mut().unwrap();
                            // Times may differ (an end seen before its summary line).
                            o.remove("timestamp");
                            o.remove("transcript_uuid");
                            q.to_string()
                        })
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    identity(&got),
                    identity(&whole[&session.session_id]),
                    "{}",
                    run.display()
                );
            }
        }
    }

    #[test]
    fn odd_shapes_never_panic_and_every_line_is_accounted_for() {
        let odd = [
            json!({"type": "assistant", "message": {"content": 5}}),
            json!({"type": "assistant", "message": {"id": 7, "usage": "x", "content": [1, null, {"type": 3}]}}),
            json!({"type": "assistant", "message": {"id": "m", "model": null, "usage": {"input_tokens": -1},
                   "content": [{"type": "tool_use", "id": "t", "name": "X"}]}}),
            json!({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t", "content": 3,
                   "is_error": "yes"}]}, "toolUseResult": null}),
            json!({"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "zz",
                   "is_error": true}]}}),
            json!({"type": "user", "message": {"content": null}, "timestamp": 12}),
            json!({"type": "user", "message": {"content": "hi"}, "origin": "str", "promptId": 4}),
            json!({"type": "system", "subtype": "stop_hook_summary"}),
            json!({"type": "system", "subtype": "compact_boundary", "compactMetadata": 1}),
            json!({"type": "system"}),
            json!({"type": 5}),
            json!({}),
            json!({"type": "cost-state"}),
        ];
        for kind in [
            FileKind::Main,
            FileKind::Subagent(SubagentMeta::from_json("a", &json!({"agentType": 3}))),
        ] {
            let mut r = TranscriptReader::new(kind);
            let mut out = Vec::new();
            for l in &odd {
                out.extend(r.feed_line(&l.to_string()).unwrap());
            }
            out.extend(r.finish());
            let st = r.stats();
            assert_eq!(st.rejected, 0);
            assert_eq!(st.line_types.values().sum::<u64>(), odd.len() as u64);
            assert_eq!(st.emitted.values().sum::<u64>(), out.len() as u64);
            // The tool result of an unknown call is still a result, without a name.
            assert!(out
                .iter()
                .any(|p| p["tool_use_id"] == "zz" && p.get("tool_name").is_none()));
        }
    }
}
