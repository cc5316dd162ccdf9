//! What's measured: `Engine::user_segments`, the call behind
//! `GET /v1/users/{id}/segments`, with 50 public saved segments (the 15
//! queries of `shared/reference/performance.md` §4.2 and variants of them
//! with other cities, events and counts), for one user at a time, on the
//! generated dataset (default S; issue 17's target: ≤ 100 µs).
//!
//! Run with: `cargo bench -p nudge-benches --bench user_segments`. With
//! `NUDGE_BENCH_DATA=DIR` it runs on an existing data directory (set
//! `NUDGE_BENCH_USERS` to the user count it was generated with) and saves
//! its 50 segments there, named `bench_public_N`.

#![allow(missing_docs)] // criterion macros generate undocumented items

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mimalloc::MiMalloc;
use nudge_engine::dataset::{DatasetSpec, user_id};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// How many public segments the bench saves.
const PUBLIC_SEGMENTS: usize = 50;

/// 50 segment texts: the 15 benchmark queries, then variants of the cheap
/// and the counted kinds.
fn segment_texts() -> Vec<String> {
    let mut texts: Vec<String> =
        nudge_benches::SEGMENT_QUERIES.iter().map(|(_, q)| (*q).to_owned()).collect();
    let cities = ["Mumbai", "Pune", "Delhi", "Bengaluru", "Chennai"];
    let events = ["App Launched", "Product Viewed", "Added To Cart", "Charged", "Page Viewed"];
    let mut i = 0;
    while texts.len() < PUBLIC_SEGMENTS {
        let (city, event) = (cities[i % cities.len()], events[i % events.len()]);
        let days = 3 + i % 28;
        texts.push(match i % 5 {
            0 => format!(r#"user.city == "{city}" and did "{event}" in last {days}d"#),
            1 => format!(r#"did "{event}" at least {} times in last {days}d"#, 2 + i % 4),
            2 => format!(r#"not did "{event}" in last {days}d and reachable via webpush"#),
            3 => format!(r#"did "{event}" then "Charged" within 1h in last {days}d"#),
            _ => format!(r#"sum(amount) of "Charged" in last {days}d >= {}"#, 500 * (1 + i % 7)),
        });
        i += 1;
    }
    texts
}

fn user_segments(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, users) = nudge_benches::bench_engine(dir.path());
    for (n, text) in segment_texts().iter().enumerate() {
        engine.save_segment_as(&format!("bench_public_{n}"), text, true).expect("save");
    }
    let now = Some(DatasetSpec::new(users).now_ms);
    // Users spread over the id space, asked in turn.
    let sample: Vec<String> = (0..1000).map(|i| user_id(i * (users / 1000).max(1))).collect();
    let first =
        engine.user_segments(&sample[0], true, now).expect("read").expect("a generated user");
    eprintln!("{} is in {} of {PUBLIC_SEGMENTS} public segments", sample[0], first.segments.len());
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    let mut group = c.benchmark_group(format!("user_segments_{users}_users"));
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    let mut next = 0;
    group.bench_function("public_50", |b| {
        b.iter(|| {
            next = (next + 1) % sample.len();
            engine.user_segments(&sample[next], true, now).map(|s| s.map(|s| s.segments.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, user_segments);
criterion_main!(benches);
