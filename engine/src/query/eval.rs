//! The evaluator: a parsed segment expression → the set of users it selects.
//!
//! Every evaluation step receives a *scope*, the users still in play, and
//! returns a subset of it. `and` narrows the scope child by child (cheapest
//! first), `or` evaluates each child only on users not selected yet, and
//! `not` subtracts from the scope. Bitmap-shaped parts are answered from the
//! indexes; counts, sequences, aggregates, `first`/`last` and in-a-row are
//! verified on the timelines of the candidates the bitmaps leave.
//!
//! Windows are answered from the day buckets: users seen on a day that lies
//! wholly inside the window are in without reading their timeline; users
//! seen only on a partly covered edge day are checked on their timeline.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use nudge_query_lang::{self as ql, Clause, Count, ExprKind, TimePoint, Window};
use roaring::RoaringBitmap;

use super::Source;
use super::columnar::{self, Gatherer, Range, RowCondition};
use super::condition::{self, Cond};
use super::fusion::{Fused, fuse_aggregates};
use super::{DAY_ROWS_MIN_CANDIDATES, PlanStep, Strategy, aggregate};
use crate::clock::{DAY_MS, day_of};
use crate::error::{Error, Result};
use crate::store::dict::{Dictionaries, EventId, UserId};
use crate::store::props;
use crate::store::state::timeline::TimelineEntry;

/// Deepest chain of `in segment` references followed.
pub const MAX_SEGMENT_REFERENCE_DEPTH: usize = 16;

/// Evaluation context for one query.
pub(crate) struct Evaluator<'a> {
    pub dicts: &'a Dictionaries,
    pub state: &'a Source<'a>,
    pub now: i64,
    pub saved: &'a BTreeMap<String, String>,
    pub warnings: Vec<String>,
    pub plan: Vec<PlanStep>,
    /// Whether to record `plan` (for `explain` and answers); a check of one
    /// user (`select_by`) does not, which saves formatting every clause.
    pub record_plan: bool,
    /// Names of the saved segments being evaluated, for cycle detection.
    stack: Vec<String>,
    pub(super) depth: usize,
    pub(super) strategy: Strategy,
    /// The triggering event `event.P` reads from (triggers' `if`); `None` in a segment.
    pub event: condition::EventRefs<'a>,
    /// When a query must stop (`None` in a trigger's `if`, which is one user).
    pub deadline: Option<super::Deadline>,
    /// How much the query's intermediate results may take (`None` in a trigger's `if`).
    pub memory: Option<super::MemoryBudget>,
}

/// A bound `E [where C]`.
pub(super) struct Filter {
    pub event: EventId,
    pub cond: Option<Cond>,
    /// The condition's canonical text (it keys cached row masks).
    cond_text: String,
}

impl Filter {
    /// Runs `f` with the condition as day rows take it.
    fn with_row_condition<T>(&self, f: impl FnOnce(Option<&RowCondition<'_>>) -> T) -> T {
        match &self.cond {
            None => f(None),
            Some(cond) => f(Some(&RowCondition { text: &self.cond_text, cond })),
        }
    }

    fn matches(&self, entry: &TimelineEntry, state: &Source<'_>) -> bool {
        entry.event() == self.event
            && self.cond.as_ref().is_none_or(|c| c.holds(state.props(entry)))
    }
}

fn count_holds(count: Count, c: u64) -> bool {
    let c = u32::try_from(c).unwrap_or(u32::MAX);
    c >= 1
        && match count {
            Count::AtLeast(n) => c >= n,
            Count::AtMost(n) => c <= n,
            Count::Exactly(n) => c == n,
            Count::Between(low, high) => (low..=high).contains(&c),
        }
}

impl<'a> Evaluator<'a> {
    pub fn new(
        dicts: &'a Dictionaries,
        state: &'a Source<'a>,
        now: i64,
        saved: &'a BTreeMap<String, String>,
        strategy: Strategy,
    ) -> Self {
        Evaluator {
            dicts,
            state,
            now,
            saved,
            warnings: Vec::new(),
            plan: Vec::new(),
            record_plan: true,
            stack: Vec::new(),
            depth: 0,
            strategy,
            event: None,
            deadline: None,
            memory: None,
        }
    }

    /// Whether to give up on candidate `user` because the deadline passed (the
    /// clause then fails in [`Self::clause`]).
    fn stopping_at(&self, user: UserId) -> bool {
        self.deadline.as_ref().is_some_and(|d| d.passed_at(user))
    }

    /// Whether to check `candidates` on day rows rather than timelines.
    pub(super) fn use_day_rows(&self, candidates: &RoaringBitmap) -> bool {
        match self.strategy {
            Strategy::Auto => candidates.len() >= DAY_ROWS_MIN_CANDIDATES,
            Strategy::Timelines => false,
            Strategy::DayRows => true,
        }
    }

    pub(super) fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    fn time(&self, point: &TimePoint) -> i64 {
        match point {
            TimePoint::Absolute(ms) => *ms,
            TimePoint::Now => self.now,
            TimePoint::Ago(d) => self.now.saturating_sub(i64::try_from(d.ms).unwrap_or(i64::MAX)),
        }
    }

    /// The timestamps a window admits, never past `now` nor before the epoch.
    pub(super) fn range(&self, window: Option<&ql::Spanned<Window>>) -> Range {
        let (lo, hi) = match window.map(|w| &w.node) {
            None => (0, self.now),
            Some(Window::InLast(d)) => {
                (self.now.saturating_sub(i64::try_from(d.ms).unwrap_or(i64::MAX)), self.now)
            }
            Some(Window::Between(a, b)) => (self.time(a), self.time(b).saturating_sub(1)),
            Some(Window::Since(a)) => (self.time(a), self.now),
            Some(Window::Before(b)) => (0, self.time(b).saturating_sub(1)),
        };
        Range { lo: lo.max(0), hi: hi.min(self.now) }
    }

    pub(super) fn filter(&mut self, filter: &ql::EventFilter) -> Option<Filter> {
        let Some(event) = self.dicts.events.get(&filter.event) else {
            self.warn(format!(
                "event {:?} has never been seen: it selects nobody",
                filter.event.node
            ));
            return None;
        };
        let cond = filter.condition.as_ref().map(|c| {
            let mut unknown = Vec::new();
            let bound = condition::bind_with(c, self.dicts, &mut unknown, self.event);
            for key in unknown {
                self.warn(format!(
                    "property {key:?} has never been seen: it is missing on every event"
                ));
            }
            bound
        });
        let cond_text = filter.condition.as_ref().map(ToString::to_string).unwrap_or_default();
        Some(Filter { event, cond, cond_text })
    }

    /// Users who did `event` on some day of `from..=to` (cached while those days do not change).
    pub(super) fn in_days(&self, event: EventId, from: i32, to: i32) -> Arc<RoaringBitmap> {
        let Some(index) = self.state.indexes.event_user_ids.get(event as usize) else {
            return Arc::default();
        };
        let (Some(first), Some(last)) = (
            index.by_bucket[0].keys().next().copied(),
            index.by_bucket[0].keys().next_back().copied(),
        ) else {
            return Arc::default();
        };
        let (from, to) = (from.max(first), to.min(last));
        if from > to {
            return Arc::default();
        }
        self.state.columns.union(self.state, event, from, to, || {
            if from == first && to == last {
                index.all.get().clone()
            } else {
                index.in_days(from, to)
            }
        })
    }

    /// Users with `event` in `range`: (candidates, users certainly in because
    /// seen on a day wholly inside the range; `None` when that is all candidates).
    pub(super) fn event_candidates(
        &self,
        event: EventId,
        range: Range,
    ) -> (Arc<RoaringBitmap>, Option<Arc<RoaringBitmap>>) {
        if range.is_empty() {
            return (Arc::default(), None);
        }
        let (lo_day, starts_whole, hi_day, ends_whole) = self.edge_days(event, range);
        let candidates = self.in_days(event, lo_day, hi_day);
        if starts_whole && ends_whole {
            return (candidates, None);
        }
        let full_lo = if starts_whole { lo_day } else { lo_day + 1 };
        let full_hi = if ends_whole { hi_day } else { hi_day - 1 };
        (candidates, Some(self.in_days(event, full_lo, full_hi)))
    }

    /// The first and last UTC day `range` touches, each with whether it counts
    /// as whole: wholly inside the range, or a day on which nobody did `event`
    /// (a partly covered day without the event changes nothing).
    fn edge_days(&self, event: EventId, range: Range) -> (i32, bool, i32, bool) {
        let (lo_day, hi_day) = (day_of(range.lo), day_of(range.hi));
        let quiet = |day: i32| {
            self.state
                .indexes
                .event_user_ids
                .get(event as usize)
                .is_none_or(|index| !index.by_bucket[0].contains_key(&day))
        };
        let starts_whole = range.lo <= i64::from(lo_day) * DAY_MS || quiet(lo_day);
        let ends_whole = range.hi >= (i64::from(hi_day) + 1) * DAY_MS - 1 || quiet(hi_day);
        (lo_day, starts_whole, hi_day, ends_whole)
    }

    /// The user's events in `range`, in order, from the head and the sealed
    /// days; of the sealed days, only rows of `events` (see
    /// `StoreState::events_in`: callers look at those events only).
    fn events_in(
        &self,
        user: UserId,
        range: Range,
        events: &[EventId],
    ) -> Cow<'a, [TimelineEntry]> {
        self.state.store.events_in(user, range.lo, range.hi, Some(events))
    }

    /// Narrows candidates with a value index when the condition is one equality.
    fn narrow_by_value(&self, candidates: &mut RoaringBitmap, filter: &Filter) {
        let Some((key, value)) = filter.cond.as_ref().and_then(Cond::equality) else { return };
        let Some(index) =
            self.state.indexes.event_property_value_user_ids.get(&(filter.event, key))
        else {
            candidates.clear();
            return;
        };
        match index.get(value) {
            Some(Some(users)) => *candidates &= users,
            Some(None) => candidates.clear(),
            None => {}
        }
    }

    /// `users ∩ scope`, skipping the intersection when the scope is the whole
    /// universe (every index holds only users of the universe).
    pub(super) fn within(&self, users: &RoaringBitmap, scope: &RoaringBitmap) -> RoaringBitmap {
        if std::ptr::eq(scope, &self.state.indexes.all_user_ids) {
            users.clone()
        } else if scope.len() <= WITHIN_BY_LOOKUP_MAX_USERS {
            // A scope of a few users (one user's segments, a trigger's `if`):
            // a lookup each, no pass over the containers of `users`.
            super::from_ascending(scope.iter().filter(|&u| users.contains(u)))
        } else {
            users & scope
        }
    }

    /// Checks each candidate on its entries of the events `wanted` (each in
    /// its range): from day rows when there are many candidates, else from the
    /// timeline slice `timeline_range`, which holds at least those entries.
    fn verify_entries(
        &self,
        candidates: &RoaringBitmap,
        wanted: &[(EventId, Range)],
        timeline_range: Range,
        keep: impl Fn(&[TimelineEntry]) -> bool + Sync,
    ) -> RoaringBitmap {
        let events: Vec<EventId> = wanted.iter().map(|&(event, _)| event).collect();
        if !self.use_day_rows(candidates) {
            return self.verify(candidates, |u| keep(&self.events_in(u, timeline_range, &events)));
        }
        let gatherer = Gatherer::new(self.state, wanted);
        columnar::in_parallel(candidates, |part| {
            gatherer.select(part, |u, entries| {
                !self.stopping_at(u)
                    && match entries {
                        Some(entries) => keep(entries),
                        None => keep(&self.events_in(u, timeline_range, &events)),
                    }
            })
        })
    }

    pub(super) fn verify(
        &self,
        candidates: &RoaringBitmap,
        keep: impl Fn(UserId) -> bool,
    ) -> RoaringBitmap {
        super::from_ascending(candidates.iter().filter(|&u| !self.stopping_at(u) && keep(u)))
    }

    /// An upper bound of the users a bitmap-shaped clause selects, read from
    /// the indexes without evaluating anything (`u64::MAX` when unknown).
    pub(super) fn estimate(&self, expr: &ql::Expr) -> u64 {
        let indexes = &self.state.indexes;
        let ExprKind::Clause(clause) = &expr.node else { return u64::MAX };
        match &**clause {
            Clause::ReachableViaWebpush => indexes.webpush_user_ids.len(),
            Clause::Did(did) => self
                .dicts
                .events
                .get(&did.filter.event)
                .and_then(|e| indexes.users_with_event(e))
                .map_or(0, |users| users.len()),
            Clause::User(c) => {
                self.profile_equality(c).map_or(u64::MAX, |users| users.map_or(0, |u| u.len()))
            }
            _ => u64::MAX,
        }
    }

    /// Runs `f` one level deeper in the plan (the level is restored on errors too).
    pub(super) fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Evaluates an expression within `scope`.
    pub fn expr(&mut self, expr: &ql::Expr, scope: &RoaringBitmap) -> Result<RoaringBitmap> {
        match &expr.node {
            ExprKind::Clause(clause) => self.clause(clause, scope),
            ExprKind::Not(inner) => {
                // A bitmap-shaped inner clause is subtracted directly, not first
                // intersected with the scope.
                let started = Instant::now();
                if let Some((users, false)) = self.bitmap_shaped(inner) {
                    let kept = scope - &*users;
                    self.nested(|this| {
                        this.step(inner, scope.len(), scope.len() - kept.len(), started);
                        Ok(())
                    })?;
                    return Ok(kept);
                }
                Ok(scope - self.nested(|this| this.expr(inner, scope))?)
            }
            ExprKind::And(items) => {
                let mut order: Vec<&ql::Expr> = items.iter().collect();
                // Cheap kinds first; among equals, the smaller index bitmap first.
                order.sort_by_key(|e| (cost(e), self.estimate(e)));
                let fused = fuse_aggregates(&order);
                self.nested(|this| {
                    let mut current: Option<RoaringBitmap> = None;
                    for (i, item) in order.iter().enumerate() {
                        // The first child sees the scope itself (no copy), later ones what it kept.
                        let narrowed = current.as_ref().unwrap_or(scope);
                        if narrowed.is_empty() {
                            break;
                        }
                        current = Some(match &fused[i] {
                            Fused::Alone => this.expr(item, narrowed)?,
                            Fused::Leads(group) => this.fused_aggregates(group, narrowed),
                            Fused::Follows => continue,
                        });
                    }
                    Ok(current.unwrap_or_else(|| scope.clone()))
                })
            }
            ExprKind::Or(items) => self.nested(|this| {
                let mut selected = RoaringBitmap::new();
                for item in items {
                    let remaining;
                    let narrowed = if selected.is_empty() {
                        scope
                    } else {
                        remaining = scope - &selected;
                        &remaining
                    };
                    if narrowed.is_empty() {
                        break;
                    }
                    selected |= this.expr(item, narrowed)?;
                }
                Ok(selected)
            }),
        }
    }

    fn clause(&mut self, clause: &Clause, scope: &RoaringBitmap) -> Result<RoaringBitmap> {
        if let Some(deadline) = &self.deadline {
            deadline.check()?;
        }
        let started = Instant::now();
        let result = match clause {
            Clause::Did(did) => Ok(self.did(did, scope)),
            Clause::Sequence(sequence) => Ok(self.sequence(sequence, scope)),
            Clause::ThenNot(then_not) => Ok(self.then_not(then_not, scope)),
            Clause::InARow(in_a_row) => Ok(self.in_a_row(in_a_row, scope)),
            Clause::FirstDid(f) => Ok(self.first_or_last(f, scope, true)),
            Clause::LastDid(f) => Ok(self.first_or_last(f, scope, false)),
            Clause::Aggregate(a) => Ok(self.aggregate(a, scope)),
            Clause::User(comparison) => Ok(self.user(comparison, scope)),
            Clause::InSegment(name) => self.in_segment(name, scope),
            Clause::ReachableViaWebpush => {
                Ok(self.within(&self.state.indexes.webpush_user_ids, scope))
            }
        }?;
        // A clause that gave up on candidates at the deadline has a partial answer.
        if let Some(deadline) = &self.deadline {
            deadline.check()?;
        }
        if let Some(memory) = &mut self.memory {
            memory.charge(result.serialized_size() as u64)?;
        }
        if !self.record_plan {
            return Ok(result);
        }
        self.plan.push(PlanStep {
            depth: self.depth,
            clause: clause.to_string(),
            scope_users: scope.len(),
            selected_users: result.len(),
            took_us: started.elapsed().as_micros() as u64,
        });
        Ok(result)
    }

    fn did(&mut self, did: &ql::Did, scope: &RoaringBitmap) -> RoaringBitmap {
        let Some(filter) = self.filter(&did.filter) else { return RoaringBitmap::new() };
        let range = self.range(did.window.as_ref());
        let (candidates, full) = self.event_candidates(filter.event, range);
        let count = did.count.as_ref().map_or(Count::AtLeast(1), |c| c.node);
        if filter.cond.is_none() && count == Count::AtLeast(1) {
            let candidates = self.within(&candidates, scope);
            let Some(full) = full else { return candidates };
            let certain = &candidates & &*full;
            let unsure = &candidates - &certain;
            return certain
                | self.verify(&unsure, |u| {
                    self.events_in(u, range, &[filter.event])
                        .iter()
                        .any(|e| e.event() == filter.event)
                });
        }
        let universe = std::ptr::eq(scope, &self.state.indexes.all_user_ids);
        let candidates =
            if !universe && scope.len() < candidates.len() / 2 && self.use_day_rows(scope) {
                // Counting over a small scope needs no intersection first: a user
                // without rows counts 0, which no count admits.
                scope.clone()
            } else {
                let mut candidates = self.within(&candidates, scope);
                self.narrow_by_value(&mut candidates, &filter);
                candidates
            };
        if self.use_day_rows(&candidates) {
            return filter.with_row_condition(|condition| {
                columnar::count(self.state, filter.event, condition, range, &candidates, |c| {
                    count_holds(count, c)
                })
            });
        }
        self.verify(&candidates, |u| {
            let matching = self
                .events_in(u, range, &[filter.event])
                .iter()
                .filter(|e| filter.matches(e, self.state))
                .count();
            count_holds(count, matching as u64)
        })
    }

    fn sequence(&mut self, sequence: &ql::Sequence, scope: &RoaringBitmap) -> RoaringBitmap {
        let steps: Option<Vec<Filter>> = sequence.steps.iter().map(|s| self.filter(s)).collect();
        let Some(steps) = steps else { return RoaringBitmap::new() };
        let range = self.range(sequence.window.as_ref());
        let within = sequence.within.as_ref().map(|d| i64::try_from(d.ms).unwrap_or(i64::MAX));
        let mut candidates: Option<RoaringBitmap> = None;
        for step in &steps {
            let (users, _) = self.event_candidates(step.event, range);
            let mut users = match candidates {
                None => self.within(&users, scope),
                Some(so_far) => so_far & &*users,
            };
            self.narrow_by_value(&mut users, step);
            candidates = Some(users);
        }
        let candidates = candidates.unwrap_or_default();
        let wanted: Vec<(EventId, Range)> = steps.iter().map(|s| (s.event, range)).collect();
        self.verify_entries(&candidates, &wanted, range, |events| {
            (0..events.len()).filter(|&i| steps[0].matches(&events[i], self.state)).any(|start| {
                let mut at = start;
                for step in &steps[1..] {
                    match (at + 1..events.len()).find(|&j| step.matches(&events[j], self.state)) {
                        Some(next) => at = next,
                        None => return false,
                    }
                }
                within.is_none_or(|d| events[at].ts_ms - events[start].ts_ms <= d)
            })
        })
    }

    fn then_not(&mut self, then_not: &ql::ThenNot, scope: &RoaringBitmap) -> RoaringBitmap {
        let Some(first) = self.filter(&then_not.first) else { return RoaringBitmap::new() };
        // An absent event that was never seen is absent after every E.
        let absent = self.filter(&then_not.absent);
        let within = i64::try_from(then_not.within.ms).unwrap_or(i64::MAX);
        let mut range = self.range(then_not.window.as_ref());
        range.hi = range.hi.min(self.now.saturating_sub(within));
        let (candidates, _) = self.event_candidates(first.event, range);
        let mut candidates = self.within(&candidates, scope);
        self.narrow_by_value(&mut candidates, &first);
        let mut wanted = vec![(first.event, range)];
        if let Some(absent) = &absent {
            wanted
                .push((absent.event, Range { lo: range.lo, hi: range.hi.saturating_add(within) }));
        }
        let rest = Range { lo: range.lo, hi: i64::MAX };
        self.verify_entries(&candidates, &wanted, rest, |events| {
            (0..events.len()).take_while(|&i| events[i].ts_ms <= range.hi).any(|i| {
                let e = &events[i];
                first.matches(e, self.state)
                    && !absent.as_ref().is_some_and(|absent| {
                        events[i + 1..]
                            .iter()
                            .take_while(|f| f.ts_ms - e.ts_ms <= within)
                            .any(|f| absent.matches(f, self.state))
                    })
            })
        })
    }

    fn in_a_row(&mut self, in_a_row: &ql::InARow, scope: &RoaringBitmap) -> RoaringBitmap {
        let Some(filter) = self.filter(&in_a_row.filter) else { return RoaringBitmap::new() };
        let range = self.range(in_a_row.window.as_ref());
        let needed = in_a_row.times.node;
        let (candidates, _) = self.event_candidates(filter.event, range);
        let candidates = self.within(&candidates, scope);
        self.verify_entries(&candidates, &[(filter.event, range)], range, |events| {
            let mut run = 0u32;
            for e in events.iter().filter(|e| e.event() == filter.event) {
                if filter.cond.as_ref().is_none_or(|c| c.holds(self.state.props(e))) {
                    run += 1;
                    if run >= needed {
                        return true;
                    }
                } else {
                    run = 0;
                }
            }
            false
        })
    }

    fn first_or_last(
        &mut self,
        clause: &ql::FirstLast,
        scope: &RoaringBitmap,
        first: bool,
    ) -> RoaringBitmap {
        let Some(filter) = self.filter(&clause.filter) else { return RoaringBitmap::new() };
        let range = self.range(Some(&clause.window));
        let (candidates, _) = self.event_candidates(filter.event, range);
        let mut candidates = self.within(&candidates, scope);
        self.narrow_by_value(&mut candidates, &filter);
        let until_now = Range { lo: 0, hi: self.now };
        let check = |u: UserId| {
            let events = self.events_in(u, until_now, &[filter.event]);
            let found = if first {
                events.iter().find(|e| filter.matches(e, self.state))
            } else {
                events.iter().rev().find(|e| filter.matches(e, self.state))
            };
            found.is_some_and(|e| e.ts_ms >= range.lo && e.ts_ms <= range.hi)
        };
        if filter.cond.is_some() || range.is_empty() {
            return self.verify(&candidates, check);
        }
        // Without a condition, whole days decide most users: for `first`, anyone
        // seen on a day before the window is out; for `last`, anyone seen on a
        // day after it (up to the day before `now`) is out. Users seen on a
        // partly covered day are checked on their timeline.
        let (lo_day, starts_whole, hi_day, ends_whole) = self.edge_days(filter.event, range);
        let now_day = day_of(self.now);
        let mut edges = Vec::new();
        if !starts_whole {
            edges.push(lo_day);
        }
        if !ends_whole {
            edges.push(hi_day);
        }
        let out = if first {
            self.in_days(filter.event, i32::MIN, lo_day - 1)
        } else {
            if now_day > hi_day {
                edges.push(now_day);
            }
            self.in_days(filter.event, hi_day + 1, now_day - 1)
        };
        let candidates = candidates - &*out;
        let mut unsure = RoaringBitmap::new();
        for day in edges {
            unsure |= &candidates & &*self.in_days(filter.event, day, day);
        }
        let certain = &candidates - &unsure;
        certain | self.verify(&unsure, check)
    }

    /// Aggregates over the same values compared several ways, as one pass.
    fn fused_aggregates(
        &mut self,
        group: &[&ql::Aggregate],
        scope: &RoaringBitmap,
    ) -> RoaringBitmap {
        let started = Instant::now();
        let result = self.aggregate_all(group, scope);
        if !self.record_plan {
            return result;
        }
        let clause = group.iter().map(|a| Clause::Aggregate((*a).clone()).to_string());
        self.plan.push(PlanStep {
            depth: self.depth,
            clause: clause.collect::<Vec<_>>().join(" and "),
            scope_users: scope.len(),
            selected_users: result.len(),
            took_us: started.elapsed().as_micros() as u64,
        });
        result
    }

    fn aggregate(&mut self, clause: &ql::Aggregate, scope: &RoaringBitmap) -> RoaringBitmap {
        self.aggregate_all(&[clause], scope)
    }

    /// Users whose aggregate (the same function, property, events and window
    /// in every clause of `group`) passes every clause's comparison.
    fn aggregate_all(&mut self, group: &[&ql::Aggregate], scope: &RoaringBitmap) -> RoaringBitmap {
        let Some(&clause) = group.first() else { return scope.clone() };
        let Some(filter) = self.filter(&clause.filter) else { return RoaringBitmap::new() };
        let name = condition::key_name(&clause.property);
        let Some(key) = condition::key_id(self.dicts, &clause.property) else {
            self.warn(format!("property {name:?} has never been seen: no values to aggregate"));
            return RoaringBitmap::new();
        };
        let range = self.range(clause.window.as_ref());
        let (candidates, _) = self.event_candidates(filter.event, range);
        let mut candidates = self.within(&candidates, scope);
        self.narrow_by_value(&mut candidates, &filter);
        let tests: Vec<(ql::CompareOp, f64)> =
            group.iter().map(|a| (a.op.node, a.value.node.as_f64())).collect();
        let holds = |result: f64| {
            tests.iter().all(|&(op, threshold)| condition::compare_numbers(op, result, threshold))
        };
        if self.use_day_rows(&candidates) {
            return filter.with_row_condition(|condition| {
                columnar::aggregate(
                    self.state,
                    filter.event,
                    condition,
                    (key, clause.function.node),
                    range,
                    &candidates,
                    holds,
                )
            });
        }
        self.verify(&candidates, |u| {
            let events = self.events_in(u, range, &[filter.event]);
            let values = events
                .iter()
                .filter(|e| filter.matches(e, self.state))
                .filter_map(|e| props::get(self.state.props(e), key));
            aggregate::compute(clause.function.node, values).is_some_and(holds)
        })
    }

    fn in_segment(
        &mut self,
        name: &ql::Spanned<String>,
        scope: &RoaringBitmap,
    ) -> Result<RoaringBitmap> {
        let Some(text) = self.saved.get(&name.node) else {
            return Err(Error::invalid(
                None,
                "q",
                format!("there is no saved segment named {:?}", name.node),
            ));
        };
        if self.stack.contains(&name.node) {
            let mut cycle = self.stack.clone();
            cycle.push(name.node.clone());
            return Err(Error::invalid(
                None,
                "q",
                format!("saved segments refer to each other in a cycle: {}", cycle.join(" → ")),
            ));
        }
        if self.stack.len() >= MAX_SEGMENT_REFERENCE_DEPTH {
            return Err(Error::invalid(
                None,
                "q",
                format!("saved segments nest deeper than {MAX_SEGMENT_REFERENCE_DEPTH} levels"),
            ));
        }
        let expr = nudge_query_lang::parse_segment(text).map_err(|e| {
            Error::invalid(
                None,
                "q",
                format!("saved segment {:?} no longer parses: {e}", name.node),
            )
        })?;
        self.stack.push(name.node.clone());
        let result = self.nested(|this| this.expr(&expr, scope));
        self.stack.pop();
        result
    }
}

/// Scopes of at most this many users are intersected by one lookup per user.
const WITHIN_BY_LOOKUP_MAX_USERS: u64 = 16;

/// A rough cost rank, so `and` evaluates cheap bitmap-shaped parts first and
/// timeline-verified parts on the smallest scope.
pub(super) fn cost(expr: &ql::Expr) -> u8 {
    match &expr.node {
        ExprKind::Clause(clause) => match &**clause {
            Clause::ReachableViaWebpush => 1,
            Clause::User(c)
                if matches!(c.test.node, ql::Test::Compare { op: ql::CompareOp::Eq, .. }) =>
            {
                1
            }
            Clause::Did(d) if d.filter.condition.is_none() && d.count.is_none() => 2,
            Clause::InSegment(_) => 3,
            Clause::Did(_) | Clause::FirstDid(_) | Clause::LastDid(_) | Clause::InARow(_) => 4,
            Clause::Aggregate(_) | Clause::User(_) => 5,
            Clause::Sequence(_) | Clause::ThenNot(_) => 6,
        },
        ExprKind::Not(inner) => cost(inner).max(3),
        ExprKind::And(items) | ExprKind::Or(items) => items.iter().map(cost).max().unwrap_or(0),
    }
}
