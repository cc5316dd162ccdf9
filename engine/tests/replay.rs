//! Derived state built incrementally equals derived state rebuilt by full
//! replay, and equals it again after snapshot + tail replay, on a generated
//! dataset. Equality is byte equality of the deterministic state encoding.

mod common;

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::dataset::{self, DatasetSpec};
use nudge_engine::{Engine, EngineOptions, Record};

fn ingest_all(engine: &Engine, records: &[Record]) {
    for chunk in records.chunks(257) {
        engine.ingest(chunk.to_vec()).expect("ingest");
    }
}

#[test]
fn incremental_full_replay_and_snapshot_plus_tail_agree() {
    let spec = DatasetSpec { now_ms: NOW, ..DatasetSpec::new(400) };
    let mut records: Vec<Record> = dataset::records(spec).collect();
    // Out-of-order events, repeated ids and unsubscribes exercise the less common paths.
    records.reverse();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let (first_half, second_half) = records.split_at(records.len() / 2);

    let engine = open(dir.path(), &clock);
    ingest_all(&engine, first_half);
    let snapshot = engine.snapshot().expect("snapshot");
    assert!(snapshot.exists());
    ingest_all(&engine, second_half);
    let incremental = engine.encode_state().expect("encode");
    drop(engine);

    let from_snapshot = open(dir.path(), &clock);
    let report = from_snapshot.open_report().clone();
    assert!(report.snapshot_position.is_some(), "snapshot used: {report:?}");
    assert!(report.replayed_frames > 0, "the tail was replayed");
    assert!(
        from_snapshot.encode_state().expect("encode") == incremental,
        "snapshot + tail differs from incremental"
    );
    drop(from_snapshot);

    let full = Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options(&clock) })
        .expect("open");
    assert_eq!(full.open_report().snapshot_position, None);
    assert!(
        full.encode_state().expect("encode") == incremental,
        "full replay differs from incremental"
    );
    assert_eq!(
        full.read().state.store.timelines.event_count(),
        records.iter().filter(|r| matches!(r, Record::Event(_))).count() as u64
    );
}

#[test]
fn a_damaged_snapshot_falls_back_to_full_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine.ingest(batch(0, 5)).expect("ingest");
    let path = engine.snapshot().expect("snapshot");
    engine.ingest(batch(1, 5)).expect("ingest");
    let expected = engine.encode_state().expect("encode");
    drop(engine);
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.open_report().snapshot_position, None);
    assert!(
        engine.open_report().warnings.iter().any(|w| w.contains("checksum mismatch")),
        "{:?}",
        engine.open_report().warnings
    );
    assert!(engine.encode_state().expect("encode") == expected);
}

#[test]
fn close_writes_a_snapshot_that_the_next_open_uses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine =
        Engine::open(dir.path(), EngineOptions { snapshot_on_close: true, ..options(&clock) })
            .expect("open");
    let end = engine.ingest(batch(0, 5)).expect("ingest").position;
    engine.close().expect("close");
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.open_report().snapshot_position, Some(end));
    assert_eq!(engine.open_report().replayed_frames, 0);
    assert_eq!(event_count(&engine), 5);
}

#[test]
fn a_truncated_or_damaged_snapshot_is_rejected_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine.ingest(batch(0, 20)).expect("ingest");
    let path = engine.snapshot().expect("snapshot");
    drop(engine);
    let bytes = std::fs::read(&path).expect("read");
    let decode = |b: &[u8]| nudge_engine::internals::snapshot::decode_bytes(b, 1000);
    assert!(decode(&bytes).is_ok());
    for cut in (0..bytes.len()).step_by(7) {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} accepted");
    }
    for at in (0..bytes.len()).step_by(5) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x40;
        assert!(decode(&damaged).is_err(), "flip at byte {at} accepted");
    }
}

#[test]
fn per_user_state_and_bitmaps_open_in_place_and_only_later_changes_use_the_heap() {
    use nudge_engine::{ProfileUpdate, Subscription, Value};
    let spec = DatasetSpec { now_ms: NOW, ..DatasetSpec::new(300) };
    let records: Vec<Record> = dataset::records(spec).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let queries = [
        "user.city == \"Zurich\"",
        "user.age > 30",
        "not user.city exists",
        "user.city == \"Delhi\"",
    ];
    let engine = open(dir.path(), &clock);
    ingest_all(&engine, &records);
    let users_with_profiles = engine.storage_tiers().heap_profiles;
    assert!(users_with_profiles > 100, "the dataset sets profiles: {users_with_profiles}");
    let subscriptions = engine.storage_tiers().heap_subscriptions;
    assert!(subscriptions > 50, "the dataset subscribes: {subscriptions}");
    let expected = answers(&engine, &queries);
    // Writing a snapshot moves every profile it holds off the heap.
    engine.snapshot().expect("snapshot");
    let tiers = engine.storage_tiers();
    assert_eq!((tiers.heap_profiles, tiers.heap_subscriptions), (0, 0), "{tiers:?}");
    assert!(tiers.mapped_snapshot_bytes > 0, "{tiers:?}");
    assert_eq!(answers(&engine, &queries), expected);
    let state = engine.encode_state().expect("encode");
    drop(engine);

    let reopened = open(dir.path(), &clock);
    let tiers = reopened.storage_tiers();
    assert_eq!((tiers.heap_profiles, tiers.heap.profiles), (0, 0), "{tiers:?}");
    assert_eq!((tiers.heap_subscriptions, tiers.heap.subscriptions), (0, 0), "{tiers:?}");
    // The value bitmaps stay in the file until a query reads them.
    assert_eq!(tiers.heap.value_bitmaps, 0, "{tiers:?}");
    assert!(reopened.encode_state().expect("encode") == state, "the mapped sections differ");
    assert_eq!(answers(&reopened, &queries), expected);
    assert!(reopened.storage_tiers().heap.value_bitmaps > 0, "the queries decoded some");
    // Decoded bitmaps encode as the bytes they were read from.
    assert!(reopened.encode_state().expect("encode") == state, "decoded bitmaps differ");

    // One change after open: one profile on the heap, shadowing the mapped one.
    let moved = ProfileUpdate {
        user_id: "a-new-user".into(),
        set: vec![("city".into(), Value::String("Zurich".into()))],
        ..Default::default()
    };
    let subscription = Subscription {
        endpoint: "https://push.example/a-new-user".into(),
        p256dh: "BOr8l8MiNrzxzJuo0bmbgbhXgvkhthaNy3b6Qz8TgcgQAm0H2wC9nRhJs2dzf6nkl-2BqYVaiWrkB8cO2QKLgaA".into(),
        auth: "8eDyX_uCN0XRhSbY5hs7Hg".into(),
    };
    reopened
        .ingest(vec![
            Record::Profile(moved),
            Record::Subscribe { user_id: "a-new-user".into(), subscription },
        ])
        .expect("ingest");
    let reachable = answers(&reopened, &["user.city == \"Zurich\" and reachable via webpush"]);
    assert!(reachable[0].1.contains(&"a-new-user".to_string()));
    let zurich = answers(&reopened, &queries[..1]);
    assert_eq!(zurich[0].0, expected[0].0 + 1);
    assert!(zurich[0].1.contains(&"a-new-user".to_string()));
    let tiers = reopened.storage_tiers();
    assert_eq!((tiers.heap_profiles, tiers.heap_subscriptions), (1, 1), "{tiers:?}");
    let changed = reopened.encode_state().expect("encode");
    reopened.snapshot().expect("snapshot");
    let tiers = reopened.storage_tiers();
    assert_eq!((tiers.heap_profiles, tiers.heap_subscriptions), (0, 0), "{tiers:?}");
    assert!(reopened.encode_state().expect("encode") == changed, "rebase changed the state");
    drop(reopened);

    let full = Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options(&clock) })
        .expect("open");
    assert!(full.encode_state().expect("encode") == changed, "full replay differs");
    assert_eq!(full.storage_tiers().heap_profiles, users_with_profiles + 1);
}
