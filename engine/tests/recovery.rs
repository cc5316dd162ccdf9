//! Recovery of a damaged log: torn tails are cut back to the valid prefix at
//! every byte offset; damage followed by valid data refuses to open.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, EngineOptions, Error, RecoveryMode};

/// Writes `batches` batches of 3 events and returns (dir, end position of each batch).
fn build_log(batches: usize) -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let ends = (0..batches).map(|b| engine.ingest(batch(b, 3)).expect("ingest").position).collect();
    engine.close().expect("close");
    (dir, ends)
}

fn chunk_path(dir: &Path) -> PathBuf {
    let mut chunks: Vec<PathBuf> =
        fs::read_dir(dir.join("log")).expect("log dir").map(|e| e.expect("entry").path()).collect();
    chunks.sort();
    chunks.pop().expect("a chunk")
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(to.path().join("log")).expect("mkdir");
    let chunk = chunk_path(from);
    fs::copy(&chunk, to.path().join("log").join(chunk.file_name().expect("name"))).expect("copy");
    to
}

const HEADER: u64 = 16;

#[test]
fn truncation_at_every_offset_keeps_exactly_the_complete_batches() {
    let (dir, ends) = build_log(6);
    let chunk = chunk_path(dir.path());
    let full = fs::read(&chunk).expect("read");
    assert_eq!(full.len() as u64, HEADER + ends[5]);
    // Every byte offset inside the last three records.
    let first_cut = HEADER + ends[2];
    for cut in first_cut..=full.len() as u64 {
        let copy = copy_dir(dir.path());
        fs::write(chunk_path(copy.path()), &full[..cut as usize]).expect("write");
        let clock = ManualClock::new(NOW);
        let engine = open(copy.path(), &clock);
        let kept = ends.iter().filter(|&&e| HEADER + e <= cut).count();
        assert_eq!(event_count(&engine), kept as u64 * 3, "cut at byte {cut}");
        assert_eq!(
            engine.open_report().truncated_bytes,
            cut - HEADER - ends[kept - 1],
            "cut at byte {cut}"
        );
        // The repaired log accepts appends and they survive a reopen.
        engine.ingest(batch(100, 2)).expect("append after repair");
        drop(engine);
        let engine = open(copy.path(), &clock);
        assert_eq!(event_count(&engine), kept as u64 * 3 + 2, "reopen after cut at {cut}");
    }
}

#[test]
fn damage_in_the_last_record_is_a_torn_tail_for_every_bit() {
    let (dir, ends) = build_log(3);
    let full = fs::read(chunk_path(dir.path())).expect("read");
    let last_start = (HEADER + ends[1]) as usize;
    for byte in (last_start..full.len()).step_by(3) {
        let mut damaged = full.clone();
        damaged[byte] ^= 0x10;
        let copy = copy_dir(dir.path());
        fs::write(chunk_path(copy.path()), &damaged).expect("write");
        let engine = open(copy.path(), &ManualClock::new(NOW));
        assert_eq!(event_count(&engine), 6, "flip in byte {byte}");
    }
    // Garbage appended after the last record is a torn tail too.
    let mut garbage = full.clone();
    garbage.extend_from_slice(&[0xAB; 100]);
    let copy = copy_dir(dir.path());
    fs::write(chunk_path(copy.path()), &garbage).expect("write");
    assert_eq!(event_count(&open(copy.path(), &ManualClock::new(NOW))), 9);
}

#[test]
fn damage_followed_by_valid_records_refuses_to_open_and_changes_nothing() {
    let (dir, ends) = build_log(4);
    let full = fs::read(chunk_path(dir.path())).expect("read");
    let mut damaged = full.clone();
    let in_second = (HEADER + ends[0] + 20) as usize;
    damaged[in_second] ^= 0xFF;
    let copy = copy_dir(dir.path());
    fs::write(chunk_path(copy.path()), &damaged).expect("write");
    let clock = ManualClock::new(NOW);
    match Engine::open(copy.path(), options(&clock)) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("a valid record follows"), "{reason}");
            assert!(reason.contains(&format!("byte {}", HEADER + ends[0])), "{reason}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        fs::read(chunk_path(copy.path())).expect("read"),
        damaged,
        "a refused open must not modify the log"
    );
    // Salvage keeps the prefix before the damage.
    let salvaged = Engine::open(
        copy.path(),
        EngineOptions { recovery: RecoveryMode::Salvage, ..options(&clock) },
    )
    .expect("salvage");
    assert_eq!(event_count(&salvaged), 3);
}

#[test]
fn a_missing_chunk_in_the_middle_is_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let small = EngineOptions { chunk_target_bytes: 200, ..options(&clock) };
    let engine = Engine::open(dir.path(), small.clone()).expect("open");
    for b in 0..5 {
        engine.ingest(batch(b, 3)).expect("ingest");
    }
    drop(engine);
    let mut chunks: Vec<PathBuf> =
        fs::read_dir(dir.path().join("log")).expect("dir").map(|e| e.expect("e").path()).collect();
    chunks.sort();
    assert!(chunks.len() >= 3, "rotation produced {} chunks", chunks.len());
    let reopened = Engine::open(dir.path(), small.clone()).expect("reopen across chunks");
    assert_eq!(event_count(&reopened), 15);
    drop(reopened);
    fs::remove_file(&chunks[1]).expect("remove");
    match Engine::open(dir.path(), small) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("previous one ends at"), "{reason}")
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_frame_from_a_newer_version_is_refused_not_truncated() {
    let (dir, _) = build_log(2);
    let chunk = chunk_path(dir.path());
    let mut bytes = fs::read(&chunk).expect("read");
    // A well-formed frame of a kind this build does not know, appended at the tail.
    let mut frame = Vec::new();
    nudge_engine::internals::log::format::encode_frame(
        &mut frame,
        nudge_engine::internals::log::format::RecordKind::Batch,
        b"future",
    );
    frame[9] = 200; // the kind byte
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &frame[8..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&frame);
    fs::write(&chunk, &bytes).expect("write");
    match Engine::open(dir.path(), options(&ManualClock::new(NOW))) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(reason.contains("newer version of Nudge"), "{reason}")
        }
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
    assert_eq!(fs::read(&chunk).expect("read"), bytes, "the log is left unchanged");
}

#[test]
fn a_snapshot_ahead_of_the_log_is_ignored_and_removed() {
    let (dir, ends) = build_log(3);
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    let snapshot = engine.snapshot().expect("snapshot");
    drop(engine);
    // The log loses its last record (as after a salvage): the snapshot now claims more than the log holds.
    let chunk = chunk_path(dir.path());
    let bytes = fs::read(&chunk).expect("read");
    fs::write(&chunk, &bytes[..(HEADER + ends[1]) as usize]).expect("write");
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.open_report().snapshot_position, None);
    assert!(engine.open_report().warnings.iter().any(|w| w.contains("ahead of the log end")));
    assert_eq!(event_count(&engine), 6);
    assert!(!snapshot.exists(), "the stale snapshot was removed");
}

/// Found by the crash simulation (`log_crash_sim.rs`): a crash while a chunk
/// is created can leave its 16 header bytes zero-filled or garbage (the size
/// reached the disk, the data did not). Such a chunk holds no frame, so open
/// writes its header again instead of refusing the directory; a header with
/// the whole magic but another version is still refused.
#[test]
fn a_new_chunk_whose_header_did_not_land_is_repaired_on_a_real_file_system() {
    let (dir, ends) = build_log(2);
    let next = dir.path().join("log").join(format!("{:020}.chunk", ends[1]));
    let torn: [&[u8]; 4] = [&[0; 16], &[0xA5; 16], &[0; 9], b"NUDGELOG\x07"];
    for header in torn {
        fs::write(&next, header).expect("write");
        let engine = open(dir.path(), &ManualClock::new(NOW));
        assert_eq!(event_count(&engine), 6, "header {header:?}");
        assert_eq!(engine.open_report().truncated_bytes, header.len() as u64);
        drop(engine);
        assert_eq!(
            fs::read(&next).expect("read"),
            nudge_engine::internals::log::format::chunk_header()
        );
    }
    let mut newer = nudge_engine::internals::log::format::chunk_header();
    newer[8] = 9;
    fs::write(&next, newer).expect("write");
    match Engine::open(dir.path(), options(&ManualClock::new(NOW))) {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("version 9"), "{reason}"),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}

/// Found by the `log_recovery` fuzz target: with a snapshot ahead of the log, the hop over
/// frames the snapshot covers followed a torn frame's length past the end of the chunk and
/// then sliced beyond it (a panic at open). The torn tail is cut and the snapshot ignored.
#[test]
fn a_snapshot_ahead_of_a_torn_frame_header_is_ignored() {
    let (dir, ends) = build_log(3);
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    engine.snapshot().expect("snapshot");
    drop(engine);
    // The second record keeps its frame header only: its length points past the end.
    let chunk = chunk_path(dir.path());
    let bytes = fs::read(&chunk).expect("read");
    let cut = (HEADER + ends[0]) as usize + 12;
    fs::write(&chunk, &bytes[..cut]).expect("write");
    let engine = open(dir.path(), &clock);
    assert_eq!(engine.open_report().snapshot_position, None);
    assert_eq!(event_count(&engine), 3);
}
