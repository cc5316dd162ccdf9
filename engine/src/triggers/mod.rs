//! Live triggers (section 3 of the language spec): which fires are pending,
//! and when they fall due.
//!
//! [`TriggerState`] is derived state like the indexes: a fold of the log. Saved
//! triggers come from `TriggerSaved`/`TriggerRemoved` records. Pending fires
//! are armed by the *fresh* events of *live* batches, cancelled or completed by
//! later events, and settled by `Fire` records. Replaying the log therefore
//! rebuilds exactly the fires that were pending, and never fires again what a
//! `Fire` record settled.
//!
//! - A batch is live unless it carries the `History` marker (`nudge import`).
//! - An event is fresh when its timestamp is at most the freshness bound behind
//!   the batch's arrival time (`received_ms`), so the decision is in the log too.
//! - Every pending fire has a due time: the arrival time for `on E` and for the
//!   F that completes `then`, `ts(E) + D` for `unless`, the property's time
//!   ± D for `at`. `Engine::fire_due` settles the fires due by the clock: it
//!   checks `if`, writes a `Fire` record (fired or dropped) durably, and only
//!   then reports the fire.
//!
//! At most one fire per (trigger, user, cause event): the cause is the
//! triggering event's place in the log ([`cause`]), a pending fire exists once
//! per cause, and the `Fire` record that settles it is applied before anything
//! else can fire it again.

pub mod decide;
mod trigger;
mod unless;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::dict::{Dictionaries, EventId, FastMap, UserId};
use crate::store::log::LogPosition;
use crate::store::log::entry::{
    ArchivedLogBatch, ArchivedLogEntry, LogEntry, LogTrigger, LogTriggerRemoved,
};
use crate::store::state::AppliedEvent;
pub use trigger::SavedTrigger;
use trigger::{Bound, Role, Tail};

/// How far an event's timestamp may lag its arrival and still arm triggers.
pub const DEFAULT_FRESHNESS_MS: i64 = 60 * 60 * 1000;
/// How late a fire may be settled after its due time (the process was down)
/// and still fire; later ones are dropped.
pub const DEFAULT_FIRE_GRACE_MS: i64 = 15 * 60 * 1000;
/// Longest trigger name, in bytes.
pub const MAX_TRIGGER_NAME_BYTES: usize = 128;

/// The triggering event's identity: its batch's end position and its index in the batch.
pub fn cause(position: LogPosition, index: usize) -> u64 {
    (position << 14) | (index as u64 & 0x3fff)
}
const _: () = assert!(crate::limits::MAX_BATCH_RECORDS < (1 << 14));

/// What happened to a fire that fell due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FireOutcome {
    /// It fired: the actions may run.
    Fired = 0,
    /// Dropped: it fell due while the engine was down, longer ago than the grace period.
    DroppedLate = 1,
    /// Dropped: the user was not in the trigger's `if` at the moment of firing.
    DroppedCondition = 2,
}

impl FireOutcome {
    /// The outcome a stored byte names.
    pub fn from_byte(byte: u8) -> Option<FireOutcome> {
        match byte {
            0 => Some(FireOutcome::Fired),
            1 => Some(FireOutcome::DroppedLate),
            2 => Some(FireOutcome::DroppedCondition),
            _ => None,
        }
    }

    /// A short name (`fired`, `late`, `condition`).
    pub fn name(self) -> &'static str {
        match self {
            FireOutcome::Fired => "fired",
            FireOutcome::DroppedLate => "late",
            FireOutcome::DroppedCondition => "condition",
        }
    }
}

/// A fire waiting for its due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFire {
    /// The trigger's name.
    pub trigger: Arc<str>,
    /// Dense user id.
    pub user: UserId,
    /// The triggering event ([`cause`]).
    pub cause: u64,
    /// When it falls due, epoch ms.
    pub due_ms: i64,
    /// The triggering event's properties (for `event.P` in `if`), a copy.
    pub props: EventProps,
}

/// A pending fire or armed event as snapshots store it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StoredPending {
    /// The trigger's name.
    pub trigger: Arc<str>,
    /// Dense user id.
    pub user: UserId,
    /// The triggering event ([`cause`]).
    pub cause: u64,
    /// When it falls due (0 for an armed `then` event), epoch ms.
    pub due_ms: i64,
    /// The armed event's time (`then` only, else 0), epoch ms.
    pub ts_ms: i64,
    /// The triggering event's properties.
    pub props: EventProps,
    /// Which of the three it is.
    pub kind: PendingKind,
}

/// What a [`StoredPending`] is; its number is what snapshots store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PendingKind {
    /// A fire due at a time (`on`, a completed `then`, `at`).
    Due = 0,
    /// An `unless` fire, cancelled by a later event.
    Unless = 1,
    /// An event armed for `then`, waiting for its completion.
    Then = 2,
}

impl PendingKind {
    /// The kind of number `n`, as snapshots store it.
    pub(crate) fn from_number(n: u32) -> Option<PendingKind> {
        match n {
            0 => Some(PendingKind::Due),
            1 => Some(PendingKind::Unless),
            2 => Some(PendingKind::Then),
            _ => None,
        }
    }
}

/// Orders pending fires by due time; the rest makes keys unique.
type DueKey = (i64, TriggerId, UserId, u64);

/// A trigger listening to an event: the trigger, its id, the event's role
/// and the event's condition, bound.
type Listener = (Arc<SavedTrigger>, TriggerId, Role, Bound);

/// A trigger name's number in one state (assigned when first saved, never
/// reused): keys compare numbers, not strings.
type TriggerId = u32;

/// A copy of a triggering event's property blob (`store/props.rs` codec):
/// pending fires own their event's properties, so they never point into
/// storage that sealing may release. Events without properties cost no
/// allocation.
pub type EventProps = Box<[u8]>;

/// A triggering event armed for `then`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Armed {
    cause: u64,
    ts_ms: i64,
    props: EventProps,
}

/// Saved triggers and the fires they have pending.
#[derive(Debug, Clone)]
pub struct TriggerState {
    /// How far an event may lag its batch's arrival and still arm triggers.
    pub freshness_ms: i64,
    triggers: BTreeMap<String, Arc<SavedTrigger>>,
    due: BTreeMap<DueKey, EventProps>,
    /// `unless`: the one pending fire per (trigger, user), kept apart from
    /// `due` in a compact form (its event's time is the due time minus D).
    unless: unless::UnlessFires,
    /// `then`: armed events per (trigger, user), oldest first.
    then: FastMap<(TriggerId, UserId), Vec<Armed>>,
    /// Trigger names by id, and ids by name.
    names: Vec<Arc<str>>,
    ids: FastMap<Arc<str>, TriggerId>,
    /// Event id → (trigger, role), rebuilt when triggers or event names change.
    by_event: FastMap<EventId, Vec<Listener>>,
    indexed_for: Option<(usize, usize, usize)>,
    generation: usize,
}

/// One event of a live batch, as triggers see it.
struct LiveEvent<'a> {
    pub user: UserId,
    pub event: EventId,
    pub ts_ms: i64,
    pub blob: &'a [u8],
    pub cause: u64,
    pub received_ms: i64,
}

impl Default for TriggerState {
    fn default() -> Self {
        TriggerState {
            freshness_ms: DEFAULT_FRESHNESS_MS,
            triggers: BTreeMap::new(),
            due: BTreeMap::new(),
            unless: unless::UnlessFires::default(),
            then: FastMap::default(),
            names: Vec::new(),
            ids: FastMap::default(),
            by_event: FastMap::default(),
            indexed_for: None,
            generation: 0,
        }
    }
}

/// Parses a trigger, turning a syntax error into [`Error::Query`].
pub fn parse(text: &str) -> Result<nudge_query_lang::Trigger> {
    nudge_query_lang::parse_trigger(text).map_err(|e| Error::query(&e, text, "trigger"))
}

/// Checks a trigger about to be saved (its name and its text) and returns its log entry.
pub fn saved_entry(name: &str, text: &str) -> Result<LogEntry> {
    crate::limits::check_text("name", name, MAX_TRIGGER_NAME_BYTES, "trigger name")?;
    parse(text)?;
    Ok(LogEntry::TriggerSaved(LogTrigger { name: name.to_owned(), trigger: text.to_owned() }))
}

/// The log entry that removes trigger `name` and its pending fires.
pub fn removed_entry(name: &str) -> LogEntry {
    LogEntry::TriggerRemoved(LogTriggerRemoved { name: name.to_owned() })
}

impl TriggerState {
    /// Applies one entry of a durable batch ending at `end`, in log order:
    /// saved and removed triggers, settled fires, and (for a live batch, when
    /// the store just applied a fresh event) the event itself, which arms,
    /// cancels and completes fires. Entries of other layers are ignored.
    pub fn apply_entry(
        &mut self,
        dicts: &Dictionaries,
        entry: &ArchivedLogEntry,
        applied: Option<(usize, &AppliedEvent<'_>)>,
        (end, received_ms, live): (LogPosition, i64, bool),
    ) {
        match entry {
            ArchivedLogEntry::TriggerSaved(trigger) => self.save(&trigger.name, &trigger.trigger),
            ArchivedLogEntry::TriggerRemoved(removed) => self.remove(&removed.name),
            ArchivedLogEntry::Fire(fire) => self.settle(
                &fire.trigger,
                fire.user.to_native(),
                fire.cause.to_native(),
                fire.due_ms.to_native(),
            ),
            _ => {
                let Some((index, event)) = applied else { return };
                if live && event.ts_ms >= received_ms.saturating_sub(self.freshness_ms) {
                    let event = LiveEvent {
                        user: event.user,
                        event: event.event,
                        ts_ms: event.ts_ms,
                        blob: event.blob,
                        cause: cause(end, index),
                        received_ms,
                    };
                    self.on_event(dicts, &event);
                }
            }
        }
    }

    /// Whether the events of `batch` may arm triggers: it is not history, and
    /// some trigger is saved (checked once, before the batch is applied).
    pub fn is_live(&self, batch: &ArchivedLogBatch) -> bool {
        !self.is_empty() && !batch.entries.iter().any(|e| matches!(e, ArchivedLogEntry::History))
    }

    /// The saved triggers, by name.
    pub fn triggers(&self) -> impl Iterator<Item = &SavedTrigger> {
        self.triggers.values().map(|t| &**t)
    }

    /// Whether no trigger is saved.
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty()
    }

    fn intern(&mut self, name: &str) -> TriggerId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as TriggerId;
        let name: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        id
    }

    /// Saves (or replaces) a trigger. Its pending fires stay until they fall due.
    pub(crate) fn save(&mut self, name: &str, text: &str) {
        self.intern(name);
        match SavedTrigger::parse(name, text) {
            Some(trigger) => {
                self.triggers.insert(name.to_owned(), Arc::new(trigger));
            }
            // Validated before it was logged; a text that no longer parses arms nothing.
            None => {
                self.triggers.remove(name);
            }
        }
        self.generation += 1;
    }

    /// Removes a trigger and everything it had pending.
    pub(crate) fn remove(&mut self, name: &str) {
        self.triggers.remove(name);
        if let Some(&id) = self.ids.get(name) {
            self.due.retain(|(_, trigger, _, _), _| *trigger != id);
            self.unless.remove_where(|trigger| trigger == id);
            self.then.retain(|(trigger, _), _| *trigger != id);
        }
        self.generation += 1;
    }

    /// Settles a pending fire (a `Fire` record was applied).
    pub(crate) fn settle(&mut self, trigger: &str, user: UserId, cause: u64, due_ms: i64) {
        let Some(&id) = self.ids.get(trigger) else { return };
        if self.unless.get(id, user).is_some_and(|s| s.cause == cause && s.due_ms == due_ms) {
            self.unless.remove(id, user);
        } else {
            self.due.remove(&(due_ms, id, user, cause));
        }
    }

    fn index(&mut self, dicts: &Dictionaries) {
        let now = (self.generation, dicts.events.len() as usize, dicts.keys.len() as usize);
        if self.indexed_for == Some(now) {
            return;
        }
        self.by_event.clear();
        for trigger in self.triggers.values() {
            for (name, role) in trigger.roles() {
                if let Some(event) = dicts.events.get(name) {
                    let bound = trigger.bound(role, dicts);
                    let id = self.ids.get(&*trigger.name).copied().unwrap_or_default();
                    let entry = (Arc::clone(trigger), id, role, bound);
                    self.by_event.entry(event).or_default().push(entry);
                }
            }
        }
        self.indexed_for = Some(now);
    }

    /// Arms, cancels and completes pending fires for one event of a live
    /// batch that is fresh (the caller checks both).
    fn on_event(&mut self, dicts: &Dictionaries, event: &LiveEvent<'_>) {
        self.index(dicts);
        // Taken out while it is read, so the fires can be updated; put back below.
        let Some(roles) = self.by_event.remove(&event.event) else { return };
        // Cancels and completions first: an event never completes what it arms.
        for (trigger, id, role, bound) in roles.iter().filter(|(_, _, r, _)| *r != Role::Start) {
            let key = (*id, event.user);
            match (role, &trigger.tail) {
                (Role::Cancel, Tail::Unless { within_ms, .. }) => {
                    let Some(armed) = self.unless.get(*id, event.user) else { continue };
                    let armed_ts = armed.due_ms.saturating_sub(*within_ms);
                    let in_time = event.ts_ms >= armed_ts && event.ts_ms <= armed.due_ms;
                    if in_time && trigger.matches(*role, bound, dicts, event.blob, &armed.props) {
                        self.unless.remove(*id, event.user);
                    }
                }
                (Role::Complete, Tail::Then { within_ms, .. }) => {
                    let Some(list) = self.then.get_mut(&key) else { continue };
                    list.retain(|a| event.ts_ms - a.ts_ms <= *within_ms);
                    let found = list.iter().position(|a| {
                        a.ts_ms <= event.ts_ms
                            && trigger.matches(*role, bound, dicts, event.blob, &a.props)
                    });
                    if let Some(at) = found {
                        let armed = list.remove(at);
                        self.due
                            .insert((event.received_ms, *id, event.user, armed.cause), armed.props);
                    }
                    if list.is_empty() {
                        self.then.remove(&key);
                    }
                }
                _ => {}
            }
        }
        for (trigger, id, _, bound) in roles.iter().filter(|(_, _, r, _)| *r == Role::Start) {
            if !trigger.matches(Role::Start, bound, dicts, event.blob, event.blob) {
                continue;
            }
            let name = *id;
            let props = || EventProps::from(event.blob);
            let armed = || Armed { cause: event.cause, ts_ms: event.ts_ms, props: props() };
            match &trigger.tail {
                Tail::None => {
                    self.due.insert((event.received_ms, name, event.user, event.cause), props());
                }
                Tail::Unless { within_ms, .. } => {
                    self.unless.insert(unless::Slot {
                        due_ms: event.ts_ms.saturating_add(*within_ms),
                        cause: event.cause,
                        props: props(),
                        trigger: name,
                        user: event.user,
                    });
                }
                Tail::Then { .. } => {
                    self.then.entry((name, event.user)).or_default().push(armed());
                }
                Tail::At { .. } => {
                    let Some(due_ms) = trigger.at_time(dicts, event.blob) else { continue };
                    if due_ms >= event.received_ms {
                        self.due.insert((due_ms, name, event.user, event.cause), props());
                    }
                }
            }
        }
        self.by_event.insert(event.event, roles);
    }

    /// Pending fires due at or before `now`, earliest first.
    pub fn due_by(&self, now_ms: i64) -> Vec<PendingFire> {
        let mut due: Vec<(DueKey, &EventProps)> = self
            .due
            .iter()
            .take_while(|((due_ms, ..), _)| *due_ms <= now_ms)
            .map(|(key, props)| (*key, props))
            .collect();
        due.extend(
            self.unless
                .due_by(now_ms)
                .into_iter()
                .map(|s| ((s.due_ms, s.trigger, s.user, s.cause), &s.props)),
        );
        due.sort_unstable_by_key(|(key, _)| *key);
        due.into_iter()
            .map(|((due_ms, trigger, user, cause), props)| PendingFire {
                trigger: Arc::clone(&self.names[trigger as usize]),
                user,
                cause,
                due_ms,
                props: props.clone(),
            })
            .collect()
    }

    /// When the next pending fire falls due.
    pub fn next_due(&self) -> Option<i64> {
        let due = self.due.keys().next().map(|(due_ms, ..)| *due_ms);
        match (due, self.unless.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires pending (armed `then` events not included: they fire at their F).
    pub fn pending(&self) -> usize {
        self.due.len() + self.unless.len()
    }

    /// The saved trigger named `name`.
    pub fn trigger(&self, name: &str) -> Option<&SavedTrigger> {
        self.triggers.get(name).map(|t| &**t)
    }

    /// Every pending fire and armed event, for snapshots, in a canonical
    /// order (by name, not by id, which depends on history).
    pub(crate) fn parts(&self) -> Vec<StoredPending> {
        let name = |id: &TriggerId| Arc::clone(&self.names[*id as usize]);
        let part = |trigger, user, cause, (due_ms, ts_ms), props: &EventProps, kind| {
            StoredPending { trigger, user, cause, due_ms, ts_ms, props: props.clone(), kind }
        };
        let mut due: Vec<_> = self
            .due
            .iter()
            .map(|((due, t, u, c), props)| {
                part(name(t), *u, *c, (*due, 0), props, PendingKind::Due)
            })
            .collect();
        due.sort_by(|a, b| {
            (a.due_ms, &a.trigger, a.user, a.cause).cmp(&(b.due_ms, &b.trigger, b.user, b.cause))
        });
        let mut unless: Vec<_> = self
            .unless
            .iter()
            .map(|s| {
                let when = (s.due_ms, 0);
                part(name(&s.trigger), s.user, s.cause, when, &s.props, PendingKind::Unless)
            })
            .collect();
        unless.sort();
        let mut then: Vec<_> = self
            .then
            .iter()
            .flat_map(|((t, u), list)| {
                list.iter().map(move |a| {
                    part(name(t), *u, a.cause, (0, a.ts_ms), &a.props, PendingKind::Then)
                })
            })
            .collect();
        then.sort_by(|a, b| (&a.trigger, a.user).cmp(&(&b.trigger, b.user)));
        due.extend(unless);
        due.extend(then);
        due
    }

    /// Restores one of [`TriggerState::parts`].
    pub(crate) fn restore(&mut self, part: StoredPending) {
        let StoredPending { trigger, user, cause, due_ms, ts_ms, props, kind } = part;
        let trigger = self.intern(&trigger);
        match kind {
            PendingKind::Due => {
                self.due.insert((due_ms, trigger, user, cause), props);
            }
            PendingKind::Unless => {
                self.unless.insert(unless::Slot { due_ms, cause, props, trigger, user });
            }
            PendingKind::Then => {
                self.then.entry((trigger, user)).or_default().push(Armed { cause, ts_ms, props })
            }
        }
    }
}
