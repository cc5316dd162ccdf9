//! Self-test of the brute-force reference evaluator (`tests/reference/`) that the segment
//! evaluator's differential tests compare against: hand-built datasets with hand-computed
//! answers for every rule of "Evaluation semantics" in `docs/query-language.md`, replay of
//! profiles and subscriptions, and checks that the random generators are deterministic,
//! valid and parseable.

mod reference;

use std::collections::{BTreeSet, HashMap};

use nudge_engine::validate_batch;
use nudge_engine::{Event, ProfileUpdate, Record, Subscription, Value};
use nudge_query_lang::{Expr, parse_segment};
use reference::{
    DAY_MS, HOUR_MS, NOW, Reference, random_records, random_segment, random_segment_with_saved, rng,
};

const MIN_MS: i64 = 60_000;

/// An event of `user` named `name` at `ts`.
fn ev(user: &str, name: &str, ts: i64) -> Event {
    Event::new(user, name).at(ts)
}

fn records(events: Vec<Event>) -> Vec<Record> {
    events.into_iter().map(Record::from).collect()
}

fn users(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Asserts that `query` selects exactly `expected` at [`NOW`].
#[track_caller]
fn check(reference: &Reference, query: &str, expected: &[&str]) {
    let got = reference.evaluate_str(query, NOW).unwrap_or_else(|e| panic!("{query}: {e}"));
    assert_eq!(got, users(expected), "query: {query}");
}

fn profile(user: &str) -> ProfileUpdate {
    ProfileUpdate { user_id: user.to_owned(), ..Default::default() }
}

fn subscribe(user: &str, endpoint: &str) -> Record {
    Record::Subscribe {
        user_id: user.to_owned(),
        subscription: Subscription {
            endpoint: endpoint.to_owned(),
            p256dh: "k".to_owned(),
            auth: "a".to_owned(),
        },
    }
}

// ------------------------------------------------------------------------ comparisons

fn comparison_data() -> Reference {
    Reference::new(&records(vec![
        ev("u1", "A", NOW - HOUR_MS).prop("n", 5).prop("s", "xy").prop("b", true),
        ev("u2", "A", NOW - HOUR_MS).prop("s", "yx"),
        ev("u3", "A", NOW - HOUR_MS).prop("n", 3.0).prop("b", false),
        ev("u4", "A", NOW - HOUR_MS).prop("n", "5").prop("s", "y"),
    ]))
}

#[test]
fn missing_properties_and_type_mismatches_make_tests_false() {
    let r = comparison_data();
    check(&r, r#"did "A" where n != 5"#, &["u3"]);
    check(&r, r#"did "A" where n == 5"#, &["u1"]);
    check(&r, r#"did "A" where n == 5.0"#, &["u1"]);
    check(&r, r#"did "A" where n == "5""#, &["u4"]);
    check(&r, r#"did "A" where n != "5""#, &[]);
    check(&r, r#"did "A" where not (n == 5)"#, &["u2", "u3", "u4"]);
    check(&r, r#"did "A" where not n == 5"#, &["u2", "u3", "u4"]);
    check(&r, r#"did "A" where n > 2"#, &["u1", "u3"]);
    check(&r, r#"did "A" where n <= 3"#, &["u3"]);
    check(&r, r#"did "A" where n between 3 and 5"#, &["u1", "u3"]);
    check(&r, r#"did "A" where n between 5 and 3"#, &[]);
    check(&r, r#"did "A" where n exists"#, &["u1", "u3", "u4"]);
    check(&r, r#"did "A" where n not exists"#, &["u2"]);
    check(&r, r#"did "A" where zz not exists"#, &["u1", "u2", "u3", "u4"]);
    check(&r, r#"did "A" where zz != 1"#, &[]);
}

#[test]
fn lists_strings_and_booleans_follow_the_documented_rules() {
    let r = comparison_data();
    check(&r, r#"did "A" where n in [5, "5"]"#, &["u1", "u4"]);
    check(&r, r#"did "A" where n in []"#, &[]);
    check(&r, r#"did "A" where n not in [5]"#, &["u3"]);
    check(&r, r#"did "A" where n not in [5, "x"]"#, &[]);
    check(&r, r#"did "A" where n not in []"#, &["u1", "u3", "u4"]);
    check(&r, r#"did "A" where s < "y""#, &["u1"]);
    check(&r, r#"did "A" where s >= "y""#, &["u2", "u4"]);
    check(&r, r#"did "A" where s between "x" and "y""#, &["u1", "u4"]);
    check(&r, r#"did "A" where s contains "y""#, &["u1", "u2", "u4"]);
    check(&r, r#"did "A" where s contains "xy""#, &["u1"]);
    check(&r, r#"did "A" where s starts with "y""#, &["u2", "u4"]);
    check(&r, r#"did "A" where n contains 5"#, &[]);
    check(&r, r#"did "A" where n starts with "5""#, &["u4"]);
    check(&r, r#"did "A" where b == true"#, &["u1"]);
    check(&r, r#"did "A" where b != true"#, &["u3"]);
    check(&r, r#"did "A" where b > false"#, &[]);
    check(&r, r#"did "A" where b == "true""#, &[]);
    check(&r, r#"did "A" where ((n == 5 or s == "yx") and not b exists)"#, &["u2"]);
    check(&r, r#"did "A" where (n == 5 or s == "yx")"#, &["u1", "u2"]);
}

#[test]
fn arrays_and_dotted_keys() {
    let tags = |items: &[&str]| Value::Array(items.iter().map(|s| Value::from(*s)).collect());
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW).prop("tags", tags(&["a", "b"])).prop("item.sku", "k1"),
        ev("u2", "A", NOW).prop("tags", tags(&["b", "a"])),
        ev("u3", "A", NOW).prop("tags", Value::Array(vec![Value::from(5), Value::from("a")])),
        ev("u4", "A", NOW).prop("tags", "a"),
    ]));
    check(&r, r#"did "A" where tags == ["a", "b"]"#, &["u1"]);
    check(&r, r#"did "A" where tags != ["a", "b"]"#, &["u2", "u3"]);
    check(&r, r#"did "A" where tags == "a""#, &["u4"]);
    check(&r, r#"did "A" where tags contains "a""#, &["u1", "u2", "u3", "u4"]);
    check(&r, r#"did "A" where tags contains 5"#, &["u3"]);
    check(&r, r#"did "A" where tags contains "5""#, &[]);
    check(&r, r#"did "A" where tags in ["a"]"#, &["u4"]);
    check(&r, r#"did "A" where tags == [5.0, "a",]"#, &["u3"]);
    check(&r, r#"did "A" where tags < ["z"]"#, &[]);
    check(&r, r#"did "A" where item.sku == "k1""#, &["u1"]);
    check(&r, r#"did "A" where `item.sku` == "k1""#, &["u1"]);
    check(&r, r#"did "A" where item.`sku` starts with "k""#, &["u1"]);
}

// ----------------------------------------------------------------------- did, counts

#[test]
fn counts_always_require_at_least_one_event() {
    let r = Reference::new(&records(vec![
        ev("u1", "B", NOW),
        ev("u2", "A", NOW - 1),
        ev("u3", "A", NOW - 1),
        ev("u3", "A", NOW - 2),
        ev("u4", "A", NOW - 1),
        ev("u4", "A", NOW - 1),
        ev("u4", "A", NOW - 3),
    ]));
    check(&r, r#"did "A" at most 2 times"#, &["u2", "u3"]);
    check(&r, r#"did "A" at most 0 times"#, &[]);
    check(&r, r#"did "A" at least 0 times"#, &["u2", "u3", "u4"]);
    check(&r, r#"did "A" exactly 0 times"#, &[]);
    check(&r, r#"did "A" exactly 2 times"#, &["u3"]);
    check(&r, r#"did "A" at least 3 times"#, &["u4"]);
    check(&r, r#"did "A" between 2 and 3 times"#, &["u3", "u4"]);
    check(&r, r#"did "A" between 0 and 1 time"#, &["u2"]);
    check(&r, r#"not did "A""#, &["u1"]);
    check(&r, r#"not did "A" at least 2 times"#, &["u1", "u2"]);
    check(&r, r#"did "A" in last 1ms exactly 1 time"#, &["u2", "u3"]);
}

#[test]
fn unknown_events_select_nobody_and_names_are_case_sensitive() {
    let r = Reference::new(&records(vec![ev("u1", "A", NOW), ev("u2", "B", NOW)]));
    check(&r, r#"did "Z""#, &[]);
    check(&r, r#"did "a""#, &[]);
    check(&r, r#"not did "Z""#, &["u1", "u2"]);
    check(&r, r#"sum(n) of "Z" >= 0"#, &[]);
    check(&r, r#"did "Z" then not "A" within 0s"#, &[]);
    check(&r, r#"DID "A" IN LAST 7 DAYS"#, &["u1"]);
}

// -------------------------------------------------------------------------- windows

#[test]
fn windows_have_the_documented_bounds() {
    // 2026-10-31T00:00:00Z is NOW - 1 day; NOW is 2026-11-01.
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW - DAY_MS),
        ev("u2", "A", NOW),
        ev("u3", "A", NOW - DAY_MS - 1),
        ev("u4", "A", NOW + 1),
    ]));
    check(&r, r#"did "A" between 2026-10-31 and 2026-11-01"#, &["u1"]);
    check(&r, r#"did "A" between 2026-10-31 and 2026-11-02"#, &["u1", "u2"]);
    check(&r, r#"did "A" between 2026-11-01 and 2026-10-31"#, &[]);
    check(&r, r#"did "A" since 2026-11-01"#, &["u2"]);
    check(&r, r#"did "A" since now"#, &["u2"]);
    check(&r, r#"did "A" before 2026-11-01"#, &["u1", "u3"]);
    check(&r, r#"did "A" before 2026-12-01"#, &["u1", "u2", "u3"]);
    check(&r, r#"did "A" in last 1d"#, &["u1", "u2"]);
    check(&r, r#"did "A" in last 24h"#, &["u1", "u2"]);
    check(&r, r#"did "A" in last 0s"#, &["u2"]);
    check(&r, r#"did "A" since 1d ago"#, &["u1", "u2"]);
    check(&r, r#"did "A" before 1d ago"#, &["u3"]);
    check(&r, r#"did "A" between 2d ago and 1d ago"#, &["u3"]);
    check(&r, r#"did "A" since 2026-10-31T05:30:00+05:30"#, &["u1", "u2"]);
    check(&r, r#"did "A" since 2026-10-30T23:59:59.999Z"#, &["u1", "u2", "u3"]);
}

#[test]
fn future_events_never_count() {
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW + 1).prop("n", 1),
        ev("u2", "A", NOW - HOUR_MS).prop("n", 1),
        ev("u2", "A", NOW + HOUR_MS).prop("n", 10),
        ev("u3", "A", NOW - 3 * HOUR_MS),
        ev("u3", "B", NOW + HOUR_MS),
    ]));
    check(&r, r#"did "A""#, &["u2", "u3"]);
    check(&r, r#"did "A" before 2026-11-03"#, &["u2", "u3"]);
    check(&r, r#"did "A" exactly 1 time"#, &["u2", "u3"]);
    check(&r, r#"last did "A" in last 2h"#, &["u2"]);
    check(&r, r#"first did "A" since now"#, &[]);
    check(&r, r#"sum(n) of "A" == 1"#, &["u2"]);
    check(&r, r#"max(n) of "A" > 1"#, &[]);
    check(&r, r#"did "A" then "B""#, &[]);
    check(&r, r#"did "A" 2 times in a row"#, &[]);
    check(&r, r#"did "A" then not "B" within 2h"#, &["u3"]);
    check(&r, r#"did "A" then not "B" within 4h"#, &[]);
    // Three hours later, u2's past A has waited 4h, and u3's B (no longer in the future)
    // came 4h after its A; u1's A is not 4h old yet.
    let later = |query: &str| r.evaluate_str(query, NOW + 3 * HOUR_MS);
    assert_eq!(later(r#"did "A" then not "B" within 4h"#), Ok(users(&["u2"])));
    assert_eq!(later(r#"did "A" then "B""#), Ok(users(&["u3"])));
}

// ------------------------------------------------------------------------ sequences

#[test]
fn sequences_use_timestamp_then_arrival_order() {
    let t = NOW - HOUR_MS;
    let r = Reference::new(&records(vec![
        ev("u1", "B", t),
        ev("u1", "A", t),
        ev("u2", "A", t),
        ev("u2", "B", t),
        ev("u3", "B", t + 1),
        ev("u3", "A", t),
        ev("u4", "A", t),
    ]));
    check(&r, r#"did "A" then "B""#, &["u2", "u3"]);
    check(&r, r#"did "B" then "A""#, &["u1"]);
    check(&r, r#"did "A" then "B" within 0s"#, &["u2"]);
    check(&r, r#"did "A" then "A""#, &[]);
    check(&r, r#"did "A" then "B" then "A""#, &[]);
}

#[test]
fn sequences_respect_within_and_the_window_for_every_step() {
    let r = Reference::new(&records(vec![
        // u1: the first A is too early, the second is within 15m of the B.
        ev("u1", "A", NOW - 60 * MIN_MS),
        ev("u1", "A", NOW - 20 * MIN_MS),
        ev("u1", "B", NOW - 10 * MIN_MS),
        // u2: B 30 minutes after A.
        ev("u2", "A", NOW - 40 * MIN_MS).prop("n", 1),
        ev("u2", "B", NOW - 10 * MIN_MS),
        ev("u2", "C", NOW - 5 * MIN_MS),
        // u3: A two days ago, B an hour ago.
        ev("u3", "A", NOW - 2 * DAY_MS),
        ev("u3", "B", NOW - HOUR_MS),
    ]));
    check(&r, r#"did "A" then "B" within 15m"#, &["u1"]);
    check(&r, r#"did "A" then "B" within 30m"#, &["u1", "u2"]);
    check(&r, r#"did "A" then "B" within 29m"#, &["u1"]);
    check(&r, r#"did "A" then "B""#, &["u1", "u2", "u3"]);
    check(&r, r#"did "A" then "B" in last 1d"#, &["u1", "u2"]);
    check(&r, r#"did "A" where n == 1 then "B" then "C" within 35m"#, &["u2"]);
    check(&r, r#"did "A" where n == 1 then "B" then "C" within 34m"#, &[]);
    check(&r, r#"did "A" where n == 2 then "B""#, &[]);
}

#[test]
fn then_not_requires_the_whole_delay_to_have_elapsed() {
    let t = NOW - 3 * HOUR_MS;
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW - 2 * HOUR_MS),
        ev("u2", "A", NOW - 30 * MIN_MS),
        ev("u3", "A", NOW - 2 * HOUR_MS),
        ev("u3", "B", NOW - 90 * MIN_MS),
        ev("u4", "A", NOW - 2 * HOUR_MS),
        ev("u4", "B", NOW - 30 * MIN_MS),
        // A tie: the B arrived before the A, so it does not come after it.
        ev("u5", "B", t),
        ev("u5", "A", t),
        // A tie: the B arrived after the A and cancels it.
        ev("u6", "A", t),
        ev("u6", "B", t),
        // Exactly D before now: ts + D <= now holds.
        ev("u7", "A", NOW - HOUR_MS),
        // A later A that is too recent, an earlier one cancelled: not selected.
        ev("u8", "A", NOW - 2 * HOUR_MS),
        ev("u8", "B", NOW - 2 * HOUR_MS + MIN_MS),
        ev("u8", "A", NOW - MIN_MS),
    ]));
    check(&r, r#"did "A" then not "B" within 1h"#, &["u1", "u4", "u5", "u7"]);
    check(&r, r#"did "A" then not "B" within 1h in last 90m"#, &["u7"]);
    check(&r, r#"did "A" then not "B" within 1h in last 2h"#, &["u1", "u4", "u7"]);
    check(&r, r#"did "A" then not "A" within 1h"#, &["u1", "u3", "u4", "u5", "u6", "u7", "u8"]);
    check(
        &r,
        r#"did "A" then not "B" where n == 1 within 1h"#,
        &["u1", "u3", "u4", "u5", "u6", "u7", "u8"],
    );
}

// -------------------------------------------------------------------------- in a row

#[test]
fn in_a_row_is_broken_only_by_a_non_matching_event_of_the_same_name() {
    let a = |user: &str, ts: i64, n: Option<i64>| {
        let event = ev(user, "A", NOW - 10 * MIN_MS + ts);
        match n {
            Some(n) => event.prop("n", n),
            None => event,
        }
    };
    let r = Reference::new(&records(vec![
        a("u1", 0, Some(1)),
        a("u1", 1, Some(1)),
        ev("u1", "B", NOW - 10 * MIN_MS + 2),
        a("u1", 3, Some(1)),
        a("u2", 0, Some(1)),
        a("u2", 1, Some(2)),
        a("u2", 2, Some(1)),
        a("u2", 3, Some(1)),
        a("u3", 0, Some(1)),
        a("u3", 1, None),
        a("u3", 2, Some(1)),
        a("u3", 3, Some(1)),
        // u4: three in a row, but the first one is two days old.
        ev("u4", "A", NOW - 2 * DAY_MS).prop("n", 1),
        a("u4", 1, Some(1)),
        a("u4", 2, Some(1)),
    ]));
    check(&r, r#"did "A" where n == 1 3 times in a row"#, &["u1", "u4"]);
    check(&r, r#"did "A" where n == 1 2 times in a row"#, &["u1", "u2", "u3", "u4"]);
    check(&r, r#"did "A" where n == 1 3 times in a row in last 1d"#, &["u1"]);
    check(&r, r#"did "A" where n == 2 1 time in a row"#, &["u2"]);
    check(&r, r#"did "A" 4 times in a row"#, &["u2", "u3"]);
    check(&r, r#"did "B" where n == 1 1 time in a row"#, &[]);
    // `0 times in a row` is read as at least one matching event (`did` means at least once).
    check(&r, r#"did "A" where n == 2 0 times in a row"#, &["u2"]);
}

// ------------------------------------------------------------------- first / last did

#[test]
fn first_and_last_did_look_at_all_time_up_to_now() {
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW - 5 * DAY_MS),
        ev("u1", "A", NOW - DAY_MS),
        ev("u2", "A", NOW - DAY_MS),
        ev("u3", "A", NOW - 5 * DAY_MS).prop("n", 1),
        ev("u3", "A", NOW - DAY_MS).prop("n", 2),
        ev("u4", "A", NOW - 5 * DAY_MS),
        ev("u4", "A", NOW + HOUR_MS),
    ]));
    check(&r, r#"first did "A" in last 3d"#, &["u2"]);
    check(&r, r#"first did "A" where n == 2 in last 3d"#, &["u3"]);
    check(&r, r#"first did "A" before 3d ago"#, &["u1", "u3", "u4"]);
    check(&r, r#"last did "A" before 3d ago"#, &["u4"]);
    check(&r, r#"last did "A" where n == 1 before 3d ago"#, &["u3"]);
    check(&r, r#"last did "A" in last 2d"#, &["u1", "u2", "u3"]);
    check(&r, r#"last did "Z" in last 2d"#, &[]);
}

// ------------------------------------------------------------------------ aggregates

#[test]
fn aggregates_need_a_counted_value() {
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW).prop("n", "5"),
        ev("u2", "A", NOW),
        ev("u3", "A", NOW - 2).prop("n", 2),
        ev("u3", "A", NOW - 1).prop("n", 3),
        ev("u3", "A", NOW - 1).prop("n", "x"),
        ev("u3", "B", NOW).prop("n", 100),
        ev("u4", "A", NOW - 3 * DAY_MS).prop("n", -1.5),
        ev("u5", "B", NOW),
    ]));
    check(&r, r#"sum(n) of "A" < 100"#, &["u3", "u4"]);
    check(&r, r#"sum(n) of "A" == 5"#, &["u3"]);
    check(&r, r#"sum(n) of "A" != 0"#, &["u3", "u4"]);
    check(&r, r#"sum(n) of "A" in last 1d >= -100"#, &["u3"]);
    check(&r, r#"avg(n) of "A" == 2.5"#, &["u3"]);
    check(&r, r#"min(n) of "A" == 2"#, &["u3"]);
    check(&r, r#"max(n) of "A" <= 3"#, &["u3", "u4"]);
    check(&r, r#"min(n) of "A" where n > 2 == 3"#, &["u3"]);
    check(&r, r#"count_distinct(n) of "A" >= 1"#, &["u1", "u3", "u4"]);
    check(&r, r#"count_distinct(n) of "A" == 3"#, &["u3"]);
    check(&r, r#"count_distinct(n) of "A" < 1"#, &[]);
    check(&r, r#"sum(zz) of "A" <= 0"#, &[]);
    check(&r, r#"not sum(n) of "A" > 0"#, &["u1", "u2", "u4", "u5"]);
}

#[test]
fn count_distinct_counts_values_of_any_type() {
    let tags = |items: &[&str]| Value::Array(items.iter().map(|s| Value::from(*s)).collect());
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW).prop("mixed", 5),
        ev("u1", "A", NOW).prop("mixed", "5"),
        ev("u1", "A", NOW).prop("mixed", 5.0),
        ev("u1", "A", NOW).prop("mixed", true),
        ev("u1", "A", NOW),
        ev("u2", "A", NOW).prop("mixed", tags(&["a", "b"])),
        ev("u2", "A", NOW).prop("mixed", tags(&["a", "b"])),
        ev("u2", "A", NOW).prop("mixed", tags(&["b", "a"])),
    ]));
    check(&r, r#"count_distinct(mixed) of "A" == 3"#, &["u1"]);
    check(&r, r#"count_distinct(mixed) of "A" == 2"#, &["u2"]);
    check(&r, r#"sum(mixed) of "A" == 10"#, &["u1"]);
}

// -------------------------------------------------------- universe, profiles, webpush

#[test]
fn not_complements_against_every_user_seen() {
    let mut data = records(vec![ev("u1", "A", NOW)]);
    let mut p = profile("u2");
    p.set.push(("city".into(), "Delhi".into()));
    data.push(p.into());
    data.push(subscribe("u3", "https://push/e1"));
    data.push(records(vec![ev("u4", "A", NOW + DAY_MS)]).remove(0));
    let r = Reference::new(&data);
    assert_eq!(r.universe(), &users(&["u1", "u2", "u3", "u4"]));
    check(&r, r#"not did "A""#, &["u2", "u3", "u4"]);
    check(&r, r#"not reachable via webpush"#, &["u1", "u2", "u4"]);
    check(&r, r#"not user.city == "Delhi""#, &["u1", "u3", "u4"]);
    check(&r, r#"did "A" or not did "A""#, &["u1", "u2", "u3", "u4"]);
    check(&r, r#"not (did "A" or user.city exists)"#, &["u3", "u4"]);
    check(&r, r#"not not did "A""#, &["u1"]);
}

#[test]
fn profiles_fold_set_set_once_unset_increment_append_in_that_order() {
    let mut first = profile("u1");
    first.set = vec![("city".into(), "Delhi".into()), ("age".into(), 5.into())];
    first.set_once = vec![("city".into(), "Pune".into()), ("vip".into(), true.into())];
    first.unset = vec!["age".into()];
    first.increment = vec![("visits".into(), 1.0)];
    first.append = vec![("tags".into(), "a".into())];
    let mut second = profile("u1");
    second.set_once = vec![("age".into(), 30.into())];
    second.increment = vec![("city".into(), 2.0), ("visits".into(), 0.5)];
    second.append = vec![
        ("tags".into(), Value::Array(vec!["b".into(), "c".into()])),
        ("vip".into(), "x".into()),
    ];
    let mut other = profile("u2");
    other.set = vec![("city".into(), "Mumbai".into()), ("tags".into(), "a".into())];
    other.set_once = vec![("city".into(), "Pune".into())];
    let r = Reference::new(&[first.into(), second.into(), other.into()]);
    let got: Vec<(String, Value)> =
        r.profile("u1").expect("profile").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let expected: Vec<(String, Value)> = vec![
        ("age".into(), 30.into()),
        ("city".into(), 2.into()),
        ("tags".into(), Value::Array(vec!["a".into(), "b".into(), "c".into()])),
        ("vip".into(), Value::Array(vec![true.into(), "x".into()])),
        ("visits".into(), 1.5.into()),
    ];
    assert_eq!(got, expected);
    check(&r, r#"user.tags == ["a", "b", "c"]"#, &["u1"]);
    check(&r, r#"user.tags contains "a""#, &["u1", "u2"]);
    check(&r, r#"user.tags == "a""#, &["u2"]);
    check(&r, r#"user.city == 2"#, &["u1"]);
    check(&r, r#"user.city < "Mumbai""#, &[]);
    check(&r, r#"user.city <= "Mumbai""#, &["u2"]);
    check(&r, r#"user.city starts with "M""#, &["u2"]);
    check(&r, r#"user.age between 18 and 30"#, &["u1"]);
    check(&r, r#"user.visits > 1"#, &["u1"]);
    check(&r, r#"user.vip not exists"#, &["u2"]);
    check(&r, r#"user.zz not exists"#, &["u1", "u2"]);
    check(&r, r#"user.city in ["Mumbai", 2]"#, &["u1", "u2"]);
    check(&r, r#"user.city not in ["Mumbai", 2]"#, &[]);
}

#[test]
fn subscriptions_move_between_users_and_are_removed_by_endpoint() {
    let r = Reference::new(&[
        subscribe("u1", "https://push/e1"),
        subscribe("u2", "https://push/e1"),
        subscribe("u3", "https://push/e2"),
        subscribe("u3", "https://push/e3"),
        Record::Unsubscribe { endpoint: "https://push/e2".into() },
        subscribe("u4", "https://push/e4"),
        Record::Unsubscribe { endpoint: "https://push/e4".into() },
        Record::Unsubscribe { endpoint: "https://push/unknown".into() },
    ]);
    check(&r, "reachable via webpush", &["u2", "u3"]);
    check(&r, "not reachable via webpush", &["u1", "u4"]);
}

// --------------------------------------------------------------------- saved segments

fn saved(pairs: &[(&str, &str)]) -> HashMap<String, Expr> {
    pairs
        .iter()
        .map(|(name, text)| ((*name).to_owned(), parse_segment(text).expect("saved segment")))
        .collect()
}

#[test]
fn saved_segments_are_evaluated_afresh_and_cycles_are_errors() {
    let r = Reference::new(&records(vec![
        ev("u1", "A", NOW - HOUR_MS),
        ev("u2", "A", NOW + HOUR_MS),
        ev("u3", "B", NOW),
    ]));
    let segments = saved(&[
        ("s1", r#"did "A" in last 1d"#),
        ("s2", r#"in segment "s1" or did "B""#),
        ("loop", r#"in segment "loop""#),
        ("x", r#"did "A" and in segment "y""#),
        ("y", r#"not in segment "x""#),
        ("diamond", r#"in segment "s1" and in segment "s2""#),
    ]);
    let eval =
        |text: &str, now: i64| r.evaluate(&parse_segment(text).expect("query"), now, &segments);
    assert_eq!(eval(r#"in segment "s1""#, NOW), Ok(users(&["u1"])));
    assert_eq!(eval(r#"in segment "s1""#, NOW + 2 * HOUR_MS), Ok(users(&["u1", "u2"])));
    assert_eq!(eval(r#"in segment "s2""#, NOW), Ok(users(&["u1", "u3"])));
    assert_eq!(eval(r#"not in segment "s2""#, NOW), Ok(users(&["u2"])));
    assert_eq!(eval(r#"in segment "diamond""#, NOW), Ok(users(&["u1"])));
    assert!(eval(r#"in segment "loop""#, NOW).is_err());
    assert!(eval(r#"in segment "x""#, NOW).is_err());
    assert!(eval(r#"did "B" or in segment "y""#, NOW).is_err());
    assert!(eval(r#"in segment "nope""#, NOW).is_err());
    assert!(eval(r#"did "Z" and in segment "nope""#, NOW).is_err());
}

// ------------------------------------------------------------------------ generators

#[test]
fn thousands_of_random_segments_parse() {
    for seed in 0..3000 {
        let mut rng = rng(seed);
        let depth = (seed % 5) as u32;
        let text = if seed % 3 == 0 {
            random_segment_with_saved(&mut rng, depth, &["s1", "s2"])
        } else {
            random_segment(&mut rng, depth)
        };
        if let Err(error) = parse_segment(&text) {
            panic!("seed {seed}: {text}\n{}", error.render(&text));
        }
    }
}

#[test]
fn random_segments_cover_every_clause_and_option() {
    let mut all = String::new();
    for seed in 0..500 {
        all.push_str(&random_segment_with_saved(&mut rng(seed), 3, &["s1"]));
        all.push('\n');
    }
    let wanted = [
        "at least",
        "at most",
        "exactly",
        " times",
        "in last",
        "between",
        "since",
        "before",
        " ago",
        "now",
        "then not",
        "within",
        "in a row",
        "first did",
        "last did",
        "sum(",
        "avg(",
        "min(",
        "max(",
        "count_distinct(",
        "user.",
        "reachable via webpush",
        "in segment \"s1\"",
        " not in [",
        " in [",
        "contains",
        "starts with",
        " exists",
        "not exists",
        "not ",
        " and ",
        " or ",
        "(",
        "\"Z\"",
        "zz",
        "T12:",
        "+05:30",
        "where (",
        "==",
        "!=",
        "<=",
        ">=",
        " < ",
        " > ",
        "2026-10-",
    ];
    for needle in wanted {
        assert!(all.contains(needle), "no generated segment contains `{needle}`");
    }
}

#[test]
fn random_records_are_deterministic_valid_and_adversarial() {
    let data = random_records(7, 48);
    assert_eq!(data, random_records(7, 48));
    assert_ne!(data, random_records(8, 48));
    validate_batch(&data).expect("generated records pass the engine's validation");
    let r = Reference::new(&data);
    let events: Vec<(String, i64)> = r
        .universe()
        .iter()
        .flat_map(|u| r.timeline(u).iter().map(move |e| (u.clone(), e.ts)))
        .collect();
    assert!(events.iter().any(|(_, ts)| *ts > NOW), "future events");
    assert!(events.iter().any(|(_, ts)| *ts < NOW - 9 * DAY_MS), "old events");
    let distinct: BTreeSet<&(String, i64)> = events.iter().collect();
    assert!(distinct.len() < events.len(), "timestamp ties within a user");
    assert!(r.universe().iter().any(|u| r.timeline(u).is_empty()), "users without events");
    assert!(r.universe().iter().any(|u| r.is_reachable(u)), "reachable users");
    for query in [
        r#"did "A" where n not exists"#,
        r#"did "A" where mixed == "5""#,
        r#"did "A" where mixed == 5"#,
        r#"did "A" where item.sku exists"#,
        r#"did "A" where tags exists"#,
        "user.age exists",
        "user.visits exists",
        "user.tags exists",
    ] {
        let selected = r.evaluate_str(query, NOW).expect("evaluates");
        assert!(!selected.is_empty(), "nobody matches {query}");
    }
}

#[test]
fn random_segments_evaluate_consistently_on_random_data() {
    let names = ["s1", "s2"];
    for seed in 0..300 {
        let data = Reference::new(&random_records(seed, 30 + (seed % 30) as usize));
        let mut rng = rng(seed);
        let mut segments = HashMap::new();
        segments.insert("s1".to_owned(), parse(&random_segment(&mut rng, 2)));
        let s2 = random_segment_with_saved(&mut rng, 2, &names[..1]);
        segments.insert("s2".to_owned(), parse(&s2));
        let text = random_segment_with_saved(&mut rng, 3, &names);
        let expr = parse(&text);
        let now = NOW + (seed as i64 % 3 - 1) * HOUR_MS;
        let selected = data.evaluate(&expr, now, &segments).expect("evaluates");
        assert!(selected.is_subset(data.universe()), "{text}");
        let negated = parse(&format!("not ({text})"));
        let complement = data.evaluate(&negated, now, &segments).expect("evaluates");
        assert!(complement.is_disjoint(&selected), "{text}");
        assert_eq!(complement.len() + selected.len(), data.universe().len(), "{text}");
        let canonical = parse(&expr.to_string());
        assert_eq!(data.evaluate(&canonical, now, &segments), Ok(selected), "{text}");
    }
}

fn parse(text: &str) -> Expr {
    parse_segment(text).unwrap_or_else(|e| panic!("{}", e.render(text)))
}
