//! The session projection: what one event changes in its session, its
//! delegations and its metrics (SPEC sections 4 and 7). Every rule exists once,
//! here; the store only loads this state, feeds it events in time order and
//! writes it back. A session can always be rebuilt by feeding all its events
//! again to a fresh [`SessionState`], which is how sources that arrive out of
//! order (a transcript imported after the hooks) end up exact.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::category::{Category, HookEvent};
use super::delegation::{self, Transition};
use super::delegations::{Delegations, Slot};
use super::event::{ClaudeCodeAccount, NormalizedEvent, Source, Tokens};

/// Bits of [`SessionState::ids_seen`].
const IDS_OF_TOOLS: i64 = 1;
const IDS_OF_AGENTS: i64 = 2;

/// Ended delegations kept in memory for pairing late second halves.
pub const RECENTLY_ENDED_KEPT: usize = 8;

/// The figures of a session, kept as events arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub breakdown: BTreeMap<String, i64>,
    pub agents_used: Vec<String>,
    pub tools_used: Vec<String>,
    pub files_modified: Vec<String>,
    pub total_delegations: i64,
    pub successful_delegations: i64,
    pub failed_delegations: i64,
    /// Prompts a person submitted.
    pub prompts: i64,
    /// Distinct tool calls (one `PreToolUse` each).
    pub tool_calls: i64,
    pub tool_failures: i64,
    /// Distinct API calls (one `message.id` each).
    pub api_calls: i64,
    pub tokens: Tokens,
    /// Tokens per model, for the cost.
    pub tokens_by_model: BTreeMap<String, Tokens>,
    /// Models in order of first use.
    pub models: Vec<String>,
    /// Claude Code's own account (its last `cost-state`).
    pub claude_code: Option<ClaudeCodeAccount>,
}

/// A session as the projection keeps it (its `sessions` and `metrics` rows and
/// its running and recently ended delegations; never its events).
#[derive(Debug, Clone)]
pub struct SessionState {
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub last_event_time: DateTime<Utc>,
    pub completed: bool,
    pub working_directory: Option<String>,
    pub git_branch: Option<String>,
    pub launch_method: Option<String>,
    pub claude_pid: Option<i64>,
    pub claude_version: Option<String>,
    pub initial_prompt: Option<String>,
    pub final_response: Option<String>,
    pub event_count: i64,
    pub file_path: Option<String>,
    pub completed_seq: Option<i64>,
    pub metadata: String,
    /// Sources that contributed (`monitor`, `hook`, `transcript`, `import`), first first.
    pub sources: Vec<String>,
    /// Which of Claude Code's ids the session's events carried: bit 1 a
    /// `tool_use_id` or `prompt_id`, bit 2 an `agent_id`. With both, attribution
    /// is by identity and an event without `agent_id` is the main thread's (see
    /// [`SessionState::attributes_by_identity`]).
    pub ids_seen: i64,
    /// Some of the session's events carry their true time: the import times of
    /// those that carry none (imported raw hooks) must not stretch the session.
    /// Known before a replay, and then only (not stored).
    pub ignore_unknown_times: bool,
    pub metrics: Metrics,
    /// Running delegations, identified ones, and the few id-less ones that
    /// ended last, oldest first.
    pub delegations: Delegations,
    /// Changed since it was last written.
    pub dirty: bool,
    /// The writer's batch that last touched it (cache eviction).
    pub touched_batch: u64,
}

impl SessionState {
    pub fn new(ts: DateTime<Utc>) -> Self {
        SessionState {
            start_time: ts,
            end_time: None,
            last_event_time: ts,
            completed: false,
            working_directory: None,
            git_branch: None,
            launch_method: None,
            claude_pid: None,
            claude_version: None,
            initial_prompt: None,
            final_response: None,
            event_count: 0,
            file_path: None,
            completed_seq: None,
            metadata: "{}".into(),
            sources: Vec::new(),
            ids_seen: 0,
            ignore_unknown_times: false,
            metrics: Metrics::default(),
            delegations: Delegations::default(),
            dirty: true,
            touched_batch: 0,
        }
    }

    /// Milliseconds from the first event to the end (or the last event while active).
    pub fn duration_ms(&self) -> i64 {
        let end = self.end_time.unwrap_or(self.last_event_time);
        (end - self.start_time).num_milliseconds().max(0)
    }

    /// Whether work is attributed by `agent_id` alone. Claude Code 2.1's own
    /// payloads carry both kinds of id; claude-mpm's full handler forwards
    /// `agent_id` on sub-agent starts and stops but no `tool_use_id`, and the
    /// older hook shape has `tool_use_id` but no `agent_id`: both fall back to
    /// the heuristic (work counts toward the latest running delegation).
    pub fn attributes_by_identity(&self) -> bool {
        self.ids_seen == IDS_OF_TOOLS | IDS_OF_AGENTS
    }

    /// Drops ended delegations beyond the few kept for pairing (id-less
    /// sources); identified ones are found again by id on a cache miss.
    fn trim_ended(&mut self) {
        self.delegations.trim_ended_idless(RECENTLY_ENDED_KEPT);
    }
}

fn push_distinct(list: &mut Vec<String>, item: &str) -> bool {
    if list.iter().any(|x| x == item) {
        false
    } else {
        list.push(item.to_string());
        true
    }
}

/// What an event does to the session's delegations, decided before it is
/// stored (the store allocates a row when it opens one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub transition: Transition,
    /// Which half of a delegation's life the event is (0: none).
    pub half: i64,
    /// The delegation (slot in `SessionState::delegations`) the event counts toward.
    pub attributed: Option<Slot>,
}

/// Decides what `event` does to `state`'s delegations. `track` is off when
/// delegations are not captured (configuration) or come from a document.
pub fn decide(state: Option<&SessionState>, event: &NormalizedEvent, track: bool) -> Decision {
    // An empty set only for a session not seen yet (not built at every event).
    let none;
    let delegations = match state {
        Some(s) => &s.delegations,
        None => {
            none = Delegations::default();
            &none
        }
    };
    let half = delegation::half_of(event).filter(|_| track).unwrap_or(0);
    let transition = if half != 0 {
        delegation::decide(delegations, event, half)
    } else if track && names_an_unknown_agent(delegations, event) {
        // The sub-agent's work arrived before its start (sources and writers
        // deliver in any order): it belongs to the call waiting for it, or
        // stands for the sub-agent until its start or call comes.
        delegation::call_waiting_for(delegations, event)
            .map_or(Transition::Open, Transition::Attach)
    } else {
        Transition::None
    };
    let attributed = match transition {
        Transition::Attach(i) | Transition::Close(i) => Some(i),
        Transition::Open | Transition::Ignore => None,
        Transition::None => match (&event.facts.agent_id, state) {
            (Some(agent), Some(s)) => s.delegations.first_of_agent(agent),
            (None, Some(s)) if !(s.attributes_by_identity() || tells_its_agent(event)) => {
                s.delegations.latest_running(None, None)
            }
            _ => None,
        },
    };
    Decision {
        transition,
        half,
        attributed,
    }
}

/// Whether an event is the work of a sub-agent no delegation stands for yet.
fn names_an_unknown_agent(delegations: &Delegations, event: &NormalizedEvent) -> bool {
    event
        .facts
        .agent_id
        .as_deref()
        .is_some_and(|agent| delegations.first_of_agent(agent).is_none())
}

/// Whether the event's own source would name its sub-agent if it had one, so
/// that without `agent_id` it is the main thread's: a transcript tells every
/// sub-agent line by its file, and Claude Code 2.1's hooks put `agent_id` on
/// everything inside a sub-agent (they are told by their `prompt_id`, which
/// older hook shapes and claude-mpm's full handler lack). Decided by the event
/// itself, whatever its session has seen so far: with several writers, the
/// session's first sub-agent events may arrive after this one.
fn tells_its_agent(event: &NormalizedEvent) -> bool {
    event.origin == Source::Transcript || event.facts.prompt_id.is_some()
}

/// The kinds of Claude Code ids an event carries (bits of `ids_seen`).
fn ids_of(event: &NormalizedEvent) -> i64 {
    let f = &event.facts;
    let tools = if f.tool_use_id.is_some() || f.prompt_id.is_some() {
        IDS_OF_TOOLS
    } else {
        0
    };
    tools
        | if f.agent_id.is_some() {
            IDS_OF_AGENTS
        } else {
            0
        }
}

/// Applies an event (already stored) to its session. `new_delegation_id` is
/// the row id the store allocated when the decision opens a delegation.
/// Returns the delegations this event showed to be one: `(row merged away,
/// row kept)`, for the store to delete and repoint.
pub fn apply_event(
    state: &mut SessionState,
    event: &NormalizedEvent,
    decision: Decision,
    new_delegation_id: Option<i64>,
) -> Vec<(i64, i64)> {
    state.dirty = true;
    state.event_count += 1;
    count(&mut state.metrics, event);
    if event.time_known || !state.ignore_unknown_times {
        if event.timestamp > state.last_event_time {
            state.last_event_time = event.timestamp;
        }
        if event.timestamp < state.start_time {
            state.start_time = event.timestamp;
        }
    }
    state.ids_seen |= ids_of(event);
    push_distinct(&mut state.sources, event.origin.as_str());
    let facts = &event.facts;
    if state.initial_prompt.is_none() && is_person_prompt(event) {
        state.initial_prompt.clone_from(&facts.prompt);
    }
    if state.working_directory.is_none() {
        state.working_directory.clone_from(&facts.working_directory);
    }
    let branch_unknown = state
        .git_branch
        .as_deref()
        .is_none_or(|b| b.eq_ignore_ascii_case("unknown"));
    if branch_unknown && facts.git_branch.is_some() {
        state.git_branch.clone_from(&facts.git_branch);
    }
    if state.launch_method.is_none() {
        state.launch_method.clone_from(&facts.launch_method);
    }
    if state.claude_pid.is_none() {
        state.claude_pid = facts.claude_pid;
    }
    if facts.claude_version.is_some() {
        state.claude_version.clone_from(&facts.claude_version);
    }
    if matches!(event.kind, HookEvent::Stop | HookEvent::SessionEnd) && facts.response.is_some() {
        state.final_response.clone_from(&facts.response);
    }
    let is_tool_call = event.kind.is_tool_call();

    let half = decision.half;
    let mut attributed = decision.attributed;
    let touched = match decision.transition {
        Transition::Open => {
            let d = delegation::open(event, half, new_delegation_id.unwrap_or_default());
            state.metrics.total_delegations += 1;
            let i = state.delegations.push(d);
            if half == 0 {
                // Opened by its own work: that work counts toward it.
                attributed = Some(i);
            }
            Some((i, (0, 0)))
        }
        Transition::Attach(i) | Transition::Close(i) => {
            let before = delegation::tally(&state.delegations[i]);
            let closes = matches!(decision.transition, Transition::Close(_));
            state
                .delegations
                .update(i, |d| delegation::apply(d, event, half, closes));
            Some((i, before))
        }
        Transition::None | Transition::Ignore => None,
    };
    // An outcome may become known, or change (a call failing after its
    // sub-agent stopped): the counters follow the difference.
    if let Some((i, before)) = touched {
        let after = delegation::tally(&state.delegations[i]);
        state.metrics.successful_delegations += after.0 - before.0;
        state.metrics.failed_delegations += after.1 - before.1;
        let agent = state.delegations[i].agent_type.clone();
        if agent != delegation::UNKNOWN_AGENT {
            push_distinct(&mut state.metrics.agents_used, &agent);
        }
    }

    // Work done by (or, without ids, while) a delegation counts toward it; the
    // transition events themselves do not, but a sub-agent's own `Agent` call
    // (a nested delegation) is one of its tool calls.
    let worker = if half == 0 {
        attributed
    } else if is_tool_call {
        facts
            .agent_id
            .as_deref()
            .and_then(|parent| state.delegations.first_of_agent(parent))
    } else {
        None
    };
    if let Some(i) = worker {
        state
            .delegations
            .update(i, |d| delegation::count_work(d, event));
    }
    let merged = merge_same_agents(state, touched.map(|(i, _)| i));
    state.trim_ended();
    merged
}

/// A prompt a person submitted (not one Claude Code submitted itself).
pub fn is_person_prompt(event: &NormalizedEvent) -> bool {
    event.kind == HookEvent::UserPromptSubmit
        && !event.facts.not_a_person
        && event.facts.prompt.is_some()
}

/// What one event adds to the figures of a session (SPEC sections 4 and 7):
/// every metric rule, once. The document types of the reference API count
/// through it too (`SessionMetrics::update`).
pub fn count(m: &mut Metrics, event: &NormalizedEvent) {
    let facts = &event.facts;
    *m.breakdown
        .entry(event.category.as_str().to_string())
        .or_insert(0) += 1;
    if is_person_prompt(event) {
        m.prompts += 1;
    }
    if let Some(t) = facts
        .tool_name
        .as_deref()
        .filter(|_| event.kind.is_tool_call())
    {
        push_distinct(&mut m.tools_used, t);
    }
    match event.kind {
        HookEvent::PreToolUse => m.tool_calls += 1,
        HookEvent::PostToolUseFailure => m.tool_failures += 1,
        _ => {}
    }
    if let Some(f) = &facts.file_written {
        push_distinct(&mut m.files_modified, f);
    }
    if event.kind == HookEvent::ApiCall {
        m.api_calls += 1;
        m.tokens.add(&facts.tokens);
        if let Some(model) = &facts.model {
            push_distinct(&mut m.models, model);
            m.tokens_by_model
                .entry(model.clone())
                .or_default()
                .add(&facts.tokens);
        }
    }
    if let Some(account) = &facts.claude_code {
        m.claude_code = Some(account.clone());
    }
}

/// Folds delegations that name the same `agent_id` into the first of them (see
/// [`delegation::absorb`]), keeping the session's counters right.
///
/// Pairs are merged as soon as they appear, and only `open` and `apply` name
/// a delegation's agent, so only the delegation this event `touched` can have
/// a twin: the whole search runs only then (a session of thousands of
/// sub-agents would otherwise compare every pair at every event).
fn merge_same_agents(state: &mut SessionState, touched: Option<Slot>) -> Vec<(i64, i64)> {
    let mut merged = Vec::new();
    let Some(t) = touched else {
        return merged;
    };
    let Some(agent) = state.delegations.get(t).and_then(|d| d.agent_id.as_deref()) else {
        return merged;
    };
    if !state.delegations.agent_twinned(agent) {
        return merged;
    }
    for agent in state.delegations.twinned_agents() {
        let slots = state.delegations.of_agent(&agent);
        let (&first, twins) = slots.split_first().expect("twinned");
        for &j in twins {
            let Some(other) = state.delegations.remove(j) else {
                continue;
            };
            let m = &mut state.metrics;
            for (ok, failed) in [
                delegation::tally(&state.delegations[first]),
                delegation::tally(&other),
            ] {
                m.successful_delegations -= ok;
                m.failed_delegations -= failed;
            }
            m.total_delegations -= 1;
            merged.push((other.id, state.delegations[first].id));
            let (ok, failed) = state.delegations.update(first, |d| {
                delegation::absorb(d, other);
                delegation::tally(d)
            });
            state.metrics.successful_delegations += ok;
            state.metrics.failed_delegations += failed;
        }
    }
    merged
}

/// Ends the session at `end`. A turn's `Stop` (`turn_only`) leaves sub-agents
/// running in the background alone; anything else (`SessionEnd`, the idle
/// timeout, the recorder's stop) fails every delegation still running.
pub fn finalize(state: &mut SessionState, end: DateTime<Utc>, completed_seq: i64, turn_only: bool) {
    for i in state.delegations.running() {
        if turn_only && state.delegations[i].background {
            continue;
        }
        state
            .delegations
            .update(i, |d| delegation::end_unfinished(d, end));
        state.metrics.failed_delegations += 1;
    }
    state.completed = true;
    state.end_time = Some(end.max(state.start_time));
    state.completed_seq = Some(completed_seq);
    state.dirty = true;
}

/// Whether an event reopens a completed session: a new turn (any non-meta
/// event, or SessionStart) after the session ended. Hook bookkeeping and
/// notifications that follow a `Stop` do not, nor what a source tells later of
/// a time before the end (a transcript's sub-agent file read after its main one).
pub fn reopens(state: &SessionState, event: &NormalizedEvent) -> bool {
    state.completed
        && !finalizes(event)
        && state.end_time.is_none_or(|end| event.timestamp > end)
        && (event.category != Category::Meta || event.kind == HookEvent::SessionStart)
        && !matches!(event.kind, HookEvent::SubagentStop | HookEvent::StopFailure)
}

/// Whether an event finalizes its session.
pub fn finalizes(event: &NormalizedEvent) -> bool {
    matches!(event.kind, HookEvent::Stop | HookEvent::SessionEnd)
        || event.kind.as_str() == "session.end"
        || (event.raw_type.as_deref() == Some("session") && event.subtype.as_deref() == Some("end"))
        || event.socket_event == "session.end"
}

/// When a finalizing event ends its session: its own time, or, when the time
/// it carries is only an import's, the session's last known one.
pub fn end_time_of(state: &SessionState, event: &NormalizedEvent) -> DateTime<Utc> {
    if event.time_known || !state.ignore_unknown_times {
        event.timestamp
    } else {
        state.last_event_time
    }
}

/// Whether a finalizing event ends only a turn (`Stop`), not the session.
pub fn ends_turn_only(event: &NormalizedEvent) -> bool {
    event.kind == HookEvent::Stop
}

#[cfg(test)]
mod tests {
    //! The delegation state machine and the projection on small tables of events.
    use super::*;
    use crate::core::delegation::DelegationState;
    use crate::core::event::Facts;
    use chrono::TimeZone;

    /// One row of a table: event type, seconds, and the facts it carries.
    fn ev(event_type: &str, secs: i64, facts: Facts) -> NormalizedEvent {
        NormalizedEvent {
            session_id: Some("s".into()),
            timestamp: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            kind: HookEvent::parse(event_type),
            category: crate::core::category_for(event_type, facts.tool_name.as_deref()),
            socket_event: "hook_event".into(),
            raw_type: None,
            subtype: None,
            source: None,
            correlation_id: None,
            data: "{}".into(),
            envelope: None,
            identity: NormalizedEvent::identity_of(&HookEvent::parse(event_type), &facts),
            origin: Source::Hook,
            facts,
            dedup_key: [0; 24],
            received_at: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
            time_known: true,
            search_text: None,
        }
    }

    fn tool(name: &str, id: &str, agent: Option<&str>) -> Facts {
        Facts {
            tool_name: Some(name.into()),
            tool_use_id: Some(id.into()),
            agent_id: agent.map(Into::into),
            file_written: (name == "Write").then(|| format!("/p/{id}")),
            ..Facts::default()
        }
    }

    fn agent_call(id: &str, agent_type: &str) -> Facts {
        Facts {
            agent_type: Some(agent_type.into()),
            ..tool("Agent", id, None)
        }
    }

    fn sub(agent_id: &str, agent_type: Option<&str>) -> Facts {
        Facts {
            agent_id: Some(agent_id.into()),
            agent_type: agent_type.map(Into::into),
            ..Facts::default()
        }
    }

    fn bare(agent_type: &str) -> Facts {
        Facts {
            agent_type: Some(agent_type.into()),
            ..Facts::default()
        }
    }

    /// Feeds the events in order, as the writer does, and finalizes at the
    /// end when `end` says so.
    fn run(events: &[NormalizedEvent]) -> SessionState {
        let mut state = SessionState::new(events[0].timestamp);
        let mut next_id = 1;
        for e in events {
            let decision = decide(Some(&state), e, true);
            let id = (decision.transition == Transition::Open).then(|| {
                next_id += 1;
                next_id - 1
            });
            let merged = apply_event(&mut state, e, decision, id);
            assert!(merged.iter().all(|(a, b)| a != b));
            if finalizes(e) {
                finalize(&mut state, e.timestamp, 1, ends_turn_only(e));
            }
        }
        state
    }

    fn by_agent<'a>(s: &'a SessionState, agent_type: &str) -> &'a DelegationState {
        s.delegations
            .iter()
            .find(|d| d.agent_type == agent_type)
            .expect("delegation")
    }

    /// Feeds the events as the writer does, writing the changed delegations
    /// back (into `table`, by row id, as SQL holds them) every `every` events
    /// and at the end, so that ended ones can be let go of.
    fn run_written(
        events: &[NormalizedEvent],
        every: usize,
    ) -> (SessionState, BTreeMap<i64, DelegationState>) {
        fn write_back(state: &mut SessionState, table: &mut BTreeMap<i64, DelegationState>) {
            for slot in state.delegations.dirty() {
                let d = &state.delegations[slot];
                table.insert(d.id, d.clone());
                state.delegations.mark_written(slot);
            }
        }
        let mut state = SessionState::new(events[0].timestamp);
        let mut table = BTreeMap::new();
        let mut next_id = 1;
        for (n, e) in events.iter().enumerate() {
            let decision = decide(Some(&state), e, true);
            let id = (decision.transition == Transition::Open).then(|| {
                next_id += 1;
                next_id - 1
            });
            for (gone, _) in apply_event(&mut state, e, decision, id) {
                table.remove(&gone);
            }
            if finalizes(e) {
                finalize(&mut state, e.timestamp, 1, ends_turn_only(e));
            }
            if (n + 1) % every == 0 {
                write_back(&mut state, &mut table);
            }
        }
        write_back(&mut state, &mut table);
        (state, table)
    }

    /// A delegation as stored, but for its row id.
    fn canonical(d: &DelegationState) -> String {
        format!(
            "{:?}",
            DelegationState {
                id: 0,
                dirty: false,
                ..d.clone()
            }
        )
    }

    /// Claude Code 2.1 hooks (ids) for block `k`, `k * 1000` s in: a
    /// sequential sub-agent, two parallel ones (one left running, with a
    /// failed tool), a start before its call, work before its start.
    fn block_with_ids(k: i64) -> Vec<NormalizedEvent> {
        let t = k * 1000;
        let id = |name: &str| format!("{name}{k}");
        let linked = |call: &str, agent: &str, agent_type: &str| Facts {
            launched_agent_id: Some(id(agent)),
            ..agent_call(&id(call), agent_type)
        };
        vec![
            ev("PreToolUse", t, agent_call(&id("ta"), "engineer")),
            ev("SubagentStart", t + 1, sub(&id("A"), Some("engineer"))),
            ev(
                "PreToolUse",
                t + 2,
                tool("Write", &id("wa"), Some(&id("A"))),
            ),
            ev("SubagentStop", t + 3, sub(&id("A"), Some("engineer"))),
            ev("PostToolUse", t + 3, linked("ta", "A", "engineer")),
            ev("PreToolUse", t + 4, agent_call(&id("tb"), "qa")),
            ev("PreToolUse", t + 4, agent_call(&id("tc"), "research")),
            ev("SubagentStart", t + 5, sub(&id("B"), Some("qa"))),
            ev("SubagentStart", t + 5, sub(&id("C"), Some("research"))),
            ev("PreToolUse", t + 6, tool("Read", &id("rc"), Some(&id("C")))),
            ev("PreToolUse", t + 6, tool("Bash", &id("bb"), Some(&id("B")))),
            ev(
                "PostToolUseFailure",
                t + 7,
                tool("Bash", &id("bb"), Some(&id("B"))),
            ),
            ev("SubagentStop", t + 8, sub(&id("C"), Some("research"))),
            ev("PostToolUse", t + 8, linked("tc", "C", "research")),
            ev("SubagentStart", t + 9, sub(&id("D"), Some("engineer"))),
            ev("PreToolUse", t + 9, agent_call(&id("td"), "engineer")),
            ev("SubagentStop", t + 10, sub(&id("D"), Some("engineer"))),
            ev(
                "PreToolUse",
                t + 11,
                tool("Write", &id("we"), Some(&id("E"))),
            ),
            ev("PreToolUse", t + 12, agent_call(&id("te"), "qa")),
            ev("SubagentStart", t + 12, sub(&id("E"), Some("qa"))),
            ev("PostToolUse", t + 13, linked("te", "E", "qa")),
        ]
    }

    /// claude-mpm's full handler (no ids) for block `k`, `k * 1000` s in: a
    /// sequential pair, three parallel ones (two of one type, stopping in the
    /// reverse order, the call of the first failing), one left running.
    fn block_without_ids(k: i64) -> Vec<NormalizedEvent> {
        let t = k * 1000;
        let task = |agent_type: &str| Facts {
            tool_name: Some("Task".into()),
            ..bare(agent_type)
        };
        let read = || Facts {
            tool_name: Some("Read".into()),
            ..Facts::default()
        };
        vec![
            ev("PreToolUse", t, task("research")),
            ev("SubagentStart", t, bare("research")),
            ev("PreToolUse", t + 1, read()),
            ev("SubagentStop", t + 2, bare("research")),
            ev("PostToolUse", t + 2, task("research")),
            ev("PreToolUse", t + 3, task("engineer")),
            ev("SubagentStart", t + 3, bare("engineer")),
            ev("PreToolUse", t + 4, task("qa")),
            ev("SubagentStart", t + 4, bare("qa")),
            ev("PreToolUse", t + 5, task("qa")),
            ev("SubagentStart", t + 5, bare("qa")),
            ev("PreToolUse", t + 5, read()),
            ev("SubagentStop", t + 6, bare("qa")),
            ev("SubagentStop", t + 7, bare("qa")),
            ev(
                "PostToolUseFailure",
                t + 8,
                Facts {
                    is_error: true,
                    ..task("qa")
                },
            ),
            ev("PostToolUse", t + 8, task("qa")),
            ev("PreToolUse", t + 9, read()),
            ev("SubagentStop", t + 10, bare("engineer")),
            ev("PostToolUse", t + 10, task("engineer")),
            ev("PreToolUse", t + 11, task("docs")),
            ev("SubagentStart", t + 11, bare("docs")),
            ev("PreToolUse", t + 12, read()),
        ]
    }

    #[test]
    fn a_session_of_thousands_of_sub_agents_is_its_blocks_each_alone() {
        const BLOCKS: i64 = 400;
        for (block, per_block, running_per_block, failed_per_block) in [
            (block_with_ids as fn(i64) -> Vec<NormalizedEvent>, 5, 1, 0),
            (block_without_ids, 5, 1, 1),
        ] {
            let events: Vec<_> = (0..BLOCKS).flat_map(block).collect();
            let (state, table) = run_written(&events, 64);
            // The reference: every block a session of its own.
            let mut expected = Vec::new();
            let mut sums = (0, 0, 0, 0, 0);
            for k in 0..BLOCKS {
                let (s, t) = run_written(&block(k), 64);
                expected.extend(t.values().map(canonical));
                let m = &s.metrics;
                sums.0 += m.total_delegations;
                sums.1 += m.successful_delegations;
                sums.2 += m.failed_delegations;
                sums.3 += m.tool_calls;
                sums.4 += m.tool_failures;
            }
            let mut got: Vec<_> = table.values().map(canonical).collect();
            got.sort();
            expected.sort();
            assert_eq!(got.len(), (BLOCKS * per_block) as usize);
            assert!(got == expected, "the session differs from its blocks");
            let m = &state.metrics;
            assert_eq!(
                (
                    m.total_delegations,
                    m.successful_delegations,
                    m.failed_delegations,
                    m.tool_calls,
                    m.tool_failures
                ),
                sums
            );
            assert_eq!(
                (m.total_delegations, m.successful_delegations),
                (
                    BLOCKS * per_block,
                    BLOCKS * (per_block - running_per_block - failed_per_block)
                )
            );
            // Of two qa sub-agents stopping in the reverse order, the failed
            // call's end is the one that stopped last: the first started.
            let failed: Vec<_> = table
                .values()
                .filter(|d| d.success == Some(false))
                .collect();
            assert_eq!(failed.len() as i64, BLOCKS * failed_per_block);
            assert!(failed
                .iter()
                .all(|d| d.agent_type == "qa" && d.start_time.timestamp() % 1000 == 4));
            // Held in memory: the running and identified ones, and no more
            // than the few id-less ones that ended last.
            let held_ended_idless = state
                .delegations
                .iter()
                .filter(|d| !d.is_running() && d.agent_id.is_none())
                .count();
            assert!(held_ended_idless <= RECENTLY_ENDED_KEPT);
            // The end of the session fails every one still running.
            let mut ended = state.clone();
            let end = events.last().expect("events").timestamp;
            finalize(&mut ended, end, 1, false);
            assert_eq!(
                ended.metrics.failed_delegations,
                sums.2 + BLOCKS * running_per_block
            );
            assert!(ended.delegations.iter().all(|d| !d.is_running()));
        }
    }

    #[test]
    fn parallel_sub_agents_keep_their_own_work_by_agent_id() {
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t1", "engineer")),
            ev("PreToolUse", 0, agent_call("t2", "qa")),
            ev("SubagentStart", 1, sub("A", Some("engineer"))),
            ev("SubagentStart", 1, sub("B", Some("qa"))),
            ev("PreToolUse", 2, tool("Write", "w1", Some("B"))),
            ev("PreToolUse", 2, tool("Write", "w2", Some("A"))),
            ev("PostToolUse", 3, tool("Write", "w2", Some("A"))),
            ev("PostToolUseFailure", 3, tool("Bash", "b1", Some("B"))),
            ev("PreToolUse", 3, tool("Read", "r0", None)),
            ev("SubagentStop", 4, sub("B", Some("qa"))),
            ev(
                "PostToolUse",
                5,
                Facts {
                    launched_agent_id: Some("B".into()),
                    ..agent_call("t2", "qa")
                },
            ),
            ev("SubagentStop", 5, sub("A", Some("engineer"))),
            ev(
                "PostToolUse",
                6,
                Facts {
                    launched_agent_id: Some("A".into()),
                    ..agent_call("t1", "engineer")
                },
            ),
        ]);
        assert_eq!(s.delegations.len(), 2);
        let (e, q) = (by_agent(&s, "engineer"), by_agent(&s, "qa"));
        assert_eq!(
            (e.agent_id.as_deref(), e.start_ref.as_deref()),
            (Some("A"), Some("t1"))
        );
        assert_eq!(
            (q.agent_id.as_deref(), q.start_ref.as_deref()),
            (Some("B"), Some("t2"))
        );
        assert_eq!(
            (e.files.clone(), q.files.clone()),
            (vec!["/p/w2".to_string()], vec!["/p/w1".to_string()])
        );
        assert_eq!((e.tool_calls, q.tool_calls, q.tool_failures), (1, 1, 1));
        assert_eq!((e.success, q.success), (Some(true), Some(true)));
        assert_eq!(
            s.metrics.tool_calls,
            3 + 2,
            "two Agent calls, two Writes, the main thread's Read"
        );
        assert_eq!(
            (
                s.metrics.successful_delegations,
                s.metrics.failed_delegations
            ),
            (2, 0)
        );
    }

    #[test]
    fn halves_out_of_order_and_twice_make_one_delegation() {
        let s = run(&[
            ev("SubagentStart", 0, sub("A", Some("engineer"))),
            ev("SubagentStart", 0, sub("A", Some("engineer"))),
            ev("PreToolUse", 1, agent_call("t1", "engineer")),
            ev("SubagentStop", 2, sub("A", Some("engineer"))),
            ev("SubagentStop", 2, sub("A", Some("engineer"))),
            ev(
                "PostToolUse",
                3,
                Facts {
                    launched_agent_id: Some("A".into()),
                    ..agent_call("t1", "engineer")
                },
            ),
        ]);
        assert_eq!(s.delegations.len(), 1);
        assert_eq!(s.metrics.total_delegations, 1);
        assert_eq!(
            (
                s.metrics.successful_delegations,
                s.metrics.failed_delegations
            ),
            (1, 0)
        );
    }

    #[test]
    fn starts_before_their_calls_in_any_interleaving() {
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t2", "qa")),
            ev("SubagentStart", 0, sub("A", Some("engineer"))),
            ev("PreToolUse", 0, agent_call("t1", "engineer")),
            ev("SubagentStart", 0, sub("B", Some("qa"))),
            ev("PreToolUse", 1, tool("Write", "w1", Some("B"))),
        ]);
        assert_eq!(s.delegations.len(), 2, "{:#?}", s.delegations);
        assert_eq!(by_agent(&s, "qa").agent_id.as_deref(), Some("B"));
        assert_eq!(by_agent(&s, "qa").start_ref.as_deref(), Some("t2"));
        assert_eq!(by_agent(&s, "engineer").start_ref.as_deref(), Some("t1"));
    }

    #[test]
    fn work_before_its_start_joins_the_waiting_call_or_is_merged_when_linked() {
        // The work comes first, then the start and the call: one delegation.
        let s = run(&[
            ev("PreToolUse", 0, tool("Write", "w1", Some("A"))),
            ev("PreToolUse", 1, agent_call("t1", "qa")),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev(
                "PostToolUse",
                2,
                Facts {
                    launched_agent_id: Some("A".into()),
                    ..agent_call("t1", "qa")
                },
            ),
        ]);
        assert_eq!(s.delegations.len(), 1, "{:#?}", s.delegations);
        let d = by_agent(&s, "qa");
        assert_eq!(
            (d.start_ref.as_deref(), d.tool_calls, d.files.len()),
            (Some("t1"), 1, 1)
        );
        // A call waiting, work it could not be matched to (another type), then
        // the call's end naming that sub-agent: the two become one.
        let work = Facts {
            agent_type: Some("engineer".into()),
            ..tool("Write", "w1", Some("A"))
        };
        let mut state = SessionState::new(Utc.timestamp_opt(1_700_000_000, 0).unwrap());
        let mut merged = Vec::new();
        for (n, e) in [
            ev("PreToolUse", 0, agent_call("t1", "qa")),
            ev("PreToolUse", 1, work),
            ev(
                "PostToolUse",
                2,
                Facts {
                    launched_agent_id: Some("A".into()),
                    ..agent_call("t1", "qa")
                },
            ),
        ]
        .iter()
        .enumerate()
        {
            let decision = decide(Some(&state), e, true);
            let id = (decision.transition == Transition::Open).then_some(n as i64 + 1);
            merged.extend(apply_event(&mut state, e, decision, id));
        }
        assert_eq!(merged, [(2, 1)]);
        assert_eq!(state.delegations.len(), 1);
        assert_eq!(state.metrics.total_delegations, 1);
        let d = &state.delegations[0];
        assert_eq!(
            (d.agent_id.as_deref(), d.tool_calls, d.success),
            (Some("A"), 1, Some(true))
        );
        assert_eq!(
            (
                state.metrics.successful_delegations,
                state.metrics.failed_delegations
            ),
            (1, 0)
        );
    }

    #[test]
    fn a_missing_half_and_an_unfinished_delegation() {
        // The sub-agent stopped but its call's end never came: ended, successful.
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t1", "qa")),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev("SubagentStop", 2, sub("A", Some("qa"))),
        ]);
        assert_eq!(by_agent(&s, "qa").success, Some(true));
        // Still running when the session ends: failed.
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t1", "qa")),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev("SessionEnd", 9, Facts::default()),
        ]);
        let d = by_agent(&s, "qa");
        assert_eq!(
            (d.success, d.error.as_deref()),
            (Some(false), Some(delegation::UNFINISHED))
        );
        assert_eq!(s.metrics.failed_delegations, 1);
    }

    #[test]
    fn a_failed_call_fails_its_delegation_and_a_background_one_survives_the_turn() {
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t1", "qa")),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev("SubagentStop", 2, sub("A", Some("qa"))),
            ev(
                "PostToolUseFailure",
                3,
                Facts {
                    is_error: true,
                    ..agent_call("t1", "qa")
                },
            ),
        ]);
        assert_eq!(by_agent(&s, "qa").success, Some(false));
        assert_eq!(
            (
                s.metrics.successful_delegations,
                s.metrics.failed_delegations
            ),
            (0, 1)
        );

        let background = Facts {
            background: true,
            ..agent_call("t1", "qa")
        };
        let s = run(&[
            ev("PreToolUse", 0, background.clone()),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev(
                "PostToolUse",
                1,
                Facts {
                    launched_agent_id: Some("A".into()),
                    ..background
                },
            ),
            ev("Stop", 2, Facts::default()),
        ]);
        assert!(
            by_agent(&s, "qa").is_running(),
            "a turn's Stop leaves a background sub-agent running"
        );
    }

    #[test]
    fn only_a_later_turn_reopens_an_ended_session() {
        let mut s = run(&[
            ev(
                "UserPromptSubmit",
                0,
                Facts {
                    prompt: Some("hi".into()),
                    ..Facts::default()
                },
            ),
            ev("Stop", 5, Facts::default()),
        ]);
        assert!(s.completed);
        // Work read later but done before the end (a sub-agent's transcript).
        assert!(!reopens(
            &s,
            &ev("PreToolUse", 3, tool("Read", "r1", Some("A")))
        ));
        // Bookkeeping after the end.
        assert!(!reopens(&s, &ev("Notification", 9, Facts::default())));
        // A new turn.
        assert!(reopens(&s, &ev("UserPromptSubmit", 9, Facts::default())));
        s.completed = false;
        assert!(
            !reopens(&s, &ev("UserPromptSubmit", 9, Facts::default())),
            "not ended"
        );
    }

    #[test]
    fn the_main_threads_work_is_its_own_before_any_sub_agent_event_arrives() {
        // Claude Code 2.1 hooks (told by their prompt_id): without agent_id
        // an event is the main thread's, even while a delegation runs and no
        // event of its sub-agent has arrived yet (another writer has them).
        let main_thread = Facts {
            prompt_id: Some("p".into()),
            ..tool("TodoWrite", "t9", None)
        };
        let s = run(&[
            ev(
                "PreToolUse",
                0,
                Facts {
                    prompt_id: Some("p".into()),
                    ..agent_call("t1", "engineer")
                },
            ),
            ev("PreToolUse", 1, main_thread),
        ]);
        assert_eq!(by_agent(&s, "engineer").tool_calls, 0);
        // An older shape without ids: the old rule, work while it runs is its.
        let s = run(&[
            ev(
                "PreToolUse",
                0,
                Facts {
                    tool_name: Some("Task".into()),
                    ..bare("engineer")
                },
            ),
            ev(
                "PreToolUse",
                1,
                Facts {
                    tool_name: Some("Read".into()),
                    ..Facts::default()
                },
            ),
        ]);
        assert_eq!(by_agent(&s, "engineer").tool_calls, 1);
    }

    #[test]
    fn compaction_is_not_a_delegation() {
        let s = run(&[
            ev(
                "UserPromptSubmit",
                0,
                Facts {
                    prompt: Some("hi".into()),
                    prompt_id: Some("p".into()),
                    ..Facts::default()
                },
            ),
            ev("SubagentStop", 1, sub("C", None)),
        ]);
        assert!(s.delegations.is_empty());
        assert_eq!((s.metrics.total_delegations, s.metrics.prompts), (0, 1));
    }

    #[test]
    fn pairs_without_ids_are_one_transition_each_and_parallel_ones_stay_apart() {
        let s = run(&[
            ev(
                "PreToolUse",
                0,
                Facts {
                    tool_name: Some("Task".into()),
                    ..bare("research")
                },
            ),
            ev("SubagentStart", 0, bare("research")),
            ev(
                "PreToolUse",
                1,
                Facts {
                    tool_name: Some("Task".into()),
                    ..bare("engineer")
                },
            ),
            ev("SubagentStart", 1, bare("engineer")),
            ev("SubagentStop", 5, bare("research")),
            ev(
                "PostToolUse",
                5,
                Facts {
                    tool_name: Some("Task".into()),
                    ..bare("research")
                },
            ),
        ]);
        assert_eq!(s.delegations.len(), 2);
        assert_eq!(by_agent(&s, "research").success, Some(true));
        assert!(
            by_agent(&s, "engineer").is_running(),
            "closing research left engineer running"
        );
    }

    #[test]
    fn tokens_count_once_per_api_call_and_per_sub_agent() {
        let call = |id: &str, agent: Option<&str>, input: i64| Facts {
            message_id: Some(id.into()),
            model: Some("claude-sonnet-4-5".into()),
            agent_id: agent.map(Into::into),
            tokens: Tokens {
                input,
                output: 1,
                ..Tokens::default()
            },
            ..Facts::default()
        };
        let s = run(&[
            ev("PreToolUse", 0, agent_call("t1", "qa")),
            ev("SubagentStart", 1, sub("A", Some("qa"))),
            ev("ApiCall", 2, call("m1", None, 10)),
            ev("ApiCall", 3, call("m2", Some("A"), 5)),
        ]);
        assert_eq!((s.metrics.api_calls, s.metrics.tokens.input), (2, 15));
        let d = by_agent(&s, "qa");
        assert_eq!(
            (d.api_calls, d.tokens.input, d.model.as_deref()),
            (1, 5, Some("claude-sonnet-4-5"))
        );
        assert_eq!(s.metrics.models, ["claude-sonnet-4-5"]);
    }
}
