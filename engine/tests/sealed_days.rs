//! Sealed days as a user of the engine meets them: state built with seals
//! equals state rebuilt by replay (with and without a snapshot), including
//! which days are sealed and in which version; answers do not change when
//! days are sealed, when late events are merged into a new version, or when a
//! day file is damaged, missing or of the wrong version (it is rebuilt from
//! the log; damage inside a section, which open does not read, fails the
//! answers that read it until then); a crash between the cut and the durable file finishes at open;
//! stray files are removed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::dataset::{self, DatasetSpec};
use nudge_engine::internals::log::entry::{LogEntry, LogSealDay};
use nudge_engine::{Engine, EngineOptions, Record};

/// Queries touching every path that reads rows: counts, windows, sequences,
/// absences, in-a-row, first/last, aggregates, distinct counts, profiles.
const QUERIES: [&str; 10] = [
    r#"did "Product Viewed" at least 3 times in last 7 days"#,
    r#"did "Added To Cart" then "Charged" within 2 days in last 30 days"#,
    r#"did "Added To Cart" in last 10 days and not did "Charged" in last 10 days"#,
    r#"did "Added To Cart" then not "Charged" within 1 day in last 20 days"#,
    r#"did "Product Viewed" 3 times in a row in last 30 days"#,
    r#"first did "Session Started" in last 20 days"#,
    r#"last did "Charged" in last 12 days"#,
    r#"sum(amount) of "Charged" in last 30 days > 100"#,
    r#"count_distinct(category) of "Product Viewed" in last 30 days >= 2"#,
    r#"user.city == "Mumbai" and did "Session Started" in last 3 days"#,
];

fn records() -> Vec<Record> {
    let spec = DatasetSpec { now_ms: NOW, days: 20, ..DatasetSpec::new(300) };
    dataset::records(spec).collect()
}

fn ingest_all(engine: &Engine, records: &[Record]) {
    for chunk in records.chunks(211) {
        engine.ingest(chunk.to_vec()).expect("ingest");
    }
}

fn answers(engine: &Engine) -> Vec<(u64, Vec<String>)> {
    common::answers(engine, &QUERIES)
}

/// Where the rows are (the heap figures depend on how vectors grew).
fn placement(t: nudge_engine::StorageTiers) -> (u64, usize, usize, u64, usize, u64) {
    (t.head_rows, t.head_days, t.sealed_days, t.sealed_rows, t.mapped_days, t.mapped_bytes)
}

fn day_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("sealed"))
        .expect("sealed dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// The answers of an engine that never seals, on the same records.
fn head_only_answers(records: &[Record]) -> Vec<(u64, Vec<String>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = open(dir.path(), &ManualClock::new(NOW));
    ingest_all(&engine, records);
    assert_eq!(engine.storage_tiers().sealed_days, 0);
    answers(&engine)
}

/// An engine over `dir` holding `records`: the first half ingested and every
/// closed day sealed, a snapshot, then the second half (late rows for the
/// sealed days, since the records come user by user) and the closed days
/// sealed again (second versions).
fn sealed_twice(dir: &Path, clock: &ManualClock, records: &[Record]) -> Engine {
    let engine = open(dir, clock);
    let (first, second) = records.split_at(records.len() / 2);
    ingest_all(&engine, first);
    let sealed = engine.seal_closed_days().expect("seal");
    assert!(sealed.len() >= 15, "the closed days are sealed: {sealed:?}");
    assert!(sealed.iter().all(|s| s.version == 1 && s.rows > 0));
    engine.snapshot().expect("snapshot");
    ingest_all(&engine, second);
    let again = engine.seal_closed_days().expect("seal");
    assert!(again.iter().any(|s| s.version == 2), "late rows make second versions: {again:?}");
    engine
}

#[test]
fn sealing_changes_no_answer_and_replay_rebuilds_the_same_sealed_days() {
    let records = records();
    let expected = head_only_answers(&records);
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = sealed_twice(dir.path(), &clock, &records);
    let tiers = engine.storage_tiers();
    assert_eq!(tiers.head_days, 1, "only today is in the head: {tiers:?}");
    assert_eq!(tiers.mapped_days, tiers.sealed_days, "every sealed day is mapped: {tiers:?}");
    assert_eq!(answers(&engine), expected, "answers with sealed days");
    let incremental = engine.encode_state().expect("encode");
    // The first versions stay while the snapshot names them.
    let files = day_files(dir.path()).len();
    assert!(files > tiers.sealed_days, "{files} files for {tiers:?}");
    drop(engine);

    let from_snapshot = open(dir.path(), &clock);
    assert!(from_snapshot.open_report().snapshot_position.is_some());
    assert!(from_snapshot.encode_state().expect("encode") == incremental, "snapshot + tail");
    assert_eq!(answers(&from_snapshot), expected);
    drop(from_snapshot);

    let full = Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options(&clock) })
        .expect("open");
    assert!(full.encode_state().expect("encode") == incremental, "full replay");
    assert_eq!(placement(full.storage_tiers()), placement(tiers));
    assert_eq!(answers(&full), expected);
    // Once no kept snapshot names the first versions, they go.
    for b in 0..2 {
        full.ingest(batch(b, 1)).expect("ingest");
        full.snapshot().expect("snapshot");
    }
    assert_eq!(day_files(dir.path()).len(), tiers.sealed_days, "one file per sealed day");
}

#[test]
fn a_damaged_missing_or_wrong_day_file_is_rebuilt_and_answers_stay() {
    let records = records();
    let expected = head_only_answers(&records);
    type Damage = fn(&Path, &Path);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |file, _| {
            let bytes = std::fs::read(file).expect("read");
            std::fs::write(file, &bytes[..bytes.len() - 100]).expect("write");
        }),
        ("missing", |file, _| std::fs::remove_file(file).expect("remove")),
        ("another day's file", |file, other| {
            std::fs::copy(other, file).expect("copy");
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(NOW);
        let engine = sealed_twice(dir.path(), &clock, &records);
        let state = engine.encode_state().expect("encode");
        engine.snapshot().expect("snapshot");
        drop(engine);
        let files = day_files(dir.path());
        let original = std::fs::read(&files[3]).expect("read");
        damage(&files[3], &files[4]);

        let engine = open(dir.path(), &clock);
        let report = engine.open_report().clone();
        assert!(
            report.warnings.iter().any(|w| w.contains("day file")),
            "{what}: the snapshot naming the file is not used: {report:?}"
        );
        assert_eq!(std::fs::read(&files[3]).expect("rebuilt"), original, "{what}: rebuilt");
        assert!(engine.encode_state().expect("encode") == state, "{what}: same state");
        assert_eq!(answers(&engine), expected, "{what}");

        // Without a snapshot, replay meets the `DaySealed` of a damaged file.
        drop(engine);
        damage(&files[3], &files[4]);
        let engine =
            Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options(&clock) })
                .expect("open");
        assert_eq!(std::fs::read(&files[3]).expect("rebuilt"), original, "{what}: rebuilt");
        assert!(engine.encode_state().expect("encode") == state, "{what}: same state");
        assert_eq!(answers(&engine), expected, "{what}");
    }
}

/// Flips a bit of the first category name in `file`: inside the rows of an
/// event the queries read, so in a section, not the header or directory.
fn damage_a_section(file: &Path) {
    let mut bytes = std::fs::read(file).expect("read");
    let at = bytes.windows(11).position(|w| w == b"Electronics").expect("a category");
    bytes[at] ^= 0x10;
    std::fs::write(file, bytes).expect("write");
}

/// A closed directory holding `records` sealed twice, and what to compare with.
struct SealedTwice {
    dir: tempfile::TempDir,
    clock: ManualClock,
    /// The state the engine encoded before it closed.
    state: Vec<u8>,
    /// The answers of a head-only engine.
    expected: Vec<(u64, Vec<String>)>,
    /// The day files, sorted.
    files: Vec<PathBuf>,
}

/// `records` sealed twice in a fresh directory (one snapshot after the
/// first seal, and one more at the end when `snapshot_at_end`), closed.
fn closed_sealed_twice(records: &[Record], snapshot_at_end: bool) -> SealedTwice {
    let expected = head_only_answers(records);
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = sealed_twice(dir.path(), &clock, records);
    let state = engine.encode_state().expect("encode");
    if snapshot_at_end {
        engine.snapshot().expect("snapshot");
    }
    drop(engine);
    let files = day_files(dir.path());
    SealedTwice { dir, clock, state, expected, files }
}

/// Open checks a snapshot's day files by their headers and directories
/// only; a flipped byte inside a section is found when the section is first
/// read (the answer fails, naming the file, instead of lacking its rows) or
/// by the background pass, which moves the file aside; the next open
/// rebuilds the day from the log.
#[test]
fn a_section_damaged_after_its_check_at_open_fails_answers_until_rebuilt() {
    let SealedTwice { dir, clock, state, expected, files } = closed_sealed_twice(&records(), true);
    let original = std::fs::read(&files[3]).expect("read");
    damage_a_section(&files[3]);

    let engine = open(dir.path(), &clock);
    assert!(engine.open_report().snapshot_position.is_some(), "the snapshot is used");
    assert!(engine.open_report().warnings.is_empty(), "{:?}", engine.open_report());
    let options = nudge_engine::QueryOptions { now_ms: Some(NOW), ..Default::default() };
    let category_rows = r#"did "Category Viewed" at least 2 times in last 30 days"#;
    let failed: Vec<String> = QUERIES
        .iter()
        .chain([&category_rows])
        .filter_map(|q| match engine.query(q, &options) {
            Err(nudge_engine::Error::Corrupt { path, reason }) => {
                assert_eq!(path, files[3], "{q}: the error names the file");
                assert!(reason.contains("checksum mismatch"), "{q}: {reason}");
                Some(q.to_string())
            }
            Err(e) => panic!("{q}: {e}"),
            Ok(_) => None,
        })
        .collect();
    assert!(!failed.is_empty(), "the queries reading the day fail");
    assert!(engine.snapshot().is_err(), "no snapshot of a state a damaged file left short");

    let checks = engine.check_day_files().expect("check");
    let damaged: Vec<_> = checks.iter().filter(|c| c.damage.is_some()).collect();
    assert_eq!(damaged.len(), 1, "{checks:?}");
    assert!(!files[3].exists(), "the damaged file is moved aside");
    let aside = format!("{}.{}", files[3].display(), nudge_engine::DAMAGED_EXTENSION);
    assert!(Path::new(&aside).exists(), "kept as {aside}");
    assert!(engine.check_day_files().expect("check again").is_empty(), "every file checked once");
    drop(engine);

    let engine = open(dir.path(), &clock);
    assert!(
        engine.open_report().warnings.iter().any(|w| w.contains("day file")),
        "{:?}",
        engine.open_report()
    );
    assert_eq!(std::fs::read(&files[3]).expect("rebuilt"), original, "rebuilt");
    assert!(engine.encode_state().expect("encode") == state, "same state");
    assert_eq!(answers(&engine), expected);
    assert!(engine.check_day_files().expect("check").iter().all(|c| c.damage.is_none()));
}

#[test]
fn a_cut_without_its_file_is_finished_at_open_and_stray_files_go() {
    let records = records();
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(NOW);
    let engine = open(dir.path(), &clock);
    ingest_all(&engine, &records);
    let day = nudge_engine::clock::day_of(NOW) - 3;
    // The cut is durable, the file is not: as if the process died in between.
    engine.ingest_entries(vec![LogEntry::SealDay(LogSealDay { day })]).expect("cut");
    let tiers = engine.storage_tiers();
    assert_eq!((tiers.sealed_days, tiers.mapped_days), (1, 0), "{tiers:?}");
    let expected = answers(&engine);
    drop(engine);
    let sealed = dir.path().join("sealed");
    std::fs::write(sealed.join("2026-10-01-v7.day"), b"a file no entry names").expect("write");
    std::fs::write(sealed.join("2026-10-01-v1.day.tmp"), b"half written").expect("write");

    let engine = open(dir.path(), &clock);
    let tiers = engine.storage_tiers();
    assert_eq!((tiers.sealed_days, tiers.mapped_days), (1, 1), "{tiers:?}");
    let names: Vec<String> = day_files(dir.path())
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["2026-10-29-v1.day"], "only the day's file is left");
    assert_eq!(answers(&engine), expected);
    drop(engine);
    let full = Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options(&clock) })
        .expect("open");
    assert_eq!(placement(full.storage_tiers()), placement(tiers), "replay finds the same file");
    assert_eq!(answers(&full), expected);
}

#[test]
fn a_users_whole_history_reads_the_same_from_both_tiers() {
    let records = records();
    let clock = ManualClock::new(NOW);
    let (head_dir, sealed_dir) =
        (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let head = open(head_dir.path(), &clock);
    ingest_all(&head, &records);
    let sealed = sealed_twice(sealed_dir.path(), &clock, &records);
    let history = |engine: &Engine, user: &str| {
        let reader = engine.read();
        let Some(id) = reader.dicts.users.get(user) else { return Vec::new() };
        let store = &reader.state.store;
        store
            .events_of(id)
            .iter()
            .map(|e| {
                let name = reader.dicts.events.name(e.event()).unwrap_or_default().to_owned();
                let blob = store.props(e);
                (e.ts_ms, name, blob[..nudge_engine::internals::props::blob_len(blob)].to_vec())
            })
            .collect::<Vec<_>>()
    };
    let mut compared = 0;
    for u in 0..300 {
        let user = dataset::user_id(u);
        let expected = history(&head, &user);
        assert_eq!(history(&sealed, &user), expected, "{user}");
        compared += expected.len();
    }
    assert!(compared > 1000, "{compared} events compared");
}

/// Replay after a snapshot merges late rows into the next version of a day,
/// reading every row of the version the snapshot named. When that file is
/// damaged inside a section, the merge cannot be trusted: open sets the
/// file aside and replays the whole log, which rebuilds the same state.
#[test]
fn a_merge_at_open_over_a_damaged_version_replays_the_whole_log() {
    // One snapshot, after the first seal; the second versions are only in the log.
    let SealedTwice { dir, clock, state, expected, files } = closed_sealed_twice(&records(), false);
    let merged = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("-v1.day"))
        .filter(|v1| files.contains(&PathBuf::from(v1.to_string_lossy().replace("-v1.", "-v2."))))
        .expect("a day sealed twice whose first version the snapshot names");
    damage_a_section(merged);
    // And the merge's own file lost: open must build it again, from good rows.
    let next = PathBuf::from(merged.to_string_lossy().replace("-v1.", "-v2."));
    let next_original = std::fs::read(&next).expect("read");
    std::fs::remove_file(&next).expect("remove");

    let engine = open(dir.path(), &clock);
    let report = engine.open_report().clone();
    assert!(report.snapshot_position.is_none(), "{report:?}");
    assert_eq!(std::fs::read(&next).expect("rebuilt"), next_original, "rebuilt");
    assert!(report.warnings.iter().any(|w| w.contains("replaying the whole log")), "{report:?}");
    assert!(engine.encode_state().expect("encode") == state, "same state");
    assert_eq!(answers(&engine), expected);
}
