//! The idempotency index: event ids seen within the dedupe window.
//!
//! An event carrying an `id` that was stored less than the window ago (by
//! the engine clock at sequencing) is acknowledged as a duplicate and not
//! stored again. Ids are kept as 128-bit xxh3 hashes; the index is derived
//! from the log (every stored event with an id, stamped with its batch's
//! `received_ms`) and saved in snapshots.

use std::collections::VecDeque;

use crate::store::dict::FastMap;

/// Default length of the idempotency window: 7 days.
pub const DEFAULT_DEDUPE_WINDOW_MS: i64 = 7 * 86_400_000;

/// Event ids seen recently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dedupe {
    window_ms: i64,
    seen: FastMap<u128, i64>,
    /// Arrival order, for pruning: (received_ms, hash).
    order: VecDeque<(i64, u128)>,
}

impl Dedupe {
    /// An empty index with the given window.
    pub fn new(window_ms: i64) -> Self {
        Dedupe { window_ms, ..Default::default() }
    }

    /// The hash an id is kept under.
    pub fn hash(id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128(id.as_bytes())
    }

    /// True when `hash` was stored within the window before `now_ms`.
    pub fn is_duplicate(&self, hash: u128, now_ms: i64) -> bool {
        self.seen.get(&hash).is_some_and(|&at| at > now_ms - self.window_ms)
    }

    /// Records that an event with `hash` was stored at `received_ms`.
    pub fn insert(&mut self, hash: u128, received_ms: i64) {
        self.seen.insert(hash, received_ms);
        self.order.push_back((received_ms, hash));
    }

    /// Forgets ids older than the window.
    pub fn prune(&mut self, now_ms: i64) {
        let horizon = now_ms - self.window_ms;
        while let Some(&(at, hash)) = self.order.front() {
            if at > horizon {
                break;
            }
            self.order.pop_front();
            if self.seen.get(&hash) == Some(&at) {
                self.seen.remove(&hash);
            }
        }
    }

    #[cfg(any(test, feature = "internals"))]
    /// Ids held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Entries in arrival order (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (i64, u128)> + '_ {
        self.order.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_expire_after_the_window() {
        let mut dedupe = Dedupe::new(1000);
        let id = Dedupe::hash("evt-1");
        dedupe.insert(id, 5000);
        assert!(dedupe.is_duplicate(id, 5999));
        assert!(!dedupe.is_duplicate(id, 6000));
        assert!(!dedupe.is_duplicate(Dedupe::hash("evt-2"), 5000));
        dedupe.prune(5999);
        assert_eq!(dedupe.len(), 1);
        dedupe.prune(6000);
        assert!(dedupe.is_empty());
    }
}
