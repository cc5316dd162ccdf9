//! Shared helpers of the benchmarks: datasets as ready-made ingest batches.

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

/// Events (not profiles or subscriptions) in `batches`.
pub fn event_count(batches: &[Vec<Record>]) -> u64 {
    batches.iter().flatten().filter(|r| matches!(r, Record::Event(_))).count() as u64
}
