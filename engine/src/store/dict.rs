//! Dictionaries: external user ids, event names and property keys mapped to
//! dense integer ids.
//!
//! Roaring bitmaps want dense `u32` user ids, and timelines store event names
//! and keys as small integers. Ids are assigned in first-seen order by the
//! sequencer and every assignment is written in the log record that first uses
//! it (`wire::LogBatch::new_*`), so replay rebuilds identical ids. Ids are
//! never reused or removed.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::limits::{MAX_EVENT_NAMES, MAX_PROPERTY_KEYS, MAX_USERS};

/// Fast, randomly seeded hashing for in-memory maps (not DoS-prone like FxHash).
pub type Hasher = foldhash::fast::RandomState;
/// A `HashMap` with [`Hasher`].
pub type FastMap<K, V> = HashMap<K, V, Hasher>;

/// Dense user id.
pub type UserId = u32;
/// Dense event-name id.
pub type EventId = u32;

/// One string ↔ dense id dictionary, compact: every name is stored once,
/// back to back in one buffer, and the lookup table holds only ids (hashed by
/// the names they point to). About the name's length plus 13 bytes per entry,
/// where a map from boxed names to ids beside a vector of boxed names cost
/// two allocations and about 70 bytes more (`docs/design/sealed-days.md`,
/// per-user state).
#[derive(Clone, Default)]
pub struct Dictionary {
    /// Every name, back to back, in id order.
    text: String,
    /// Where each name ends in `text` (name `i` starts where `i - 1` ends).
    ends: Vec<u64>,
    /// Ids, hashed by their names.
    table: hashbrown::HashTable<u32>,
    hasher: Hasher,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary").field("len", &self.ends.len()).finish()
    }
}

/// Name `id` (which exists). Names are appended whole, so its ends are
/// character boundaries.
fn name_of<'a>(text: &'a str, ends: &[u64], id: u32) -> &'a str {
    let index = id as usize;
    let start = if index == 0 { 0 } else { ends[index - 1] as usize };
    &text[start..ends[index] as usize]
}

impl Dictionary {
    /// The id of `name`, if it was ever seen.
    pub fn get(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.table.find(hash, |&id| name_of(&self.text, &self.ends, id) == name).copied()
    }

    /// The name behind `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        (id < self.len()).then(|| name_of(&self.text, &self.ends, id))
    }

    /// Number of entries (also the next id).
    pub fn len(&self) -> u32 {
        u32::try_from(self.ends.len()).unwrap_or(u32::MAX)
    }

    #[cfg(any(test, feature = "internals"))]
    /// True when nothing was assigned yet.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends `name` with the next id. The caller checked that it is new.
    pub fn push(&mut self, name: &str) -> u32 {
        debug_assert!(self.get(name).is_none());
        self.append(name)
    }

    fn append(&mut self, name: &str) -> u32 {
        let id = self.store_text(name);
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        let rehash = |&id: &u32| hasher.hash_one(name_of(text, ends, id));
        self.table.insert_unique(self.hasher.hash_one(name), id, rehash);
        id
    }

    /// Appends `name`'s text as the next id's, which is returned (the caller
    /// puts the id in the table).
    fn store_text(&mut self, name: &str) -> u32 {
        let id = self.len();
        // Grow by an eighth, not double: at 10M users the text is most of
        // the dictionaries, and doubling would leave up to half of it unused.
        if self.text.capacity() - self.text.len() < name.len() {
            self.text.reserve_exact(name.len().max(self.text.len() / 8).max(4096));
        }
        if self.ends.len() == self.ends.capacity() {
            self.ends.reserve_exact((self.ends.len() / 8).max(64));
        }
        self.text.push_str(name);
        self.ends.push(self.text.len() as u64);
        id
    }

    /// A dictionary with room for `n` names.
    pub fn with_capacity(n: usize) -> Self {
        Dictionary {
            ends: Vec::with_capacity(n),
            table: hashbrown::HashTable::with_capacity(n),
            ..Dictionary::default()
        }
    }

    /// Appends `name` with the next id, or returns `None` (changing nothing)
    /// when it is already present. One hash and one probe of the table (open
    /// rebuilds every dictionary of a snapshot through here).
    pub fn try_push(&mut self, name: &str) -> Option<u32> {
        let id = self.len();
        let (text, ends, hasher) = (&self.text, &self.ends, &self.hasher);
        let is_name = |&id: &u32| name_of(text, ends, id) == name;
        let rehash = |&id: &u32| hasher.hash_one(name_of(text, ends, id));
        match self.table.entry(self.hasher.hash_one(name), is_name, rehash) {
            hashbrown::hash_table::Entry::Occupied(_) => None,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                // The table holds the id before its text is stored: nothing
                // reads the table until this returns.
                slot.insert(id);
                Some(self.store_text(name))
            }
        }
    }

    /// All names in id order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        (0..self.len()).map(|id| self.name(id).unwrap_or_default())
    }

    /// Heap bytes held (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        // A hashbrown table holds a 4-byte id and one control byte per bucket.
        self.text.capacity() + self.ends.capacity() * 8 + self.table.capacity() * 5
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
    /// Heap bytes held by the three dictionaries.
    pub fn heap_bytes(&self) -> usize {
        self.users.heap_bytes() + self.events.heap_bytes() + self.keys.heap_bytes()
    }

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
        assert_eq!(dict.try_push("a"), None, "already there");
        assert_eq!(dict.try_push(""), Some(2), "the empty name is a name");
        assert_eq!((dict.get(""), dict.name(2), dict.name(3)), (Some(2), Some(""), None));
    }

    #[test]
    fn a_large_dictionary_finds_every_name_and_costs_its_text_plus_a_few_bytes() {
        let mut dict = Dictionary::default();
        let names: Vec<String> =
            (0..100_000u32).map(|i| format!("u_{:016x}", i.wrapping_mul(2_654_435_761))).collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(dict.try_push(name), Some(i as u32));
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(dict.get(name), Some(i as u32));
            assert_eq!(dict.name(i as u32), Some(name.as_str()));
        }
        assert_eq!(dict.get("u_missing"), None);
        // Repeats are refused after the table grew many times, and change nothing.
        let (len, bytes) = (dict.len(), dict.heap_bytes());
        assert!(names.iter().step_by(97).all(|name| dict.try_push(name).is_none()));
        assert_eq!((dict.len(), dict.heap_bytes(), dict.get(&names[5])), (len, bytes, Some(5)));
        let text: usize = names.iter().map(String::len).sum();
        let per_name = (dict.heap_bytes() - text) as f64 / names.len() as f64;
        // Growth slack included: ends and table at most double their need.
        assert!(per_name < 40.0, "{per_name:.1} bytes per name besides its text");
        let copy = dict.clone();
        assert_eq!(copy.get(&names[77]), Some(77));
    }
}
