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

use std::collections::BTreeMap;

use crate::store::dict::{EventId, FastMap, UserId};
use crate::store::props;
use crate::store::sealed::{BufferedEvent, SealBuffer};

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
    /// Rows per UTC day (days with none are absent).
    days: BTreeMap<i32, u64>,
    /// Bytes of the arena's blobs that entries still point to; the rest was
    /// cut away and waits for [`Timelines::compact_arena_when_sparse`].
    arena_live_bytes: u64,
}

impl Timelines {
    /// Adds an event to `user`'s timeline, after any entries with the same
    /// timestamp; returns where its properties are in the arena.
    pub fn insert(&mut self, user: UserId, event: EventId, ts_ms: i64, blob: &[u8]) -> u64 {
        let props_at = self.arena.push(blob);
        if props_at != 0 {
            self.arena_live_bytes += blob.len() as u64;
        }
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
        *self.days.entry(crate::clock::day_of(ts_ms)).or_default() += 1;
        props_at
    }

    /// `user`'s events within `lo..=hi`, in order.
    pub fn range(&self, user: UserId, lo: i64, hi: i64) -> &[TimelineEntry] {
        let timeline = self.of(user);
        let start = timeline.partition_point(|e| e.ts_ms < lo);
        let end = timeline.partition_point(|e| e.ts_ms <= hi);
        timeline.get(start..end.max(start)).unwrap_or(&[])
    }

    /// Rows per UTC day held here, ascending by day.
    pub fn days(&self) -> &BTreeMap<i32, u64> {
        &self.days
    }

    /// Rows held of UTC day `day`.
    pub fn rows_of_day(&self, day: i32) -> u64 {
        self.days.get(&day).copied().unwrap_or(0)
    }

    /// `user`'s events in time order (empty for unknown users).
    pub fn of(&self, user: UserId) -> &[TimelineEntry] {
        self.by_user.get(user as usize).map(Vec::as_slice).unwrap_or(&[])
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

    /// Bytes of the rows and blobs held, without walking the timelines
    /// (16 per entry plus the arena): what the import's head budget counts,
    /// looked at every few batches.
    pub fn row_bytes(&self) -> usize {
        self.events as usize * std::mem::size_of::<TimelineEntry>() + self.arena_live_bytes as usize
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.by_user.iter().map(|t| t.capacity() * 16).sum();
        entries + self.by_user.capacity() * 24 + self.arena.bytes()
    }

    /// Cuts the rows of UTC day `day` out of the timelines of `users` (those
    /// the day's bitmaps list; others have no rows that day) into a sealing
    /// buffer: per event, users ascending, each user's rows in timeline
    /// order, ranked among the user's rows of the day, with their property
    /// blobs copied. The arena keeps the blobs until [`Timelines::compact_arena`].
    pub fn cut_day(
        &mut self,
        day: i32,
        users: impl IntoIterator<Item = UserId>,
        cut_position: u64,
    ) -> SealBuffer {
        let from = i64::from(day) * crate::clock::DAY_MS;
        let until = from + crate::clock::DAY_MS;
        let mut by_event: FastMap<EventId, BufferedEvent> = FastMap::default();
        for user in users {
            let Some(timeline) = self.by_user.get_mut(user as usize) else { continue };
            let start = timeline.partition_point(|e| e.ts_ms < from);
            let end = start + timeline[start..].partition_point(|e| e.ts_ms < until);
            for (rank, entry) in timeline.drain(start..end).enumerate() {
                let event = by_event.entry(entry.event()).or_insert_with(|| BufferedEvent {
                    event: entry.event(),
                    ..Default::default()
                });
                let blob = self.arena.get(entry.props_at());
                let blob = &blob[..props::blob_len(blob)];
                event.push(user, entry.ts_ms, rank as u32, blob);
                if entry.props_at() != 0 {
                    self.arena_live_bytes -= blob.len() as u64;
                }
                self.events -= 1;
            }
            // The memory of the rows that left goes back (sealing exists to bound it).
            if timeline.capacity() > 2 * timeline.len() {
                timeline.shrink_to_fit();
            }
        }
        self.days.remove(&day);
        let mut events: Vec<BufferedEvent> = by_event.into_values().collect();
        events.sort_by_key(|e| e.event);
        SealBuffer { day, cut_position, events }
    }

    /// Rewrites the arena with only the blobs the timelines still point to
    /// (after a cut), in timeline order, and points the entries at their new
    /// offsets. Offsets change: anything that kept one must be rebuilt.
    pub fn compact_arena(&mut self) {
        let mut arena = PropsArena::default();
        let mut live = 0;
        for timeline in &mut self.by_user {
            for entry in timeline.iter_mut() {
                if entry.props_at() == 0 {
                    continue;
                }
                let blob = self.arena.get(entry.props_at());
                let blob = &blob[..props::blob_len(blob)];
                live += blob.len() as u64;
                let at = arena.push(blob);
                *entry = TimelineEntry::new(entry.ts_ms, entry.event(), at);
            }
        }
        self.arena = arena;
        self.arena_live_bytes = live;
    }

    /// Compacts the arena once cut blobs are most of it: each compaction
    /// copies the live blobs, at most twice the bytes cut since the last one,
    /// so sealing every day of a month copies the head about twice, not
    /// once per day. A function of the timelines alone, so replay and
    /// incremental folds compact at the same cuts.
    pub fn compact_arena_when_sparse(&mut self) -> bool {
        let sparse = self.arena_live_bytes.saturating_mul(2) < self.arena.bytes() as u64;
        if sparse {
            self.compact_arena();
        }
        sparse
    }

    /// Rebuilds timelines from snapshot parts.
    pub fn from_parts(by_user: Vec<Vec<TimelineEntry>>, arena: PropsArena) -> Self {
        let events = by_user.iter().map(|t| t.len() as u64).sum();
        let mut days = BTreeMap::new();
        let mut arena_live_bytes = 0;
        for entry in by_user.iter().flatten() {
            *days.entry(crate::clock::day_of(entry.ts_ms)).or_default() += 1;
            if entry.props_at() != 0 {
                arena_live_bytes += props::blob_len(arena.get(entry.props_at())) as u64;
            }
        }
        Timelines { by_user, arena, events, days, arena_live_bytes }
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
        assert_eq!(
            props::get(timelines.arena().get(third.props_at()), 0),
            Some(props::ValueRef::Number(1.0))
        );
        assert_eq!(timelines.of(3)[1].props_at(), 0, "empty properties share offset 0");
        assert!(timelines.of(0).is_empty());
        assert_eq!(timelines.event_count(), 4);
    }

    #[test]
    fn a_cut_takes_exactly_the_days_rows_and_compaction_keeps_the_rest() {
        use rand::{Rng, SeedableRng};
        let day_ms = crate::clock::DAY_MS;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut timelines = Timelines::default();
        for _ in 0..3000 {
            let user = rng.gen_range(0..40u32);
            let ts = rng.gen_range(0..3 * day_ms / 1000) * 1000; // days 0, 1, 2; many ties
            let event = rng.gen_range(1..5u32);
            let mut blob = Vec::new();
            if rng.gen_bool(0.6) {
                let value = props::Value::Number(f64::from(rng.gen_range(0..100u32)));
                props::encode(&mut blob, &[(1, &value)]);
            } else {
                blob.extend_from_slice(props::EMPTY);
            }
            timelines.insert(user, event, ts, &blob);
        }
        let snapshot = |t: &Timelines, user: u32| -> Vec<(i64, EventId, Vec<u8>)> {
            t.of(user)
                .iter()
                .map(|e| {
                    let blob = t.arena().get(e.props_at());
                    (e.ts_ms, e.event(), blob[..props::blob_len(blob)].to_vec())
                })
                .collect()
        };
        let before: Vec<_> = (0..40).map(|u| snapshot(&timelines, u)).collect();
        let buffer = timelines.cut_day(1, 0..40u32, 77);
        assert_eq!((buffer.day, buffer.cut_position), (1, 77));
        timelines.compact_arena();
        for user in 0..40u32 {
            let (on_day, other): (Vec<_>, Vec<_>) = before[user as usize]
                .iter()
                .cloned()
                .partition(|(ts, ..)| (day_ms..2 * day_ms).contains(ts));
            assert_eq!(snapshot(&timelines, user), other, "user {user} keeps the other days");
            // The buffer holds the day's rows, per event, in timeline order and ranked.
            let mut cut = Vec::new();
            for event in &buffer.events {
                let Ok(i) = event.users.binary_search(&user) else { continue };
                for r in event.starts[i] as usize..event.starts[i + 1] as usize {
                    cut.push((
                        event.order[r],
                        (event.ts_ms[r], event.event, event.blob(r).to_vec()),
                    ));
                }
            }
            cut.sort_by_key(|(rank, _)| *rank);
            let ranks: Vec<u32> = cut.iter().map(|(rank, _)| *rank).collect();
            assert_eq!(ranks, (0..cut.len() as u32).collect::<Vec<_>>());
            assert_eq!(cut.into_iter().map(|(_, row)| row).collect::<Vec<_>>(), on_day);
        }
        let left: usize = (0..40).map(|u| timelines.of(u).len()).sum();
        assert_eq!(left as u64 + buffer.rows() as u64, 3000);
        assert_eq!(timelines.event_count(), left as u64);
    }

    /// Cutting days one at a time compacts the arena only once the cut
    /// blobs are most of it; the live bytes it counts are what a rebuild
    /// from the parts (a snapshot) counts, so both compact at the same cuts.
    #[test]
    fn the_arena_is_compacted_when_cut_blobs_are_most_of_it() {
        let day_ms = crate::clock::DAY_MS;
        let mut timelines = Timelines::default();
        let blob = |n: u32| {
            let mut b = Vec::new();
            props::encode(&mut b, &[(1, &props::Value::String(format!("value {n}")))]);
            b
        };
        let mut live = 0;
        for n in 0..4000u32 {
            let (day, user) = (i64::from(n % 4), n % 50);
            let b = blob(n);
            live += b.len();
            timelines.insert(user, 1, day * day_ms + i64::from(n), &b);
        }
        let live_of = |t: &Timelines| t.row_bytes() - t.event_count() as usize * 16;
        assert_eq!(live_of(&timelines), live);
        let mut compacted = Vec::new();
        for day in 0..4 {
            let arena_before = timelines.arena().bytes();
            timelines.cut_day(day, 0..50u32, 1);
            compacted.push(timelines.compact_arena_when_sparse());
            let rebuilt = Timelines::from_parts(
                (0..50).map(|u| timelines.of(u).to_vec()).collect(),
                timelines.arena().clone(),
            );
            assert_eq!(live_of(&rebuilt), live_of(&timelines), "after day {day}");
            assert!(timelines.arena().bytes() <= 2 * live_of(&timelines) + props::EMPTY.len());
            assert!(timelines.arena().bytes() <= arena_before);
        }
        // A quarter cut: not yet; by the last cut, the arena is compacted,
        // but not at every cut.
        assert!(!compacted[0] && compacted[3], "{compacted:?}");
        assert!(compacted.iter().filter(|&&c| c).count() < 4, "{compacted:?}");
        assert_eq!(live_of(&timelines), 0);
    }

    #[test]
    fn packs_large_event_ids_and_offsets() {
        let entry = TimelineEntry::new(-5, crate::limits::MAX_EVENT_NAMES, OFFSET_MASK);
        assert_eq!(entry.event(), crate::limits::MAX_EVENT_NAMES);
        assert_eq!(entry.props_at(), OFFSET_MASK);
    }
}
