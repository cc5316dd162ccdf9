//! Shared helpers of the benchmarks: datasets as ready-made ingest batches, the
//! segment queries of the benchmark plan, a `nudge serve` child process, and CPU
//! time read from `/proc`.

pub mod cpu;
pub mod serve;

use nudge_engine::Record;
use nudge_engine::dataset::{self, DatasetSpec};

/// The generated dataset of `users` users cut into batches of `batch` records.
pub fn batches(users: u64, batch: usize) -> Vec<Vec<Record>> {
    let mut out = Vec::new();
    let mut current = Vec::with_capacity(batch);
    for record in dataset::records(DatasetSpec::new(users)) {
        current.push(record);
        if current.len() == batch {
            out.push(std::mem::replace(&mut current, Vec::with_capacity(batch)));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The engine a data benchmark runs on, and its user count: the directory
/// `NUDGE_BENCH_DATA` names (generated with `NUDGE_BENCH_USERS` users, default
/// S), or else `scratch` after ingesting the generated dataset into it.
pub fn bench_engine(scratch: &std::path::Path) -> (nudge_engine::Engine, u64) {
    let users: u64 = std::env::var("NUDGE_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(dataset::SCALE_S_USERS);
    let existing = std::env::var_os("NUDGE_BENCH_DATA");
    let path = existing.as_ref().map_or(scratch, std::path::Path::new);
    let options = nudge_engine::EngineOptions { snapshot_on_close: false, ..Default::default() };
    let engine = nudge_engine::Engine::open(path, options).expect("open");
    if existing.is_none() {
        for batch in batches(users, 1000) {
            engine.ingest(batch).expect("ingest");
        }
    }
    (engine, users)
}

/// The nearest-rank `p` quantile (0 to 1) of `sorted` (ascending); `None` when empty.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((last as f64 * p).round() as usize).copied()
}

/// Events (not profiles or subscriptions) in `batches`.
pub fn event_count(batches: &[Vec<Record>]) -> u64 {
    batches.iter().flatten().filter(|r| matches!(r, Record::Event(_))).count() as u64
}

/// The 15 segment queries of performance.md §4.2 in Nudge's language, by number
/// (shared by the criterion bench `queries` and the peer harness `peers`).
pub const SEGMENT_QUERIES: [(&str, &str); 15] = [
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
