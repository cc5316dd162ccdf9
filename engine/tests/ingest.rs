//! Ingest semantics: idempotent ids, bad input rejected with nothing stored,
//! the directory lock, poisoning after a failed sync, profiles and
//! subscriptions, and indexes that answer what was ingested.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use nudge_engine::DEFAULT_DEDUPE_WINDOW_MS;
use nudge_engine::clock::{DAY_MS, ManualClock};
use nudge_engine::internals::log::writer::IoOp;
use nudge_engine::internals::props::ValueRef;
use nudge_engine::{
    Engine, EngineOptions, Error, Event, ProfileUpdate, Record, Subscription, Value,
};

#[test]
fn repeated_ids_are_acknowledged_and_stored_once_within_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let first = engine.ingest(batch(1, 4)).expect("ingest");
    assert_eq!((first.accepted, first.duplicates), (4, 0));
    let again = engine.ingest(batch(1, 4)).expect("ingest again");
    assert_eq!((again.accepted, again.duplicates), (0, 4));
    assert_eq!(again.position, first.position, "nothing written");
    let inside: Vec<Record> =
        vec![Event::new("u", "E").id("x").into(), Event::new("u", "E").id("x").into()];
    assert_eq!(engine.ingest(inside).expect("ingest").duplicates, 1, "a repeat inside one batch");
    drop(engine);
    // Across a restart (index rebuilt by replay).
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.ingest(batch(1, 4)).expect("ingest").duplicates, 4);
    assert_eq!(event_count(&engine), 5);
    // After the window the id is new again.
    clock.advance(DEFAULT_DEDUPE_WINDOW_MS);
    assert_eq!(engine.ingest(batch(1, 4)).expect("ingest").accepted, 4);
    drop(engine);
    clock.advance(1);
    let engine = open(dir.path(), &clock);
    assert_eq!(
        engine.ingest(batch(1, 4)).expect("ingest").duplicates,
        4,
        "second copy is inside its window"
    );
}

#[test]
fn a_bad_record_rejects_the_batch_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let before = engine.ingest(batch(0, 2)).expect("ingest").position;
    let bad_batches: Vec<(Record, &str)> = vec![
        (Event::new("u1", "").into(), "record 1: invalid `name`: event name must not be empty"),
        (Event::new("u1", "E").at(-5).into(), "record 1: invalid `ts`"),
        (
            Event::new("u1", "E").prop("x", f64::INFINITY).into(),
            "record 1: invalid `props.x`: number inf is not finite",
        ),
        (Event::new("u1", "E").prop("big", "y".repeat(9000)).into(), "more than the limit of 8192"),
        (
            Event::new("u1", "E").prop("a", Value::Array(vec![Value::Array(vec![])])).into(),
            "arrays may hold only",
        ),
    ];
    for (bad, expected) in bad_batches {
        let records = vec![Event::new("new-user", "New Event").prop("new_key", 1).into(), bad];
        let error = engine.ingest(records).expect_err("rejected");
        assert!(matches!(error, Error::InvalidInput { index: Some(1), .. }), "{error:?}");
        assert!(error.to_string().contains(expected), "{error} should contain {expected}");
    }
    let reader = engine.read();
    assert_eq!(reader.dicts.users.get("new-user"), None, "no id assigned for a rejected batch");
    assert_eq!(reader.dicts.events.get("New Event"), None);
    assert_eq!(reader.state.store.timelines.event_count(), 2);
    drop(reader);
    assert_eq!(engine.flush().expect("flush"), before, "log did not grow");
}

#[test]
fn a_second_process_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let error = Engine::open(dir.path(), options(&clock)).expect_err("locked");
    assert!(matches!(error, Error::Locked { .. }));
    assert!(error.to_string().contains("is in use by another process"), "{error}");
    drop(engine);
    open(dir.path(), &clock);
}

#[test]
fn a_failed_sync_poisons_the_writer_and_nothing_after_it_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let syncs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&syncs);
    let options = EngineOptions {
        fault_injector: Some(Arc::new(move |op| {
            if op == IoOp::Sync && counter.fetch_add(1, Ordering::SeqCst) == 2 {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            Ok(())
        })),
        ..options(&clock)
    };
    let engine = Engine::open(dir.path(), options).expect("open");
    engine.ingest(batch(0, 2)).expect("first sync fine");
    engine.ingest(batch(1, 2)).expect("second sync fine");
    let failed = engine.ingest(batch(2, 2)).expect_err("third sync fails");
    assert!(failed.to_string().contains("injected fsync failure"), "{failed}");
    let after = engine.ingest(batch(3, 2)).expect_err("poisoned");
    assert!(matches!(after, Error::Poisoned { .. }), "{after:?}");
    assert!(matches!(engine.flush(), Err(Error::Poisoned { .. })), "a sync is not retried");
    assert_eq!(syncs.load(Ordering::SeqCst), 3, "no fsync after the failed one");
    drop(engine);
    let reopened = open(dir.path(), &clock);
    let count = event_count(&reopened);
    assert!(
        (4..=6).contains(&count),
        "the acknowledged 4 events survive; the failed batch may or may not: {count}"
    );
}

#[test]
fn profiles_fold_every_operation_and_keep_the_value_index_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), &ManualClock::new(NOW));
    let set = |pairs: Vec<(&str, Value)>| {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Vec<_>>()
    };
    let updates = vec![
        ProfileUpdate {
            user_id: "a".into(),
            set: set(vec![("city", "Delhi".into()), ("coupon", "X".into())]),
            ..Default::default()
        },
        ProfileUpdate {
            user_id: "b".into(),
            set: set(vec![("city", "Delhi".into())]),
            ..Default::default()
        },
        ProfileUpdate {
            user_id: "a".into(),
            set: set(vec![("city", "Mumbai".into())]),
            set_once: set(vec![("signup", "2026-01-02".into()), ("city", "Pune".into())]),
            unset: vec!["coupon".into()],
            increment: vec![("visits".into(), 2.0)],
            append: set(vec![("tags", "vip".into())]),
        },
        ProfileUpdate {
            user_id: "a".into(),
            increment: vec![("visits".into(), 1.5)],
            append: set(vec![("tags", "new".into())]),
            ..Default::default()
        },
    ];
    engine.ingest(updates.into_iter().map(Record::Profile).collect()).expect("ingest");
    let reader = engine.read();
    let key = |k: &str| reader.dicts.keys.get(k).expect("key") as u16;
    let a = reader.dicts.users.get("a").expect("a");
    let profiles = &reader.state.store.profiles;
    assert_eq!(profiles.value(a, key("city")), Some(ValueRef::Str("Mumbai")));
    assert_eq!(profiles.value(a, key("signup")), Some(ValueRef::Str("2026-01-02")));
    assert_eq!(profiles.value(a, key("coupon")), None);
    assert_eq!(profiles.value(a, key("visits")), Some(ValueRef::Number(3.5)));
    let tags = profiles.value(a, key("tags")).map(|v| v.to_owned_value());
    assert_eq!(tags, Some(Value::Array(vec!["vip".into(), "new".into()])));
    let cities = &reader.state.store.indexes.profile_property_value_user_ids[&key("city")];
    let delhi: Vec<u32> = cities
        .get(ValueRef::Str("Delhi"))
        .flatten()
        .map(|b| b.iter().collect())
        .unwrap_or_default();
    assert_eq!(delhi, vec![reader.dicts.users.get("b").expect("b")]);
    assert_eq!(cities.get(ValueRef::Str("Mumbai")).flatten().map(|b| b.len()), Some(1));
    assert_eq!(reader.state.store.indexes.all_user_ids.len(), 2);
}

#[test]
fn subscriptions_and_event_indexes_answer_what_was_ingested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), &ManualClock::new(NOW));
    let sub = |user: &str, endpoint: &str| Record::Subscribe {
        user_id: user.into(),
        subscription: Subscription {
            endpoint: endpoint.into(),
            p256dh: "k".into(),
            auth: "a".into(),
        },
    };
    engine
        .ingest(vec![
            sub("s1", "https://push.example/1"),
            sub("s2", "https://push.example/2"),
            Record::Unsubscribe { endpoint: "https://push.example/1".into() },
            Event::new("s1", "Charged").at(NOW - 2 * DAY_MS).prop("mode", "upi").into(),
            Event::new("s3", "Charged").at(NOW).prop("mode", "card").into(),
        ])
        .expect("ingest");
    let reader = engine.read();
    let user = |u: &str| reader.dicts.users.get(u).expect("user");
    let indexes = &reader.state.store.indexes;
    assert_eq!(indexes.webpush_user_ids.iter().collect::<Vec<_>>(), [user("s2")]);
    assert_eq!(reader.state.store.subscriptions.len(), 1);
    let charged = reader.dicts.events.get("Charged").expect("event");
    let today = nudge_engine::clock::day_of(NOW);
    assert_eq!(
        indexes.event_user_ids[charged as usize].in_days(today, today).iter().collect::<Vec<_>>(),
        [user("s3")]
    );
    assert_eq!(indexes.users_with_event(charged).map(|b| b.len()), Some(2));
    let mode = reader.dicts.keys.get("mode").expect("key") as u16;
    let by_mode = &indexes.event_property_value_user_ids[&(charged, mode)];
    assert_eq!(
        by_mode.get(ValueRef::Str("upi")).flatten().map(|b| b.iter().collect::<Vec<_>>()),
        Some(vec![user("s1")])
    );
    assert_eq!(indexes.all_user_ids.len(), 3);
    let timeline = reader.state.store.timelines.of(user("s1"));
    assert_eq!(timeline.len(), 1);
    assert_eq!(
        nudge_engine::internals::props::get(reader.state.store.props(&timeline[0]), mode),
        Some(ValueRef::Str("upi"))
    );
}

#[test]
fn events_without_a_timestamp_take_the_engine_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW + 123);
    let engine = open(dir.path(), &clock);
    engine.ingest(vec![Event::new("u", "E").into()]).expect("ingest");
    let reader = engine.read();
    assert_eq!(reader.state.store.timelines.of(0)[0].ts_ms, NOW + 123);
}
