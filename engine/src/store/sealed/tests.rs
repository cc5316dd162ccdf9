//! Day files: what is written reads back exactly (rows, order, blobs,
//! columns); every kind of damage is refused, never read; and a crash at any
//! step of writing leaves either no file under the final name or the whole
//! file.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::format::{self, HEADER_BYTES, NO_CODE};
use super::*;
use crate::store::log::sim::{Fault, SimStorage};
use crate::store::log::storage::{FsStorage, LogStorage};
use crate::store::props::{self, Value};

const DAY: i32 = 20_788; // 2026-12-01
const DAY_MS: i64 = DAY as i64 * 86_400_000;
const KEY_AMOUNT: u16 = 1;
const KEY_CATEGORY: u16 = 2;
const KEY_MIXED: u16 = 3;
const KEY_FLAG: u16 = 4;

/// A row as the test keeps it: (user, ts, order, blob).
type Row = (u32, i64, u32, Vec<u8>);

fn blob(entries: &[(u16, Value)]) -> Vec<u8> {
    let refs: Vec<(u16, &Value)> = entries.iter().map(|(k, v)| (*k, v)).collect();
    let mut out = Vec::new();
    props::encode(&mut out, &refs);
    out
}

/// Random rows of `events` events, with a number key, a string key, a key
/// that is sometimes a number and sometimes a string, and a bool key.
fn random_rows(rng: &mut ChaCha8Rng, events: u32, rows: usize) -> Vec<(u32, Vec<Row>)> {
    let categories = ["Shoes", "Bags", "Hats", "Ünïcödé"];
    let mut by_event: Vec<(u32, Vec<Row>)> = (0..events).map(|e| (e * 3 + 1, Vec::new())).collect();
    for order in 0..rows as u32 {
        let event = rng.gen_range(0..events as usize);
        let user = rng.gen_range(0..50u32) * 7;
        // Few distinct times, so ties within a user are common.
        let ts = DAY_MS + rng.gen_range(0..20i64) * 1000;
        let mut entries = Vec::new();
        if rng.gen_bool(0.7) {
            entries.push((KEY_AMOUNT, Value::Number(f64::from(rng.gen_range(0..5000u32)) / 4.0)));
        }
        if rng.gen_bool(0.6) {
            let name = categories[rng.gen_range(0..categories.len())];
            entries.push((KEY_CATEGORY, Value::String(name.into())));
        }
        if rng.gen_bool(0.3) {
            let mixed =
                if rng.gen_bool(0.5) { Value::Number(1.0) } else { Value::String("x".into()) };
            entries.push((KEY_MIXED, mixed));
        }
        if rng.gen_bool(0.2) {
            entries.push((KEY_FLAG, Value::Bool(true)));
        }
        by_event[event].1.push((user, ts, order, blob(&entries)));
    }
    by_event.retain(|(_, rows)| !rows.is_empty());
    by_event
}

fn spec(version: u32) -> DayFileSpec {
    DayFileSpec { day: DAY, version, cut_position: 123_456 }
}

fn write(
    storage: &dyn LogStorage,
    dir: &Path,
    events: &[(u32, Vec<Row>)],
) -> Result<WrittenDayFile, crate::Error> {
    let input = events
        .iter()
        .map(|(event, rows)| EventRows {
            event: *event,
            rows: rows
                .iter()
                .map(|(user, ts_ms, order, props)| SealRow {
                    user: *user,
                    ts_ms: *ts_ms,
                    order: *order,
                    props,
                })
                .collect(),
        })
        .collect();
    write_day_file(storage, dir, spec(1), input)
}

/// Checks that `file` holds exactly `events`.
fn assert_holds(file: &DayFile, events: &[(u32, Vec<Row>)]) {
    let header = file.header();
    assert_eq!((header.day, header.version, header.cut_position), (DAY, 1, 123_456));
    assert_eq!(
        file.events().collect::<Vec<_>>(),
        events.iter().map(|(e, _)| *e).collect::<Vec<_>>()
    );
    for (event, rows) in events {
        let mut expected = rows.clone();
        expected.sort_by_key(|(user, ts, order, _)| (*user, *ts, *order));
        let sealed = file.event(*event).expect("checks out").expect("has rows");
        assert_eq!(sealed.len(), expected.len());
        let mut users: Vec<u32> = expected.iter().map(|r| r.0).collect();
        users.dedup();
        assert_eq!(sealed.users, users.as_slice());
        for &user in &users {
            let range = sealed.rows_of(user);
            let mine: Vec<&Row> = expected.iter().filter(|r| r.0 == user).collect();
            assert_eq!(range.len(), mine.len());
            for (row, want) in range.zip(mine) {
                assert_eq!((sealed.ts_ms[row], sealed.order[row]), (want.1, want.2));
                assert_eq!(sealed.props(row), want.3.as_slice());
            }
        }
        assert_eq!(sealed.rows_of(u32::MAX), 0..0);
        // The typed columns say what the blobs say, row by row.
        let has = |key| expected.iter().any(|r| props::get(&r.3, key).is_some());
        let amounts = sealed.numbers(KEY_AMOUNT);
        let categories = sealed.codes(KEY_CATEGORY);
        assert_eq!(amounts.is_some(), has(KEY_AMOUNT), "a number key has a number column");
        assert_eq!(categories.is_some(), has(KEY_CATEGORY), "a string key has a code column");
        for (row, (_, _, _, blob)) in expected.iter().enumerate() {
            if let Some(amounts) = amounts {
                match props::get(blob, KEY_AMOUNT) {
                    Some(props::ValueRef::Number(n)) => assert_eq!(amounts[row], n),
                    _ => assert!(amounts[row].is_nan()),
                }
            }
            if let Some(categories) = categories {
                let code = categories.codes[row];
                match props::get(blob, KEY_CATEGORY) {
                    Some(props::ValueRef::Str(text)) => {
                        assert_eq!(categories.text(code), Some(text))
                    }
                    _ => assert_eq!(code, NO_CODE),
                }
                assert!(categories.dictionary_len() <= 4);
            }
        }
        // Mixed and boolean keys have no column: their blobs are read.
        let kinds = |key| {
            let values = expected.iter().filter_map(|r| props::get(&r.3, key));
            let numbers = values.clone().filter(|v| matches!(v, props::ValueRef::Number(_)));
            (numbers.count(), values.count())
        };
        let (numbers, values) = kinds(KEY_MIXED);
        assert_eq!(sealed.numbers(KEY_MIXED).is_some(), values > 0 && numbers == values);
        assert_eq!(sealed.codes(KEY_MIXED).is_some(), values > 0 && numbers == 0);
        assert!(sealed.numbers(KEY_FLAG).is_none() && sealed.codes(KEY_FLAG).is_none());
        assert!(sealed.numbers(KEY_CATEGORY).is_none(), "a string key has no number column");
    }
    assert_eq!(file.event(0).expect("no such event").map(|e| e.len()), None);
    file.verify_all().expect("every section checks out");
}

#[test]
fn what_is_written_reads_back_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for rows in [1, 10, 2_000] {
        let events = random_rows(&mut rng, 5, rows);
        let written = write(&FsStorage, dir.path(), &events).expect("written");
        assert_eq!(written.path, dir.path().join("2026-12-01-v1.day"));
        assert_eq!(written.rows, rows as u64);
        let file = DayFile::open(&FsStorage, &written.path).expect("opens");
        assert_eq!(file.checksum(), written.checksum);
        assert_eq!(file.byte_len() as u64, written.bytes);
        assert_holds(&file, &events);
        // No temporary file is left behind.
        let names = FsStorage.list(dir.path()).expect("list");
        assert_eq!(names, vec!["2026-12-01-v1.day".to_owned()]);
    }
    // Empty events are left out; an event given twice is refused.
    let empty =
        write_day_file(&FsStorage, dir.path(), spec(2), vec![EventRows { event: 9, rows: vec![] }])
            .expect("an empty day");
    let file = DayFile::open(&FsStorage, &empty.path).expect("opens");
    assert_eq!((file.header().rows, file.events().count()), (0, 0));
    let row = SealRow { user: 1, ts_ms: DAY_MS, order: 0, props: props::EMPTY };
    let twice =
        vec![EventRows { event: 1, rows: vec![row] }, EventRows { event: 1, rows: vec![row] }];
    assert!(write_day_file(&FsStorage, dir.path(), spec(3), twice).is_err());
    assert!(FsStorage.len(&dir.path().join(format::file_name(DAY, 3))).is_err(), "nothing written");
}

fn corrupt_reason(result: Result<(), crate::Error>) -> String {
    match result {
        Err(crate::Error::Corrupt { reason, .. }) => reason,
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

/// Opens `bytes` as a day file and checks everything.
fn open_and_read(bytes: &[u8]) -> Result<DayFile, crate::Error> {
    let sim = SimStorage::new();
    let path = Path::new("/d/2026-12-01-v1.day");
    sim.write_durably(path, bytes);
    let file = DayFile::open(sim.storage().as_ref(), path)?;
    file.verify_all()?;
    Ok(file)
}

#[test]
fn damage_anywhere_is_found_and_never_read() {
    let sim = SimStorage::new();
    let dir = Path::new("/d");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let events = random_rows(&mut rng, 3, 300);
    let written = write(sim.storage().as_ref(), dir, &events).expect("written");
    let good = sim.read(&written.path).expect("the file");
    assert_holds(&open_and_read(&good).expect("the undamaged file reads"), &events);
    // A flipped bit in any byte: the file does not open, or an event's check
    // fails, or (alignment padding, which nothing reads) it reads the same.
    let mut refused = 0;
    for at in (0..good.len()).step_by(3).chain([0, 9, good.len() - 1]) {
        let mut bad = good.clone();
        bad[at] ^= 1 << (at % 8);
        match open_and_read(&bad) {
            Err(crate::Error::Corrupt { .. }) => refused += 1,
            Err(other) => panic!("byte {at}: {other}"),
            Ok(file) => assert_holds(&file, &events),
        }
    }
    assert!(refused * 10 > good.len() / 3 * 9, "most flips are refused: {refused}");
    // Truncated at any length.
    for len in (0..good.len()).step_by(13) {
        corrupt_reason(open_and_read(&good[..len]).map(|_| ()));
    }
    // Another format version (with its header checksum fixed up): refused by name.
    let mut other_version = good.clone();
    other_version[8] = 2;
    let crc = crc32c::crc32c(&other_version[..HEADER_BYTES]);
    let footer_crc_at = other_version.len() - 32 + 20;
    other_version[footer_crc_at..footer_crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    let reason = corrupt_reason(open_and_read(&other_version).map(|_| ()));
    assert!(reason.contains("format version 2"), "{reason}");
}

#[test]
fn a_crash_at_any_step_leaves_no_file_or_the_whole_file() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let events = random_rows(&mut rng, 4, 400);
    let dir = Path::new("/d");
    // How many storage operations one write takes.
    let probe = SimStorage::new();
    let before = probe.ops();
    write(probe.storage().as_ref(), dir, &events).expect("written");
    let ops = probe.ops() - before;
    let path = dir.join(format::file_name(DAY, 1));
    for fail_at in 1..=ops {
        for seed in 0..4 {
            let sim = SimStorage::new();
            sim.fail_op(sim.ops() + fail_at, Fault::PowerCut);
            let result = write(sim.storage().as_ref(), dir, &events);
            assert!(result.is_err(), "op {fail_at} was cut");
            sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            let storage = sim.storage();
            if storage.len(&path).is_ok() {
                // Under its final name a file is whole (the rename came after the sync).
                let file = DayFile::open(storage.as_ref(), &path).expect("a renamed file is whole");
                assert_holds(&file, &events);
            }
            // Writing again after the crash works, over any leftover temporary file.
            let again = write(storage.as_ref(), dir, &events).expect("rewritten");
            assert_holds(&DayFile::open(storage.as_ref(), &again.path).expect("opens"), &events);
        }
    }
}

#[test]
fn a_buffer_writes_the_same_file_every_time_and_reads_back_as_itself() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut buffer = SealBuffer { day: DAY, cut_position: 123_456, events: Vec::new() };
    for (event, mut rows) in random_rows(&mut rng, 4, 1_500) {
        rows.sort_by_key(|(user, ts, order, _)| (*user, *ts, *order));
        let mut buffered = BufferedEvent { event, ..Default::default() };
        for (user, ts, order, blob) in &rows {
            buffered.push(*user, *ts, *order, blob);
        }
        buffer.events.push(buffered);
    }
    let sim = SimStorage::new();
    let spec = DayFileSpec { day: DAY, version: 1, cut_position: buffer.cut_position };
    let write_in = |dir: &str| {
        let dir = Path::new(dir);
        let written =
            write_day_file(sim.storage().as_ref(), dir, spec, buffer.to_write()).expect("written");
        (sim.read(&written.path).expect("the file"), written)
    };
    let (first, written) = write_in("/a");
    let (second, again) = write_in("/b");
    assert_eq!(first, second, "the same rows write the same bytes");
    assert_eq!((written.checksum, written.rows), (again.checksum, buffer.rows() as u64));
    let file = DayFile::open(sim.storage().as_ref(), &written.path).expect("opens");
    for event in &buffer.events {
        let sealed = file.event(event.event).expect("checks out").expect("has rows");
        assert_eq!(sealed.users, event.users.as_slice());
        assert_eq!(sealed.starts, event.starts.as_slice());
        assert_eq!(sealed.ts_ms, event.ts_ms.as_slice());
        assert_eq!(sealed.order, event.order.as_slice());
        for row in 0..event.len() {
            assert_eq!(sealed.props(row), event.blob(row));
        }
    }
}
