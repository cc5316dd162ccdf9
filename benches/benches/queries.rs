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
use nudge_engine::dataset::DatasetSpec;
use nudge_engine::{Engine, EngineOptions, QueryOptions};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// The queries, by their number in performance.md §4.2.
pub const QUERIES: [(&str, &str); 15] = [
    ("Q01_did_7d", r#"did "App Launched" in last 7d"#),
    (
        "Q02_profile_and",
        r#"user.city == "Delhi" and user.platform == "android" and reachable via webpush"#,
    ),
    ("Q03_and_not", r#"did "Product Viewed" in last 30d and not did "Charged" in last 7d"#),
    (
        "Q04_count_not_city",
        r#"did "Product Viewed" at least 3 times in last 7d and not did "Charged" in last 7d and user.city == "Delhi""#,
    ),
    ("Q05_prop_range", r#"did "Charged" where amount > 2000 in last 30d"#),
    (
        "Q06_prop_count",
        r#"did "Product Viewed" where category == "Shoes" at least 5 times in last 30d"#,
    ),
    ("Q07_sum", r#"sum(amount) of "Charged" in last 30d >= 10000"#),
    (
        "Q08_avg_between",
        r#"avg(amount) of "Charged" in last 90d >= 500 and avg(amount) of "Charged" in last 90d <= 2000"#,
    ),
    ("Q09_first", r#"first did "Charged" in last 7d"#),
    (
        "Q10_lapsing",
        r#"did "App Launched" between 30d ago and 7d ago and not did "App Launched" in last 7d"#,
    ),
    ("Q11_sequence", r#"did "Added To Cart" then "Charged" within 1h in last 7d"#),
    ("Q12_absence", r#"did "Added To Cart" then not "Charged" within 30m in last 7d"#),
    (
        "Q13_streak_5d",
        r#"did "App Launched" between 1d ago and now and did "App Launched" between 2d ago and 1d ago and did "App Launched" between 3d ago and 2d ago and did "App Launched" between 4d ago and 3d ago and did "App Launched" between 5d ago and 4d ago"#,
    ),
    ("Q14_distinct", r#"count_distinct(category) of "Product Viewed" in last 14d >= 3"#),
    (
        "Q15_audience_ids",
        r#"(did "Product Viewed" at least 3 times in last 7d and not did "Charged" in last 7d and user.city == "Delhi" or sum(amount) of "Charged" in last 30d >= 10000) and reachable via webpush and user.holdout >= 5"#,
    ),
];

fn queries(c: &mut Criterion) {
    let users: u64 = std::env::var("NUDGE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(nudge_engine::dataset::SCALE_S_USERS);
    // An existing data directory (e.g. from `nudge gen | nudge import`) skips the ingest.
    let existing = std::env::var_os("NUDGE_BENCH_DATA");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = existing.as_ref().map_or(dir.path(), std::path::Path::new);
    let engine =
        Engine::open(path, EngineOptions { snapshot_on_close: false, ..Default::default() })
            .expect("open");
    if existing.is_none() {
        for batch in nudge_benches::batches(users, 1000) {
            engine.ingest(batch).expect("ingest");
        }
    }
    let now = DatasetSpec::new(users).now_ms;
    let mut group = c.benchmark_group(format!("queries_{users}_users"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, text) in QUERIES {
        let list = name.ends_with("_ids");
        let options = QueryOptions {
            now_ms: Some(now),
            limit: Some(if list { usize::MAX } else { 0 }),
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
