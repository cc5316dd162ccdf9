//! Per-user semantics of the behavioural clauses of the reference evaluator.
//!
//! Every function takes one user's events with `ts <= now` (future events never count),
//! ordered by (timestamp, arrival), and decides whether the clause selects that user, by a
//! plain scan that follows the section "Evaluation semantics" of `docs/query-language.md`.

use nudge_engine::Value;
use nudge_query_lang::{
    Aggregate, AggregateFn, Count, Did, Duration, EventFilter, FirstLast, InARow, Sequence,
    Spanned, ThenNot, TimePoint, Window,
};

use super::StoredEvent;
use super::compare::{compare_numbers, condition_holds, key};

/// A user's visible events, in order.
type Events<'a> = [&'a StoredEvent];

/// `did E [where C] [COUNT] [WINDOW]`: c ≥ 1 matching events in the window, and COUNT holds.
pub fn did(events: &Events<'_>, did: &Did, now: i64) -> bool {
    let window = did.window.as_ref();
    let c = events
        .iter()
        .filter(|event| matches(event, &did.filter) && in_window(event.ts, window, now))
        .count();
    c >= 1 && did.count.as_ref().is_none_or(|count| count_holds(count.node, c))
}

/// `did E1 then E2 … [within D] [WINDOW]`: a chain of events at strictly increasing
/// positions, each matching its step and in the window, the last within D of the first.
pub fn sequence(events: &Events<'_>, sequence: &Sequence, now: i64) -> bool {
    let within = sequence.within.as_ref().map(|d| duration_ms(d.node));
    let window = sequence.window.as_ref();
    chain_exists(events, &sequence.steps, 0, None, within, window, now)
}

/// Whether `steps` can be matched at positions `from..` (`first_ts`: the chain's start).
fn chain_exists(
    events: &Events<'_>,
    steps: &[EventFilter],
    from: usize,
    first_ts: Option<i64>,
    within: Option<i64>,
    window: Option<&Spanned<Window>>,
    now: i64,
) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return true;
    };
    (from..events.len()).any(|i| {
        let event = events[i];
        let start = first_ts.unwrap_or(event.ts);
        matches(event, step)
            && in_window(event.ts, window, now)
            && within.is_none_or(|d| i128::from(event.ts) - i128::from(start) <= i128::from(d))
            && chain_exists(events, rest, i + 1, Some(start), within, window, now)
    })
}

/// `did E then not F within D [WINDOW]`: some matching E in the window with
/// `ts(e) + D <= now` and no matching F at a later position with `ts(F) - ts(e) <= D`.
pub fn then_not(events: &Events<'_>, then_not: &ThenNot, now: i64) -> bool {
    let d = i128::from(duration_ms(then_not.within.node));
    let window = then_not.window.as_ref();
    events.iter().enumerate().any(|(i, e)| {
        matches(e, &then_not.first)
            && in_window(e.ts, window, now)
            && i128::from(e.ts) + d <= i128::from(now)
            && !events[i + 1..]
                .iter()
                .any(|f| matches(f, &then_not.absent) && i128::from(f.ts) - i128::from(e.ts) <= d)
    })
}

/// `did E [where C] N times in a row [WINDOW]`: among the E events in the window, in order,
/// a run of N consecutive ones satisfying C (an E failing C breaks the run; other events
/// do not). `0 times in a row` is read like `1 time in a row` (`did` means at least once).
pub fn in_a_row(events: &Events<'_>, in_a_row: &InARow, now: i64) -> bool {
    let needed = u64::from(in_a_row.times.node).max(1);
    let window = in_a_row.window.as_ref();
    let mut run = 0u64;
    for event in events {
        if event.name != in_a_row.filter.event.node || !in_window(event.ts, window, now) {
            continue;
        }
        if matches(event, &in_a_row.filter) {
            run += 1;
            if run >= needed {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// `first did E [where C] WINDOW`: the earliest matching event (all time up to now) lies in
/// the window.
pub fn first_did(events: &Events<'_>, first: &FirstLast, now: i64) -> bool {
    events
        .iter()
        .find(|event| matches(event, &first.filter))
        .is_some_and(|event| in_window(event.ts, Some(&first.window), now))
}

/// `last did E [where C] WINDOW`: the latest matching event (up to now) lies in the window.
pub fn last_did(events: &Events<'_>, last: &FirstLast, now: i64) -> bool {
    events
        .iter()
        .rev()
        .find(|event| matches(event, &last.filter))
        .is_some_and(|event| in_window(event.ts, Some(&last.window), now))
}

/// `AGG(p) of E [where C] [WINDOW] CMP x`; a user with no counted value is not selected.
pub fn aggregate(events: &Events<'_>, aggregate: &Aggregate, now: i64) -> bool {
    let key = key(&aggregate.property.node);
    let window = aggregate.window.as_ref();
    let values: Vec<&Value> = events
        .iter()
        .filter(|event| matches(event, &aggregate.filter) && in_window(event.ts, window, now))
        .filter_map(|event| event.prop(&key))
        .collect();
    let result = match aggregate.function.node {
        AggregateFn::CountDistinct => count_distinct(&values),
        function => numeric_aggregate(function, &numbers(&values)),
    };
    result.is_some_and(|r| compare_numbers(r, aggregate.op.node, aggregate.value.node.as_f64()))
}

/// The number values among `values`, in order (the rest are skipped).
fn numbers(values: &[&Value]) -> Vec<f64> {
    values
        .iter()
        .filter_map(|value| match value {
            Value::Number(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// `sum`, `avg`, `min` or `max` of `numbers` (summed in timeline order); `None` if empty.
fn numeric_aggregate(function: AggregateFn, numbers: &[f64]) -> Option<f64> {
    if numbers.is_empty() {
        return None;
    }
    let sum: f64 = numbers.iter().sum();
    Some(match function {
        AggregateFn::Sum => sum,
        AggregateFn::Avg => sum / numbers.len() as f64,
        AggregateFn::Min => numbers.iter().copied().fold(f64::INFINITY, f64::min),
        AggregateFn::Max => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        AggregateFn::CountDistinct => return None,
    })
}

/// How many distinct values (of any type; an array is one value) `values` holds; `None` if
/// empty. Values of different types are distinct; numbers compare numerically.
fn count_distinct(values: &[&Value]) -> Option<f64> {
    let mut distinct: Vec<&Value> = Vec::new();
    for value in values {
        if !distinct.contains(value) {
            distinct.push(value);
        }
    }
    (!distinct.is_empty()).then_some(distinct.len() as f64)
}

// ---------------------------------------------------------------------------- helpers

/// The event has the filter's name and satisfies its condition.
pub fn matches(event: &StoredEvent, filter: &EventFilter) -> bool {
    event.name == filter.event.node
        && filter.condition.as_ref().is_none_or(|c| condition_holds(c, &event.props))
}

/// Whether `c` matching events satisfy COUNT (the `c ≥ 1` part is the caller's).
fn count_holds(count: Count, c: usize) -> bool {
    let c = c as u64;
    match count {
        Count::AtLeast(n) => c >= u64::from(n),
        Count::AtMost(n) => c <= u64::from(n),
        Count::Exactly(n) => c == u64::from(n),
        Count::Between(low, high) => u64::from(low) <= c && c <= u64::from(high),
    }
}

/// Whether a visible event (`ts <= now`) at `ts` lies in `window` (none: all time).
pub fn in_window(ts: i64, window: Option<&Spanned<Window>>, now: i64) -> bool {
    let Some(window) = window else {
        return ts <= now;
    };
    ts <= now
        && match &window.node {
            Window::InLast(d) => now.saturating_sub(duration_ms(d.node)) <= ts,
            Window::Between(from, to) => point(from.node, now) <= ts && ts < point(to.node, now),
            Window::Since(from) => point(from.node, now) <= ts,
            Window::Before(to) => ts < point(to.node, now),
        }
}

/// A time point in epoch ms: `now`, `now - D`, or the absolute instant.
pub fn point(time: TimePoint, now: i64) -> i64 {
    match time {
        TimePoint::Absolute(ms) => ms,
        TimePoint::Now => now,
        TimePoint::Ago(d) => now.saturating_sub(duration_ms(d)),
    }
}

/// A duration in ms as an `i64` (durations are at most a million days, so this fits).
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.ms).unwrap_or(i64::MAX)
}
