//! Kill -9 harness: a child process ingests batches and reports each
//! acknowledgement; the parent kills it at a random moment, reopens the data
//! directory, and checks that every acknowledged batch is present in full and
//! every other batch is either wholly present or wholly absent. The child
//! seals days as it goes, so kills land while day files are written too; at
//! the end, state opened from the snapshot equals state rebuilt by replay.
//!
//! `NUDGE_CRASH_CYCLES` sets the number of cycles (default 200, the CI size).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nudge_engine::{Engine, EngineOptions};
use nudge_tests::CRASH_BATCH_EVENTS;
use rand::{Rng, SeedableRng};

#[test]
fn every_acknowledged_batch_survives_kill_9() {
    let cycles: u64 = nudge_tests::env_u64("NUDGE_CRASH_CYCLES", 200);
    let seed: u64 = nudge_tests::env_u64("NUDGE_CRASH_SEED", 7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut next_batch = 0u64;
    let mut acked_total = 0u64;
    let mut max_acked: Option<u64> = None;
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nudge-crash-child"))
            .arg(dir.path())
            .arg(next_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    let _ = ready_tx.send(());
                }
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        // One cycle in ten kills during open; the rest once the child is ingesting.
        if cycle % 10 != 5 {
            ready_rx.recv_timeout(Duration::from_secs(30)).expect("child became ready");
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        reader.join().expect("reader");
        let acked: Vec<u64> = rx.try_iter().collect();
        assert!(
            status.code().is_none() || status.code() == Some(0),
            "cycle {cycle} (seed {seed}): child failed before the kill: {status:?}"
        );
        acked_total += acked.len() as u64;
        if let Some(&last) = acked.last() {
            max_acked = Some(last);
        }
        // Reopen (sometimes writing a snapshot on close, so later cycles load one) and verify.
        let options = EngineOptions { snapshot_on_close: cycle % 10 == 9, ..Default::default() };
        let engine = Engine::open(dir.path(), options).expect("reopen after kill");
        let reader = engine.read();
        let present = |batch: u64| {
            reader
                .dicts
                .users
                .get(&format!("b{batch}"))
                .map_or(0, |u| reader.state.store.events_of(u).len())
        };
        for &batch in &acked {
            assert_eq!(
                present(batch),
                CRASH_BATCH_EVENTS,
                "cycle {cycle} (seed {seed}): acknowledged batch {batch} lost"
            );
        }
        let mut highest_present = max_acked;
        for batch in 0..next_batch + acked.len() as u64 + 64 {
            let n = present(batch);
            assert!(
                n == 0 || n == CRASH_BATCH_EVENTS,
                "cycle {cycle}: batch {batch} is partial ({n} events)"
            );
            if n > 0 && batch >= next_batch {
                highest_present = highest_present.max(Some(batch));
            }
        }
        next_batch = highest_present.map_or(0, |b| b + 1);
        drop(reader);
        drop(engine);
    }
    assert!(
        acked_total > cycles,
        "the child acknowledged too little to test anything: {acked_total}"
    );
    let engine = Engine::open(dir.path(), EngineOptions::default()).expect("reopen");
    let tiers = engine.storage_tiers();
    assert!(tiers.mapped_days > 0, "the child sealed days: {tiers:?}");
    engine.snapshot().expect("snapshot");
    let state = engine.encode_state().expect("encode");
    drop(engine);
    let replayed =
        Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..Default::default() })
            .expect("full replay");
    assert!(replayed.encode_state().expect("encode") == state, "full replay differs");
    eprintln!("{cycles} kill -9 cycles, {acked_total} acknowledged batches, all present");
}
