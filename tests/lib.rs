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
/// Days the crash batches are spread over.
pub const CRASH_BATCH_DAYS: u64 = 7;

/// The start of the UTC day of crash batch `n`'s events: batches cycle over
/// [`CRASH_BATCH_DAYS`] days from 2026-11-01, so a day sealed by the child
/// keeps receiving rows (late rows, merged into its next version).
pub fn crash_batch_day_start_ms(n: u64) -> i64 {
    1_793_491_200_000 + (n % CRASH_BATCH_DAYS) as i64 * 86_400_000
}

/// The UTC day (days since 1970-01-01) of crash batch `n`'s events.
pub fn crash_batch_day(n: u64) -> i32 {
    (crash_batch_day_start_ms(n) / 86_400_000) as i32
}

/// The records of crash-test batch `n` (see [`CRASH_BATCH_EVENTS`]).
pub fn crash_batch(n: u64) -> Vec<Record> {
    (0..CRASH_BATCH_EVENTS)
        .map(|i| {
            Event::new(format!("b{n}"), "Crash Test")
                .at(crash_batch_day_start_ms(n) + i as i64)
                .prop("i", i as i64)
                .prop("filler", "x".repeat(40))
                .id(format!("b{n}-{i}"))
                .into()
        })
        .collect()
}
