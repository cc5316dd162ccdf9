//! What's measured: durable in-process ingest of 1000-record batches of the
//! generated dataset with every index maintained (`Durability::SyncPerBatch`:
//! one fdatasync per group commit), single caller and 4 concurrent callers.
//! Throughput is reported in records per second.
//!
//! Run with: `cargo bench -p nudge-benches --bench ingest`

#![allow(missing_docs)] // criterion macros generate undocumented items

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use nudge_engine::{Engine, EngineOptions};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USERS: u64 = 20_000;
const BATCH: usize = 1000;

fn ingest(c: &mut Criterion) {
    let batches = nudge_benches::batches(USERS, BATCH);
    let records: usize = batches.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(records as u64));
    group.bench_function("durable_1000_batches_1_caller", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().expect("tempdir");
                let engine = Engine::open(
                    dir.path(),
                    EngineOptions { snapshot_on_close: false, ..Default::default() },
                )
                .expect("open");
                let work = batches.clone();
                let started = Instant::now();
                for batch in work {
                    engine.ingest(batch).expect("ingest");
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("durable_1000_batches_4_callers", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let dir = tempfile::tempdir().expect("tempdir");
                let engine = Arc::new(
                    Engine::open(
                        dir.path(),
                        EngineOptions { snapshot_on_close: false, ..Default::default() },
                    )
                    .expect("open"),
                );
                let mut shares: Vec<Vec<_>> = vec![Vec::new(); 4];
                for (i, batch) in batches.iter().cloned().enumerate() {
                    shares[i % 4].push(batch);
                }
                let started = Instant::now();
                let threads: Vec<_> = shares
                    .into_iter()
                    .map(|share| {
                        let engine = Arc::clone(&engine);
                        std::thread::spawn(move || {
                            share.into_iter().for_each(|b| {
                                engine.ingest(b).expect("ingest");
                            })
                        })
                    })
                    .collect();
                threads.into_iter().for_each(|t| t.join().expect("join"));
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
