//! I/O failures of the event log, through `Engine::ingest` on `SimStorage`:
//! failing every operation of a workload in turn (EIO, short write), and a
//! full disk (ENOSPC). The caller gets the real error for the batch that did
//! not become durable, the writer is poisoned, and after a restart every
//! acknowledged batch is there and nothing after the failure is.

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use nudge_engine::clock::ManualClock;
use nudge_engine::internals::log::sim::{Fault, SimStorage};
use nudge_engine::{Engine, EngineOptions, Error};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Batches in the workload (3 events each).
const BATCHES: usize = 10;
/// Events per batch.
const EVENTS: usize = 3;
/// Small chunks, so that the workload rotates several times.
const CHUNK_TARGET_BYTES: u64 = 700;

fn sim_options(clock: &ManualClock, sim: &SimStorage) -> EngineOptions {
    EngineOptions {
        log_storage: sim.storage(),
        chunk_target_bytes: CHUNK_TARGET_BYTES,
        ..options(clock)
    }
}

/// What a run acknowledged: batches `0..acked` were acknowledged, and
/// `0..claimable` may be in the log.
#[derive(Debug)]
struct Run {
    acked: usize,
    claimable: usize,
    first_error: Option<Error>,
}

/// Ingests the workload, checking that after the first failure nothing is
/// acknowledged and every answer is `Poisoned`.
fn workload(engine: &Engine) -> Run {
    let mut run = Run { acked: 0, claimable: 0, first_error: None };
    for b in 0..BATCHES {
        match engine.ingest(batch(b, EVENTS)) {
            Ok(outcome) => {
                assert!(run.first_error.is_none(), "batch {b} acknowledged after a failure");
                assert_eq!(outcome.accepted, EVENTS);
                run.acked = b + 1;
                run.claimable = b + 1;
            }
            Err(error) if run.first_error.is_none() => {
                run.claimable = b + 1;
                run.first_error = Some(error);
            }
            Err(error) => assert!(matches!(error, Error::Poisoned { .. }), "batch {b}: {error:?}"),
        }
    }
    if run.first_error.is_some() {
        let flushed = engine.flush().expect_err("a poisoned log does not sync");
        assert!(matches!(flushed, Error::Poisoned { .. }), "{flushed:?}");
    }
    run
}

/// Reopens on what the disk holds and checks that the batches found are
/// `0..m` with `acked <= m <= claimable`; then stores the rest of the
/// workload and checks, after another reopen, that all of it is there.
fn check_after_restart(dir: &Path, clock: &ManualClock, sim: &SimStorage, run: &Run, what: &str) {
    let engine = Engine::open(dir, sim_options(clock, sim))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let mut present = Vec::new();
    for b in 0..BATCHES {
        let outcome = engine.ingest(batch(b, EVENTS)).expect("ingest after restart");
        if outcome.duplicates == EVENTS {
            present.push(b);
        } else {
            assert_eq!(outcome.accepted, EVENTS, "{what}: batch {b} is stored whole or not at all");
        }
    }
    let m = present.len();
    assert_eq!(present, (0..m).collect::<Vec<_>>(), "{what}: the log keeps a prefix");
    assert!(m >= run.acked, "{what}: {} batches acknowledged, {m} found", run.acked);
    assert!(m <= run.claimable, "{what}: {m} found, only {} may be", run.claimable);
    drop(engine);
    let engine = Engine::open(dir, sim_options(clock, sim)).expect("reopen");
    assert_eq!(event_count(&engine), (BATCHES * EVENTS) as u64, "{what}");
}

#[test]
fn failing_each_operation_in_turn_poisons_and_loses_nothing_acknowledged() {
    let started = Instant::now();
    let clock = ManualClock::new(NOW);
    // A clean run counts the operations (open, ingests, flush, close).
    let total = {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = SimStorage::new();
        let engine = Engine::open(dir.path(), sim_options(&clock, &sim)).expect("open");
        let run = workload(&engine);
        assert_eq!(run.acked, BATCHES);
        engine.close().expect("close");
        sim.ops()
    };
    assert!(total > 2 * BATCHES as u64, "{total} operations");
    let mut runs = 0;
    for n in 1..=total {
        for fault in [Fault::Eio, Fault::ShortWrite] {
            let what = format!("{fault:?} at operation {n} of {total}");
            let dir = tempfile::tempdir().expect("tempdir");
            let sim = SimStorage::new();
            sim.fail_op(n, fault);
            let opened = Engine::open(dir.path(), sim_options(&clock, &sim));
            let opened_failed = opened.is_err();
            let run = match opened {
                Err(error) => Run { acked: 0, claimable: 0, first_error: Some(error) },
                Ok(engine) => {
                    let run = workload(&engine);
                    drop(engine);
                    run
                }
            };
            // The error names the file or directory whose operation failed;
            // from ingest, it also says that the log now refuses writes.
            let failed_op = sim.trace().get(n as usize - 1).cloned().unwrap_or_default();
            let path = failed_op.rsplit(' ').next().unwrap_or_default().to_owned();
            if let Some(error) = &run.first_error {
                let text = error.to_string();
                assert!(matches!(error, Error::Io { .. }), "{what}: {error:?}");
                assert!(text.contains(&path) && text.contains("os error 5"), "{what}: {text}");
                if !opened_failed {
                    assert!(
                        text.contains("refuses every write until the process restarts"),
                        "{what}: {text}"
                    );
                }
            }
            // A restart after the process died: the disk keeps its durable
            // data and some of the rest.
            sim.crash(&mut ChaCha8Rng::seed_from_u64(n));
            check_after_restart(dir.path(), &clock, &sim, &run, &what);
            runs += 1;
        }
    }
    println!("{runs} fault runs over {total} operations in {:.1?}", started.elapsed());
}

/// Capacities from which the disk fills: mid-frame, at a rotation (the new
/// chunk's header), at the first chunk's header, at every step between.
const CAPACITY_SWEEP: std::ops::RangeInclusive<u64> = 0..=2200;
/// Step of the sweep, prime so that it lands at every kind of place.
const CAPACITY_STEP: usize = 53;

#[test]
fn a_full_disk_says_so_loses_nothing_acknowledged_and_reopens() {
    let started = Instant::now();
    let clock = ManualClock::new(NOW);
    let mut full_runs = 0;
    for capacity in CAPACITY_SWEEP.step_by(CAPACITY_STEP) {
        let what = format!("capacity {capacity} bytes");
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = SimStorage::new();
        sim.set_capacity(Some(capacity));
        let run = match Engine::open(dir.path(), sim_options(&clock, &sim)) {
            // The first chunk's header did not fit.
            Err(error) => Run { acked: 0, claimable: 0, first_error: Some(error) },
            Ok(engine) => {
                let run = workload(&engine);
                if let Some(Error::DiskFull { .. }) = &run.first_error {
                    let later = engine.ingest(batch(0, 1)).expect_err("poisoned");
                    let text = later.to_string();
                    assert!(matches!(later, Error::Poisoned { .. }), "{what}: {later:?}");
                    assert!(text.contains("the disk is full"), "{what}: {text}");
                }
                run
            }
        };
        let Some(error) = &run.first_error else {
            assert!(sim.used_bytes() <= capacity, "{what}: the workload fit");
            continue;
        };
        full_runs += 1;
        let text = error.to_string();
        assert!(matches!(error, Error::DiskFull { .. }), "{what}: {error:?}");
        assert!(
            text.contains("the disk is full")
                && text.contains("No space left on device")
                && text.contains(".chunk")
                && text.contains("free space on it"),
            "{what}: {text}"
        );
        // A restart with the disk still full: open repairs the torn tail
        // (which frees space) and finds every acknowledged batch, or, when
        // the repair itself needs a byte (a chunk header), says the disk is full.
        match Engine::open(dir.path(), sim_options(&clock, &sim)) {
            Ok(engine) => {
                let found = event_count(&engine) as usize / EVENTS;
                assert!(found >= run.acked && found <= run.claimable, "{what}: {found} batches");
            }
            Err(error) => {
                assert!(matches!(error, Error::DiskFull { .. }), "{what}: reopen: {error:?}");
                assert!(error.to_string().contains("header"), "{what}: {error}");
            }
        }
        // Space freed: the rest of the workload goes in and survives a crash.
        sim.set_capacity(None);
        check_after_restart(dir.path(), &clock, &sim, &run, &what);
    }
    assert!(full_runs > 20, "the disk filled in {full_runs} runs");
    println!("{full_runs} full-disk runs in {:.1?}", started.elapsed());
}

/// Found by the model test (`log_model.rs`): a batch whose fsync failed is
/// still in the page cache when the process restarts; recovery reads it, and
/// the retried batch is acknowledged as a duplicate. That acknowledgement
/// must be durable: open now syncs the last chunk before anything is
/// acknowledged, so a power cut right after keeps the batch.
#[test]
fn a_batch_read_back_after_a_failed_fsync_is_durable_before_its_retry_is_acknowledged() {
    let clock = ManualClock::new(NOW);
    for seed in 0..32 {
        let dir = tempfile::tempdir().expect("tempdir");
        let sim = SimStorage::new();
        let engine = Engine::open(dir.path(), sim_options(&clock, &sim)).expect("open");
        engine.ingest(batch(0, EVENTS)).expect("ingest");
        sim.fail_op(sim.ops() + 2, Fault::Eio); // the write lands, its fsync fails
        let error = engine.ingest(batch(1, EVENTS)).expect_err("fsync fails");
        assert!(error.to_string().contains("syncing"), "{error}");
        drop(engine);
        // A restart without a power cut: the write is still there.
        let engine = Engine::open(dir.path(), sim_options(&clock, &sim)).expect("reopen");
        let retried = engine.ingest(batch(1, EVENTS)).expect("retry");
        assert_eq!(retried.duplicates, EVENTS, "seed {seed}: found in the page cache");
        // The power goes right after that acknowledgement.
        sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        drop(engine);
        let engine = Engine::open(dir.path(), sim_options(&clock, &sim)).expect("after crash");
        assert_eq!(event_count(&engine), 2 * EVENTS as u64, "seed {seed}: acknowledged, kept");
    }
}
