//! The event log against an in-memory model, through random sequences of
//! appends, syncs, failing appends, crashes and clean restarts on
//! `SimStorage` (proptest; `PROPTEST_CASES` sets the number of cases).
//!
//! The model keeps what is certainly in the log (`durable`) and what may be
//! (`maybe`: written but not synced, or a failed append). After a crash the
//! recovered log must hold `durable` and a prefix of `maybe`; after a clean
//! restart, exactly everything written; after a failure, every request errs.

mod sim_log;

use nudge_engine::Error;
use nudge_engine::internals::log::sim::{Fault, SimStorage};
use nudge_engine::{Durability, RecoveryMode};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sim_log::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append a record with a body of this many bytes.
    Append(usize),
    /// Append, with the storage operation `at` (1 or 2) from now failing.
    AppendFailing(usize, Fault, u64),
    Sync,
    /// Crash with this seed, then recover.
    Crash(u64),
    /// Stop the writer cleanly, then recover.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let fault = prop_oneof![Just(Fault::Eio), Just(Fault::ShortWrite)];
    prop_oneof![
        8 => (8usize..3000).prop_map(Op::Append),
        1 => (8usize..3000, fault, 1u64..=2).prop_map(|(len, f, at)| Op::AppendFailing(len, f, at)),
        3 => Just(Op::Sync),
        2 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Default)]
struct Model {
    durable: Vec<u64>,
    maybe: Vec<u64>,
    poisoned: bool,
}

impl Model {
    /// Checks a recovered log against the model and makes it the new model.
    fn recovered(&mut self, found: Vec<u64>, exact: bool) {
        let all: Vec<u64> = self.durable.iter().chain(&self.maybe).copied().collect();
        assert!(found.len() >= self.durable.len(), "lost durable records: {found:?} vs {self:?}");
        assert!(
            found.len() <= all.len() && found[..] == all[..found.len()],
            "{found:?} vs {all:?}"
        );
        if exact {
            assert_eq!(found, all, "a clean restart keeps everything written");
        }
        *self = Model { durable: found, maybe: Vec::new(), poisoned: false };
    }
}

fn check(ops: Vec<Op>, durability: Durability, target: u64) {
    let sim = SimStorage::new();
    let mode = RecoveryMode::TolerateTornTail;
    let (found, mut log) = open(&sim, durability, target, mode).expect("open a new log");
    assert!(found.is_empty());
    let mut model = Model::default();
    let mut next_id = 0;
    for op in ops {
        match op {
            Op::Append(len) | Op::AppendFailing(len, _, _) => {
                if let Op::AppendFailing(_, fault, at) = op {
                    sim.fail_op(sim.ops() + at, fault);
                }
                let id = next_id;
                next_id += 1;
                let result = log.append(id, len);
                sim.clear_faults();
                match result {
                    Ok(_) => {
                        assert!(!model.poisoned, "acknowledged after a failure");
                        model.maybe.push(id);
                        if durability == Durability::SyncPerBatch {
                            model.durable.append(&mut model.maybe);
                        }
                    }
                    Err(error) => {
                        if model.poisoned {
                            assert!(matches!(error, Error::Poisoned { .. }), "{error:?}");
                        } else {
                            assert!(matches!(op, Op::AppendFailing(..)), "unexpected {error}");
                            assert!(matches!(error, Error::Io { .. }), "{error:?}");
                            // A failed append may still be on disk (a write that landed).
                            model.maybe.push(id);
                            model.poisoned = true;
                        }
                    }
                }
            }
            Op::Sync => match log.sync() {
                Ok(_) => {
                    assert!(!model.poisoned, "a sync acknowledged after a failure");
                    model.durable.append(&mut model.maybe);
                }
                Err(error) => {
                    assert!(model.poisoned, "{error}");
                    assert!(matches!(error, Error::Poisoned { .. }), "{error:?}");
                }
            },
            Op::Crash(seed) => {
                sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
                drop(log);
                let (found, reopened) = open(&sim, durability, target, mode).expect("recover");
                model.recovered(found, false);
                log = reopened;
            }
            Op::Restart => {
                drop(log);
                let (found, reopened) = open(&sim, durability, target, mode).expect("recover");
                let exact = !model.poisoned;
                model.recovered(found, exact);
                log = reopened;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn the_log_behaves_like_its_model(
        ops in prop::collection::vec(op(), 1..60),
        buffered in any::<bool>(),
        target in prop_oneof![Just(300u64), Just(2000), Just(1 << 20)],
    ) {
        let durability = if buffered { Durability::Buffered } else { Durability::SyncPerBatch };
        check(ops, durability, target);
    }
}

/// Found by this model: a rotation whose new chunk's header write failed left
/// a chunk whose name was never synced; after a restart the writer appended
/// acknowledged records to it, and a power cut could make the whole file
/// vanish. Open now syncs the last chunk and the log directory.
#[test]
fn records_appended_to_a_chunk_left_by_a_failed_rotation_survive_a_crash() {
    for seed in 0..32 {
        let ops = vec![
            Op::Append(1389),
            Op::AppendFailing(1383, Fault::Eio, 2), // rotates: the header write fails
            Op::Restart,
            Op::Append(8),
            Op::Crash(seed),
        ];
        check(ops, Durability::SyncPerBatch, 300);
    }
}

/// Found by this model: a batch whose fsync failed is read back by the next
/// process, which must make it durable before building on it.
#[test]
fn a_record_read_back_after_a_failed_fsync_survives_a_crash_after_restart() {
    for seed in 0..32 {
        let ops = vec![Op::AppendFailing(8, Fault::Eio, 2), Op::Restart, Op::Crash(seed)];
        check(ops, Durability::SyncPerBatch, 1 << 20);
    }
}
