//! Per-user timelines and the property arena they point into.
//!
//! A timeline is one user's events in time order (ties keep arrival order),
//! each entry 16 bytes: the timestamp, and a packed word holding the event id
//! (24 bits) and the offset of the event's property blob in the arena
//! (40 bits). Counts, sequences, aggregates, first/last and in-a-row checks
//! walk a candidate user's timeline; properties are decoded only for entries
//! whose event matches.
//!
//! The arena stores property blobs (`props.rs` codec) back to back in pages;
//! a blob never straddles pages. Events without properties share the blob at
//! offset 0.

use crate::store::dict::{EventId, UserId};
use crate::store::props;

/// Bits of the packed word holding the arena offset.
const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// Size of one arena page.
pub const ARENA_PAGE_BYTES: usize = 64 * 1024 * 1024;
const _: () = assert!(crate::limits::MAX_EVENT_BYTES < ARENA_PAGE_BYTES);
const _: () = assert!(crate::limits::MAX_EVENT_NAMES < (1 << (64 - OFFSET_BITS)));

/// One event in a user's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Event time, epoch ms UTC.
    pub ts_ms: i64,
    packed: u64,
}

impl TimelineEntry {
    /// An entry for `event` at `ts_ms` whose properties are at `props_at`.
    pub fn new(ts_ms: i64, event: EventId, props_at: u64) -> Self {
        debug_assert!(props_at <= OFFSET_MASK);
        TimelineEntry {
            ts_ms,
            packed: (u64::from(event) << OFFSET_BITS) | (props_at & OFFSET_MASK),
        }
    }

    /// The event id.
    pub fn event(&self) -> EventId {
        (self.packed >> OFFSET_BITS) as EventId
    }

    /// Where the properties are in the arena.
    pub fn props_at(&self) -> u64 {
        self.packed & OFFSET_MASK
    }

    /// The raw packed word (for snapshots).
    pub fn packed(&self) -> u64 {
        self.packed
    }

    /// Rebuilds an entry from its snapshot form.
    pub fn from_parts(ts_ms: i64, packed: u64) -> Self {
        TimelineEntry { ts_ms, packed }
    }
}

/// Append-only storage of property blobs.
#[derive(Debug, Clone)]
pub struct PropsArena {
    pages: Vec<Vec<u8>>,
}

impl Default for PropsArena {
    fn default() -> Self {
        let mut first = Vec::with_capacity(ARENA_PAGE_BYTES);
        first.extend_from_slice(props::EMPTY);
        PropsArena { pages: vec![first] }
    }
}

impl PropsArena {
    /// Stores a blob and returns its offset (empty blobs all share offset 0).
    pub fn push(&mut self, blob: &[u8]) -> u64 {
        if blob == props::EMPTY {
            return 0;
        }
        let fits = self.pages.last().is_some_and(|p| p.len() + blob.len() <= ARENA_PAGE_BYTES);
        if !fits {
            // Reserved whole: growing by doubling would copy up to a page per page.
            // Untouched capacity costs address space only.
            self.pages.push(Vec::with_capacity(ARENA_PAGE_BYTES));
        }
        let page_index = self.pages.len() - 1;
        let page = &mut self.pages[page_index];
        let offset = (page_index * ARENA_PAGE_BYTES + page.len()) as u64;
        page.extend_from_slice(blob);
        offset
    }

    /// The blob at `offset` (followed by whatever comes after it in the page;
    /// the codec knows where the blob ends).
    pub fn get(&self, offset: u64) -> &[u8] {
        let page = (offset / ARENA_PAGE_BYTES as u64) as usize;
        let within = (offset % ARENA_PAGE_BYTES as u64) as usize;
        self.pages.get(page).and_then(|p| p.get(within..)).unwrap_or(props::EMPTY)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.pages.iter().map(Vec::len).sum()
    }

    /// The pages (for snapshots).
    pub fn pages(&self) -> &[Vec<u8>] {
        &self.pages
    }

    /// Rebuilds an arena from snapshot pages.
    pub fn from_pages(pages: Vec<Vec<u8>>) -> Self {
        if pages.is_empty() { PropsArena::default() } else { PropsArena { pages } }
    }
}

/// All users' timelines.
#[derive(Debug, Clone, Default)]
pub struct Timelines {
    by_user: Vec<Vec<TimelineEntry>>,
    arena: PropsArena,
    events: u64,
}

impl Timelines {
    /// Adds an event to `user`'s timeline, after any entries with the same
    /// timestamp; returns where its properties are in the arena.
    pub fn insert(&mut self, user: UserId, event: EventId, ts_ms: i64, blob: &[u8]) -> u64 {
        let props_at = self.arena.push(blob);
        let index = user as usize;
        if self.by_user.len() <= index {
            self.by_user.resize_with(index + 1, Vec::new);
        }
        let timeline = &mut self.by_user[index];
        let entry = TimelineEntry::new(ts_ms, event, props_at);
        match timeline.last() {
            Some(last) if last.ts_ms > ts_ms => {
                let at = timeline.partition_point(|e| e.ts_ms <= ts_ms);
                timeline.insert(at, entry);
            }
            _ => timeline.push(entry),
        }
        self.events += 1;
        props_at
    }

    /// `user`'s events in time order (empty for unknown users).
    pub fn of(&self, user: UserId) -> &[TimelineEntry] {
        self.by_user.get(user as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The properties of an entry.
    pub fn props(&self, entry: &TimelineEntry) -> &[u8] {
        self.arena.get(entry.props_at())
    }

    #[cfg(any(test, feature = "internals"))]
    /// Events stored.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// Number of user slots (highest user id with a timeline + 1).
    pub fn user_slots(&self) -> usize {
        self.by_user.len()
    }

    /// The arena (for snapshots).
    pub fn arena(&self) -> &PropsArena {
        &self.arena
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.by_user.iter().map(|t| t.capacity() * 16).sum();
        entries + self.by_user.capacity() * 24 + self.arena.bytes()
    }

    /// Rebuilds timelines from snapshot parts.
    pub fn from_parts(by_user: Vec<Vec<TimelineEntry>>, arena: PropsArena) -> Self {
        let events = by_user.iter().map(|t| t.len() as u64).sum();
        Timelines { by_user, arena, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_time_order_and_arrival_order_for_ties() {
        let mut timelines = Timelines::default();
        let blob = |n: u8| {
            let mut b = Vec::new();
            props::encode(&mut b, &[(0, &props::Value::Number(f64::from(n)))]);
            b
        };
        timelines.insert(3, 1, 200, &blob(1));
        timelines.insert(3, 2, 100, &blob(2));
        timelines.insert(3, 3, 200, &blob(3));
        timelines.insert(3, 4, 150, props::EMPTY);
        let got: Vec<(i64, EventId)> =
            timelines.of(3).iter().map(|e| (e.ts_ms, e.event())).collect();
        assert_eq!(got, [(100, 2), (150, 4), (200, 1), (200, 3)]);
        let third = timelines.of(3)[2];
        assert_eq!(props::get(timelines.props(&third), 0), Some(props::ValueRef::Number(1.0)));
        assert_eq!(timelines.of(3)[1].props_at(), 0, "empty properties share offset 0");
        assert!(timelines.of(0).is_empty());
        assert_eq!(timelines.event_count(), 4);
    }

    #[test]
    fn packs_large_event_ids_and_offsets() {
        let entry = TimelineEntry::new(-5, crate::limits::MAX_EVENT_NAMES, OFFSET_MASK);
        assert_eq!(entry.event(), crate::limits::MAX_EVENT_NAMES);
        assert_eq!(entry.props_at(), OFFSET_MASK);
    }
}
