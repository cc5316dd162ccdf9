//! What's measured, at a dataset scale (default S: 1M users, ~30M events;
//! `NUDGE_BENCH_USERS` overrides): durable ingest of the whole dataset in
//! 1000-record batches, on-disk log bytes per event, derived-state heap bytes
//! per event, snapshot write time and size, open from the snapshot, and full
//! replay (open ignoring snapshots). Opens are repeated `NUDGE_BENCH_RUNS`
//! times (default 5) and reported as medians. Not criterion: one S-scale
//! iteration takes tens of seconds.
//!
//! Run with: `cargo bench -p nudge-benches --bench engine_scale`

use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use nudge_engine::{Engine, EngineOptions};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
    })
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users: u64 = std::env::var("NUDGE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(nudge_engine::dataset::SCALE_S_USERS);
    let runs: usize =
        std::env::var("NUDGE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let started = Instant::now();
    let batches = nudge_benches::batches(users, 1000);
    let events = nudge_benches::event_count(&batches);
    let records: usize = batches.iter().map(Vec::len).sum();
    println!(
        "dataset: {users} users, {events} events, {records} records (generated in {:.1?})",
        started.elapsed()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let options = EngineOptions { snapshot_on_close: false, ..Default::default() };
    let engine = Engine::open(dir.path(), options.clone()).expect("open");
    let started = Instant::now();
    for batch in batches {
        engine.ingest(batch).expect("ingest");
    }
    let ingest = started.elapsed();
    println!(
        "durable ingest: {:.1?}, {:.0} records/s, {:.0} events/s",
        ingest,
        records as f64 / ingest.as_secs_f64(),
        events as f64 / ingest.as_secs_f64()
    );
    let heap = engine.read().state.store.heap_bytes();
    println!(
        "derived state heap: {:.1} MiB, {:.1} bytes/event",
        heap as f64 / 1048576.0,
        heap as f64 / events as f64
    );
    let started = Instant::now();
    let snapshot = engine.snapshot().expect("snapshot");
    let snapshot_bytes = std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or(0);
    println!(
        "snapshot write: {:.1?}, {:.1} MiB",
        started.elapsed(),
        snapshot_bytes as f64 / 1048576.0
    );
    drop(engine);
    let log_bytes = dir_bytes(&dir.path().join("log"));
    println!(
        "log on disk: {:.1} MiB, {:.1} bytes/event",
        log_bytes as f64 / 1048576.0,
        log_bytes as f64 / events as f64
    );

    let mut from_snapshot = Vec::new();
    let mut full_replay = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let engine = Engine::open(dir.path(), options.clone()).expect("open from snapshot");
        from_snapshot.push(started.elapsed());
        assert!(engine.open_report().snapshot_position.is_some());
        drop(engine);
        let started = Instant::now();
        let engine =
            Engine::open(dir.path(), EngineOptions { load_snapshot: false, ..options.clone() })
                .expect("open replay");
        full_replay.push(started.elapsed());
        assert_eq!(engine.open_report().replayed_events, events);
        drop(engine);
    }
    let snap = median(from_snapshot);
    let replay = median(full_replay);
    println!("open from snapshot: median {snap:.2?} of {runs}");
    println!(
        "full replay: median {replay:.2?} of {runs}, {:.0} events/s",
        events as f64 / replay.as_secs_f64()
    );
}
