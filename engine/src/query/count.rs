//! Count-only answers: when a query is asked for its count alone and the last
//! step of its top-level `and` is bitmap-shaped (an index bitmap, or the
//! negation of one), that step is counted with an intersection count instead
//! of being built. When every child is bitmap-shaped, the largest sets are
//! intersected first: intersections of dense sets stay dense and cheap, and
//! only the final, smallest one is counted.
//!
//! When every child is an event over whole days and the sets are sparse
//! (roaring intersects sorted arrays of ids at a few nanoseconds per id),
//! the intersection runs over plain bit sets of the day spans instead, cached
//! like window unions: a few microseconds per child whatever the sizes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use nudge_query_lang::{self as ql, Clause, ExprKind};
use roaring::RoaringBitmap;

use super::PlanStep;
use super::eval::{Evaluator, cost};
use crate::clock::day_of;
use crate::error::Result;
use crate::store::dict::EventId;

/// An event over a span of days: (event, first day, last day).
type DaySpan = (EventId, i32, i32);

/// Users a bitmap-shaped expression selects, read from the indexes.
pub(super) enum Users<'a> {
    Index(&'a RoaringBitmap),
    Shared(Arc<RoaringBitmap>),
    /// Users who did an event on some day of a span: (event, first day, last day).
    Window(Arc<RoaringBitmap>, DaySpan),
}

impl std::ops::Deref for Users<'_> {
    type Target = RoaringBitmap;
    fn deref(&self) -> &RoaringBitmap {
        match self {
            Users::Index(users) => users,
            Users::Shared(users) | Users::Window(users, _) => users,
        }
    }
}

impl<'a> Evaluator<'a> {
    /// The users of a bitmap-shaped expression and whether it is negated;
    /// `None` when the expression needs more than one index bitmap.
    pub(super) fn bitmap_shaped(&mut self, expr: &ql::Expr) -> Option<(Users<'a>, bool)> {
        let clause = match &expr.node {
            ExprKind::Not(inner) => {
                let (users, negated) = self.bitmap_shaped(inner)?;
                return (!negated).then_some((users, true));
            }
            ExprKind::Clause(clause) => clause,
            ExprKind::And(_) | ExprKind::Or(_) => return None,
        };
        let indexes = &self.state.indexes;
        match &**clause {
            Clause::ReachableViaWebpush => Some((Users::Index(&indexes.webpush_user_ids), false)),
            Clause::User(c) => {
                // A key never seen goes the long way, which warns about it.
                super::condition::key_id(self.dicts, &c.property)?;
                match self.profile_equality(c)? {
                    Some(users) => Some((Users::Index(users), false)),
                    None => Some((Users::Shared(Arc::default()), false)),
                }
            }
            Clause::Did(did) if did.count.is_none() && did.filter.condition.is_none() => {
                self.dicts.events.get(&did.filter.event)?;
                let filter = self.filter(&did.filter)?;
                let range = self.range(did.window.as_ref());
                match self.event_candidates(filter.event, range) {
                    (users, None) if !range.is_empty() => {
                        let days = (filter.event, day_of(range.lo), day_of(range.hi));
                        Some((Users::Window(users, days), false))
                    }
                    (users, None) => Some((Users::Shared(users), false)),
                    (_, Some(_)) => None,
                }
            }
            _ => None,
        }
    }

    /// The number of users `expr` selects (see the module notes).
    pub fn count(&mut self, expr: &ql::Expr) -> Result<u64> {
        let universe: &'a RoaringBitmap = &self.state.indexes.all_user_ids;
        let ExprKind::And(items) = &expr.node else { return Ok(self.expr(expr, universe)?.len()) };
        let shaped: Vec<Option<(Users<'a>, bool)>> =
            items.iter().map(|item| self.bitmap_shaped(item)).collect();
        if let Some(count) = self.dense_count(items, &shaped) {
            return Ok(count);
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        if shaped.iter().all(Option::is_some) {
            // Positive sets largest first, negations last.
            order.sort_by_key(|&i| match &shaped[i] {
                Some((users, false)) => (0, u64::MAX - users.len()),
                _ => (1, 0),
            });
        } else {
            order.sort_by_key(|&i| (cost(&items[i]), self.estimate(&items[i])));
        }
        let Some((&last, rest)) = order.split_last() else { return Ok(universe.len()) };
        if shaped[last].is_none() {
            return Ok(self.expr(expr, universe)?.len());
        }
        self.nested(|this| {
            // The first positive set over the universe is read where it is, not copied.
            let mut current: Option<Cow<'_, RoaringBitmap>> = None;
            for &i in rest {
                let narrowed = current.as_deref().unwrap_or(universe);
                if narrowed.is_empty() {
                    return Ok(0);
                }
                current = Some(match &shaped[i] {
                    Some((users, negated)) => {
                        let started = Instant::now();
                        let result = if *negated {
                            Cow::Owned(narrowed - &**users)
                        } else if std::ptr::eq(narrowed, universe) {
                            Cow::Borrowed(&**users)
                        } else {
                            Cow::Owned(&**users & narrowed)
                        };
                        this.step(&items[i], narrowed.len(), result.len(), started);
                        result
                    }
                    None => Cow::Owned(this.expr(&items[i], narrowed)?),
                });
            }
            let narrowed = current.as_deref().unwrap_or(universe);
            let started = Instant::now();
            let Some((users, negated)) = &shaped[last] else { return Ok(0) };
            let both = narrowed.intersection_len(users);
            let count = if *negated { narrowed.len() - both } else { both };
            this.step(&items[last], narrowed.len(), count, started);
            Ok(count)
        })
    }

    /// Counts an `and` of event windows over bit sets, when every child is
    /// one and the sets are sparse enough for that to be cheaper.
    fn dense_count(
        &mut self,
        items: &[ql::Expr],
        shaped: &[Option<(Users<'a>, bool)>],
    ) -> Option<u64> {
        let mut windows: Vec<(usize, &RoaringBitmap, DaySpan, bool)> = shaped
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Some((Users::Window(users, days), negated)) => Some((i, &**users, *days, *negated)),
                _ => None,
            })
            .collect::<Option<_>>()?;
        // Positive sets first: the first one starts the bit set.
        windows.sort_by_key(|w| w.3);
        let words = self.state.indexes.all_user_ids.max().map_or(0, |m| m as usize / 64 + 1);
        let ids: u64 = windows.iter().map(|w| w.1.len()).sum();
        // Roaring costs a few ns per id of sparse sets; a bit set pass ~1 ns per word.
        if windows.len() < 2 || ids < (windows.len() * words) as u64 || windows[0].3 {
            return None;
        }
        self.nested(|this| {
            let mut bits: Option<Vec<u64>> = None;
            let mut scope_users = this.state.indexes.all_user_ids.len();
            for &(i, users, days, negated) in &windows {
                let started = Instant::now();
                let state = this.state;
                let dense = state.columns.dense(state, days, words, || Arc::new(users.clone()));
                let selected = match &mut bits {
                    None => {
                        bits = Some(dense.to_vec());
                        users.len()
                    }
                    Some(bits) => {
                        let mut ones = 0;
                        for (word, other) in bits.iter_mut().zip(dense.iter()) {
                            *word &= if negated { !other } else { *other };
                            ones += u64::from(word.count_ones());
                        }
                        ones
                    }
                };
                this.step(&items[i], scope_users, selected, started);
                scope_users = selected;
            }
            Ok(scope_users)
        })
        .ok()
    }

    pub(super) fn step(
        &mut self,
        expr: &ql::Expr,
        scope_users: u64,
        selected_users: u64,
        started: Instant,
    ) {
        if !self.record_plan {
            return;
        }
        self.plan.push(PlanStep {
            depth: self.depth,
            clause: expr.to_string(),
            scope_users,
            selected_users,
            took_us: started.elapsed().as_micros() as u64,
        });
    }
}
