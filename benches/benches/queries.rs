//! What's measured: the 15 segment queries of `shared/reference/performance.md`
//! §4.2, written in Nudge's language, count-only (Q15 lists ids), with `now`
//! fixed at the dataset's end, on the generated dataset (default S: 1M users,
//! ~32M events; `NUDGE_BENCH_USERS` overrides). The engine is built once by
//! durable ingest; each query is then timed warm by criterion.
//!
//! Run with: `cargo bench -p nudge-benches --bench queries`; with
//! `NUDGE_BENCH_DATA=DIR` the queries run on an existing data directory
//! instead (set `NUDGE_BENCH_USERS` to the user count it was generated with,
//! for `now`).

#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use nudge_engine::QueryOptions;
use nudge_engine::dataset::DatasetSpec;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, users) = nudge_benches::bench_engine(dir.path());
    let now = DatasetSpec::new(users).now_ms;
    let mut group = c.benchmark_group(format!("queries_{users}_users"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, text) in nudge_benches::SEGMENT_QUERIES {
        let list = name.ends_with("_ids");
        let options = QueryOptions {
            now_ms: Some(now),
            limit: Some(if list { usize::MAX } else { 0 }),
            // Cold first runs at M scale take seconds: measure them, do not stop them.
            deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
            memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let answer = engine.query(text, &options).expect(name);
        eprintln!("{name}: {} users, first run {:?}", answer.count, started.elapsed());
        if std::env::var_os("NUDGE_BENCH_EXPLAIN").is_some() {
            for step in engine.query(text, &options).expect(name).plan {
                let indent = "  ".repeat(step.depth);
                eprintln!(
                    "  {indent}{} [{} → {}, {} µs]",
                    step.clause, step.scope_users, step.selected_users, step.took_us
                );
            }
        }
        group.bench_function(name, |b| b.iter(|| engine.query(text, &options).expect(name).count));
    }
    group.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
