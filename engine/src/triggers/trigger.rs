//! A saved trigger: its parsed form, the events it listens to, and its tests
//! bound against the dictionaries at the moment they run (names seen later
//! than the trigger was saved still count).

use std::sync::Arc;

use nudge_query_lang::{self as ql, TriggerTail};

use crate::query::condition;
use crate::store::dict::Dictionaries;
use crate::store::props::{self, ValueRef};

/// What an event is to a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The triggering `E`.
    Start,
    /// The `F` of `unless`, which cancels.
    Cancel,
    /// The `F` of `then`, which completes.
    Complete,
}

/// A `where` condition ready to test events.
#[derive(Debug, Clone)]
pub enum Bound {
    /// No condition: every event passes.
    Always,
    /// Bound once (it has no `event.P`).
    Fixed(condition::Cond),
    /// Has `event.P`: bound for each triggering event.
    PerEvent,
}

impl Bound {
    /// Binds `condition` now if it does not read the triggering event.
    pub fn of(condition: Option<&ql::Condition>, dicts: &Dictionaries) -> Bound {
        match condition {
            None => Bound::Always,
            Some(c) if refers_to_event(c) => Bound::PerEvent,
            Some(c) => Bound::Fixed(condition::bind(c, dicts, &mut Vec::new())),
        }
    }
}

/// Whether a condition reads `event.P`.
fn refers_to_event(condition: &ql::Condition) -> bool {
    fn value(v: &ql::Value) -> bool {
        match v {
            ql::Value::EventRef(_) => true,
            ql::Value::List(items) => items.iter().any(|i| value(i)),
            _ => false,
        }
    }
    match &condition.node {
        ql::ConditionKind::Comparison(c) => match &c.test.node {
            ql::Test::Compare { value: v, .. }
            | ql::Test::In(v)
            | ql::Test::NotIn(v)
            | ql::Test::Contains(v)
            | ql::Test::StartsWith(v) => value(v),
            ql::Test::Between { low, high } => value(low) || value(high),
            ql::Test::Exists | ql::Test::NotExists => false,
        },
        ql::ConditionKind::And(items) | ql::ConditionKind::Or(items) => {
            items.iter().any(refers_to_event)
        }
        ql::ConditionKind::Not(inner) => refers_to_event(inner),
    }
}

/// The part after `on E [where C]`, with durations in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Tail {
    /// Fires at once.
    None,
    /// `unless F within D`.
    Unless {
        /// F, with its condition.
        filter: ql::EventFilter,
        /// D.
        within_ms: i64,
    },
    /// `then F within D`.
    Then {
        /// F, with its condition.
        filter: ql::EventFilter,
        /// D.
        within_ms: i64,
    },
    /// `at prop ± D`.
    At {
        /// The property holding the time.
        property: ql::PropertyPath,
        /// The signed shift.
        offset_ms: i64,
    },
}

/// A trigger as saved.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedTrigger {
    /// Its name.
    pub name: Arc<str>,
    /// Its text, as written.
    pub text: String,
    /// The parsed trigger.
    pub ast: ql::Trigger,
    /// Its tail, in engine terms.
    pub tail: Tail,
}

fn ms(duration: &ql::Spanned<ql::Duration>) -> i64 {
    i64::try_from(duration.ms).unwrap_or(i64::MAX)
}

impl SavedTrigger {
    /// Parses a trigger's text (`None` when it does not parse).
    pub fn parse(name: &str, text: &str) -> Option<SavedTrigger> {
        let ast = ql::parse_trigger(text).ok()?;
        let tail = match ast.tail.as_ref().map(|t| &t.node) {
            None => Tail::None,
            Some(TriggerTail::Unless { event, within }) => {
                Tail::Unless { filter: event.clone(), within_ms: ms(within) }
            }
            Some(TriggerTail::Then { event, within }) => {
                Tail::Then { filter: event.clone(), within_ms: ms(within) }
            }
            Some(at @ TriggerTail::At { property, .. }) => Tail::At {
                property: property.node.clone(),
                offset_ms: at.at_offset_ms().unwrap_or(0),
            },
        };
        Some(SavedTrigger { name: Arc::from(name), text: text.to_owned(), ast, tail })
    }

    /// The event names it listens to, with their role.
    pub fn roles(&self) -> Vec<(&str, Role)> {
        let mut roles = vec![(self.ast.event.event.node.as_str(), Role::Start)];
        match &self.tail {
            Tail::Unless { filter, .. } => roles.push((&filter.event.node, Role::Cancel)),
            Tail::Then { filter, .. } => roles.push((&filter.event.node, Role::Complete)),
            Tail::None | Tail::At { .. } => {}
        }
        roles
    }

    /// The condition of the event a role listens to, bound as far as it can be.
    pub fn bound(&self, role: Role, dicts: &Dictionaries) -> Bound {
        Bound::of(self.condition(role), dicts)
    }

    fn condition(&self, role: Role) -> Option<&ql::Condition> {
        match (role, &self.tail) {
            (Role::Start, _) => self.ast.event.condition.as_ref(),
            (_, Tail::Unless { filter, .. } | Tail::Then { filter, .. }) => {
                filter.condition.as_ref()
            }
            _ => None,
        }
    }

    /// Whether an event with properties `blob` passes the condition of `role`
    /// (`bound` from [`SavedTrigger::bound`]); `event.P` reads `trigger_blob`
    /// (for `E` itself, its own properties).
    pub fn matches(
        &self,
        role: Role,
        bound: &Bound,
        dicts: &Dictionaries,
        blob: &[u8],
        trigger_blob: &[u8],
    ) -> bool {
        match (bound, self.condition(role)) {
            (Bound::Always, _) | (Bound::PerEvent, None) => true,
            (Bound::Fixed(cond), _) => cond.holds(blob),
            (Bound::PerEvent, Some(c)) => {
                condition::bind_with(c, dicts, &mut Vec::new(), Some((dicts, trigger_blob)))
                    .holds(blob)
            }
        }
    }

    /// For `at prop ± D`: the time the event's property holds (RFC 3339 text
    /// or epoch ms), shifted; `None` when it is missing or not a time.
    pub fn at_time(&self, dicts: &Dictionaries, blob: &[u8]) -> Option<i64> {
        let Tail::At { property, offset_ms } = &self.tail else { return None };
        let key = dicts.keys.get(&property.segments.join("."))?;
        let at = match props::get(blob, u16::try_from(key).ok()?)? {
            ValueRef::Number(n) if n.is_finite() => n as i64,
            ValueRef::Str(text) => ql::parse_date_time(text).ok()?,
            _ => return None,
        };
        at.checked_add(*offset_ms)
    }
}
