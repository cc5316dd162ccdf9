//! Segment queries through the engine API, on a small hand-built dataset with
//! hand-computed answers: every clause kind, window edges, `now`, warnings,
//! saved segments (durable, cycles refused) and rendered syntax errors.

mod common;

use common::*;
use nudge_engine::clock::{DAY_MS, ManualClock};
use nudge_engine::{
    Engine, Error, Event, ProfileUpdate, QueryOptions, Record, Subscription, Value,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn dataset() -> Vec<Record> {
    let at = |user: &str, name: &str, ago: i64| Event::new(user, name).at(NOW - ago);
    let profile = |user: &str, city: &str, age: i64| {
        Record::Profile(ProfileUpdate {
            user_id: user.into(),
            set: vec![("city".into(), city.into()), ("age".into(), Value::Number(age as f64))],
            ..Default::default()
        })
    };
    vec![
        profile("ann", "Delhi", 30),
        profile("bob", "Mumbai", 41),
        profile("cat", "Delhi", 25),
        profile("dan", "Pune", 50), // profile only: in the universe, no events
        // ann: views, cart, paid within the hour; bounced three times in a row
        at("ann", "Product Viewed", 2 * DAY_MS).prop("category", "Shoes").prop("price", 120).into(),
        at("ann", "Product Viewed", DAY_MS).prop("category", "Shoes").prop("price", 80).into(),
        at("ann", "Added To Cart", 5 * HOUR).prop("cart_id", "c1").into(),
        at("ann", "Charged", 4 * HOUR).prop("amount", 3000).prop("order_id", "c1").into(),
        at("ann", "Page Viewed", 3 * HOUR).prop("duration_s", 5).into(),
        at("ann", "Page Viewed", 2 * HOUR).prop("duration_s", 7).into(),
        at("ann", "Page Viewed", HOUR).prop("duration_s", 3).into(),
        // bob: cart abandoned 2 hours ago; a future charge must not count
        at("bob", "Added To Cart", 2 * HOUR).prop("cart_id", "c2").into(),
        Event::new("bob", "Charged").at(NOW + HOUR).prop("amount", 10).into(),
        at("bob", "Product Viewed", 10 * DAY_MS)
            .prop("category", "Books")
            .prop("price", "n/a")
            .into(),
        at("bob", "Page Viewed", 3 * HOUR).prop("duration_s", 5).into(),
        at("bob", "Page Viewed", 2 * HOUR).prop("duration_s", 50).into(),
        at("bob", "Page Viewed", HOUR).prop("duration_s", 5).into(),
        // cat: first ever charge yesterday, big spender, reachable
        at("cat", "Charged", DAY_MS).prop("amount", 6000).into(),
        at("cat", "Product Viewed", 3 * DAY_MS).prop("category", "Shoes").into(),
        at("cat", "Product Viewed", 3 * DAY_MS).prop("category", "Shoes").into(),
        at("cat", "Product Viewed", 3 * DAY_MS).prop("category", "Bags").into(),
        at("cat", "Product Viewed", 3 * DAY_MS - 1).into(),
        Record::Subscribe {
            user_id: "cat".into(),
            subscription: Subscription {
                endpoint: "https://push.example/cat".into(),
                p256dh: "k".into(),
                auth: "a".into(),
            },
        },
    ]
}

fn engine(dir: &std::path::Path) -> Engine {
    let engine = open(dir, &ManualClock::new(NOW));
    engine.ingest(dataset()).expect("ingest");
    engine
}

fn users(engine: &Engine, query: &str) -> Vec<String> {
    let answer =
        engine.query(query, &QueryOptions::default()).unwrap_or_else(|e| panic!("{query}: {e}"));
    assert_eq!(answer.count as usize, answer.users.len(), "{query}");
    answer.users
}

#[test]
fn every_clause_kind_selects_the_hand_computed_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let cases: &[(&str, &[&str])] = &[
        (r#"did "Product Viewed" in last 7d"#, &["ann", "cat"]),
        (r#"did "Product Viewed""#, &["ann", "bob", "cat"]),
        (r#"did "Product Viewed" where category == "Shoes" at least 2 times"#, &["ann", "cat"]),
        (r#"did "Product Viewed" at most 1 times"#, &["bob"]),
        (r#"did "Product Viewed" exactly 4 times"#, &["cat"]),
        (r#"did "Charged""#, &["ann", "cat"]),
        (r#"not did "Charged""#, &["bob", "dan"]),
        (r#"did "Added To Cart" then "Charged" within 1h in last 7d"#, &["ann"]),
        (r#"did "Added To Cart" then not "Charged" within 1h in last 7d"#, &["bob"]),
        (r#"did "Added To Cart" then not "Charged" within 3h in last 7d"#, &[]),
        (r#"did "Page Viewed" where duration_s < 10 3 times in a row in last 1d"#, &["ann"]),
        (r#"first did "Charged" in last 2d"#, &["ann", "cat"]),
        (r#"last did "Product Viewed" before 2d ago"#, &["bob", "cat"]),
        (r#"sum(amount) of "Charged" in last 90d > 5000"#, &["cat"]),
        (r#"sum(amount) of "Charged" < 100"#, &[]),
        (r#"avg(price) of "Product Viewed" >= 100"#, &["ann"]), // (120 + 80) / 2; bob's "n/a" is skipped
        (r#"avg(price) of "Product Viewed" > 100"#, &[]),
        (r#"max(price) of "Product Viewed" >= 100"#, &["ann"]),
        (r#"count_distinct(category) of "Product Viewed" >= 2"#, &["bob", "cat"].as_slice()[1..]),
        (r#"user.city == "Delhi""#, &["ann", "cat"]),
        (r#"user.age > 40"#, &["bob", "dan"]),
        (r#"user.city != "Delhi" and user.age >= 50"#, &["dan"]),
        (r#"user.coupon exists"#, &[]),
        (r#"reachable via webpush"#, &["cat"]),
        (
            r#"sum(amount) of "Charged" in last 90d > 5000 and user.city == "Delhi" and reachable via webpush"#,
            &["cat"],
        ),
        (
            r#"did "Product Viewed" at least 2 times in last 7d and not did "Charged" in last 2h"#,
            &["ann", "cat"],
        ),
        (r#"did "Product Viewed" where price != 80"#, &["ann"]),
        (r#"did "Product Viewed" where not (price == 80)"#, &["ann", "bob", "cat"]),
        (r#"did "Product Viewed" where category in ["Bags", "Books"]"#, &["bob", "cat"]),
        (
            r#"did "Product Viewed" where (category starts with "Sh" and category contains "oe")"#,
            &["ann", "cat"],
        ),
        (r#"did "Product Viewed" where price between 80 and 100"#, &["ann"]),
        (r#"did "Product Viewed" where price not exists"#, &["cat"]),
        // Aggregates over the same values compared twice are answered in one pass.
        (r#"sum(amount) of "Charged" >= 3000 and sum(amount) of "Charged" <= 5000"#, &["ann"]),
        (
            r#"avg(price) of "Product Viewed" > 50 and user.city == "Delhi" and avg(price) of "Product Viewed" < 110"#,
            &["ann"],
        ),
        (
            r#"sum(amount) of "Charged" > 100 and sum(amount) of "Charged" in last 5h > 100"#,
            &["ann"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(users(&engine, query), *expected, "{query}");
    }
}

#[test]
fn now_moves_every_window_and_future_events_never_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let later = QueryOptions { now_ms: Some(NOW + 2 * HOUR), ..Default::default() };
    let answer = engine.query(r#"did "Charged" in last 1d"#, &later).expect("query");
    assert_eq!(
        answer.users,
        ["ann", "bob"],
        "bob's charge is no longer in the future; cat's left the day"
    );
    let earlier = QueryOptions { now_ms: Some(NOW - 20 * DAY_MS), ..Default::default() };
    assert_eq!(engine.query(r#"did "Product Viewed""#, &earlier).expect("query").count, 0);
    let since = engine
        .query(r#"did "Added To Cart" since 2026-10-31T19:00:00Z"#, &QueryOptions::default())
        .expect("q");
    assert_eq!(since.users, ["ann", "bob"]);
    let between = engine
        .query(
            r#"did "Added To Cart" between 2026-10-31T19:00:00Z and 2026-10-31T22:00:00Z"#,
            &QueryOptions::default(),
        )
        .expect("q");
    assert_eq!(between.users, ["ann"], "bob's cart at 22:00 is excluded: between is T1 <= ts < T2");
}

#[test]
fn limits_sort_external_ids_and_unknown_names_warn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let limited = engine
        .query(r#"not did "Nothing""#, &QueryOptions { limit: Some(2), ..Default::default() })
        .expect("q");
    assert_eq!(
        (limited.count, limited.users.clone()),
        (4, vec!["ann".to_string(), "bob".to_string()])
    );
    assert!(
        limited.warnings.iter().any(|w| w.contains("\"Nothing\" has never been seen")),
        "{:?}",
        limited.warnings
    );
    let typo =
        engine.query(r#"did "Charged" where amout > 1"#, &QueryOptions::default()).expect("q");
    assert_eq!(typo.count, 0);
    assert!(typo.warnings.iter().any(|w| w.contains("\"amout\"")));
    let plan = engine
        .query(r#"did "Charged" and user.city == "Delhi""#, &QueryOptions::default())
        .expect("q")
        .plan;
    assert_eq!(plan.len(), 2);
    assert_eq!(plan[0].clause, r#"user.city == "Delhi""#, "the cheaper clause runs first");
    assert_eq!((plan[1].scope_users, plan[1].selected_users), (2, 2));
}

#[test]
fn a_query_past_its_deadline_is_stopped_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let query =
        r#"did "Added To Cart" then not "Charged" within 30m in last 7d or user.city == "Delhi""#;
    let expected = users(&engine, query);
    let stopped = QueryOptions { deadline_ms: Some(0), ..Default::default() };
    match engine.query(query, &stopped) {
        Err(error @ Error::QueryStopped { deadline_ms: 0 }) => {
            let text = error.to_string();
            assert!(text.contains("deadline of 0 ms") && text.contains("narrow it"), "{text}");
        }
        other => panic!("expected the query to be stopped, got {other:?}"),
    }
    // The default deadline (2 s) lets it run, and the stopped run changed nothing.
    assert_eq!(users(&engine, query), expected);
    let generous = QueryOptions { deadline_ms: Some(60_000), ..Default::default() };
    assert_eq!(engine.query(query, &generous).expect("generous deadline").users, expected);
}

#[test]
fn a_query_over_its_memory_limit_is_stopped_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    let query = r#"did "Added To Cart" in last 7d and not did "Charged" or user.city == "Delhi""#;
    let expected = users(&engine, query);
    assert!(!expected.is_empty(), "the query selects someone");
    // Listing ids and counting only are both held to the limit.
    for limit in [None, Some(0)] {
        let tight = QueryOptions { memory_limit_bytes: Some(1), limit, ..Default::default() };
        match engine.query(query, &tight) {
            Err(error @ Error::QueryOverMemory { limit_bytes: 1 }) => {
                let text = error.to_string();
                assert!(
                    text.contains("memory limit of 1 bytes") && text.contains("narrow it"),
                    "{text}"
                );
            }
            other => panic!("expected the query to be stopped (limit {limit:?}), got {other:?}"),
        }
    }
    // The default limit (256 MiB) lets it run, and the stopped runs changed nothing.
    assert_eq!(users(&engine, query), expected);
    let roomy = QueryOptions { memory_limit_bytes: Some(1 << 20), ..Default::default() };
    assert_eq!(engine.query(query, &roomy).expect("a roomy limit").users, expected);
}

#[test]
fn a_bad_query_is_an_error_rendered_as_the_spec_shows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path());
    match engine.query(r#"did "Added To Cart" in last seven"#, &QueryOptions::default()) {
        Err(Error::Query { line, column, rendered, .. }) => {
            assert_eq!((line, column), (1, 28));
            assert_eq!(
                rendered,
                "error: expected a duration such as 10m or 7d after `in last`\n --> line 1, column 28\n  |\n1 | did \"Added To Cart\" in last seven\n  |                             ^^^^^"
            );
        }
        other => panic!("expected a query error, got {other:?}"),
    }
}

#[test]
fn saved_segments_are_durable_re_evaluated_and_never_cyclic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    {
        let engine = engine(dir.path());
        engine.save_segment("delhi", r#"user.city == "Delhi""#).expect("save");
        engine.save_segment("buyers", r#"did "Charged" and in segment "delhi""#).expect("save");
        assert_eq!(users(&engine, r#"in segment "buyers""#), ["ann", "cat"]);
        let cycle = engine.save_segment("delhi", r#"in segment "buyers""#).expect_err("cycle");
        assert!(cycle.to_string().contains("cycle: delhi → buyers → delhi"), "{cycle}");
        assert!(engine.save_segment("bad", "did").is_err(), "a segment must parse");
        let missing =
            engine.query(r#"in segment "nope""#, &QueryOptions::default()).expect_err("unknown");
        assert!(missing.to_string().contains("no saved segment named \"nope\""), "{missing}");
        // Re-evaluated: a profile change shows at once.
        engine
            .ingest(vec![Record::Profile(ProfileUpdate {
                user_id: "ann".into(),
                set: vec![("city".into(), "Goa".into())],
                ..Default::default()
            })])
            .expect("ingest");
        assert_eq!(users(&engine, r#"in segment "buyers""#), ["cat"]);
    }
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.segments().len(), 2, "replayed from the log");
    assert_eq!(users(&engine, r#"in segment "buyers""#), ["cat"]);
    assert!(engine.remove_segment("buyers").expect("remove").is_some());
    assert!(engine.remove_segment("buyers").expect("remove").is_none());
    engine.snapshot().expect("snapshot");
    drop(engine);
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.segments().keys().collect::<Vec<_>>(), ["delhi"], "and from a snapshot");
}

#[test]
fn a_users_segments_agree_with_the_queries_and_only_public_ones_are_listed_as_public() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let segments = [
        ("delhi", r#"user.city == "Delhi""#, true),
        ("browsers", r#"did "Page Viewed" at least 3 times in last 1d"#, true),
        ("quick_buyers", r#"did "Added To Cart" then "Charged" within 1h"#, false),
        ("never_paid", r#"not did "Charged""#, true),
        ("big_spenders", r#"sum(amount) of "Charged" >= 5000"#, false),
        ("new_buyers", r#"first did "Charged" in last 2d"#, true),
        ("reachable", "reachable via webpush", false),
        ("delhi_buyers", r#"in segment "delhi" and did "Charged""#, true),
    ];
    let people = ["ann", "bob", "cat", "dan"];
    {
        let engine = engine(dir.path());
        for (name, q, public) in segments {
            engine.save_segment_as(name, q, public).expect("save");
        }
        // One user at a time agrees with each segment's whole answer.
        for (name, _, _) in segments {
            let members = users(&engine, &format!("in segment {name:?}"));
            for person in people {
                let found =
                    engine.user_segments(person, false, None).expect("read").expect("known user");
                assert!(found.warnings.is_empty(), "{:?}", found.warnings);
                assert_eq!(
                    found.segments.contains(&name.to_owned()),
                    members.contains(&person.to_owned()),
                    "{person} in {name}: {members:?}"
                );
            }
        }
        let public =
            engine.user_segments("cat", true, None).expect("read").expect("known user").segments;
        assert_eq!(public, ["delhi", "delhi_buyers", "new_buyers"]);
        assert!(engine.user_segments("nobody", true, None).expect("read").is_none(), "never seen");
        // Saving again without `public` makes a segment private.
        engine.save_segment("delhi", r#"user.city == "Delhi""#).expect("save");
        assert!(!engine.public_segments().contains("delhi"));
    }
    // The flag is in the log (replay) and in the snapshot.
    let expected = engine_public(&open(dir.path(), &clock));
    assert_eq!(expected, ["browsers", "delhi_buyers", "never_paid", "new_buyers"]);
    let engine = open(dir.path(), &clock);
    engine.snapshot().expect("snapshot");
    drop(engine);
    let engine = open(dir.path(), &clock);
    assert!(engine.open_report().snapshot_position.is_some(), "opened from the snapshot");
    assert_eq!(engine_public(&engine), expected);
    let cat = engine.user_segments("cat", true, None).expect("read").expect("known user");
    assert_eq!(cat.segments, ["delhi_buyers", "new_buyers"]);

    // A segment that refers to one removed since is left out, with a warning.
    assert!(engine.remove_segment("delhi").expect("remove").is_some());
    let cat = engine.user_segments("cat", false, None).expect("read").expect("known user");
    assert!(!cat.segments.iter().any(|s| s == "delhi_buyers"), "{:?}", cat.segments);
    assert!(
        cat.warnings.iter().any(|w| w.contains("delhi_buyers") && w.contains("\"delhi\"")),
        "{:?}",
        cat.warnings
    );
    assert!(!engine.public_segments().contains("delhi"), "removed");
}

fn engine_public(engine: &Engine) -> Vec<String> {
    engine.public_segments().into_iter().collect()
}
