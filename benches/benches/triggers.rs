//! What's measured: the cost of live-trigger matching as batches are applied.
//! 1000 saved triggers listen to 50 event names (a third plain `on E where …`,
//! a third `… unless F within 10m`, a third `… then F within 1h`); 100k fresh
//! events of 10k users are applied in live batches of 1000, on the applying
//! thread alone (no log, no fsync), with no triggers, with *selective*
//! triggers (`where n > 98`: about 1 % of their events arm anything) and with
//! *busy* ones (`where n > k`, `unless` and `then` arming on every E: about
//! 9 pending fires per event). It prints the pending fires left.
//!
//! Run with: `cargo bench -p nudge-benches --bench triggers`

#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use nudge_engine::internals::DerivedState;
use nudge_engine::internals::dict::Dictionaries;
use nudge_engine::internals::entry::{
    self, LogBatch, LogEntry, LogEvent, LogTrigger, ValidatedBatch,
};
use nudge_engine::internals::props::{self, Value};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const RULES: usize = 1000;
const EVENT_NAMES: usize = 50;
const USERS: usize = 10_000;
const EVENTS: usize = 100_000;
const BATCH: usize = 1000;
/// Arrival time of every batch; events are a few seconds older (fresh).
const RECEIVED_MS: i64 = 1_793_491_200_000;

fn trigger_text(i: usize, selective: bool) -> String {
    let e = i % EVENT_NAMES;
    let f = (i * 7 + 3) % EVENT_NAMES;
    let cond =
        if selective { "where n > 98".to_string() } else { format!("where n > {}", i % 100) };
    match (i % 3, selective) {
        (0, _) => format!(r#"on "E{e}" {cond}"#),
        (1, true) => format!(r#"on "E{e}" {cond} unless "E{f}" within 10m"#),
        (1, false) => format!(r#"on "E{e}" unless "E{f}" within 10m"#),
        (_, true) => format!(r#"on "E{e}" {cond} then "E{f}" within 1h"#),
        (_, false) => format!(r#"on "E{e}" then "E{f}" within 1h"#),
    }
}

/// Dictionaries naming users, events and the key `n`, and the event batches.
fn setup() -> (Dictionaries, Vec<ValidatedBatch>) {
    let mut dicts = Dictionaries::default();
    for u in 0..USERS {
        dicts.users.push(&format!("u{u}"));
    }
    for e in 0..EVENT_NAMES {
        dicts.events.push(&format!("E{e}"));
    }
    dicts.keys.push("n");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let batches = (0..EVENTS / BATCH)
        .map(|b| {
            let entries = (0..BATCH)
                .map(|i| {
                    let mut blob = Vec::new();
                    let n = Value::Number((next() % 100) as f64);
                    props::encode(&mut blob, &[(0, &n)]);
                    LogEntry::Event(LogEvent {
                        user: (next() % USERS as u64) as u32,
                        event: (next() % EVENT_NAMES as u64) as u32,
                        ts_ms: RECEIVED_MS - 5_000 + ((b * BATCH + i) as i64 % 5_000),
                        id: None,
                        props: blob,
                    })
                })
                .collect();
            let batch = LogBatch { received_ms: RECEIVED_MS, entries, ..Default::default() };
            ValidatedBatch::new(entry::encode_batch(&batch)).expect("valid")
        })
        .collect();
    (dicts, batches)
}

/// A state with `rules` triggers saved.
fn state_with(rules: usize, selective: bool, dicts: &Dictionaries) -> DerivedState {
    let mut state = DerivedState::default();
    let entries = (0..rules)
        .map(|i| {
            LogEntry::TriggerSaved(LogTrigger {
                name: format!("t{i}"),
                trigger: trigger_text(i, selective),
            })
        })
        .collect();
    let batch = LogBatch { received_ms: RECEIVED_MS, entries, ..Default::default() };
    let batch = ValidatedBatch::new(entry::encode_batch(&batch)).expect("valid");
    state.apply(batch.get(), 1, dicts);
    state
}

fn apply_all(
    rules: usize,
    selective: bool,
    dicts: &Dictionaries,
    batches: &[ValidatedBatch],
) -> (Duration, usize) {
    let mut state = state_with(rules, selective, dicts);
    let started = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        state.apply(batch.get(), 2 + i as u64, dicts);
    }
    (started.elapsed(), state.triggers.pending())
}

fn triggers(c: &mut Criterion) {
    let (dicts, batches) = setup();
    for selective in [true, false] {
        let (_, pending) = apply_all(RULES, selective, &dicts, &batches);
        eprintln!("{RULES} triggers (selective: {selective}), {EVENTS} events: {pending} pending");
    }
    let mut group = c.benchmark_group("triggers");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, rules, selective) in
        [("no_triggers", 0, true), ("1000_selective", RULES, true), ("1000_busy", RULES, false)]
    {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                (0..iterations).map(|_| apply_all(rules, selective, &dicts, &batches).0).sum()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, triggers);
criterion_main!(benches);
