//! Pending `unless` fires, kept small: an abandoned-cart rule can have one
//! pending fire per user, millions of them.
//!
//! Each fire is one 40-byte slot in a slab (due time, cause, its event's
//! properties, trigger, user), plus the properties themselves on the heap
//! when the event has any. A hash table of slot numbers,
//! hashed by (trigger, user), finds a user's fire when a cancelling event
//! arrives; a wheel of one-minute buckets of slot numbers orders them by due
//! time. Removing a fire frees its slot and leaves its wheel entry behind;
//! entries are checked against their slot when read, and a bucket is dropped
//! with its stale entries once none of its fires is left. About 60 bytes per
//! fire in all, plus the properties (`benches/benches/pending_restore.rs`
//! measures it).

use std::collections::BTreeMap;

use hashbrown::HashTable;

use super::{EventProps, TriggerId};
use crate::store::dict::UserId;

/// Width of a wheel bucket.
const BUCKET_MS: i64 = 60_000;
/// Marks a free slot.
const FREE: TriggerId = TriggerId::MAX;

/// One pending `unless` fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slot {
    pub due_ms: i64,
    pub cause: u64,
    pub props: EventProps,
    pub trigger: TriggerId,
    pub user: UserId,
}

#[derive(Clone, Default)]
struct Bucket {
    /// Fires in this bucket that are still pending.
    live: u32,
    /// Their slots, and slots of fires since removed.
    slots: Vec<u32>,
}

/// The pending `unless` fires (see the module docs).
#[derive(Clone, Default)]
pub(super) struct UnlessFires {
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: HashTable<u32>,
    wheel: BTreeMap<i64, Bucket>,
}

impl std::fmt::Debug for UnlessFires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlessFires").field("pending", &self.table.len()).finish()
    }
}

fn hash(trigger: TriggerId, user: UserId) -> u64 {
    // Fixed and cheap: the table only ever holds dense ids.
    (u64::from(trigger) << 32 | u64::from(user)).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(26)
}

fn bucket_of(due_ms: i64) -> i64 {
    due_ms.div_euclid(BUCKET_MS)
}

impl UnlessFires {
    /// The pending fire of (trigger, user).
    pub fn get(&self, trigger: TriggerId, user: UserId) -> Option<&Slot> {
        let slots = &self.slots;
        self.table
            .find(hash(trigger, user), |&s| {
                let slot = &slots[s as usize];
                slot.trigger == trigger && slot.user == user
            })
            .map(|&s| &slots[s as usize])
    }

    /// Adds a fire; `false` (and nothing changes) when (trigger, user) has one.
    pub fn insert(&mut self, fire: Slot) -> bool {
        if self.get(fire.trigger, fire.user).is_some() {
            return false;
        }
        let (trigger, user, due_ms) = (fire.trigger, fire.user, fire.due_ms);
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = fire;
                index
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by an eighth, not double: the slab is most of the memory.
                    self.slots.reserve_exact((self.slots.len() / 8).max(64));
                }
                self.slots.push(fire);
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash(trigger, user), index, |&s| {
            let slot = &slots[s as usize];
            hash(slot.trigger, slot.user)
        });
        let bucket = self.wheel.entry(bucket_of(due_ms)).or_default();
        bucket.live += 1;
        bucket.slots.push(index);
        true
    }

    /// Removes the fire of (trigger, user), if any.
    pub fn remove(&mut self, trigger: TriggerId, user: UserId) -> Option<Slot> {
        let slots = &self.slots;
        let entry = self
            .table
            .find_entry(hash(trigger, user), |&s| {
                let slot = &slots[s as usize];
                slot.trigger == trigger && slot.user == user
            })
            .ok()?;
        let (index, _) = entry.remove();
        let fire = std::mem::replace(
            &mut self.slots[index as usize],
            Slot { due_ms: 0, cause: 0, props: EventProps::default(), trigger: FREE, user: 0 },
        );
        self.free.push(index);
        let key = bucket_of(fire.due_ms);
        if let Some(bucket) = self.wheel.get_mut(&key) {
            bucket.live -= 1;
            if bucket.live == 0 {
                self.wheel.remove(&key);
            }
        }
        Some(fire)
    }

    /// Removes every fire of the triggers `drop` names.
    pub fn remove_where(&mut self, drop: impl Fn(TriggerId) -> bool) {
        let doomed: Vec<(TriggerId, UserId)> = self
            .slots
            .iter()
            .filter(|s| s.trigger != FREE && drop(s.trigger))
            .map(|s| (s.trigger, s.user))
            .collect();
        for (trigger, user) in doomed {
            self.remove(trigger, user);
        }
    }

    /// The live fires of a bucket (each once, even if its slot was reused).
    fn live_in<'a>(&'a self, key: i64, bucket: &'a Bucket) -> impl Iterator<Item = &'a Slot> {
        let mut seen: Vec<u32> = bucket.slots.clone();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
            .map(|s| &self.slots[s as usize])
            .filter(move |slot| slot.trigger != FREE && bucket_of(slot.due_ms) == key)
    }

    /// Fires due at or before `now_ms`.
    pub fn due_by(&self, now_ms: i64) -> Vec<&Slot> {
        let mut due = Vec::new();
        for (&key, bucket) in self.wheel.range(..=bucket_of(now_ms)) {
            due.extend(self.live_in(key, bucket).filter(|s| s.due_ms <= now_ms));
        }
        due
    }

    /// When the next fire falls due.
    pub fn next_due(&self) -> Option<i64> {
        let (&key, bucket) = self.wheel.first_key_value()?;
        self.live_in(key, bucket).map(|s| s.due_ms).min()
    }

    /// How many fires are pending.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Every pending fire, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.trigger != FREE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(trigger: TriggerId, user: UserId, due_ms: i64) -> Slot {
        Slot { due_ms, cause: u64::from(user), props: Box::new([7]), trigger, user }
    }

    #[test]
    fn insert_find_remove_and_reuse_slots() {
        let mut fires = UnlessFires::default();
        assert!(fires.insert(fire(1, 10, 1_000)));
        assert!(!fires.insert(fire(1, 10, 5_000)), "one per (trigger, user)");
        assert!(fires.insert(fire(2, 10, 61_000)));
        assert!(fires.insert(fire(1, 11, 2_000)));
        assert_eq!(fires.len(), 3);
        assert_eq!(fires.get(1, 10).map(|s| s.due_ms), Some(1_000));
        assert_eq!(fires.next_due(), Some(1_000));
        assert_eq!(fires.remove(1, 10).map(|s| s.due_ms), Some(1_000));
        assert_eq!(fires.get(1, 10), None);
        // The freed slot is reused by a fire in the same bucket: it is due once, not twice.
        assert!(fires.insert(fire(3, 12, 1_500)));
        let due: Vec<(TriggerId, UserId)> =
            fires.due_by(59_999).iter().map(|s| (s.trigger, s.user)).collect();
        assert_eq!(due.len(), 2);
        assert!(due.contains(&(3, 12)) && due.contains(&(1, 11)));
        assert_eq!(fires.due_by(61_000).len(), 3);
        fires.remove_where(|t| t == 1);
        assert_eq!(fires.len(), 2);
        assert_eq!(fires.iter().count(), 2);
        fires.remove(3, 12);
        fires.remove(2, 10);
        assert!(fires.wheel.is_empty(), "empty buckets are dropped");
        assert_eq!(fires.next_due(), None);
    }
}
