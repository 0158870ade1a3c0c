//! The delegation state machine: which delegation an event starts, joins, ends
//! or counts toward (SPEC sections 4 and 7).
//!
//! Identities first: a Claude Code 2.1 sub-agent is its `agent_id`, linked to the
//! parent's `Agent`/`Task` call by `tool_use_id` (from the call's
//! `tool_response.agentId` or the sub-agent's `.meta.json`); every event that
//! carries that `agent_id` counts toward it and no other. Sources without ids
//! (older monitor shapes, claude-mpm's full handler) fall back to the heuristic
//! of SPEC section 4: the monitor sends a *pair* for each transition
//! (`PreToolUse Task` + `SubagentStart`, `SubagentStop` + `PostToolUse Task`),
//! and the second half of a pair attaches to what the first half opened or
//! closed, never opening or closing another.
//!
//! A decision is a value ([`Transition`]); [`apply`] carries it out on the
//! delegation; the session projection (`session.rs`) does the bookkeeping.

use chrono::{DateTime, Duration, Utc};

use super::category::{HookEvent, DELEGATION_TOOLS};
use super::delegations::{Delegations, Slot};
use super::event::{NormalizedEvent, Tokens};

/// The two halves of a delegation's start and of its end; bits record which were seen.
pub const PRE_TASK: i64 = 1;
pub const SUBAGENT_START: i64 = 2;
pub const SUBAGENT_STOP: i64 = 4;
pub const POST_TASK: i64 = 8;
/// Every half: a delegation imported whole.
pub const ALL_HALVES: i64 = PRE_TASK | SUBAGENT_START | SUBAGENT_STOP | POST_TASK;

/// How far apart the two halves of one transition may be (id-less sources).
pub fn pair_window() -> Duration {
    Duration::seconds(30)
}

/// The agent type of a delegation whose source did not tell it (stored as
/// such in `delegations.agent_type`, which is never empty).
pub const UNKNOWN_AGENT: &str = "unknown";

/// Characters of a response kept as `response_preview`.
pub const RESPONSE_PREVIEW_CHARS: usize = 200;
/// Error recorded on delegations still running when their session is finalized.
pub const UNFINISHED: &str = "still running when the session was finalized";

/// One delegation as the projection keeps it (a row of `delegations`).
#[derive(Debug, Clone, Default)]
pub struct DelegationState {
    /// Row id in `delegations` (0 until the store allocates it).
    pub id: i64,
    pub agent_type: String,
    /// The sub-agent's `agent_id`, once known.
    pub agent_id: Option<String>,
    /// The parent's `Agent`/`Task` call (`tool_use_id`, or a correlation id).
    pub start_ref: Option<String>,
    pub parent_agent_id: Option<String>,
    pub instructions: Option<String>,
    pub description: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub success: Option<bool>,
    pub error: Option<String>,
    pub event_count: i64,
    pub tools: Vec<String>,
    pub files: Vec<String>,
    pub response_preview: Option<String>,
    /// Which halves were seen (bits above).
    pub halves: i64,
    /// Launched in the background: its call ends at once and says nothing about its end.
    pub background: bool,
    /// Its `Agent`/`Task` call ended with `PostToolUseFailure`.
    pub call_failed: bool,
    /// The sub-agent ended with `StopFailure`.
    pub stop_failed: bool,
    pub tool_calls: i64,
    pub tool_failures: i64,
    pub api_calls: i64,
    pub tokens: Tokens,
    /// The first model its API calls used.
    pub model: Option<String>,
    /// Changed since it was last written.
    pub dirty: bool,
}

impl DelegationState {
    pub fn is_running(&self) -> bool {
        self.end_time.is_none()
    }

    /// Whether what was seen ends the delegation: its sub-agent stopped, or its
    /// call failed, or (launched in the foreground) its call returned.
    fn has_ended(&self) -> bool {
        self.halves & SUBAGENT_STOP != 0
            || self.call_failed
            || (self.halves & POST_TASK != 0 && !self.background)
    }

    /// Success once ended: neither its call nor its sub-agent failed.
    fn succeeded(&self) -> bool {
        !self.call_failed && !self.stop_failed
    }
}

/// What a delegation event does to the session's delegations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Not a delegation transition.
    None,
    /// Starts a new delegation.
    Open,
    /// Another half of a delegation already known (by id, or the second half of a pair).
    Attach(Slot),
    /// Ends the running delegation in this slot (id-less sources).
    Close(Slot),
    /// Not a delegation at all, and counts toward none: compaction's hidden
    /// sub-agent (`SubagentStop` with an empty `agent_type` and no start).
    Ignore,
}

/// Which half of a transition an event is, if any.
pub fn half_of(event: &NormalizedEvent) -> Option<i64> {
    let is_delegation_tool = || {
        event
            .facts
            .tool_name
            .as_deref()
            .is_some_and(|t| DELEGATION_TOOLS.contains(&t))
    };
    match event.kind {
        HookEvent::PreToolUse if is_delegation_tool() => Some(PRE_TASK),
        HookEvent::PostToolUse | HookEvent::PostToolUseFailure if is_delegation_tool() => {
            Some(POST_TASK)
        }
        HookEvent::SubagentStart => Some(SUBAGENT_START),
        HookEvent::SubagentStop => Some(SUBAGENT_STOP),
        // A sub-agent that ends on an error fires StopFailure instead.
        HookEvent::StopFailure if event.facts.agent_id.is_some() => Some(SUBAGENT_STOP),
        _ => None,
    }
}

fn event_ref(event: &NormalizedEvent) -> Option<&str> {
    event
        .facts
        .tool_use_id
        .as_deref()
        .or(event.correlation_id.as_deref())
}

/// Decides the transition of `event` (which is half `half`) against `delegations`.
pub fn decide(delegations: &Delegations, event: &NormalizedEvent, half: i64) -> Transition {
    let facts = &event.facts;

    // Identities first.
    if let Some(agent) = facts
        .agent_id
        .as_deref()
        .filter(|_| half & (SUBAGENT_START | SUBAGENT_STOP) != 0)
    {
        if let Some(i) = delegations.first_of_agent(agent) {
            return Transition::Attach(i);
        }
        if let Some(i) = call_waiting_for(delegations, event) {
            return Transition::Attach(i);
        }
        if half == SUBAGENT_STOP && facts.agent_type.is_none() {
            return Transition::Ignore;
        }
        return Transition::Open;
    }
    if let Some(call) = facts
        .tool_use_id
        .as_deref()
        .filter(|_| half & (PRE_TASK | POST_TASK) != 0)
    {
        let linked = facts
            .launched_agent_id
            .as_deref()
            .and_then(|a| delegations.first_of_agent(a));
        if let Some(i) = earliest_slot(delegations.first_of_call(call), linked) {
            return Transition::Attach(i);
        }
        if half == PRE_TASK {
            // The sub-agent may have been seen first (sources arrive in any
            // order): the earliest of that type still without its call.
            let waiting = match facts.agent_type.as_deref() {
                None => delegations.earliest_callless(None),
                Some(t) => {
                    let of_type = delegations.earliest_callless(Some(t));
                    let untyped = delegations.earliest_callless(Some(UNKNOWN_AGENT));
                    [of_type, untyped]
                        .into_iter()
                        .flatten()
                        .min_by_key(|&i| (delegations[i].start_time, delegations[i].id, i))
                }
            };
            if let Some(i) = waiting {
                return Transition::Attach(i);
            }
        }
        // A call not seen before (or the end of one whose start was not seen):
        // a delegation of its own.
        return Transition::Open;
    }
    decide_by_pairing(delegations, event, half)
}

fn earliest_slot(a: Option<Slot>, b: Option<Slot>) -> Option<Slot> {
    [a, b].into_iter().flatten().min()
}

/// The `Agent`/`Task` call a sub-agent seen for the first time (its start, or
/// its work arriving first) belongs to: the call its `tool_use_id` names (a
/// transcript's `.meta.json`), else the earliest call of its type still
/// waiting for its sub-agent (or of a type the source did not tell).
pub fn call_waiting_for(delegations: &Delegations, event: &NormalizedEvent) -> Option<Slot> {
    let facts = &event.facts;
    if let Some(i) = facts
        .tool_use_id
        .as_deref()
        .and_then(|call| delegations.first_waiting_call(call))
    {
        return Some(i);
    }
    let wanted = facts.agent_type.as_deref()?;
    // The same type first, then the earliest.
    delegations
        .earliest_waiting_of_type(wanted)
        .or_else(|| delegations.earliest_waiting_of_type(UNKNOWN_AGENT))
}

/// The heuristic of SPEC section 4, for sources without ids.
fn decide_by_pairing(delegations: &Delegations, event: &NormalizedEvent, half: i64) -> Transition {
    let agent = event.facts.agent_type.as_deref();
    let reference = event_ref(event);
    let fits = |i: &Slot| {
        let d = &delegations[*i];
        let agent_fits = agent.is_none()
            || d.agent_type == UNKNOWN_AGENT
            || Some(d.agent_type.as_str()) == agent;
        let ref_fits = match (reference, d.start_ref.as_deref()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        agent_fits && ref_fits
    };
    let (from, to) = (
        event.timestamp - pair_window(),
        event.timestamp + pair_window(),
    );

    if half == PRE_TASK || half == SUBAGENT_START {
        // Running, with the other half of the start and not this one, the earliest.
        let candidate = delegations.running_missing(half, from, to).find(fits);
        return candidate.map_or(Transition::Open, Transition::Attach);
    }

    // Ended, with the other half of the end and not this one, the latest.
    if let Some(i) = delegations.ended_missing(half, from, to).find(fits) {
        return Transition::Attach(i);
    }
    let latest = reference
        .and_then(|r| delegations.latest_running(Some(r), None))
        .or_else(|| agent.and_then(|a| delegations.latest_running(None, Some(a))))
        .or_else(|| delegations.latest_running(None, None));
    match latest {
        Some(i) => Transition::Close(i),
        None => Transition::None,
    }
}

fn preview(text: &str) -> String {
    text.chars().take(RESPONSE_PREVIEW_CHARS).collect()
}

/// A new delegation from the event that opens it.
pub fn open(event: &NormalizedEvent, half: i64, id: i64) -> DelegationState {
    let facts = &event.facts;
    let mut d = DelegationState {
        id,
        agent_type: facts
            .agent_type
            .clone()
            .unwrap_or_else(|| UNKNOWN_AGENT.to_string()),
        start_time: event.timestamp,
        dirty: true,
        ..DelegationState::default()
    };
    apply(&mut d, event, half, false);
    d
}

/// What the outcome of a delegation counts in the session's metrics:
/// (successful, failed), each 0 or 1.
pub fn tally(d: &DelegationState) -> (i64, i64) {
    match (d.end_time.is_some(), d.success) {
        (true, Some(true)) => (1, 0),
        (true, _) => (0, 1),
        _ => (0, 0),
    }
}

/// Applies one half (`half`) of a delegation's life to it. `closes` says the
/// event ends it (an id-less `Close`); ids decide by themselves.
pub fn apply(d: &mut DelegationState, event: &NormalizedEvent, half: i64, closes: bool) {
    let facts = &event.facts;
    d.dirty = true;
    d.halves |= half;
    if d.agent_type == UNKNOWN_AGENT {
        if let Some(a) = &facts.agent_type {
            d.agent_type.clone_from(a);
        }
    }
    // Every half but the call's own names the sub-agent (and so does its work,
    // `half` 0, when it opens the delegation before its start arrives).
    if half & (PRE_TASK | POST_TASK) == 0 && d.agent_id.is_none() {
        d.agent_id.clone_from(&facts.agent_id);
    }
    if half & POST_TASK != 0 && d.agent_id.is_none() {
        d.agent_id.clone_from(&facts.launched_agent_id);
    }
    if d.parent_agent_id.is_none() && half == SUBAGENT_START {
        d.parent_agent_id.clone_from(&facts.parent_agent_id);
    }
    if facts.background {
        d.background = true;
    }
    if half == PRE_TASK {
        if let Some(r) = event_ref(event) {
            d.start_ref = Some(r.to_string());
        }
    } else if half == SUBAGENT_START && d.start_ref.is_none() {
        // A transcript's sub-agent names its call (`.meta.json` `toolUseId`);
        // a correlation id of the start event is not the call's.
        d.start_ref.clone_from(&facts.tool_use_id);
    }
    if half == PRE_TASK {
        // The call carries the instructions as given, without the memory
        // preamble claude-mpm adds to SubagentStart.
        if facts.instructions.is_some() {
            d.instructions.clone_from(&facts.instructions);
        }
        if event.timestamp < d.start_time {
            d.start_time = event.timestamp;
        }
    }
    if d.instructions.is_none() {
        d.instructions.clone_from(&facts.instructions);
    }
    if d.description.is_none() {
        d.description.clone_from(&facts.description);
    }
    let ending = half & (SUBAGENT_STOP | POST_TASK) != 0;
    if ending {
        if half == SUBAGENT_STOP {
            if let Some(r) = facts.response.as_deref() {
                d.response_preview = Some(preview(r));
            }
        } else if d.response_preview.is_none() {
            d.response_preview = facts.response.as_deref().map(preview);
        }
        if facts.is_error {
            if half == POST_TASK {
                d.call_failed = true;
            } else {
                d.stop_failed = true;
            }
            if d.error.is_none() {
                d.error = Some(
                    facts
                        .error
                        .clone()
                        .unwrap_or_else(|| format!("{} reported an error", event.kind)),
                );
            }
        }
    }
    let ended = closes || d.has_ended();
    if ended {
        if d.end_time.is_none() {
            d.end_time = Some(event.timestamp.max(d.start_time));
        }
        d.success = Some(d.succeeded());
        if d.error.as_deref() == Some(UNFINISHED) {
            d.error = None;
        }
    }
}

/// Counts an event of the delegation's own work: its tool calls and
/// failures, files, API calls and tokens.
pub fn count_work(d: &mut DelegationState, event: &NormalizedEvent) {
    let facts = &event.facts;
    d.dirty = true;
    d.event_count += 1;
    if let Some(t) = facts
        .tool_name
        .as_deref()
        .filter(|_| event.kind.is_tool_call())
    {
        if !d.tools.iter().any(|x| x == t) {
            d.tools.push(t.to_string());
        }
    }
    match event.kind {
        HookEvent::PreToolUse => d.tool_calls += 1,
        HookEvent::PostToolUseFailure => d.tool_failures += 1,
        HookEvent::ApiCall => {
            d.api_calls += 1;
            d.tokens.add(&facts.tokens);
            if d.model.is_none() {
                d.model.clone_from(&facts.model);
            }
        }
        _ => {}
    }
    if let Some(f) = &facts.file_written {
        if !d.files.contains(f) {
            d.files.push(f.clone());
        }
    }
}

/// Ends a delegation still running when its session ends: failed.
pub fn end_unfinished(d: &mut DelegationState, end: DateTime<Utc>) {
    d.end_time = Some(end.max(d.start_time));
    d.success = Some(false);
    d.error = Some(UNFINISHED.into());
    d.dirty = true;
}

/// Folds `other` into `into`: two delegations found to be one sub-agent (its
/// work, its start or its call seen apart, by writers or sources that could
/// not know of each other, and linked later by `agent_id`).
pub fn absorb(into: &mut DelegationState, other: DelegationState) {
    fn union(list: &mut Vec<String>, more: Vec<String>) {
        for item in more {
            if !list.contains(&item) {
                list.push(item);
            }
        }
    }
    if into.agent_type == UNKNOWN_AGENT {
        into.agent_type = other.agent_type;
    }
    if other.halves & PRE_TASK != 0 {
        // The call's own view of what it asked for wins.
        into.start_ref = other.start_ref.or(into.start_ref.take());
        if other.instructions.is_some() {
            into.instructions = other.instructions;
        }
    } else {
        into.start_ref = into.start_ref.take().or(other.start_ref);
        into.instructions = into.instructions.take().or(other.instructions);
    }
    into.description = into.description.take().or(other.description);
    into.parent_agent_id = into.parent_agent_id.take().or(other.parent_agent_id);
    // The sub-agent's own last message (its stop) is its response.
    let others_is_the_stop = other.halves & SUBAGENT_STOP != 0 && other.response_preview.is_some();
    if others_is_the_stop || into.response_preview.is_none() {
        into.response_preview = other.response_preview;
    }
    into.error = into.error.take().or(other.error);
    into.start_time = into.start_time.min(other.start_time);
    into.end_time = match (into.end_time, other.end_time) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    into.halves |= other.halves;
    into.background |= other.background;
    into.call_failed |= other.call_failed;
    into.stop_failed |= other.stop_failed;
    into.event_count += other.event_count;
    union(&mut into.tools, other.tools);
    union(&mut into.files, other.files);
    into.tool_calls += other.tool_calls;
    into.tool_failures += other.tool_failures;
    into.api_calls += other.api_calls;
    into.tokens.add(&other.tokens);
    into.model = into.model.take().or(other.model);
    if into.has_ended() {
        into.success = Some(into.succeeded());
        if into.error.as_deref() == Some(UNFINISHED) {
            into.error = None;
        }
    } else {
        into.end_time = None;
        into.success = None;
    }
    into.dirty = true;
}
