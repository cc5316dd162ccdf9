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
    let decode = |b: &[u8]| nudge_engine::internals::snapshot::decode(b, b.len() as u64, 1000);
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
