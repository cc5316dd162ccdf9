//! A segment query on generated data: 2,000 synthetic users with sessions
//! and purchase funnels, then "viewed a product 3 times in the last 7 days
//! and did not buy", with `explain`'s plan.
//!
//! Run with `cargo run -p nudge-engine --features dataset --example segment_query`.

use std::sync::Arc;

use nudge_engine::clock::ManualClock;
use nudge_engine::dataset::{self, DatasetSpec};
use nudge_engine::{Engine, EngineOptions, QueryOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = DatasetSpec::new(2_000);
    let clock = ManualClock::new(spec.now_ms);
    let dir = tempfile::tempdir()?;
    let options = EngineOptions { clock: Arc::new(clock), ..EngineOptions::default() };
    let engine = Engine::open(dir.path(), options)?;
    let records: Vec<_> = dataset::records(spec).collect();
    for batch in records.chunks(nudge_engine::limits::MAX_BATCH_RECORDS) {
        engine.ingest_history(batch.to_vec())?;
    }

    let query =
        r#"did "Product Viewed" at least 3 times in last 7d and not did "Charged" in last 7d"#;
    let answer =
        engine.query(query, &QueryOptions { limit: Some(5), ..QueryOptions::default() })?;
    println!(
        "{} users match in {} µs; the first: {:?}",
        answer.count, answer.took_us, answer.users
    );
    for step in &answer.plan {
        println!("  {step:?}");
    }
    Ok(())
}
