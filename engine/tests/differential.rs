//! Differential tests: the engine's evaluator against the brute-force
//! reference evaluator (`reference/`), on random datasets (future events,
//! timestamp ties, missing properties, type mismatches, profile-only users) and
//! random queries covering every clause, with saved segments. A disagreement
//! prints the seed, the query and the users on either side.
//!
//! Every query runs with each [`Strategy`] (timelines, day rows, automatic),
//! listing users and counting only,
//! and day rows are cached by queries run halfway through ingest, so a stale
//! cache entry would show as a disagreement.
//!
//! Data is spread over the two tiers of storage: one seed in three keeps
//! everything in the in-memory head; the others seal random days at random
//! points of the ingest (`Engine::seal_day`), so later batches add late rows
//! to sealed days and the next seal of such a day merges them into a new
//! version; one seed in three then seals every day.
//!
//! `NUDGE_DIFF_SEEDS` sets the number of datasets (default 40, 60 queries each).

mod common;
mod reference;

use std::collections::BTreeSet;

use nudge_engine::clock::ManualClock;
use nudge_engine::{QueryOptions, Strategy};
use rand::Rng;
use reference::{NOW, Reference};

#[test]
fn the_engine_agrees_with_the_reference_on_random_data_and_queries() {
    let seeds: u64 =
        std::env::var("NUDGE_DIFF_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let mut compared = 0;
    let mut non_trivial = 0;
    for seed in 0..seeds {
        let mut rng = reference::rng(seed);
        let records = reference::random_records(seed, 40);
        let saved_segments: Vec<(&str, String)> = ["s1", "s2"]
            .into_iter()
            .map(|name| (name, reference::random_segment(&mut rng, 1)))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = common::open(dir.path(), &ManualClock::new(NOW));
        let warm = QueryOptions {
            now_ms: Some(NOW),
            limit: Some(0),
            strategy: Strategy::DayRows,
            deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
            memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
        };
        let mut warm_rng = reference::rng(seed ^ 0x5eed);
        let mut seal_rng = reference::rng(seed ^ 0x5ea1);
        let mut days_seen = BTreeSet::new();
        for (i, chunk) in records.chunks(17).enumerate() {
            engine
                .ingest(chunk.to_vec())
                .unwrap_or_else(|e| panic!("seed {seed}: ingest failed: {e}"));
            days_seen.extend(common::event_days(chunk));
            if seed % 3 != 0 && seal_rng.gen_bool(0.3) && !days_seen.is_empty() {
                let day = *days_seen
                    .iter()
                    .nth(seal_rng.gen_range(0..days_seen.len()))
                    .expect("a day seen");
                engine.seal_day(day).unwrap_or_else(|e| panic!("seed {seed}: sealing failed: {e}"));
            }
            if i % 3 == 1 {
                // Fills the day-row cache with views that later batches make stale.
                for _ in 0..5 {
                    let query = reference::random_segment(&mut warm_rng, 2);
                    let _ = engine.query(&query, &warm);
                }
            }
        }
        if seed % 3 == 2 {
            for &day in &days_seen {
                engine.seal_day(day).unwrap_or_else(|e| panic!("seed {seed}: sealing failed: {e}"));
            }
        }
        let tiers = engine.storage_tiers();
        match seed % 3 {
            0 => assert_eq!(tiers.sealed_rows, 0, "seed {seed}: {tiers:?}"),
            1 => assert!(tiers.sealed_rows > 0 && tiers.head_rows > 0, "seed {seed}: {tiers:?}"),
            _ => {
                assert_eq!(tiers.head_days, 0, "seed {seed}: every day sealed: {tiers:?}");
                assert_eq!(tiers.mapped_days, tiers.sealed_days, "seed {seed}: {tiers:?}");
            }
        }
        for (name, query) in &saved_segments {
            engine
                .save_segment(name, query)
                .unwrap_or_else(|e| panic!("seed {seed}: saving {name} failed: {e}"));
        }
        let mut reference = Reference::new(&records);
        for (name, query) in &saved_segments {
            reference.save_segment(name, query);
        }
        let saved = reference.saved_segments().expect("saved segments parse");
        for _ in 0..60 {
            let query = reference::random_segment_with_saved(&mut rng, 2, &["s1", "s2"]);
            let expr = nudge_query_lang::parse_segment(&query).expect("generated queries parse");
            let expected = reference.evaluate(&expr, NOW, &saved);
            for strategy in [Strategy::Timelines, Strategy::DayRows, Strategy::Auto] {
                let options = QueryOptions {
                    now_ms: Some(NOW),
                    limit: Some(usize::MAX),
                    strategy,
                    deadline_ms: Some(nudge_engine::limits::NO_QUERY_DEADLINE_MS),
                    memory_limit_bytes: Some(nudge_engine::limits::NO_QUERY_MEMORY_LIMIT_BYTES),
                };
                let actual = engine
                    .query(&query, &options)
                    .map(|a| a.users.into_iter().collect::<BTreeSet<String>>());
                match (&expected, &actual) {
                    (Ok(expected), Ok(actual)) => {
                        let counted = engine
                            .query(&query, &QueryOptions { limit: Some(0), ..options.clone() })
                            .map(|a| a.count);
                        assert_eq!(
                            counted.ok(),
                            Some(expected.len() as u64),
                            "seed {seed}, {strategy:?}: count only of {query}"
                        );
                        if expected != actual {
                            let missing: Vec<_> = expected.difference(actual).collect();
                            let extra: Vec<_> = actual.difference(expected).collect();
                            panic!(
                                "seed {seed}, {strategy:?}: {query}\n  the engine misses {missing:?}\n  and adds {extra:?}"
                            );
                        }
                        if !expected.is_empty() && expected.len() < reference.universe().len() {
                            non_trivial += 1;
                        }
                    }
                    (Err(_), Err(_)) => {}
                    _ => {
                        panic!(
                            "seed {seed}, {strategy:?}: {query}\n  reference: {expected:?}\n  engine: {actual:?}"
                        )
                    }
                }
                compared += 1;
            }
        }
    }
    assert!(non_trivial * 4 > compared, "too few informative queries: {non_trivial} of {compared}");
    eprintln!("{compared} queries compared, {non_trivial} selecting some but not all users");
}
