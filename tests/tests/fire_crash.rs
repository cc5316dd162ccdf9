//! Kill -9 harness for fires: a child ingests one `Ping` at a time under the
//! trigger `on "Ping"` and decides each fire, printing it once decided. The
//! parent kills it at random moments (between an ingest and its fire, between
//! a fire record and the print: anywhere), restarts it, and finally checks
//! that no fire was ever decided twice and that, once the last pending fires
//! are decided, every acknowledged ping fired exactly once.
//!
//! `NUDGE_FIRE_CRASH_CYCLES` sets the number of cycles (default 60).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nudge_engine::{Engine, EngineOptions, TRIGGER_FIRED_EVENT};
use rand::{Rng, SeedableRng};

#[test]
fn no_fire_is_decided_twice_across_kill_9() {
    let cycles: u64 = nudge_tests::env_u64("NUDGE_FIRE_CRASH_CYCLES", 60);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut next = 0u64;
    let mut acked = Vec::new();
    let mut printed: BTreeMap<String, u32> = BTreeMap::new();
    for cycle in 0..cycles {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nudge-fire-child"))
            .arg(dir.path())
            .arg(next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let (first_ack_tx, first_ack_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("ack ") {
                    let _ = first_ack_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        // Kill only once the child is working: on a loaded machine its start alone
        // can outlast the random delay, and a cycle without a ping tests nothing.
        first_ack_rx.recv_timeout(Duration::from_secs(30)).expect("the child acknowledged a ping");
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..60)));
        child.kill().expect("kill -9");
        let status = child.wait().expect("wait");
        assert!(status.code().is_none(), "cycle {cycle}: the child stopped by itself: {status:?}");
        for line in reader.join().expect("reader") {
            if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()) {
                acked.push(n);
                next = next.max(n + 1);
            } else if let Some(fired) = line.strip_prefix("fired ") {
                *printed.entry(fired.to_owned()).or_default() += 1;
            }
        }
        // Batches written but not acknowledged may exist: never reuse their numbers.
        next += 1;
    }
    let twice: Vec<_> = printed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} fires decided more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    // Decide what is still pending, then every acknowledged ping has fired once.
    let engine = Engine::open(dir.path(), EngineOptions::default()).expect("reopen");
    engine.fire_due().expect("fire the rest");
    assert_eq!(engine.pending_fires(), 0);
    let reader = engine.read();
    let fired_event = reader.dicts.events.get(TRIGGER_FIRED_EVENT).expect("some fired");
    for &n in &acked {
        let user = reader.dicts.users.get(&format!("p{n}")).expect("acknowledged user stored");
        let fires = reader
            .state
            .store
            .timelines
            .of(user)
            .iter()
            .filter(|e| e.event() == fired_event)
            .count();
        assert_eq!(fires, 1, "ping {n} fired {fires} times");
    }
    assert!(acked.len() as u64 >= cycles, "too few pings to test anything: {}", acked.len());
    eprintln!(
        "{cycles} kill -9 cycles, {} pings acknowledged, {} fires printed",
        acked.len(),
        printed.len()
    );
}
