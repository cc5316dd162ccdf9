//! Simulated crashes of the event log: for many seeds, a random workload runs
//! on `SimStorage`, the power is cut at a random operation (or while idle),
//! the disk keeps its durable data plus a torn prefix of the rest, and the
//! log is recovered. Every acknowledged (synced) record must come back, in
//! order; what comes back must be a prefix of what was appended; recovery
//! must not panic; and the recovered log must take appends that survive.
//!
//! `NUDGE_SIM_SEEDS` sets the number of seeds (default below); a failure
//! names its seed and the last storage operations.

mod sim_log;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nudge_engine::internals::log::sim::{CrashModel, Fault, SimStorage};
use nudge_engine::{Durability, RecoveryMode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim_log::*;

/// Seeds run by default: enough to hit every kind of crash point many times,
/// small enough for a debug build in CI.
const DEFAULT_SEEDS: u64 = 10_000;
/// The reordered model runs one seed for every this many of the in-order model.
const REORDERED_SHARE: u64 = 5;
/// Reordered seeds whose first open refused with "a valid record follows".
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// Ids of the records appended after recovery (far above any workload's).
const AFTER_RECOVERY_IDS: u64 = 1_000_000;

/// What one life of the log acknowledged.
#[derive(Debug, Default)]
struct Life {
    /// Ids sent as appends, in order.
    appended: Vec<u64>,
    /// How many of the first appends are guaranteed durable.
    durable: usize,
    /// How many of the first appends may be in the log at all.
    claimable: usize,
}

/// Runs a random workload until the power cut (if it comes).
fn live(sim: &SimStorage, rng: &mut ChaCha8Rng, durability: Durability, target: u64) -> Life {
    let mut life = Life::default();
    let Ok((found, log)) = open(sim, durability, target, RecoveryMode::TolerateTornTail) else {
        sim.crash(rng); // The power went during open.
        return life;
    };
    assert!(found.is_empty(), "a new disk holds nothing");
    let mut failed = false;
    for id in 0..rng.gen_range(1..=24u64) {
        if rng.gen_bool(0.2) {
            match log.sync() {
                Ok(_) if failed => panic!("a sync was acknowledged after a failure"),
                Ok(_) => life.durable = life.appended.len(),
                Err(_) => failed = true,
            }
        } else {
            life.appended.push(id);
            let len =
                if rng.gen_bool(0.2) { rng.gen_range(8..5000) } else { rng.gen_range(8..400) };
            match log.append(id, len) {
                Ok(_) if failed => panic!("an append was acknowledged after a failure"),
                Ok(_) => {
                    life.claimable = life.appended.len();
                    if durability == Durability::SyncPerBatch {
                        life.durable = life.appended.len();
                    }
                }
                Err(_) if !failed => {
                    failed = true;
                    life.claimable = life.appended.len();
                }
                Err(_) => {}
            }
        }
    }
    // The process dies with the crash: the writer's handles are dead before it stops.
    sim.crash(rng);
    drop(log);
    life
}

/// One seed: a life, a crash, maybe a crash during recovery, then checks.
fn run_seed(seed: u64, model: CrashModel) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sim = SimStorage::new();
    sim.set_model(model);
    let durability =
        if rng.gen_bool(0.7) { Durability::SyncPerBatch } else { Durability::Buffered };
    let target = [256, 1024, 4096, 1 << 20][rng.gen_range(0..4)];
    if rng.gen_bool(0.9) {
        sim.fail_op(rng.gen_range(1..=80), Fault::PowerCut);
    }
    let life = live(&sim, &mut rng, durability, target);
    if rng.gen_bool(0.25) {
        // The power goes again while recovery repairs the tail.
        sim.fail_op(sim.ops() + rng.gen_range(1..=10), Fault::PowerCut);
        let _ = open(&sim, durability, target, RecoveryMode::TolerateTornTail);
        sim.crash(&mut rng);
    }
    let mut mode = RecoveryMode::TolerateTornTail;
    if model == CrashModel::Reordered {
        // Blocks of one write can land out of order: a hole, then a valid
        // frame of the same unacknowledged group. Recovery cannot tell that
        // from damaged synced data, and refuses, changing nothing; salvage
        // then keeps every acknowledged record.
        let before = sim.files();
        if let Err(error) = open(&sim, durability, target, mode) {
            let text = error.to_string();
            if !text.contains("a valid record follows") {
                return Err(format!("recovery failed: {text}"));
            }
            if sim.files() != before {
                return Err("a refused open changed the log".into());
            }
            REFUSED.fetch_add(1, Ordering::Relaxed);
            mode = RecoveryMode::Salvage;
        }
    }
    let (found, log) =
        open(&sim, durability, target, mode).map_err(|e| format!("recovery failed: {e}"))?;
    let check = || -> Result<(), String> {
        if found.len() < life.durable {
            return Err(format!("{} durable records, {} recovered", life.durable, found.len()));
        }
        if found.len() > life.claimable {
            return Err(format!("{} recovered, only {} may be", found.len(), life.claimable));
        }
        if found[..] != life.appended[..found.len()] {
            return Err(format!("recovered {found:?}, appended {:?}", life.appended));
        }
        Ok(())
    };
    check()?;
    // The recovered log takes appends, and they survive a clean restart.
    let more: Vec<u64> = (0..3).map(|i| AFTER_RECOVERY_IDS + i).collect();
    for &id in &more {
        log.append(id, rng.gen_range(8..2000))
            .map_err(|e| format!("append after recovery: {e}"))?;
    }
    log.sync().map_err(|e| format!("sync after recovery: {e}"))?;
    drop(log);
    let (again, _log) = open(&sim, durability, target, RecoveryMode::TolerateTornTail)
        .map_err(|e| format!("second recovery failed: {e}"))?;
    let expected: Vec<u64> = found.iter().chain(&more).copied().collect();
    if again != expected {
        return Err(format!("after appending: {again:?}, expected {expected:?}"));
    }
    Ok(())
}

fn run_seeds(model: CrashModel, count: u64) {
    let started = Instant::now();
    let mut failures = Vec::new();
    for seed in 0..count {
        let outcome = std::panic::catch_unwind(|| run_seed(seed, model))
            .unwrap_or_else(|_| Err("panicked".into()));
        if let Err(why) = outcome {
            failures.push(format!("seed {seed}: {why}"));
        }
    }
    println!("{model:?}: {count} seeds in {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed ({model:?}):\n{}",
        failures.len(),
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_acknowledged_record_survives_a_crash_at_any_point() {
    run_seeds(CrashModel::InOrder, seeds(DEFAULT_SEEDS));
}

/// Finding: with writes that land out of order (allowed by the log's stated
/// assumptions), a crash can leave a hole followed by a valid frame in the
/// unsynced tail, and open refuses the directory although nothing
/// acknowledged is damaged. This test pins what holds today: the refusal
/// changes nothing, and salvage recovers every acknowledged record.
#[test]
fn with_reordered_writes_a_crash_loses_nothing_acknowledged_though_open_may_refuse() {
    let count = seeds(DEFAULT_SEEDS) / REORDERED_SHARE;
    run_seeds(CrashModel::Reordered, count.max(1));
    println!(
        "Reordered: {} of {count} seeds refused to open until salvage",
        REFUSED.load(Ordering::Relaxed)
    );
}
