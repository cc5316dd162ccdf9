//! Bitmap indexes: sets of dense user ids, kept up to date on every applied
//! record and rebuilt by replay.
//!
//! | index | maps | kept for |
//! |---|---|---|
//! | `all_user_ids` | — → every user seen (event, profile or subscription) | `not`, the universe |
//! | `event_user_ids[e].all` | event → users who ever did it | `did E` with no window |
//! | `event_user_ids[e].by_bucket[l]` | (event, time bucket of level `l`) → users | windows |
//! | `event_property_value_user_ids` | (event, key, value) → users with such an event | `did E where k == v` |
//! | `profile_property_value_user_ids` | (profile key, current value) → users | `user.k == v` |
//! | `webpush_user_ids` | — → users with an active web push subscription | `reachable via webpush` |
//!
//! Time buckets form a pyramid of aligned spans of [`TIME_BUCKET_DAYS`] days
//! (UTC days since the epoch), so any day range is covered by a handful of
//! buckets ([`cover_days`]): a 30-day window takes at most about a dozen
//! bitmaps, never thirty.
//!
//! Value indexes keep one bitmap per distinct scalar value while a property
//! has shown at most `MAX_INDEXED_VALUES_PER_PROPERTY` values; past that the
//! property is marked overflowed, its bitmaps are dropped, and readers fall
//! back to timelines or profiles. Arrays are not value-indexed. Both rules
//! depend only on log order, so replay reproduces them exactly.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;

use crate::limits::MAX_INDEXED_VALUES_PER_PROPERTY;
use crate::store::dict::{EventId, FastMap, UserId};
use crate::store::props::{self, KeyId, ValueRef};
use crate::store::state::lazy_bitmap::LazyBitmap;

/// Span in days of each level of the time-bucket pyramid.
pub const TIME_BUCKET_DAYS: [i32; 4] = [1, 4, 16, 64];
/// Number of pyramid levels.
pub const TIME_LEVELS: usize = TIME_BUCKET_DAYS.len();

/// Users who did one event: all time and per time bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventUserIds {
    /// Users who ever did the event.
    pub all: LazyBitmap,
    /// For each level, bucket number (`day.div_euclid(span)`) → users.
    pub by_bucket: [BTreeMap<i32, LazyBitmap>; TIME_LEVELS],
}

impl EventUserIds {
    /// Users who did the event on some day in `from_day..=to_day`.
    pub fn in_days(&self, from_day: i32, to_day: i32) -> RoaringBitmap {
        let mut parts = cover_days(from_day, to_day)
            .into_iter()
            .filter_map(|(level, bucket)| self.by_bucket[level].get(&bucket));
        match (parts.next(), parts.next()) {
            (None, _) => RoaringBitmap::new(),
            (Some(only), None) => only.get().clone(),
            (Some(first), Some(second)) => {
                let mut union = first.get() | second.get();
                for part in parts {
                    union |= part.get();
                }
                union
            }
        }
    }
}

/// Covers the inclusive day range with aligned buckets, largest first where
/// alignment allows: a list of `(level, bucket number)`.
pub fn cover_days(from_day: i32, to_day: i32) -> Vec<(usize, i32)> {
    let mut pieces = Vec::new();
    let mut day = i64::from(from_day);
    let last = i64::from(to_day);
    while day <= last {
        let level = (0..TIME_LEVELS)
            .rev()
            .find(|&l| {
                let span = i64::from(TIME_BUCKET_DAYS[l]);
                day.rem_euclid(span) == 0 && day + span - 1 <= last
            })
            .unwrap_or(0);
        let span = i64::from(TIME_BUCKET_DAYS[level]);
        pieces.push((level, day.div_euclid(span) as i32));
        day += span;
    }
    pieces
}

/// The bitmap key of a scalar value: numbers by their bits (with -0 as 0).
fn number_key(n: f64) -> u64 {
    if n == 0.0 { 0 } else { n.to_bits() }
}

/// Per-value bitmaps of one property.
///
/// Each distinct value maps (one hash lookup) to a slot in `bitmaps`; the last
/// `(user, slot)` inserted is remembered, so repeated inserts of the same pair
/// cost no bitmap work.
#[derive(Debug, Clone, Default)]
pub struct ValueUserIds {
    strings: FastMap<Box<str>, u32>,
    numbers: FastMap<u64, u32>,
    bools: [Option<u32>; 2],
    bitmaps: Vec<LazyBitmap>,
    overflowed: bool,
    last_insert: Option<(UserId, u32)>,
}

/// Equal when the same values map to the same users (slot numbering and the
/// insert memo are internal).
impl PartialEq for ValueUserIds {
    fn eq(&self, other: &Self) -> bool {
        self.overflowed == other.overflowed && self.entries() == other.entries()
    }
}

impl ValueUserIds {
    /// False once the property has shown too many distinct values to index.
    pub fn is_complete(&self) -> bool {
        !self.overflowed
    }

    /// Distinct values indexed.
    pub fn value_count(&self) -> usize {
        self.bitmaps.len()
    }

    fn find(&self, value: ValueRef<'_>) -> Option<u32> {
        match value {
            ValueRef::Str(s) => self.strings.get(s).copied(),
            ValueRef::Number(n) => self.numbers.get(&number_key(n)).copied(),
            ValueRef::Bool(b) => self.bools[usize::from(b)],
            ValueRef::Array(_) => None,
        }
    }

    /// Users whose value is `value`; `None` when the index overflowed (scan instead).
    /// Arrays are never indexed: they answer `None` too.
    pub fn get(&self, value: ValueRef<'_>) -> Option<Option<&RoaringBitmap>> {
        if self.overflowed || matches!(value, ValueRef::Array(_)) {
            return None;
        }
        Some(self.find(value).and_then(|slot| self.bitmaps.get(slot as usize)).map(LazyBitmap::get))
    }

    /// Every indexed value with its users, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = (ValueRef<'_>, &RoaringBitmap)> {
        let bitmap = |slot: &u32| self.bitmaps[*slot as usize].get();
        let strings = self.strings.iter().map(move |(s, slot)| (ValueRef::Str(s), bitmap(slot)));
        let numbers = self
            .numbers
            .iter()
            .map(move |(n, slot)| (ValueRef::Number(f64::from_bits(*n)), bitmap(slot)));
        let bools =
            self.bools.iter().enumerate().filter_map(move |(i, slot)| {
                Some((ValueRef::Bool(i == 1), bitmap(slot.as_ref()?)))
            });
        strings.chain(numbers).chain(bools)
    }

    /// Every indexed `(value, users)` pair, strings first then numbers then booleans,
    /// each group sorted (deterministic, for snapshots and tests).
    pub fn entries(&self) -> Vec<(IndexedValue, &LazyBitmap)> {
        let bitmap = |slot: u32| &self.bitmaps[slot as usize];
        let mut strings: Vec<_> = self
            .strings
            .iter()
            .map(|(s, slot)| (IndexedValue::Str(s.to_string()), bitmap(*slot)))
            .collect();
        strings.sort_by(|a, b| a.0.cmp(&b.0));
        let mut numbers: Vec<_> = self
            .numbers
            .iter()
            .map(|(n, slot)| (IndexedValue::NumberBits(*n), bitmap(*slot)))
            .collect();
        numbers.sort_by(|a, b| a.0.cmp(&b.0));
        let bools = self
            .bools
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| Some((IndexedValue::Bool(i == 1), bitmap((*slot)?))));
        strings.into_iter().chain(numbers).chain(bools).collect()
    }

    /// The slot of `value`, created when new; `None` for arrays and once overflowed.
    fn slot(&mut self, value: ValueRef<'_>) -> Option<u32> {
        if self.overflowed || matches!(value, ValueRef::Array(_)) {
            return None;
        }
        if let Some(slot) = self.find(value) {
            return Some(slot);
        }
        if self.bitmaps.len() >= MAX_INDEXED_VALUES_PER_PROPERTY {
            *self = ValueUserIds { overflowed: true, ..Default::default() };
            return None;
        }
        let slot = self.bitmaps.len() as u32;
        self.bitmaps.push(LazyBitmap::default());
        match value {
            ValueRef::Str(s) => {
                self.strings.insert(s.into(), slot);
            }
            ValueRef::Number(n) => {
                self.numbers.insert(number_key(n), slot);
            }
            ValueRef::Bool(b) => self.bools[usize::from(b)] = Some(slot),
            ValueRef::Array(_) => {}
        }
        Some(slot)
    }

    /// Adds `user` under `value`.
    pub fn insert(&mut self, value: ValueRef<'_>, user: UserId) {
        let Some(slot) = self.slot(value) else { return };
        if self.last_insert == Some((user, slot)) {
            return;
        }
        self.last_insert = Some((user, slot));
        self.bitmaps[slot as usize].insert(user);
    }

    /// Removes `user` from under `value` (the value stays counted as seen).
    pub fn remove(&mut self, value: ValueRef<'_>, user: UserId) {
        if let Some(slot) = self.find(value) {
            self.bitmaps[slot as usize].remove(user);
            if self.last_insert == Some((user, slot)) {
                self.last_insert = None;
            }
        }
    }

    /// Rebuilds an index from snapshot parts.
    pub fn from_entries(overflowed: bool, entries: Vec<(IndexedValue, LazyBitmap)>) -> Self {
        let mut index = ValueUserIds { overflowed, ..Default::default() };
        for (value, bitmap) in entries {
            let slot = index.bitmaps.len() as u32;
            index.bitmaps.push(bitmap);
            match value {
                IndexedValue::Str(s) => {
                    index.strings.insert(s.into(), slot);
                }
                IndexedValue::NumberBits(n) => {
                    index.numbers.insert(n, slot);
                }
                IndexedValue::Bool(b) => index.bools[usize::from(b)] = Some(slot),
            }
        }
        index
    }
}

/// A value as a value index keys it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum IndexedValue {
    /// A string.
    Str(String),
    /// A number, by its normalized bits.
    NumberBits(u64),
    /// A boolean.
    Bool(bool),
}

/// Every bitmap index of a data directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Indexes {
    /// Every user seen through an event, a profile update or a subscription.
    pub all_user_ids: RoaringBitmap,
    /// Per event id: users who did it, all time and per time bucket.
    pub event_user_ids: Vec<EventUserIds>,
    /// (event, property key) → per-value users who did the event with that value.
    pub event_property_value_user_ids: FastMap<(EventId, KeyId), ValueUserIds>,
    /// Profile key → per-value users whose profile currently holds that value.
    pub profile_property_value_user_ids: FastMap<KeyId, ValueUserIds>,
    /// Users with at least one active web push subscription.
    pub webpush_user_ids: RoaringBitmap,
    /// Per event id, the (user, day) of the last insert: a repeat needs no bitmap work.
    last_insert: InsertCache,
}

/// A cache that only saves work: it never changes what the indexes hold, so it
/// takes no part in equality and is not saved in snapshots.
#[derive(Debug, Clone, Default)]
struct InsertCache(Vec<Option<(UserId, i32)>>);

impl PartialEq for InsertCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Indexes {
    /// Indexes one event in the event bitmaps (its property values: [`Indexes::add_event_values`]).
    pub fn add_event(&mut self, user: UserId, event: EventId, ts_ms: i64) {
        let index = event as usize;
        if self.event_user_ids.len() <= index {
            self.event_user_ids.resize_with(index + 1, EventUserIds::default);
        }
        if self.last_insert.0.len() <= index {
            self.last_insert.0.resize(index + 1, None);
        }
        let day = crate::clock::day_of(ts_ms);
        if self.last_insert.0[index] != Some((user, day)) {
            self.last_insert.0[index] = Some((user, day));
            self.all_user_ids.insert(user);
            let entry = &mut self.event_user_ids[index];
            entry.all.insert(user);
            for (level, span) in TIME_BUCKET_DAYS.iter().enumerate() {
                entry.by_bucket[level].entry(day.div_euclid(*span)).or_default().insert(user);
            }
        }
    }

    /// Indexes one event's property values (kept apart from [`Indexes::add_event`]
    /// so that replay can run it on another thread).
    pub fn add_event_values(
        values: &mut FastMap<(EventId, KeyId), ValueUserIds>,
        user: UserId,
        event: EventId,
        blob: &[u8],
    ) {
        for (key, value) in props::iter(blob) {
            if matches!(value, ValueRef::Array(_)) {
                continue;
            }
            values.entry((event, key)).or_default().insert(value, user);
        }
    }

    /// Users who did `event` at any time.
    pub fn users_with_event(&self, event: EventId) -> Option<&RoaringBitmap> {
        self.event_user_ids.get(event as usize).map(|e| e.all.get())
    }

    /// Approximate heap bytes of all bitmaps (those still only in the
    /// snapshot file count nothing).
    pub fn heap_bytes(&self) -> usize {
        self.event_bitmap_bytes() + self.value_bitmap_bytes()
    }

    /// Approximate bytes of the event and profile value bitmaps.
    pub fn value_bitmap_bytes(&self) -> usize {
        let values = |v: &ValueUserIds| v.bitmaps.iter().map(LazyBitmap::heap_bytes).sum::<usize>();
        self.event_property_value_user_ids.values().map(values).sum::<usize>()
            + self.profile_property_value_user_ids.values().map(values).sum::<usize>()
    }

    /// Approximate bytes of the per-event bitmaps and the user sets.
    pub fn event_bitmap_bytes(&self) -> usize {
        let events: usize = self
            .event_user_ids
            .iter()
            .map(|e| {
                e.all.heap_bytes()
                    + e.by_bucket
                        .iter()
                        .flat_map(|l| l.values())
                        .map(LazyBitmap::heap_bytes)
                        .sum::<usize>()
            })
            .sum();
        events + self.all_user_ids.serialized_size() + self.webpush_user_ids.serialized_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_uses_aligned_buckets_and_covers_each_day_once() {
        for (from, to) in [(0, 0), (3, 40), (-10, 5), (100, 229), (17, 16), (19_000, 19_029)] {
            let pieces = cover_days(from, to);
            let mut days = Vec::new();
            for (level, bucket) in &pieces {
                let span = TIME_BUCKET_DAYS[*level];
                days.extend(bucket * span..bucket * span + span);
            }
            let expected: Vec<i32> = (from..=to).collect();
            assert_eq!(days, expected, "{from}..={to}");
            assert!(pieces.len() <= 13, "{from}..={to} took {} buckets", pieces.len());
        }
    }

    #[test]
    fn value_index_overflows_deterministically_and_normalizes_zero() {
        let mut index = ValueUserIds::default();
        index.insert(ValueRef::Number(-0.0), 1);
        index.insert(ValueRef::Number(0.0), 2);
        assert_eq!(index.get(ValueRef::Number(0.0)).flatten().map(|b| b.len()), Some(2));
        index.remove(ValueRef::Number(0.0), 1);
        assert_eq!(index.get(ValueRef::Number(0.0)).flatten().map(|b| b.len()), Some(1));
        for i in 0..MAX_INDEXED_VALUES_PER_PROPERTY {
            index.insert(ValueRef::Str(&format!("v{i}")), 3);
        }
        assert!(
            !index.is_complete(),
            "the {}th distinct value overflows",
            MAX_INDEXED_VALUES_PER_PROPERTY + 1
        );
        assert_eq!(index.get(ValueRef::Str("v1")), None);
        index.insert(ValueRef::Str("again"), 4);
        assert_eq!(index.value_count(), 0);
    }

    /// Renders every index as text, one `index key: users` line each.
    fn dump(indexes: &Indexes) -> String {
        let ids = |b: &RoaringBitmap| b.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",");
        let mut out = format!(
            "all_user_ids: [{}]\nwebpush_user_ids: [{}]\n",
            ids(&indexes.all_user_ids),
            ids(&indexes.webpush_user_ids)
        );
        for (event, entry) in indexes.event_user_ids.iter().enumerate() {
            out += &format!("event_user_ids[{event}].all: [{}]\n", ids(&entry.all));
            for (level, buckets) in entry.by_bucket.iter().enumerate() {
                for (bucket, users) in buckets {
                    out += &format!(
                        "event_user_ids[{event}].by_bucket[{}d][{bucket}]: [{}]\n",
                        TIME_BUCKET_DAYS[level],
                        ids(users)
                    );
                }
            }
        }
        let mut keys: Vec<_> = indexes.event_property_value_user_ids.keys().copied().collect();
        keys.sort();
        for key in keys {
            let values = &indexes.event_property_value_user_ids[&key];
            out += &format!(
                "event_property_value_user_ids{key:?} complete={}\n",
                values.is_complete()
            );
            for (value, users) in values.entries() {
                out += &format!("  {value:?}: [{}]\n", ids(users));
            }
        }
        out
    }

    /// The indexes of a fixed set of events, as text: a change to what is
    /// indexed, or where, shows up as a reviewable diff of the golden file.
    #[test]
    fn indexes_of_a_fixed_stream_match_their_golden_dump() {
        let day = crate::clock::DAY_MS;
        let mut indexes = Indexes::default();
        let mut values = FastMap::default();
        let blob = |pairs: &[(KeyId, crate::store::props::Value)]| {
            let refs: Vec<(KeyId, &crate::store::props::Value)> =
                pairs.iter().map(|(k, v)| (*k, v)).collect();
            let mut out = Vec::new();
            props::encode(&mut out, &refs);
            out
        };
        let stream: Vec<(UserId, EventId, i64, Vec<u8>)> = vec![
            (0, 0, 20_000 * day + 5, blob(&[(0, "shoes".into()), (1, 120.into())])),
            (1, 0, 20_001 * day, blob(&[(0, "books".into()), (1, 15.into())])),
            (0, 1, 20_003 * day, blob(&[(2, true.into())])),
            (
                2,
                0,
                20_016 * day,
                blob(&[
                    (0, "shoes".into()),
                    (3, crate::store::props::Value::Array(vec!["a".into()])),
                ]),
            ),
            (0, 0, 19_999 * day, blob(&[(1, (-0.0).into())])),
        ];
        for (user, event, ts, props) in &stream {
            indexes.add_event(*user, *event, *ts);
            Indexes::add_event_values(&mut values, *user, *event, props);
        }
        indexes.event_property_value_user_ids = values;
        crate::golden::check("src/store/state/testdata/indexes.golden", &dump(&indexes));
    }

    #[test]
    fn event_buckets_answer_day_ranges() {
        let mut indexes = Indexes::default();
        let day = crate::clock::DAY_MS;
        indexes.add_event(1, 0, 10 * day);
        indexes.add_event(2, 0, 20 * day + 5);
        indexes.add_event(3, 1, 20 * day);
        let event = &indexes.event_user_ids[0];
        assert_eq!(event.in_days(0, 30).iter().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(event.in_days(11, 20).iter().collect::<Vec<_>>(), [2]);
        assert!(event.in_days(21, 400).is_empty());
        assert_eq!(indexes.all_user_ids.len(), 3);
    }
}
