//! The canonical event: what every source (monitor payload, hook payload,
//! transcript line, imported document) is turned into before it is stored, and
//! the few facts read from its payload once, so that no later step has to look
//! inside the JSON again.

use chrono::{DateTime, Utc};

use super::category::{Category, HookEvent};
use super::time::format_timestamp;

/// A canonical event, serialized and ready for the writer.
#[derive(Debug, Clone)]
pub struct NormalizedEvent {
    pub session_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// Its canonical type (`events.event_type`): a Claude Code hook name,
    /// a kind only a transcript tells, or another name kept as it came.
    pub kind: HookEvent,
    pub category: Category,
    /// The Socket.IO event name it arrived under (`history` elements keep their own).
    pub socket_event: String,
    pub raw_type: Option<String>,
    pub subtype: Option<String>,
    pub source: Option<String>,
    pub correlation_id: Option<String>,
    /// The event's data object as JSON text (the whole payload for shapes without one).
    pub data: String,
    /// The payload's other top-level fields as a JSON object, when it had a `data` object.
    pub envelope: Option<String>,
    pub facts: Facts,
    /// What makes two observations of this event one happening (SPEC section 7):
    /// `pre:`/`end:` + `tool_use_id`, `start:`/`stop:` + `agent_id`, `prompt:` +
    /// `prompt_id`, `turn:` + `prompt_id` (a turn's `Stop`), `api:` + `message.id`.
    /// `None` for events that carry no such id (they are deduplicated by content).
    pub identity: Option<String>,
    /// Which source observed it.
    pub origin: Source,
    /// Duplicate key: the event time (ms, big-endian) then a 128-bit content
    /// hash. Time first keeps the unique index append-mostly, as events arrive
    /// roughly in time order; a random key would dirty a random page per insert.
    pub dedup_key: [u8; 24],
    pub received_at: DateTime<Utc>,
    /// The timestamp is the happening's own: the payload's, or the arrival of
    /// a live event. False for an imported payload that carried none (raw hook
    /// payloads): its time is the import's, which says nothing of when it happened.
    pub time_known: bool,
    /// Its searchable text (`core::searchable`), made where it was normalized,
    /// off the writer's thread; `None`: the writer makes it when it stores it.
    pub search_text: Option<String>,
}

impl NormalizedEvent {
    /// The timestamp as stored: ISO-8601, milliseconds, `Z`.
    pub fn timestamp_text(&self) -> String {
        format_timestamp(&self.timestamp)
    }
}

/// Derived facts of one event. Every field is optional: payloads vary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// `tool_name` of a tool call.
    pub tool_name: Option<String>,
    /// Claude Code's `tool_use_id`, which pairs a `PreToolUse` with its `PostToolUse`.
    pub tool_use_id: Option<String>,
    /// The path a write tool modified.
    pub file_written: Option<String>,
    /// Sub-agent type of a delegation event.
    pub agent_type: Option<String>,
    /// Instructions given to a sub-agent.
    pub instructions: Option<String>,
    /// Short description of a delegated task.
    pub description: Option<String>,
    /// The text of a user prompt.
    pub prompt: Option<String>,
    /// A response text (final answer or sub-agent result).
    pub response: Option<String>,
    /// The event reports an error.
    pub is_error: bool,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
    /// The sub-agent the event belongs to (Claude Code 2.1 `agent_id`): the one
    /// that ran a tool, or the one a `SubagentStart`/`SubagentStop` is about.
    pub agent_id: Option<String>,
    /// The sub-agent an `Agent`/`Task` call launched (`tool_response.agentId`),
    /// which links the call's `tool_use_id` to that sub-agent.
    pub launched_agent_id: Option<String>,
    /// A background launch: the call ends at once (`async_launched`) and says
    /// nothing about how the sub-agent ends.
    pub background: bool,
    /// The sub-agent that started this one (nested sub-agents).
    pub parent_agent_id: Option<String>,
    /// Claude Code's `prompt_id`: the turn the event belongs to.
    pub prompt_id: Option<String>,
    /// A prompt Claude Code submitted itself (`<task-notification>`), not a person.
    pub not_a_person: bool,
    /// The error text of a failed tool call or sub-agent.
    pub error: Option<String>,
    /// An API call: its `message.id`, model and token usage.
    pub message_id: Option<String>,
    pub model: Option<String>,
    pub tokens: Tokens,
    /// Claude Code's own running account (a transcript `cost-state` line).
    pub claude_code: Option<ClaudeCodeAccount>,
    /// Claude Code's version (transcripts).
    pub claude_version: Option<String>,
    /// What the event is by content, for sources without ids (claude-mpm's
    /// full handler): `pre:<tool>[:<input hash>]`, `end:<tool>`,
    /// `fail:<tool>`, `prompt:<text hash>`, or `stop` (the store resolves it
    /// to the turn's prompt). An observation without ids is merged with the
    /// earliest observation of the same key that has them (see the writer).
    pub content_key: Option<String>,
}

/// Which source observed an event (SPEC section 7): the monitor live, a hook
/// (`mpm-aggregate hook`, HTTP hooks), a transcript, or a file imported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Source {
    #[default]
    Monitor,
    Hook,
    Transcript,
    Import,
}

impl Source {
    /// The word stored in `events.origin` and `sessions.sources`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Monitor => "monitor",
            Source::Hook => "hook",
            Source::Transcript => "transcript",
            Source::Import => "import",
        }
    }

    /// The source a stored word names.
    pub fn parse(word: &str) -> Option<Source> {
        [
            Source::Monitor,
            Source::Hook,
            Source::Transcript,
            Source::Import,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tokens of API calls, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_creation: i64,
    pub cache_read: i64,
    /// The part of `cache_creation` written with the 1-hour lifetime (priced
    /// higher). Written only when there is some, so documents show the four
    /// kinds of SPEC section 7 unless a 1-hour write happened.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_1h: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Tokens {
    /// Reads an Anthropic API `usage` object (a transcript's, an `ApiCall`
    /// payload's). The 1-hour part of the cache writes comes from its
    /// `cache_creation` split, never more than the writes themselves.
    pub fn from_usage(usage: &serde_json::Value) -> Tokens {
        usage
            .as_object()
            .map(Tokens::from_usage_map)
            .unwrap_or_default()
    }

    /// [`Tokens::from_usage`] of the object itself.
    pub fn from_usage_map(usage: &serde_json::Map<String, serde_json::Value>) -> Tokens {
        let n = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_i64).unwrap_or(0);
        let cache_creation = n(usage.get("cache_creation_input_tokens"));
        let split = usage.get("cache_creation");
        Tokens {
            input: n(usage.get("input_tokens")),
            output: n(usage.get("output_tokens")),
            cache_creation,
            cache_read: n(usage.get("cache_read_input_tokens")),
            cache_creation_1h: n(split.and_then(|s| s.get("ephemeral_1h_input_tokens")))
                .clamp(0, cache_creation.max(0)),
        }
    }

    /// Adds another count to this one.
    pub fn add(&mut self, other: &Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.cache_creation += other.cache_creation;
        self.cache_read += other.cache_read;
        self.cache_creation_1h += other.cache_creation_1h;
    }

    /// Whether nothing was counted.
    pub fn is_zero(&self) -> bool {
        *self == Tokens::default()
    }
}

/// Claude Code's own account of a session, as its last `cost-state` line says.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClaudeCodeAccount {
    pub tokens: Tokens,
    pub cost_usd: Option<f64>,
    pub lines_added: Option<i64>,
    pub lines_removed: Option<i64>,
}

impl NormalizedEvent {
    /// The identity of a happening from its type and ids (see [`NormalizedEvent::identity`]).
    pub fn identity_of(kind: &HookEvent, facts: &Facts) -> Option<String> {
        let with =
            |prefix: &str, id: &Option<String>| id.as_ref().map(|id| format!("{prefix}:{id}"));
        match kind {
            HookEvent::PreToolUse => with("pre", &facts.tool_use_id),
            HookEvent::PostToolUse | HookEvent::PostToolUseFailure => {
                with("end", &facts.tool_use_id)
            }
            HookEvent::SubagentStart => with("start", &facts.agent_id),
            HookEvent::SubagentStop => with("stop", &facts.agent_id),
            HookEvent::UserPromptSubmit => with("prompt", &facts.prompt_id),
            HookEvent::Stop => with("turn", &facts.prompt_id),
            HookEvent::ApiCall => with("api", &facts.message_id),
            _ => None,
        }
    }
}

/// What the recorder is doing, as its heartbeat row and `status` tell it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderState {
    Connected,
    Disconnected,
    #[default]
    Stopped,
}

impl RecorderState {
    /// The word stored in `recorder_state.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecorderState::Connected => "connected",
            RecorderState::Disconnected => "disconnected",
            RecorderState::Stopped => "stopped",
        }
    }

    /// The state a stored word names (anything unknown reads as stopped).
    pub fn parse(word: &str) -> RecorderState {
        match word {
            "connected" => RecorderState::Connected,
            "disconnected" => RecorderState::Disconnected,
            _ => RecorderState::Stopped,
        }
    }
}

impl std::fmt::Display for RecorderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
