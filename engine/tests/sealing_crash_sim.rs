//! Simulated power cuts while days are sealed: the log and the day files live
//! on `SimStorage`; a workload ingests, seals days (first versions, then next
//! versions after late rows), and snapshots; the power is cut at one storage
//! operation of it, then the disk keeps its durable data and a random part of
//! the rest. For a cut at every operation in turn: the directory opens; every
//! acknowledged batch is there; once the rest is ingested again, every answer
//! equals an engine's that never sealed; and state after a full replay equals
//! state opened from the snapshot.
//!
//! `NUDGE_SEAL_SIM_STEP` visits every n-th operation (default 1: all).

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::dataset::{self, DatasetSpec};
use nudge_engine::internals::log::sim::{Fault, SimStorage};
use nudge_engine::{Engine, EngineOptions, Record};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Records per batch.
const BATCH_RECORDS: usize = 150;

const QUERIES: [&str; 5] = [
    r#"did "Product Viewed" at least 2 times in last 5 days"#,
    r#"did "Added To Cart" then "Charged" within 1 day in last 6 days"#,
    r#"did "Added To Cart" then not "Charged" within 1 day in last 6 days"#,
    r#"sum(amount) of "Charged" in last 6 days > 100"#,
    r#"last did "Session Started" in last 3 days"#,
];

/// Events with ids, so that ingesting them again after a restart shows which
/// were stored (a repeated id is acknowledged, not stored twice).
fn records() -> Vec<Vec<Record>> {
    let spec = DatasetSpec { now_ms: NOW, days: 5, ..DatasetSpec::new(40) };
    let records: Vec<Record> = dataset::records(spec)
        .enumerate()
        .map(|(i, record)| match record {
            Record::Event(event) => event.id(format!("e{i}")).into(),
            other => other,
        })
        .collect();
    records.chunks(BATCH_RECORDS).map(<[Record]>::to_vec).collect()
}

fn sim_options(clock: &ManualClock, sim: &SimStorage) -> EngineOptions {
    EngineOptions { log_storage: sim.storage(), ..options(clock) }
}

fn answers(engine: &Engine) -> Vec<(u64, Vec<String>)> {
    common::answers(engine, &QUERIES)
}

/// The workload: half the batches, every closed day sealed, a snapshot,
/// the other half (late rows for sealed days), the closed days sealed again.
/// Returns how many batches were acknowledged; stops at the first error.
fn workload(engine: &Engine, batches: &[Vec<Record>]) -> usize {
    let mut acked = 0;
    let half = batches.len() / 2;
    for (b, batch) in batches.iter().enumerate() {
        if engine.ingest(batch.clone()).is_err() {
            return acked;
        }
        acked = b + 1;
        if b + 1 == half && (engine.seal_closed_days().is_err() || engine.snapshot().is_err()) {
            return acked;
        }
    }
    let _ = engine.seal_closed_days();
    acked
}

fn check_after_restart(
    dir: &Path,
    clock: &ManualClock,
    sim: &SimStorage,
    batches: &[Vec<Record>],
    acked: usize,
    expected: &[(u64, Vec<String>)],
    what: &str,
) {
    let engine = Engine::open(dir, sim_options(clock, sim))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    for (b, batch) in batches.iter().enumerate() {
        let events = batch.iter().filter(|r| matches!(r, Record::Event(_))).count();
        let outcome = engine.ingest(batch.clone()).expect("ingest after restart");
        if b < acked {
            assert_eq!(outcome.duplicates, events, "{what}: acknowledged batch {b} is there");
        }
    }
    assert_eq!(answers(&engine), expected, "{what}: answers");
    engine.seal_closed_days().unwrap_or_else(|e| panic!("{what}: sealing after restart: {e}"));
    engine.snapshot().expect("snapshot");
    let state = engine.encode_state().expect("encode");
    drop(engine);
    let full = Engine::open(dir, EngineOptions { load_snapshot: false, ..sim_options(clock, sim) })
        .unwrap_or_else(|e| panic!("{what}: full replay failed: {e}"));
    assert!(full.encode_state().expect("encode") == state, "{what}: full replay differs");
    assert_eq!(answers(&full), expected, "{what}: answers after full replay");
}

#[test]
fn a_power_cut_at_any_step_of_sealing_loses_nothing_and_the_directory_opens() {
    let started = Instant::now();
    let step: u64 =
        std::env::var("NUDGE_SEAL_SIM_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let clock = ManualClock::new(NOW);
    let batches = records();
    let expected = {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = open(dir.path(), &clock);
        for batch in &batches {
            engine.ingest(batch.clone()).expect("ingest");
        }
        answers(&engine)
    };
    // A clean run counts the operations and checks the workload seals.
    let total = {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = SimStorage::new();
        let engine = Engine::open(dir.path(), sim_options(&clock, &sim)).expect("open");
        assert_eq!(workload(&engine, &batches), batches.len());
        let tiers = engine.storage_tiers();
        assert!(tiers.mapped_days >= 4, "{tiers:?}");
        assert_eq!(answers(&engine), expected);
        drop(engine);
        sim.ops()
    };
    let mut runs = 0;
    for n in (1..=total).step_by(step as usize) {
        let what = format!("power cut at operation {n} of {total}");
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = SimStorage::new();
        sim.fail_op(n, Fault::PowerCut);
        let acked = match Engine::open(dir.path(), sim_options(&clock, &sim)) {
            Ok(engine) => workload(&engine, &batches),
            Err(_) => 0,
        };
        sim.crash(&mut ChaCha8Rng::seed_from_u64(n));
        check_after_restart(dir.path(), &clock, &sim, &batches, acked, &expected, &what);
        runs += 1;
    }
    println!("{runs} power cuts over {total} operations in {:.1?}", started.elapsed());
}
