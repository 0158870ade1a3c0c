//! The delegations of one session held in memory, indexed by everything the
//! state machine (`delegation.rs`) looks them up by: agent id, call, type,
//! running or ended, the halves seen, start and end times. A session of tens
//! of thousands of sub-agents then costs O(log n) per event, not a scan of
//! them all (SPEC section 4's pairing window is a range of times).
//!
//! Each delegation has a [`Slot`], given in order of arrival (or of loading,
//! which is by start time): "the first" delegation that fits is the lowest
//! slot, as it was the first in the list these replaced. Every change goes
//! through [`Delegations::update`], which moves the delegation's index
//! entries when what they are keyed on changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Index;

use chrono::{DateTime, Utc};

use super::delegation::{DelegationState, POST_TASK, PRE_TASK, SUBAGENT_START, SUBAGENT_STOP};

/// A delegation's place in its session's [`Delegations`]: stable while it is held.
pub type Slot = usize;

/// Which index an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum By {
    /// Every delegation by its `agent_id` (slot order).
    Agent,
    /// Every delegation by its call (`start_ref`, slot order).
    Call,
    /// Calls waiting for their sub-agent (no `agent_id`, call seen, start not), by call (slot order).
    WaitingByCall,
    /// The same, by agent type (start order).
    WaitingByType,
    /// Delegations whose call is not known yet (no call half, no `start_ref`), by type (start order).
    CalllessByType,
    /// The same, all types (start order).
    Callless,
    /// Running with its call seen and not its start (start order).
    RunningWithoutStart,
    /// Running with its start seen and not its call (start order).
    RunningWithoutCall,
    /// Ended with its sub-agent's stop seen and not its call's end (end order).
    EndedWithoutCallEnd,
    /// Ended with its call's end seen and not its sub-agent's stop (end order).
    EndedWithoutStop,
    /// Running (start order).
    Running,
    /// Running, by call (start order).
    RunningByCall,
    /// Running, by type (start order).
    RunningByType,
    /// Ended without `agent_id` (slot order).
    EndedIdless,
    /// The same, written since they last changed (slot order).
    EndedIdlessWritten,
    /// Changed since last written (slot order).
    Dirty,
}

/// An index entry: the index, its key, and the order within it.
type Entry<'a> = (By, &'a str, DateTime<Utc>, i64, Slot);

/// An entry as held: the key interned.
type Held = (By, u32, DateTime<Utc>, i64, Slot);

/// What a delegation's entries are computed from, as last indexed.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    agent_id: Option<String>,
    start_ref: Option<String>,
    agent_type: String,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    id: i64,
    halves: i64,
    dirty: bool,
}

impl Shape {
    fn of(d: &DelegationState) -> Shape {
        Shape {
            agent_id: d.agent_id.clone(),
            start_ref: d.start_ref.clone(),
            agent_type: d.agent_type.clone(),
            start_time: d.start_time,
            end_time: d.end_time,
            id: d.id,
            halves: d.halves,
            dirty: d.dirty,
        }
    }

    fn matches(&self, d: &DelegationState) -> bool {
        self.agent_id == d.agent_id
            && self.start_ref == d.start_ref
            && self.agent_type == d.agent_type
            && self.start_time == d.start_time
            && self.end_time == d.end_time
            && self.id == d.id
            && self.halves == d.halves
            && self.dirty == d.dirty
    }

    fn entries<'a>(&'a self, slot: Slot) -> Vec<Entry<'a>> {
        let none = DateTime::<Utc>::MIN_UTC;
        let by_slot = |by: By, key: &'a str| (by, key, none, 0, slot);
        let by_start = |by: By, key: &'a str| (by, key, self.start_time, self.id, slot);
        let has = |half: i64| self.halves & half != 0;
        let mut out = Vec::with_capacity(8);
        if let Some(a) = &self.agent_id {
            out.push(by_slot(By::Agent, a));
        }
        if let Some(r) = &self.start_ref {
            out.push(by_slot(By::Call, r));
        }
        if self.agent_id.is_none() && has(PRE_TASK) && !has(SUBAGENT_START) {
            if let Some(r) = &self.start_ref {
                out.push(by_slot(By::WaitingByCall, r));
            }
            out.push(by_start(By::WaitingByType, &self.agent_type));
        }
        if !has(PRE_TASK) && self.start_ref.is_none() {
            out.push(by_start(By::CalllessByType, &self.agent_type));
            out.push(by_start(By::Callless, ""));
        }
        match self.end_time {
            None => {
                if has(PRE_TASK) && !has(SUBAGENT_START) {
                    out.push(by_start(By::RunningWithoutStart, ""));
                }
                if has(SUBAGENT_START) && !has(PRE_TASK) {
                    out.push(by_start(By::RunningWithoutCall, ""));
                }
                out.push(by_start(By::Running, ""));
                if let Some(r) = &self.start_ref {
                    out.push(by_start(By::RunningByCall, r));
                }
                out.push(by_start(By::RunningByType, &self.agent_type));
            }
            Some(end) => {
                let by_end = |by: By| (by, "", end, self.id, slot);
                if has(SUBAGENT_STOP) && !has(POST_TASK) {
                    out.push(by_end(By::EndedWithoutCallEnd));
                }
                if has(POST_TASK) && !has(SUBAGENT_STOP) {
                    out.push(by_end(By::EndedWithoutStop));
                }
                if self.agent_id.is_none() {
                    out.push(by_slot(By::EndedIdless, ""));
                    if !self.dirty {
                        out.push(by_slot(By::EndedIdlessWritten, ""));
                    }
                }
            }
        }
        if self.dirty {
            out.push(by_slot(By::Dirty, ""));
        }
        out
    }
}

/// A session's delegations in memory (running ones, identified ones, the few
/// id-less ones that ended last), with their indexes.
#[derive(Debug, Clone, Default)]
pub struct Delegations {
    held: BTreeMap<Slot, (DelegationState, Shape)>,
    /// Apart from `held`, so that a held delegation's entries can be moved
    /// while it is borrowed.
    index: Indexes,
    next: Slot,
}

/// The entries of every index, in one ordered set.
#[derive(Debug, Clone, Default)]
struct Indexes {
    /// Each index's keys (agent ids, calls, types) as small numbers, so that
    /// moving an entry compares numbers, not strings.
    keys: HashMap<String, u32>,
    entries: BTreeSet<Held>,
    ended_idless: usize,
}

impl Indexes {
    fn add(&mut self, slot: Slot, shape: &Shape) {
        for (by, key, time, id, slot) in shape.entries(slot) {
            if by == By::EndedIdless {
                self.ended_idless += 1;
            }
            let key = match self.keys.get(key) {
                Some(&k) => k,
                None => {
                    let k = self.keys.len() as u32;
                    self.keys.insert(key.to_string(), k);
                    k
                }
            };
            self.entries.insert((by, key, time, id, slot));
        }
    }

    fn remove(&mut self, slot: Slot, shape: &Shape) {
        for (by, key, time, id, slot) in shape.entries(slot) {
            if by == By::EndedIdless {
                self.ended_idless -= 1;
            }
            let Some(&key) = self.keys.get(key) else {
                continue;
            };
            self.entries.remove(&(by, key, time, id, slot));
        }
    }
}

impl Delegations {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// In slot order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &DelegationState> {
        self.held.values().map(|(d, _)| d)
    }

    pub fn get(&self, slot: Slot) -> Option<&DelegationState> {
        self.held.get(&slot).map(|(d, _)| d)
    }

    pub fn clear(&mut self) {
        *self = Delegations {
            next: self.next,
            ..Delegations::default()
        };
    }

    /// Holds a delegation after the others; returns its slot.
    pub fn push(&mut self, d: DelegationState) -> Slot {
        let slot = self.next;
        self.next += 1;
        let shape = Shape::of(&d);
        self.index.add(slot, &shape);
        self.held.insert(slot, (d, shape));
        slot
    }

    /// Changes a delegation (the only way to), keeping the indexes right.
    pub fn update<R>(&mut self, slot: Slot, change: impl FnOnce(&mut DelegationState) -> R) -> R {
        let (d, shape) = self.held.get_mut(&slot).expect("a held delegation");
        let out = change(d);
        if !shape.matches(d) {
            let old = std::mem::replace(shape, Shape::of(d));
            self.index.remove(slot, &old);
            self.index.add(slot, shape);
        }
        out
    }

    pub fn remove(&mut self, slot: Slot) -> Option<DelegationState> {
        let (d, shape) = self.held.remove(&slot)?;
        self.index.remove(slot, &shape);
        Some(d)
    }

    /// Delegations changed since last written.
    pub fn dirty(&self) -> Vec<Slot> {
        self.slots_of(By::Dirty, "").collect()
    }

    /// Records that a delegation was written as it is.
    pub fn mark_written(&mut self, slot: Slot) {
        self.update(slot, |d| d.dirty = false);
    }

    fn range(
        &self,
        by: By,
        key: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl DoubleEndedIterator<Item = Slot> + '_ {
        self.index
            .keys
            .get(key)
            .into_iter()
            .flat_map(move |&k| {
                self.index
                    .entries
                    .range((by, k, from, i64::MIN, 0)..=(by, k, to, i64::MAX, Slot::MAX))
            })
            .map(|e| e.4)
    }

    fn slots_of(&self, by: By, key: &str) -> impl DoubleEndedIterator<Item = Slot> + '_ {
        self.range(by, key, DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
    }

    /// The first delegation of this sub-agent.
    pub fn first_of_agent(&self, agent_id: &str) -> Option<Slot> {
        self.slots_of(By::Agent, agent_id).next()
    }

    /// Whether more than one delegation names this sub-agent.
    pub fn agent_twinned(&self, agent_id: &str) -> bool {
        self.slots_of(By::Agent, agent_id).nth(1).is_some()
    }

    /// Sub-agents named by more than one delegation, in the order of their first slot.
    pub fn twinned_agents(&self) -> Vec<String> {
        // The keys are every index's (calls, types too): only agent ids have slots here.
        let mut firsts: BTreeMap<Slot, String> = BTreeMap::new();
        for key in self.index.keys.keys() {
            if let (Some(first), true) = (self.first_of_agent(key), self.agent_twinned(key)) {
                firsts.insert(first, key.clone());
            }
        }
        firsts.into_values().collect()
    }

    /// The slots of a sub-agent's delegations, first first.
    pub fn of_agent(&self, agent_id: &str) -> Vec<Slot> {
        self.slots_of(By::Agent, agent_id).collect()
    }

    /// The first delegation of this call.
    pub fn first_of_call(&self, call: &str) -> Option<Slot> {
        self.slots_of(By::Call, call).next()
    }

    /// The first call `call` waiting for its sub-agent.
    pub fn first_waiting_call(&self, call: &str) -> Option<Slot> {
        self.slots_of(By::WaitingByCall, call).next()
    }

    /// The earliest call of this type waiting for its sub-agent.
    pub fn earliest_waiting_of_type(&self, agent_type: &str) -> Option<Slot> {
        self.slots_of(By::WaitingByType, agent_type).next()
    }

    /// The earliest delegation of this type (all types: `None`) whose call is not known.
    pub fn earliest_callless(&self, agent_type: Option<&str>) -> Option<Slot> {
        match agent_type {
            Some(t) => self.slots_of(By::CalllessByType, t).next(),
            None => self.slots_of(By::Callless, "").next(),
        }
    }

    /// Running delegations missing the half `half` (`PRE_TASK` or
    /// `SUBAGENT_START`) and having the other, started within `from..=to`,
    /// earliest first.
    pub fn running_missing(
        &self,
        half: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Slot> + '_ {
        let by = if half == PRE_TASK {
            By::RunningWithoutCall
        } else {
            By::RunningWithoutStart
        };
        self.range(by, "", from, to)
    }

    /// Ended delegations missing the half `half` (`SUBAGENT_STOP` or
    /// `POST_TASK`) and having the other, ended within `from..=to`, latest first.
    pub fn ended_missing(
        &self,
        half: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Iterator<Item = Slot> + '_ {
        let by = if half == SUBAGENT_STOP {
            By::EndedWithoutStop
        } else {
            By::EndedWithoutCallEnd
        };
        self.range(by, "", from, to).rev()
    }

    /// Running delegations, in start order.
    pub fn running(&self) -> Vec<Slot> {
        self.slots_of(By::Running, "").collect()
    }

    /// The running delegation started last (of this call, of this type).
    pub fn latest_running(&self, call: Option<&str>, agent_type: Option<&str>) -> Option<Slot> {
        match (call, agent_type) {
            (Some(r), _) => self.slots_of(By::RunningByCall, r).next_back(),
            (None, Some(t)) => self.slots_of(By::RunningByType, t).next_back(),
            (None, None) => self.slots_of(By::Running, "").next_back(),
        }
    }

    /// Lets go of the first ended delegations without `agent_id` already
    /// written, while more than `keep` of them (written or not) are held.
    pub fn trim_ended_idless(&mut self, keep: usize) {
        let Some(excess) = self.index.ended_idless.checked_sub(keep).filter(|&n| n > 0) else {
            return;
        };
        let gone: Vec<Slot> = self
            .slots_of(By::EndedIdlessWritten, "")
            .take(excess)
            .collect();
        for slot in gone {
            self.remove(slot);
        }
    }
}

impl Index<Slot> for Delegations {
    type Output = DelegationState;

    fn index(&self, slot: Slot) -> &DelegationState {
        self.get(slot).expect("a held delegation")
    }
}

impl FromIterator<DelegationState> for Delegations {
    fn from_iter<I: IntoIterator<Item = DelegationState>>(iter: I) -> Self {
        let mut out = Delegations::default();
        for d in iter {
            out.push(d);
        }
        out
    }
}
