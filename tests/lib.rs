//! Helpers shared by the black-box tests and their child processes.

use nudge_engine::{Event, Record};

pub mod cdp;
pub mod server;

/// A whole number from environment variable `name` (a test's size or seed),
/// or `default` when it is unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Events in one crash-test batch.
pub const CRASH_BATCH_EVENTS: usize = 50;

/// The records of crash-test batch `n`: events of user `bN` with ids `bN-i`.
pub fn crash_batch(n: u64) -> Vec<Record> {
    (0..CRASH_BATCH_EVENTS)
        .map(|i| {
            Event::new(format!("b{n}"), "Crash Test")
                .at(1_793_491_200_000 + i as i64)
                .prop("i", i as i64)
                .prop("filler", "x".repeat(40))
                .id(format!("b{n}-{i}"))
                .into()
        })
        .collect()
}
