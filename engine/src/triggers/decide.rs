//! Deciding the fires that fell due: dropped when later than the grace
//! period, dropped when the user is not in the trigger's `if` now, fired
//! otherwise. Each decision becomes a `Fire` log entry (which settles the
//! pending fire when applied) and a `$trigger_fired` or `$trigger_dropped`
//! event of the user, so that "why was this sent, or not" is a query.
//!
//! Nothing here writes: the facade (`Engine::fire_due`) takes the decisions
//! under its lock, adds what the campaigns layer plans for each fire, and
//! records them durably before it reports any.

use roaring::RoaringBitmap;

use super::{FireOutcome, PendingFire, TriggerState};
use crate::error::Result;
use crate::query::{self, Source};
use crate::store::dict::Dictionaries;
use crate::store::log::entry::{LogEntry, LogFire};
use crate::store::record::Event;

/// The system event a fire adds to the user's timeline, so that "why was
/// this sent, or not" is a query: `did "$trigger_fired" where trigger == "cart"`.
pub const TRIGGER_FIRED_EVENT: &str = "$trigger_fired";
/// The system event of a dropped fire (`reason`: `late` or `condition`).
pub const TRIGGER_DROPPED_EVENT: &str = "$trigger_dropped";

/// A pending fire that fell due, and what was decided for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The fire.
    pub pending: PendingFire,
    /// What was decided.
    pub outcome: FireOutcome,
}

impl Decision {
    /// The `Fire` log entry that records the decision.
    pub fn entry(&self) -> LogEntry {
        LogEntry::Fire(LogFire {
            trigger: self.pending.trigger.to_string(),
            user: self.pending.user,
            cause: self.pending.cause,
            due_ms: self.pending.due_ms,
            outcome: self.outcome as u8,
        })
    }
}

/// Decides every fire of `triggers` pending and due by `now`, in due order.
pub fn decide_due(
    dicts: &Dictionaries,
    source: Source<'_>,
    triggers: &TriggerState,
    now: i64,
    grace_ms: i64,
) -> Result<Vec<Decision>> {
    let mut decisions = Vec::new();
    for pending in triggers.due_by(now) {
        let Some(trigger) = triggers.trigger(&pending.trigger) else { continue };
        let outcome = if now - pending.due_ms > grace_ms {
            FireOutcome::DroppedLate
        } else if let Some(expr) = &trigger.ast.condition {
            let blob: &[u8] = &pending.props;
            let scope: RoaringBitmap = std::iter::once(pending.user).collect();
            let selected = query::select_by(
                dicts,
                &source,
                expr,
                now,
                &scope,
                Some((dicts, blob)),
                query::Strategy::Timelines,
            )?;
            if selected.contains(pending.user) {
                FireOutcome::Fired
            } else {
                FireOutcome::DroppedCondition
            }
        } else {
            FireOutcome::Fired
        };
        decisions.push(Decision { pending, outcome });
    }
    Ok(decisions)
}

/// A stable identifier of a fire: the same (trigger, user, cause) always
/// gives the same id (for idempotency keys downstream).
pub fn fire_id(trigger: &str, user_id: &str, cause: u64) -> String {
    let key = format!("{trigger}\u{0}{user_id}\u{0}{cause}");
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key.as_bytes()))
}

/// The decision as an event of the user: `$trigger_fired` or
/// `$trigger_dropped`, at the decision time, with `trigger`, `reason`,
/// `fire_id` and `due` (epoch ms).
pub fn system_event(
    trigger: &str,
    user_id: &str,
    cause: u64,
    due_ms: i64,
    decided_ms: i64,
    outcome: FireOutcome,
) -> Event {
    let name = match outcome {
        FireOutcome::Fired => TRIGGER_FIRED_EVENT,
        FireOutcome::DroppedLate | FireOutcome::DroppedCondition => TRIGGER_DROPPED_EVENT,
    };
    Event::new(user_id, name)
        .at(decided_ms)
        .prop("trigger", trigger.to_owned())
        .prop("reason", outcome.name())
        .prop("fire_id", fire_id(trigger, user_id, cause))
        .prop("due", due_ms)
}
