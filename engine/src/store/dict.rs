//! Dictionaries: external user ids, event names and property keys mapped to
//! dense integer ids.
//!
//! Roaring bitmaps want dense `u32` user ids, and timelines store event names
//! and keys as small integers. Ids are assigned in first-seen order by the
//! sequencer and every assignment is written in the log record that first uses
//! it (`wire::LogBatch::new_*`), so replay rebuilds identical ids. Ids are
//! never reused or removed.

use std::collections::HashMap;

use crate::limits::{MAX_EVENT_NAMES, MAX_PROPERTY_KEYS, MAX_USERS};

/// Fast, randomly seeded hashing for in-memory maps (not DoS-prone like FxHash).
pub type Hasher = foldhash::fast::RandomState;
/// A `HashMap` with [`Hasher`].
pub type FastMap<K, V> = HashMap<K, V, Hasher>;

/// Dense user id.
pub type UserId = u32;
/// Dense event-name id.
pub type EventId = u32;

/// One string ↔ dense id dictionary.
#[derive(Debug, Default, Clone)]
pub struct Dictionary {
    ids: FastMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Dictionary {
    /// The id of `name`, if it was ever seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name behind `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(|n| &**n)
    }

    /// Number of entries (also the next id).
    pub fn len(&self) -> u32 {
        u32::try_from(self.names.len()).unwrap_or(u32::MAX)
    }

    #[cfg(any(test, feature = "internals"))]
    /// True when nothing was assigned yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Appends `name` with the next id. The caller checked that it is new.
    pub fn push(&mut self, name: &str) -> u32 {
        let id = self.len();
        debug_assert!(!self.ids.contains_key(name));
        self.ids.insert(name.into(), id);
        self.names.push(name.into());
        id
    }

    /// A dictionary with room for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        Dictionary {
            ids: FastMap::with_capacity_and_hasher(n, Hasher::default()),
            names: Vec::with_capacity(n),
        }
    }

    /// Appends `name` with the next id, or returns `None` (changing nothing)
    /// when it is already present.
    pub fn try_push(&mut self, name: &str) -> Option<u32> {
        let id = self.len();
        match self.ids.entry(name.into()) {
            std::collections::hash_map::Entry::Occupied(_) => None,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(id);
                self.names.push(name.into());
                Some(id)
            }
        }
    }

    /// All names in id order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }
}

/// The three dictionaries of a data directory.
#[derive(Debug, Default, Clone)]
pub struct Dictionaries {
    /// External user id → dense user id.
    pub users: Dictionary,
    /// Event name → event id.
    pub events: Dictionary,
    /// Property key (events and profiles share it) → key id.
    pub keys: Dictionary,
}

/// Which dictionary is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Too many users.
    Users,
    /// Too many event names.
    Events,
    /// Too many property keys.
    Keys,
}

impl Dictionaries {
    /// Checks that `extra` more entries fit in each dictionary.
    pub fn room_for(&self, users: usize, events: usize, keys: usize) -> Result<(), Full> {
        let fits = |dict: &Dictionary, extra: usize, max: u32| {
            (dict.len() as usize).saturating_add(extra) <= max as usize
        };
        if !fits(&self.users, users, MAX_USERS) {
            return Err(Full::Users);
        }
        if !fits(&self.events, events, MAX_EVENT_NAMES) {
            return Err(Full::Events);
        }
        if !fits(&self.keys, keys, MAX_PROPERTY_KEYS) {
            return Err(Full::Keys);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_dense_ids_in_first_seen_order() {
        let mut dict = Dictionary::default();
        assert_eq!(dict.push("b"), 0);
        assert_eq!(dict.push("a"), 1);
        assert_eq!(dict.get("a"), Some(1));
        assert_eq!(dict.get("c"), None);
        assert_eq!(dict.name(0), Some("b"));
        assert_eq!(dict.names().collect::<Vec<_>>(), ["b", "a"]);
    }
}
