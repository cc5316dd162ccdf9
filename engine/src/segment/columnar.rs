//! Clause evaluation over event-major day rows (`state/day_rows.rs`) instead
//! of per-user timelines, for when many candidates must be checked.
//!
//! - Counts and aggregates are one pass over the rows of the event's days in
//!   the window, accumulating into per-user arrays: the days are visited in
//!   order and each user's rows of a day are in timeline order, so every
//!   user's values are added in time order, exactly as the timeline path adds
//!   them (floating-point sums agree to the bit).
//! - Sequences, `then not` and in-a-row gather each candidate's rows of the
//!   events involved ([`Gatherer`]) and run the timeline logic on that
//!   sub-timeline. Events of different kinds at the same millisecond cannot be
//!   ordered from day rows (arrival order breaks such ties), so such a user is
//!   checked on the timeline instead.

use std::sync::Arc;

use nudge_query_lang::AggregateFn;
use roaring::RoaringBitmap;

use crate::clock::{DAY_MS, day_of};
use crate::dict::{EventId, UserId};
use crate::props::KeyId;
use crate::state::DerivedState;
use crate::state::day_rows::{DayRows, NO_VALUE};
use crate::state::timeline::TimelineEntry;

/// An inclusive range of timestamps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub lo: i64,
    pub hi: i64,
}

impl Range {
    pub fn is_empty(&self) -> bool {
        self.lo > self.hi
    }

    fn contains(&self, ts: i64) -> bool {
        self.lo <= ts && ts <= self.hi
    }

    /// Whether `day` lies wholly inside the range.
    fn covers_day(&self, day: i32) -> bool {
        let start = i64::from(day) * DAY_MS;
        self.lo <= start && start + DAY_MS - 1 <= self.hi
    }
}

/// A `where` condition as day rows need it: its canonical text (the cache
/// key) and its test of a property blob.
pub(crate) struct RowCondition<'c> {
    pub text: &'c str,
    pub holds: &'c dyn Fn(&[u8]) -> bool,
}

/// The days with rows of `event` inside `range`, ascending.
fn days(state: &DerivedState, event: EventId, range: Range) -> Vec<i32> {
    if range.is_empty() {
        return Vec::new();
    }
    state.indexes.event_user_ids.get(event as usize).map_or_else(Vec::new, |index| {
        index.by_bucket[0].range(day_of(range.lo)..=day_of(range.hi)).map(|(d, _)| *d).collect()
    })
}

/// A per-user array as large as the biggest user id in play.
fn per_user<T: Clone + Default>(state: &DerivedState) -> Vec<T> {
    let len = state.indexes.all_user_ids.max().map_or(0, |m| m as usize + 1);
    vec![T::default(); len]
}

/// The rows of `rows` to count: in `range` and, with a condition, where it holds.
fn row_filter<'r>(
    state: &'r DerivedState,
    event: EventId,
    day: i32,
    range: Range,
    condition: Option<&RowCondition<'_>>,
    rows: &'r DayRows,
) -> impl Fn(usize) -> bool + 'r {
    let whole = range.covers_day(day);
    let mask = condition.map(|c| state.columns.mask(state, event, day, c.text, c.holds));
    move |r| (whole || range.contains(rows.ts_ms[r])) && mask.as_ref().is_none_or(|m| m[r])
}

/// Users of `candidates` whose number of matching `event` rows in `range`
/// satisfies `holds`.
pub(crate) fn count(
    state: &DerivedState,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(u64) -> bool,
) -> RoaringBitmap {
    let mut counts: Vec<u32> = per_user(state);
    for day in days(state, event, range) {
        let rows = state.columns.day_rows(state, event, day);
        if range.covers_day(day) && condition.is_none() {
            for (i, &user) in rows.users.iter().enumerate() {
                counts[user as usize] += rows.starts[i + 1] - rows.starts[i];
            }
            continue;
        }
        let keep = row_filter(state, event, day, range, condition, &rows);
        for (i, &user) in rows.users.iter().enumerate() {
            let n =
                (rows.starts[i] as usize..rows.starts[i + 1] as usize).filter(|&r| keep(r)).count();
            counts[user as usize] += n as u32;
        }
    }
    select(candidates, |u| holds(u64::from(counts[u as usize])))
}

fn select(candidates: &RoaringBitmap, keep: impl Fn(UserId) -> bool) -> RoaringBitmap {
    let mut out = RoaringBitmap::new();
    for user in candidates.iter().filter(|&u| keep(u)) {
        out.push(user);
    }
    out
}

/// Users of `candidates` whose aggregate of `key` over matching `event` rows
/// in `range` satisfies `holds` (no counted value: not selected).
pub(crate) fn aggregate(
    state: &DerivedState,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    key: KeyId,
    function: AggregateFn,
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(f64) -> bool,
) -> RoaringBitmap {
    if function == AggregateFn::CountDistinct {
        return count_distinct(state, event, condition, key, range, candidates, holds);
    }
    let mut counted: Vec<u32> = per_user(state);
    let mut acc: Vec<f64> = per_user(state);
    for day in days(state, event, range) {
        let rows = state.columns.day_rows(state, event, day);
        let numbers = state.columns.numbers(state, event, day, key);
        let keep = row_filter(state, event, day, range, condition, &rows);
        for (i, &user) in rows.users.iter().enumerate() {
            let u = user as usize;
            for r in rows.starts[i] as usize..rows.starts[i + 1] as usize {
                let n = numbers[r];
                if n.is_nan() || !keep(r) {
                    continue;
                }
                acc[u] = if counted[u] == 0 {
                    n
                } else {
                    match function {
                        AggregateFn::Min => acc[u].min(n),
                        AggregateFn::Max => acc[u].max(n),
                        _ => acc[u] + n,
                    }
                };
                counted[u] += 1;
            }
        }
    }
    select(candidates, |u| {
        let (n, value) = (counted[u as usize], acc[u as usize]);
        n > 0 && holds(if function == AggregateFn::Avg { value / f64::from(n) } else { value })
    })
}

fn count_distinct(
    state: &DerivedState,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    key: KeyId,
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(f64) -> bool,
) -> RoaringBitmap {
    // (user, code) pairs, deduplicated within each user's day first.
    let mut pairs: Vec<u64> = Vec::new();
    let mut day_codes: Vec<u32> = Vec::new();
    for day in days(state, event, range) {
        let rows = state.columns.day_rows(state, event, day);
        let codes = state.columns.codes(state, event, day, key);
        let keep = row_filter(state, event, day, range, condition, &rows);
        for (i, &user) in rows.users.iter().enumerate() {
            if !candidates.contains(user) {
                continue;
            }
            day_codes.clear();
            day_codes.extend(
                (rows.starts[i] as usize..rows.starts[i + 1] as usize)
                    .filter(|&r| codes[r] != NO_VALUE && keep(r))
                    .map(|r| codes[r]),
            );
            day_codes.sort_unstable();
            day_codes.dedup();
            pairs.extend(day_codes.iter().map(|&c| (u64::from(user) << 32) | u64::from(c)));
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = RoaringBitmap::new();
    for run in pairs.chunk_by(|a, b| a >> 32 == b >> 32) {
        if holds(run.len() as f64) {
            out.push((run[0] >> 32) as UserId);
        }
    }
    out
}

/// The first index `>= from` in the ascending `users` holding `user` or
/// something larger, found by galloping (candidates are visited in order).
fn seek(users: &[UserId], from: usize, user: UserId) -> usize {
    let rest = &users[from.min(users.len())..];
    let mut bound = 1;
    while bound <= rest.len() && rest[bound - 1] < user {
        bound *= 2;
    }
    // rest[bound / 2 - 1] < user, and rest[bound - 1] >= user when it exists.
    let lo = bound / 2;
    let hi = bound.min(rest.len());
    from.min(users.len()) + lo + rest[lo..hi].partition_point(|&u| u < user)
}

/// One event's days in play, with a cursor per day.
struct EventDays {
    event: EventId,
    range: Range,
    days: Vec<(Arc<DayRows>, usize)>,
}

/// Gathers, user by ascending user, the rows of some events in their ranges.
pub(crate) struct Gatherer {
    events: Vec<EventDays>,
}

impl Gatherer {
    /// Reads the day rows of each `(event, range)` (an event listed twice is
    /// read once, over the union of its ranges).
    pub fn new(state: &DerivedState, wanted: &[(EventId, Range)]) -> Gatherer {
        let mut merged: Vec<(EventId, Range)> = Vec::new();
        for &(event, range) in wanted {
            match merged.iter_mut().find(|(e, _)| *e == event) {
                Some((_, r)) => *r = Range { lo: r.lo.min(range.lo), hi: r.hi.max(range.hi) },
                None => merged.push((event, range)),
            }
        }
        let events = merged
            .into_iter()
            .map(|(event, range)| EventDays {
                event,
                range,
                days: days(state, event, range)
                    .into_iter()
                    .map(|day| (state.columns.day_rows(state, event, day), 0))
                    .collect(),
            })
            .collect();
        Gatherer { events }
    }

    /// Fills `out` with `user`'s rows in time order; false when rows of
    /// different events share a timestamp (their order is unknown here).
    /// Users must be asked in ascending order.
    pub fn gather(&mut self, user: UserId, out: &mut Vec<TimelineEntry>) -> bool {
        out.clear();
        for event in &mut self.events {
            for (rows, at) in &mut event.days {
                *at = seek(&rows.users, *at, user);
                if rows.users.get(*at) != Some(&user) {
                    continue;
                }
                let span = rows.starts[*at] as usize..rows.starts[*at + 1] as usize;
                for r in span {
                    let ts = rows.ts_ms[r];
                    if event.range.contains(ts) {
                        out.push(TimelineEntry::new(ts, event.event, rows.props_at[r]));
                    }
                }
            }
        }
        if self.events.len() > 1 {
            out.sort_by_key(|e| e.ts_ms);
            if out.windows(2).any(|w| w[0].ts_ms == w[1].ts_ms && w[0].event() != w[1].event()) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::aggregate;

    #[test]
    fn seek_finds_the_first_user_not_below() {
        let users = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21];
        for from in 0..users.len() {
            for user in 0..23 {
                let expected = from + users[from..].partition_point(|&u| u < user);
                assert_eq!(seek(&users, from, user), expected, "from {from}, user {user}");
            }
        }
        assert_eq!(seek(&[], 0, 4), 0);
    }

    #[test]
    fn aggregate_functions_agree_with_the_timeline_path() {
        // The accumulation above mirrors `aggregate::compute`; check the
        // orders of min/max/sum on one sequence.
        let values = [3.0, -0.0, 0.0, 7.5, 1.25];
        for function in [AggregateFn::Sum, AggregateFn::Min, AggregateFn::Max, AggregateFn::Avg] {
            let mut acc = 0.0;
            for (i, &n) in values.iter().enumerate() {
                acc = if i == 0 {
                    n
                } else {
                    match function {
                        AggregateFn::Min => f64::min(acc, n),
                        AggregateFn::Max => f64::max(acc, n),
                        _ => acc + n,
                    }
                };
            }
            if function == AggregateFn::Avg {
                acc /= values.len() as f64;
            }
            let expected = aggregate::compute(
                function,
                values.iter().map(|&n| crate::props::ValueRef::Number(n)),
            )
            .unwrap();
            assert_eq!(acc.to_bits(), expected.to_bits(), "{function:?}");
        }
    }
}
