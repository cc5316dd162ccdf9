//! Live triggers on a simulated clock: each form of section 3 of the spec,
//! `event.P` correlation, `if` filters, freshness, history that fires nothing,
//! and at most one fire per cause across restarts, snapshots and a crash
//! between the fire record and the action.

mod common;

use std::sync::Arc;

use common::NOW;
use nudge_engine::FireOutcome;
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, EngineOptions, Event, Fire, Record};

const MIN: i64 = 60_000;

fn open(dir: &std::path::Path, clock: &ManualClock) -> Engine {
    common::open(dir, clock)
}

fn event(user: &str, name: &str, at: i64) -> Event {
    Event::new(user, name).at(at)
}

/// (trigger, user, outcome) of each fire, sorted.
fn decided(fires: &[Fire]) -> Vec<(String, String, FireOutcome)> {
    let mut out: Vec<_> =
        fires.iter().map(|f| (f.trigger.clone(), f.user_id.clone(), f.outcome)).collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn fired(fires: &[Fire]) -> Vec<String> {
    let mut users: Vec<String> = fires
        .iter()
        .filter(|f| f.outcome == FireOutcome::Fired)
        .map(|f| f.user_id.clone())
        .collect();
    users.sort();
    users
}

#[test]
fn abandoned_cart_fires_once_after_ten_minutes_unless_the_same_cart_is_paid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine
        .save_trigger(
            "cart",
            r#"on "Added To Cart" unless "Charged" where order_id == event.cart_id within 10m"#,
        )
        .expect("save");
    let records: Vec<Record> = vec![
        // ann abandons; bob pays for his cart in time; cat pays for another order.
        event("ann", "Added To Cart", NOW).prop("cart_id", "c1").into(),
        event("bob", "Added To Cart", NOW).prop("cart_id", "c2").into(),
        event("cat", "Added To Cart", NOW).prop("cart_id", "c3").into(),
        // A second cart while ann's is pending starts nothing new.
        event("ann", "Added To Cart", NOW + MIN).prop("cart_id", "c4").into(),
    ];
    engine.ingest(records).expect("ingest");
    clock.set(NOW + 5 * MIN);
    engine
        .ingest(vec![
            event("bob", "Charged", NOW + 5 * MIN).prop("order_id", "c2").into(),
            event("cat", "Charged", NOW + 5 * MIN).prop("order_id", "other").into(),
        ])
        .expect("ingest");
    clock.set(NOW + 10 * MIN - 1);
    assert!(engine.fire_due().expect("fire").is_empty(), "nothing is due before 10 minutes");
    clock.set(NOW + 10 * MIN);
    let fires = engine.fire_due().expect("fire");
    assert_eq!(fired(&fires), ["ann", "cat"]);
    assert!(fires.iter().all(|f| f.due_ms == NOW + 10 * MIN));
    assert!(engine.fire_due().expect("fire").is_empty(), "a fire is decided once");
    assert_eq!(engine.pending_fires(), 0);
    // Every decision is an event of the user: "why was this sent" is a query.
    let options = nudge_engine::QueryOptions {
        now_ms: Some(NOW + 10 * MIN),
        limit: Some(10),
        ..Default::default()
    };
    let why = engine
        .query(r#"did "$trigger_fired" where (trigger == "cart" and reason == "fired")"#, &options)
        .expect("query");
    assert_eq!(why.users, ["ann", "cat"]);
}

#[test]
fn on_then_and_at_fire_when_the_spec_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine.save_trigger("big", r#"on "Charged" where amount > 100"#).expect("save");
    engine.save_trigger("pair", r#"on "Added To Cart" then "Charged" within 1h"#).expect("save");
    engine.save_trigger("trip", r#"on "Booked" at departure - 1d"#).expect("save");
    let departure = "2026-11-04T00:00:00Z"; // NOW + 3 days
    engine
        .ingest(vec![
            event("ann", "Added To Cart", NOW).into(),
            event("bob", "Added To Cart", NOW).into(),
            event("cat", "Booked", NOW).prop("departure", departure).into(),
            // Already past: skipped.
            event("dan", "Booked", NOW).prop("departure", NOW - 1000).into(),
        ])
        .expect("ingest");
    clock.set(NOW + 30 * MIN);
    engine
        .ingest(vec![
            event("ann", "Charged", NOW + 30 * MIN).prop("amount", 500).into(),
            event("eve", "Charged", NOW + 30 * MIN).prop("amount", 50).into(),
        ])
        .expect("ingest");
    let fires = engine.fire_due().expect("fire");
    assert_eq!(
        decided(&fires),
        [
            ("big".into(), "ann".into(), FireOutcome::Fired),
            ("pair".into(), "ann".into(), FireOutcome::Fired),
        ]
    );
    // bob's Charged comes after the hour: the pair never completes.
    clock.set(NOW + 2 * 60 * MIN);
    engine.ingest(vec![event("bob", "Charged", NOW + 2 * 60 * MIN).into()]).expect("ingest");
    let fires = engine.fire_due().expect("fire");
    assert_eq!(fired(&fires), Vec::<String>::new(), "{fires:?}");
    clock.set(NOW + 2 * 24 * 60 * MIN);
    let fires = engine.fire_due().expect("fire");
    assert_eq!(decided(&fires), [("trip".into(), "cat".into(), FireOutcome::Fired)]);
    assert_eq!(fires[0].due_ms, NOW + 2 * 24 * 60 * MIN);
}

#[test]
fn if_filters_at_the_moment_of_firing_with_the_triggering_event_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine
        .save_trigger(
            "repeat buyer",
            r#"on "Charged" if did "Charged" at least 2 times in last 30d and did "Charged" where amount == event.amount"#,
        )
        .expect("save");
    engine
        .ingest(vec![
            event("ann", "Charged", NOW - 10 * 24 * 60 * MIN).prop("amount", 10).into(),
            event("ann", "Charged", NOW).prop("amount", 20).into(),
            event("bob", "Charged", NOW).prop("amount", 20).into(),
        ])
        .expect("ingest");
    let fires = engine.fire_due().expect("fire");
    // ann's old Charged is not fresh, so it armed nothing.
    assert_eq!(
        decided(&fires),
        [
            ("repeat buyer".into(), "ann".into(), FireOutcome::Fired),
            ("repeat buyer".into(), "bob".into(), FireOutcome::DroppedCondition),
        ]
    );
}

#[test]
fn stale_events_and_imported_history_fire_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine.save_trigger("any", r#"on "Charged""#).expect("save");
    engine.ingest(vec![event("ann", "Charged", NOW - 61 * MIN).into()]).expect("ingest");
    engine.ingest_history(vec![event("bob", "Charged", NOW).into()]).expect("import");
    engine.ingest(vec![event("cat", "Charged", NOW - 59 * MIN).into()]).expect("ingest");
    assert_eq!(fired(&engine.fire_due().expect("fire")), ["cat"]);
    // History is stored all the same: three Charged, and cat's `$trigger_fired`.
    assert_eq!(engine.read().state.store.timelines.event_count(), 4);
}

#[test]
fn replay_and_snapshots_keep_pending_fires_and_never_fire_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let trigger = r#"on "Added To Cart" unless "Charged" within 10m"#;
    for snapshot_on_close in [false, true] {
        let dir = dir.path().join(format!("snapshot-{snapshot_on_close}"));
        clock.set(NOW);
        let options = || EngineOptions {
            clock: Arc::new(clock.clone()),
            snapshot_on_close,
            ..Default::default()
        };
        {
            let engine = Engine::open(&dir, options()).expect("open");
            engine.save_trigger("cart", trigger).expect("save");
            engine
                .ingest(vec![
                    event("ann", "Added To Cart", NOW).into(),
                    event("bob", "Added To Cart", NOW + MIN).into(),
                ])
                .expect("ingest");
        }
        // Reopened before anything is due: both are still pending.
        clock.set(NOW + 10 * MIN);
        {
            let engine = Engine::open(&dir, options()).expect("reopen");
            assert_eq!(engine.pending_fires(), 2);
            assert_eq!(fired(&engine.fire_due().expect("fire")), ["ann"]);
            // The process dies right after the fire record, before any action.
        }
        clock.set(NOW + 11 * MIN);
        let engine = Engine::open(&dir, options()).expect("reopen");
        assert_eq!(fired(&engine.fire_due().expect("fire")), ["bob"], "ann fired already");
        drop(engine);
        let engine = Engine::open(&dir, options()).expect("reopen");
        assert!(engine.fire_due().expect("fire").is_empty());
    }
}

#[test]
fn fires_that_fell_due_long_before_a_restart_are_dropped_as_late() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    {
        let engine = open(dir.path(), &clock);
        engine
            .save_trigger("cart", r#"on "Added To Cart" unless "Charged" within 10m"#)
            .expect("save");
        engine.ingest(vec![event("ann", "Added To Cart", NOW).into()]).expect("ingest");
        clock.set(NOW + 40 * MIN);
        engine.ingest(vec![event("bob", "Added To Cart", NOW + 40 * MIN).into()]).expect("ingest");
    }
    // Down for an hour: ann's fire is 50 minutes late (grace is 15), bob's 10.
    clock.set(NOW + 60 * MIN);
    let engine = open(dir.path(), &clock);
    let fires = engine.fire_due().expect("fire");
    assert_eq!(
        decided(&fires),
        [
            ("cart".into(), "ann".into(), FireOutcome::DroppedLate),
            ("cart".into(), "bob".into(), FireOutcome::Fired),
        ]
    );
    assert_eq!(fires[0].id(), fires[0].clone().id(), "fire ids are stable");
    assert_ne!(fires[0].id(), fires[1].id());
}

#[test]
fn bad_triggers_are_refused_and_removed_triggers_drop_their_pending_fires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let error = engine.save_trigger("bad", r#"on "A" unless "B""#).expect_err("no within");
    // The same spanned error a query gives, with the caret where `within` was expected.
    assert!(
        matches!(&error, nudge_engine::Error::Query { line: 1, column: 17, message, .. }
            if message.contains("`within`")),
        "{error:?}"
    );
    assert!(engine.triggers().is_empty(), "nothing stored");
    engine.save_trigger("cart", r#"on "A" unless "B" within 1m"#).expect("save");
    engine.ingest(vec![event("ann", "A", NOW).into()]).expect("ingest");
    assert_eq!(engine.pending_fires(), 1);
    assert!(engine.remove_trigger("cart").expect("remove").is_some());
    assert_eq!(engine.pending_fires(), 0);
    assert!(engine.remove_trigger("cart").expect("remove").is_none());
    clock.set(NOW + 2 * MIN);
    assert!(engine.fire_due().expect("fire").is_empty());
}

#[test]
fn the_fire_loop_decides_fires_as_they_fall_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = Arc::new(open(dir.path(), &clock));
    engine.save_trigger("now", r#"on "A""#).expect("save");
    engine.save_trigger("later", r#"on "A" unless "B" within 10m"#).expect("save");
    let (tx, rx) = std::sync::mpsc::channel();
    let fires = nudge_engine::FireLoop::spawn(
        Arc::clone(&engine),
        move |fires| {
            let _ = tx.send(fires);
        },
        |e| panic!("fire loop: {e}"),
    )
    .expect("spawn");
    engine.ingest(vec![event("ann", "A", NOW).into()]).expect("ingest");
    let first = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("woken by the ingest");
    assert_eq!(decided(&first), [("now".into(), "ann".into(), FireOutcome::Fired)]);
    clock.set(NOW + 10 * MIN);
    let second = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("due by the clock");
    assert_eq!(decided(&second), [("later".into(), "ann".into(), FireOutcome::Fired)]);
    drop(fires);
    assert_eq!(engine.pending_fires(), 0);
}
