//! Brute-force reference evaluator of segment expressions, for differential tests only.
//!
//! [`Reference::new`] replays ingest records the way the engine does (per-user timelines
//! ordered by timestamp then arrival, profiles folded set → set_once → unset → increment →
//! append, web push subscriptions by endpoint), and [`Reference::evaluate`] answers a parsed
//! segment expression by scanning every user of the universe, following the section
//! "Evaluation semantics" of `docs/query-language.md` literally. It is written for clarity,
//! not speed: no indexes, no bitmaps, no shortcuts.
//!
//! The random data and query generators used by the differential tests live in
//! `generate.rs`; the property comparison rules in `compare.rs`; the per-user clause
//! semantics in `clauses.rs`.
// Shared by several test files, each using a different part of it.
#![allow(dead_code, unused_imports)]

mod clauses;
mod compare;
mod generate;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nudge_engine::limits::{
    MAX_ARRAY_ELEMENTS, MAX_PROFILE_PROPERTIES, MAX_SUBSCRIPTIONS_PER_USER,
};
use nudge_engine::{Event, ProfileUpdate, Record, Value};
use nudge_query_lang::{Clause, Expr, ExprKind};

pub use generate::{
    DAY_MS, HOUR_MS, NOW, random_records, random_segment, random_segment_with_saved, rng,
};

/// A set of external user ids.
pub type Users = BTreeSet<String>;

/// One event as the reference keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Event name.
    pub name: String,
    /// Timestamp in epoch ms (`None` in the record is taken as 0; tests always set it).
    pub ts: i64,
    /// Flat properties, dotted keys as given.
    pub props: Vec<(String, Value)>,
}

impl StoredEvent {
    /// The value of property `key`, if present.
    pub fn prop(&self, key: &str) -> Option<&Value> {
        self.props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The replayed state of a list of records, and the brute-force evaluator over it.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    universe: Users,
    /// Per user, events ordered by (timestamp, arrival).
    timelines: BTreeMap<String, Vec<StoredEvent>>,
    profiles: BTreeMap<String, BTreeMap<String, Value>>,
    /// Active subscriptions as (endpoint, user), oldest first.
    subscriptions: Vec<(String, String)>,
    /// Saved segments (name → query text) from `SaveSegment` / `RemoveSegment` records.
    saved: BTreeMap<String, String>,
}

/// What one evaluation carries along: `now`, the saved segments and the chain of saved
/// segments being evaluated (for cycle detection).
struct Ctx<'a> {
    now: i64,
    saved: &'a HashMap<String, Expr>,
    stack: Vec<String>,
}

impl Reference {
    /// Replays `records` in order.
    pub fn new(records: &[Record]) -> Self {
        let mut reference = Reference::default();
        for record in records {
            reference.apply(record);
        }
        for timeline in reference.timelines.values_mut() {
            // A stable sort: events with equal timestamps keep their arrival order.
            timeline.sort_by_key(|event| event.ts);
        }
        reference
    }

    /// Every user seen through an event, a profile update or a subscription.
    pub fn universe(&self) -> &Users {
        &self.universe
    }

    /// `user`'s events ordered by (timestamp, arrival), future ones included.
    pub fn timeline(&self, user: &str) -> &[StoredEvent] {
        self.timelines.get(user).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `user`'s current profile (`None` when no update ever touched it).
    pub fn profile(&self, user: &str) -> Option<&BTreeMap<String, Value>> {
        self.profiles.get(user)
    }

    /// Whether `user` has at least one active web push subscription.
    pub fn is_reachable(&self, user: &str) -> bool {
        self.subscriptions.iter().any(|(_, owner)| owner == user)
    }

    /// The saved segments recorded by `SaveSegment` / `RemoveSegment`, parsed, ready to
    /// pass to [`Reference::evaluate`]; a query that does not parse is an error.
    pub fn saved_segments(&self) -> Result<HashMap<String, Expr>, String> {
        self.saved
            .iter()
            .map(|(name, query)| {
                let expr = nudge_query_lang::parse_segment(query).map_err(|e| e.render(query))?;
                Ok((name.clone(), expr))
            })
            .collect()
    }

    /// The users selected by `expr` at `now_ms`, with `saved` naming the saved segments that
    /// `in segment` may refer to. An unknown saved segment or a cycle is an error.
    pub fn evaluate(
        &self,
        expr: &Expr,
        now_ms: i64,
        saved: &HashMap<String, Expr>,
    ) -> Result<Users, String> {
        let mut ctx = Ctx { now: now_ms, saved, stack: Vec::new() };
        self.eval_expr(expr, &mut ctx)
    }

    /// Parses `query` and evaluates it with no saved segments.
    pub fn evaluate_str(&self, query: &str, now_ms: i64) -> Result<Users, String> {
        let expr = nudge_query_lang::parse_segment(query).map_err(|e| e.render(query))?;
        self.evaluate(&expr, now_ms, &HashMap::new())
    }

    // ------------------------------------------------------------------------ replay

    fn apply(&mut self, record: &Record) {
        match record {
            Record::Event(event) => self.add_event(event),
            Record::Profile(update) => self.apply_profile(update),
            Record::Subscribe { user_id, subscription } => {
                self.subscribe(user_id, &subscription.endpoint)
            }
            Record::Unsubscribe { endpoint } => self.unsubscribe(endpoint),
        }
    }

    /// Saves a segment under `name`, as `Engine::save_segment` does.
    pub fn save_segment(&mut self, name: &str, query: &str) {
        self.saved.insert(name.to_owned(), query.to_owned());
    }

    fn add_event(&mut self, event: &Event) {
        self.universe.insert(event.user_id.clone());
        let stored = StoredEvent {
            name: event.name.clone(),
            ts: event.ts_ms.unwrap_or(0),
            props: event.props.clone(),
        };
        self.timelines.entry(event.user_id.clone()).or_default().push(stored);
    }

    fn apply_profile(&mut self, update: &ProfileUpdate) {
        self.universe.insert(update.user_id.clone());
        let profile = self.profiles.entry(update.user_id.clone()).or_default();
        for (key, value) in &update.set {
            upsert(profile, key, value.clone());
        }
        for (key, value) in &update.set_once {
            if !profile.contains_key(key) {
                upsert(profile, key, value.clone());
            }
        }
        for key in &update.unset {
            profile.remove(key);
        }
        for (key, by) in &update.increment {
            increment(profile, key, *by);
        }
        for (key, value) in &update.append {
            append(profile, key, value);
        }
    }

    fn subscribe(&mut self, user: &str, endpoint: &str) {
        self.universe.insert(user.to_owned());
        self.unsubscribe(endpoint);
        let held = self.subscriptions.iter().filter(|(_, owner)| owner == user).count();
        if held >= MAX_SUBSCRIPTIONS_PER_USER
            && let Some(oldest) = self.subscriptions.iter().position(|(_, owner)| owner == user)
        {
            self.subscriptions.remove(oldest);
        }
        self.subscriptions.push((endpoint.to_owned(), user.to_owned()));
    }

    fn unsubscribe(&mut self, endpoint: &str) {
        self.subscriptions.retain(|(held, _)| held != endpoint);
    }

    // -------------------------------------------------------------------- evaluation

    fn eval_expr(&self, expr: &Expr, ctx: &mut Ctx<'_>) -> Result<Users, String> {
        match &expr.node {
            ExprKind::Or(operands) => {
                let mut union = Users::new();
                for operand in operands {
                    union.extend(self.eval_expr(operand, ctx)?);
                }
                Ok(union)
            }
            ExprKind::And(operands) => {
                let mut intersection = self.universe.clone();
                for operand in operands {
                    let selected = self.eval_expr(operand, ctx)?;
                    intersection.retain(|user| selected.contains(user));
                }
                Ok(intersection)
            }
            ExprKind::Not(inner) => {
                let selected = self.eval_expr(inner, ctx)?;
                Ok(self.universe.difference(&selected).cloned().collect())
            }
            ExprKind::Clause(clause) => self.eval_clause(clause, ctx),
        }
    }

    fn eval_clause(&self, clause: &Clause, ctx: &mut Ctx<'_>) -> Result<Users, String> {
        if let Clause::InSegment(name) = clause {
            return self.eval_saved(&name.node, ctx);
        }
        let now = ctx.now;
        Ok(self.universe.iter().filter(|user| self.selects(user, clause, now)).cloned().collect())
    }

    fn eval_saved(&self, name: &str, ctx: &mut Ctx<'_>) -> Result<Users, String> {
        if ctx.stack.iter().any(|open| open == name) {
            return Err(format!("saved segment \"{name}\" refers back to itself"));
        }
        let saved = ctx.saved;
        let expr = saved.get(name).ok_or_else(|| format!("unknown saved segment \"{name}\""))?;
        ctx.stack.push(name.to_owned());
        let result = self.eval_expr(expr, ctx);
        ctx.stack.pop();
        result
    }

    /// Whether `user` satisfies `clause` (every clause but `in segment`).
    fn selects(&self, user: &str, clause: &Clause, now: i64) -> bool {
        let events: Vec<&StoredEvent> =
            self.timeline(user).iter().filter(|event| event.ts <= now).collect();
        match clause {
            Clause::Did(did) => clauses::did(&events, did, now),
            Clause::Sequence(sequence) => clauses::sequence(&events, sequence, now),
            Clause::ThenNot(then_not) => clauses::then_not(&events, then_not, now),
            Clause::InARow(in_a_row) => clauses::in_a_row(&events, in_a_row, now),
            Clause::FirstDid(first) => clauses::first_did(&events, first, now),
            Clause::LastDid(last) => clauses::last_did(&events, last, now),
            Clause::Aggregate(aggregate) => clauses::aggregate(&events, aggregate, now),
            Clause::User(comparison) => {
                let key = compare::key(&comparison.property);
                let value = self.profile(user).and_then(|profile| profile.get(&key));
                compare::test_holds(value, &comparison.test)
            }
            Clause::ReachableViaWebpush => self.is_reachable(user),
            Clause::InSegment(_) => false, // answered by `eval_saved`, never reaches here
        }
    }
}

// --------------------------------------------------------------------- profile folding

/// Sets `key`, unless that would add a key beyond the profile limit (the engine ignores it).
fn upsert(profile: &mut BTreeMap<String, Value>, key: &str, value: Value) {
    if profile.contains_key(key) || profile.len() < MAX_PROFILE_PROPERTIES {
        profile.insert(key.to_owned(), value);
    }
}

/// Adds `by` to a number (absent or non-number counts as 0); a non-finite sum keeps the
/// old number.
fn increment(profile: &mut BTreeMap<String, Value>, key: &str, by: f64) {
    let current = match profile.get(key) {
        Some(Value::Number(n)) => *n,
        _ => 0.0,
    };
    let sum = current + by;
    upsert(profile, key, Value::Number(if sum.is_finite() { sum } else { current }));
}

/// Appends to an array (a scalar becomes a one-element array first; an array value
/// extends), keeping the newest `MAX_ARRAY_ELEMENTS`.
fn append(profile: &mut BTreeMap<String, Value>, key: &str, value: &Value) {
    let mut items = match profile.get(key) {
        Some(Value::Array(items)) => items.clone(),
        Some(scalar) => vec![scalar.clone()],
        None => Vec::new(),
    };
    match value {
        Value::Array(more) => items.extend(more.iter().cloned()),
        scalar => items.push(scalar.clone()),
    }
    if items.len() > MAX_ARRAY_ELEMENTS {
        items.drain(..items.len() - MAX_ARRAY_ELEMENTS);
    }
    upsert(profile, key, Value::Array(items));
}
