//! Clause evaluation over event-major day rows (`day_rows.rs`) instead
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

use super::Source;
use crate::clock::{DAY_MS, day_of};
pub(crate) use crate::query::day_rows::RowCondition;
use crate::query::day_rows::{CODE_SET_BITS, CodeSet, DayRows, NO_VALUE, RowsView};
use crate::store::dict::{EventId, UserId};
use crate::store::props::KeyId;
use crate::store::state::timeline::TimelineEntry;

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

/// The days with rows of `event` inside `range`, ascending.
fn days(state: &Source<'_>, event: EventId, range: Range) -> Vec<i32> {
    if range.is_empty() {
        return Vec::new();
    }
    state.indexes.event_user_ids.get(event as usize).map_or_else(Vec::new, |index| {
        index.by_bucket[0].range(day_of(range.lo)..=day_of(range.hi)).map(|(d, _)| *d).collect()
    })
}

/// Users per block of [`Gatherer::select`]: its per-user offsets stay in the core's cache.
const BLOCK_USERS: u32 = 1 << 13;

/// Bytes of per-user scratch per block of [`accumulate`]: small enough for
/// the core's first-level cache while the block's rows of every day are added in.
const BLOCK_SCRATCH_BYTES: usize = 32 * 1024;

/// Users per block of [`accumulate`] for a per-user state `S`.
fn block_users<S>() -> u32 {
    (BLOCK_SCRATCH_BYTES / std::mem::size_of::<S>().max(1)).next_power_of_two().clamp(1024, 1 << 16)
        as u32
}

/// Candidates from which checking them is split between threads.
pub(crate) const PARALLEL_MIN_CANDIDATES: u64 = 8 * 1024;

/// Runs `check` on parts of `candidates` (disjoint ranges of user ids), one
/// per available core when there are enough candidates, and unites the
/// answers.
pub(crate) fn in_parallel(
    candidates: &RoaringBitmap,
    check: impl Fn(&RoaringBitmap) -> RoaringBitmap + Sync,
) -> RoaringBitmap {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    if threads < 2 || candidates.len() < PARALLEL_MIN_CANDIDATES {
        return check(candidates);
    }
    let mut parts = Vec::new();
    let mut rest = candidates.clone();
    for i in (1..threads).rev() {
        let Some(split) = rest.select((rest.len() * i / (i + 1)) as u32) else { break };
        let mut upper = rest.clone();
        upper.remove_range(..split);
        rest.remove_range(split..);
        parts.push(upper);
    }
    parts.push(rest);
    let check = &check;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts.iter().map(|part| scope.spawn(move || check(part))).collect();
        let mut united = RoaringBitmap::new();
        for handle in handles {
            match handle.join() {
                Ok(part) => united |= part,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        united
    })
}

/// Folds, for each candidate, the rows of each day (in day order) into a
/// per-user state and keeps the candidates whose state passes `keep`.
///
/// Works one block of user ids at a time: the days' user lists are sorted, so
/// a block's users form one run in each of them; blocks holding no
/// candidate are skipped. Parts of the candidates run on parallel threads.
fn accumulate<S: Clone + Default>(
    days: &[RowsView<'_>],
    candidates: &RoaringBitmap,
    add: impl Fn(&mut S, usize, std::ops::Range<usize>) + Sync,
    keep: impl Fn(&S) -> bool + Sync,
) -> RoaringBitmap {
    let add_run = |scratch: &mut [S], base: UserId, d: usize, rows: &RowsView<'_>, run: Run| {
        for i in run {
            let rows_of_user = rows.starts[i] as usize..rows.starts[i + 1] as usize;
            add(&mut scratch[(rows.users[i] - base) as usize], d, rows_of_user);
        }
    };
    accumulate_runs(days, candidates, add_run, keep)
}

/// A run of positions in a day's user list.
type Run = std::ops::Range<usize>;

/// [`accumulate`], with `add_run` folding a whole run of a day's users (of
/// one block, whose first id is `base`) into the block's scratch at once.
fn accumulate_runs<S: Clone + Default>(
    days: &[RowsView<'_>],
    candidates: &RoaringBitmap,
    add_run: impl Fn(&mut [S], UserId, usize, &RowsView<'_>, Run) + Sync,
    keep: impl Fn(&S) -> bool + Sync,
) -> RoaringBitmap {
    in_parallel(candidates, |part| accumulate_part(days, part, &add_run, &keep))
}

fn accumulate_part<S: Clone + Default>(
    days: &[RowsView<'_>],
    candidates: &RoaringBitmap,
    add_run: &impl Fn(&mut [S], UserId, usize, &RowsView<'_>, Run),
    keep: &impl Fn(&S) -> bool,
) -> RoaringBitmap {
    let block = block_users::<S>();
    let mut scratch = vec![S::default(); block as usize];
    let mut cursors = vec![0usize; days.len()];
    let mut runs = vec![0..0; days.len()];
    let mut selected = Vec::new();
    let mut pending = candidates.iter().peekable();
    while let Some(&first) = pending.peek() {
        let base = first - first % block;
        let end = base.saturating_add(block);
        for (d, rows) in days.iter().enumerate() {
            let from = seek(rows.users, cursors[d], base);
            let to = seek(rows.users, from, end);
            add_run(&mut scratch, base, d, rows, from..to);
            runs[d] = from..to;
            cursors[d] = to;
        }
        while let Some(user) = pending.next_if(|&u| u < end) {
            if keep(&scratch[(user - base) as usize]) {
                selected.push(user);
            }
        }
        let touched: usize = runs.iter().map(ExactSizeIterator::len).sum();
        if touched > scratch.len() / 4 {
            scratch.fill(S::default());
        } else {
            for (rows, run) in days.iter().zip(&runs) {
                for &user in &rows.users[run.clone()] {
                    scratch[(user - base) as usize] = S::default();
                }
            }
        }
    }
    super::from_ascending(selected.into_iter())
}

/// Which rows of a day's rows lie in `range` (`None`: the whole day does).
fn in_range<'a>(
    day: i32,
    range: Range,
    rows: &RowsView<'a>,
) -> Option<impl Fn(usize) -> bool + Sync + 'a> {
    let ts_ms = rows.ts_ms;
    (!range.covers_day(day)).then_some(move |r: usize| range.contains(ts_ms[r]))
}

/// The views of `rows`.
fn views(rows: &[Arc<DayRows>]) -> Vec<RowsView<'_>> {
    rows.iter().map(|r| r.view()).collect()
}

/// The rows of `event` (passing `condition`) on each of `days`.
fn rows_of(
    state: &Source<'_>,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    days: &[i32],
) -> Vec<Arc<DayRows>> {
    state.columns.prefetch(state, event, condition, days);
    days.iter().map(|&day| state.columns.day_rows(state, event, day, condition)).collect()
}

/// Users of `candidates` whose number of matching `event` rows in `range`
/// satisfies `holds`.
pub(crate) fn count(
    state: &Source<'_>,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(u64) -> bool + Sync,
) -> RoaringBitmap {
    let days = days(state, event, range);
    let held = rows_of(state, event, condition, &days);
    let rows = views(&held);
    let filters: Vec<_> =
        days.iter().zip(&rows).map(|(&day, day_rows)| in_range(day, range, day_rows)).collect();
    accumulate_runs(
        &rows,
        candidates,
        |scratch: &mut [u32], base, d, rows, run| match &filters[d] {
            None => {
                let starts = &rows.starts[run.start..=run.end];
                for (&user, bounds) in rows.users[run].iter().zip(starts.windows(2)) {
                    scratch[(user - base) as usize] += bounds[1] - bounds[0];
                }
            }
            Some(in_range) => {
                for i in run {
                    let span = rows.starts[i] as usize..rows.starts[i + 1] as usize;
                    scratch[(rows.users[i] - base) as usize] +=
                        span.filter(|&r| in_range(r)).count() as u32;
                }
            }
        },
        |&n| holds(u64::from(n)),
    )
}

/// Users of `candidates` whose aggregate of `key` over matching `event` rows
/// in `range` satisfies `holds` (no counted value: not selected).
pub(crate) fn aggregate(
    state: &Source<'_>,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    (key, function): (KeyId, AggregateFn),
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(f64) -> bool + Sync,
) -> RoaringBitmap {
    if function == AggregateFn::CountDistinct {
        return count_distinct(state, event, condition, key, range, candidates, holds);
    }
    let days = days(state, event, range);
    let held = rows_of(state, event, condition, &days);
    let rows = views(&held);
    let numbers: Vec<_> = days
        .iter()
        .map(|&day| state.columns.numbers(state, (event, day, condition), key))
        .collect();
    let filters: Vec<_> =
        days.iter().zip(&rows).map(|(&day, day_rows)| in_range(day, range, day_rows)).collect();
    accumulate(
        &rows,
        candidates,
        |(counted, acc): &mut (u32, f64), d, run| {
            for r in run {
                let n = numbers[d][r];
                if n.is_nan() || filters[d].as_ref().is_some_and(|in_range| !in_range(r)) {
                    continue;
                }
                *acc = if *counted == 0 {
                    n
                } else {
                    match function {
                        AggregateFn::Min => acc.min(n),
                        AggregateFn::Max => acc.max(n),
                        _ => *acc + n,
                    }
                };
                *counted += 1;
            }
        },
        |&(counted, acc)| {
            counted > 0
                && holds(if function == AggregateFn::Avg { acc / f64::from(counted) } else { acc })
        },
    )
}

fn count_distinct(
    state: &Source<'_>,
    event: EventId,
    condition: Option<&RowCondition<'_>>,
    key: KeyId,
    range: Range,
    candidates: &RoaringBitmap,
    holds: impl Fn(f64) -> bool + Sync,
) -> RoaringBitmap {
    let days = days(state, event, range);
    let held = rows_of(state, event, condition, &days);
    let rows = views(&held);
    let codes: Vec<_> =
        days.iter().map(|&day| state.columns.codes(state, (event, day, condition), key)).collect();
    let filters: Vec<_> =
        days.iter().zip(&rows).map(|(&day, day_rows)| in_range(day, range, day_rows)).collect();
    let counted = |d: usize, r: usize| {
        codes[d][r] != NO_VALUE && filters[d].as_ref().is_none_or(|in_range| in_range(r))
    };
    if state.columns.code_count(key) <= CODE_SET_BITS {
        // Few distinct values: a bit set per user; whole days OR in the set
        // of each user-day, partial days add row by row.
        let sets: Option<Vec<_>> = days
            .iter()
            .zip(&filters)
            .map(|(&day, filter)| match filter {
                None => state.columns.code_sets(state, (event, day, condition), key).map(Some),
                Some(_) => Some(None),
            })
            .collect();
        if let Some(sets) = sets {
            return accumulate_runs(
                &rows,
                candidates,
                |scratch: &mut [CodeSet], base, d, day_rows, run| match &sets[d] {
                    Some(sets) => {
                        for (&user, set) in day_rows.users[run.clone()].iter().zip(&sets[run]) {
                            let seen = &mut scratch[(user - base) as usize];
                            for (word, bits) in seen.iter_mut().zip(set) {
                                *word |= bits;
                            }
                        }
                    }
                    None => {
                        for i in run {
                            let seen = &mut scratch[(day_rows.users[i] - base) as usize];
                            let span = day_rows.starts[i] as usize..day_rows.starts[i + 1] as usize;
                            for r in span.filter(|&r| counted(d, r)) {
                                let code = codes[d][r] as usize;
                                seen[code / 64] |= 1 << (code % 64);
                            }
                        }
                    }
                },
                |seen| {
                    let n: u32 = seen.iter().map(|w| w.count_ones()).sum();
                    n > 0 && holds(f64::from(n))
                },
            );
        }
    }
    // Many: (user, code) pairs, sorted and deduplicated.
    let mut pairs: Vec<u64> = Vec::new();
    for (d, day_rows) in rows.iter().enumerate() {
        for (i, &user) in day_rows.users.iter().enumerate() {
            if candidates.contains(user) {
                let run = day_rows.starts[i] as usize..day_rows.starts[i + 1] as usize;
                pairs.extend(
                    run.filter(|&r| counted(d, r))
                        .map(|r| (u64::from(user) << 32) | u64::from(codes[d][r])),
                );
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    super::from_ascending(
        pairs
            .chunk_by(|a, b| a >> 32 == b >> 32)
            .filter(|run| holds(run.len() as f64))
            .map(|run| (run[0] >> 32) as UserId),
    )
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

/// One event's days in play.
struct EventDays {
    event: EventId,
    range: Range,
    days: Vec<Arc<DayRows>>,
}

/// Gathers each candidate's rows of some events, in time order.
pub(crate) struct Gatherer {
    events: Vec<EventDays>,
}

impl Gatherer {
    /// Reads the day rows of each `(event, range)` (an event listed twice is
    /// read once, over the union of its ranges).
    pub fn new(state: &Source<'_>, wanted: &[(EventId, Range)]) -> Gatherer {
        let mut merged: Vec<(EventId, Range)> = Vec::new();
        for &(event, range) in wanted {
            match merged.iter_mut().find(|(e, _)| *e == event) {
                Some((_, r)) => *r = Range { lo: r.lo.min(range.lo), hi: r.hi.max(range.hi) },
                None => merged.push((event, range)),
            }
        }
        let events = merged
            .into_iter()
            .map(|(event, range)| {
                let days = days(state, event, range);
                EventDays { event, range, days: rows_of(state, event, None, &days) }
            })
            .collect();
        Gatherer { events }
    }

    /// Keeps the candidates for which `check` holds. `check` gets the user's
    /// rows of the events in time order, or `None` when rows of different
    /// events share a timestamp (their order is unknown here).
    ///
    /// Works one block of user ids at a time, like [`accumulate`]: each day's
    /// run of the block's users is read once, and the rows are grouped by
    /// user with a counting pass and a filling pass.
    pub fn select(
        &self,
        candidates: &RoaringBitmap,
        check: impl Fn(UserId, Option<&[TimelineEntry]>) -> bool,
    ) -> RoaringBitmap {
        let runs: Vec<(&EventDays, RowsView<'_>)> =
            self.events.iter().flat_map(|e| e.days.iter().map(move |d| (e, d.view()))).collect();
        let mut cursors = vec![0usize; runs.len()];
        let mut spans = vec![0..0; runs.len()];
        let block = BLOCK_USERS as usize;
        let mut offsets = vec![0u32; block + 1];
        let mut fill = vec![0u32; block];
        let mut entries: Vec<TimelineEntry> = Vec::new();
        let mut selected = Vec::new();
        let mut pending = candidates.iter().peekable();
        while let Some(&first) = pending.peek() {
            let base = first - first % BLOCK_USERS;
            let end = base.saturating_add(BLOCK_USERS);
            offsets.fill(0);
            for (k, (event, rows)) in runs.iter().enumerate() {
                let from = seek(rows.users, cursors[k], base);
                let to = seek(rows.users, from, end);
                for i in from..to {
                    let span = rows.starts[i] as usize..rows.starts[i + 1] as usize;
                    let n = span.filter(|&r| event.range.contains(rows.ts_ms[r])).count();
                    offsets[(rows.users[i] - base) as usize + 1] += n as u32;
                }
                spans[k] = from..to;
                cursors[k] = to;
            }
            for slot in 0..block {
                offsets[slot + 1] += offsets[slot];
            }
            entries.clear();
            entries.resize(offsets[block] as usize, TimelineEntry::new(0, 0, 0));
            fill.copy_from_slice(&offsets[..block]);
            for ((event, rows), span) in runs.iter().zip(&spans) {
                for i in span.clone() {
                    let slot = (rows.users[i] - base) as usize;
                    for r in rows.starts[i] as usize..rows.starts[i + 1] as usize {
                        if event.range.contains(rows.ts_ms[r]) {
                            let at = fill[slot] as usize;
                            entries[at] =
                                TimelineEntry::new(rows.ts_ms[r], event.event, rows.handle(r));
                            fill[slot] += 1;
                        }
                    }
                }
            }
            while let Some(user) = pending.next_if(|&u| u < end) {
                let slot = (user - base) as usize;
                let mine = &mut entries[offsets[slot] as usize..offsets[slot + 1] as usize];
                let ordered = self.events.len() < 2 || {
                    mine.sort_by_key(|e| e.ts_ms);
                    !mine
                        .windows(2)
                        .any(|w| w[0].ts_ms == w[1].ts_ms && w[0].event() != w[1].event())
                };
                if check(user, ordered.then_some(&*mine)) {
                    selected.push(user);
                }
            }
        }
        super::from_ascending(selected.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::aggregate;

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
                values.iter().map(|&n| crate::store::props::ValueRef::Number(n)),
            )
            .expect("values were given");
            assert_eq!(acc.to_bits(), expected.to_bits(), "{function:?}");
        }
    }
}
