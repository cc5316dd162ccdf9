//! Helpers shared by the black-box tests and their child processes.

use nudge_engine::{Event, Record};

pub mod cdp;
pub mod server;

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
