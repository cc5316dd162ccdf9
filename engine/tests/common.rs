//! Helpers shared by the engine's integration tests.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use nudge_engine::clock::ManualClock;
use nudge_engine::{Engine, EngineOptions, Event, Record};

/// 2026-11-01T00:00:00Z.
pub const NOW: i64 = 1_793_491_200_000;

pub fn options(clock: &ManualClock) -> EngineOptions {
    EngineOptions { clock: Arc::new(clock.clone()), snapshot_on_close: false, ..Default::default() }
}

pub fn open(dir: &Path, clock: &ManualClock) -> Engine {
    Engine::open(dir, options(clock)).expect("open")
}

/// `n` events of user `u{b}` named `E{b}` in batch `b`, with ids `b-i`.
pub fn batch(b: usize, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Event::new(format!("u{}", b % 7), format!("E{}", b % 3))
                .at(NOW - 1000 + i as i64)
                .prop("n", i as i64)
                .prop("tag", format!("t{}", i % 4))
                .id(format!("{b}-{i}"))
                .into()
        })
        .collect()
}

pub fn event_count(engine: &Engine) -> u64 {
    let tiers = engine.storage_tiers();
    tiers.head_rows + tiers.sealed_rows
}

/// The UTC days (days since 1970-01-01) of the events among `records` that
/// carry a time.
pub fn event_days(records: &[Record]) -> std::collections::BTreeSet<i32> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => e.ts_ms.map(nudge_engine::clock::day_of),
            _ => None,
        })
        .collect()
}

/// The count and every user of each of `queries` at `NOW`, with no deadline
/// or memory limit.
pub fn answers(engine: &Engine, queries: &[&str]) -> Vec<(u64, Vec<String>)> {
    let options = nudge_engine::QueryOptions {
        now_ms: Some(NOW),
        limit: Some(usize::MAX),
        deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
        memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
        ..Default::default()
    };
    queries
        .iter()
        .map(|q| {
            let answer = engine.query(q, &options).unwrap_or_else(|e| panic!("{q}: {e}"));
            (answer.count, answer.users)
        })
        .collect()
}
