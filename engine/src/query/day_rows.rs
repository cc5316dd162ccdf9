//! Event-major views of the timelines, derived on demand and cached: for one
//! (event, UTC day), the users who did the event that day, ascending, each
//! with the rows of their events of that kind in timeline order.
//!
//! Timelines are user-major and mix every event a user did, which suits
//! checking one user but makes "sum the amounts of every Charged in 30 days"
//! walk each candidate's whole month. [`DayRows`] hold only the rows of one
//! event, so aggregates, counts and sequences read what they need and
//! nothing else. [`ColumnCache`] also keeps the rows that pass a `where`
//! condition (keyed by the condition's canonical text) and per-row property
//! columns of either.
//!
//! Everything here is a cache of a pure function of the timelines. It is
//! never saved, takes no part in equality, and an entry is thrown away when
//! its day changed since it was built ([`DayChanges`]). The cache is bounded
//! by [`COLUMN_CACHE_MAX_BYTES`]: past it, it is emptied and refilled.

use std::sync::Arc;

use parking_lot::Mutex;
use roaring::RoaringBitmap;

use crate::clock::DAY_MS;
use crate::store::dict::{EventId, FastMap, UserId};
use crate::store::props::{self, DistinctValue, KeyId, ValueRef};
use crate::store::state::DayChanges;
use crate::store::state::StoreState;

/// Most bytes the column cache holds before it is emptied.
pub const COLUMN_CACHE_MAX_BYTES: usize = 4 << 30;

/// The rows of one event on one UTC day, grouped by user.
#[derive(Debug, Default)]
pub struct DayRows {
    /// Users with at least one row, ascending.
    pub users: Vec<UserId>,
    /// `starts[i]..starts[i + 1]` are the rows of `users[i]` (one more entry than users).
    pub starts: Vec<u32>,
    /// Event time of each row.
    pub ts_ms: Vec<i64>,
    /// Where each row's properties are in the arena.
    pub props_at: Vec<u64>,
}

impl DayRows {
    /// Reads the rows of `event` on `day` from the timelines of the users the
    /// day bucket lists.
    fn build(state: &StoreState, event: EventId, day: i32) -> DayRows {
        let mut rows = DayRows { starts: vec![0], ..Default::default() };
        let Some(bucket) =
            state.indexes.event_user_ids.get(event as usize).and_then(|e| e.by_bucket[0].get(&day))
        else {
            return rows;
        };
        let from = i64::from(day) * DAY_MS;
        let until = from + DAY_MS;
        for user in bucket {
            let timeline = state.timelines.of(user);
            let start = timeline.partition_point(|e| e.ts_ms < from);
            let before = rows.ts_ms.len();
            for entry in timeline[start..].iter().take_while(|e| e.ts_ms < until) {
                if entry.event() == event {
                    rows.ts_ms.push(entry.ts_ms);
                    rows.props_at.push(entry.props_at());
                }
            }
            if rows.ts_ms.len() > before {
                rows.users.push(user);
                rows.starts.push(rows.ts_ms.len() as u32);
            }
        }
        rows
    }

    /// The rows for which `holds` is true of the properties.
    fn filtered(&self, state: &StoreState, holds: &dyn Fn(&[u8]) -> bool) -> DayRows {
        let mut kept = DayRows { starts: vec![0], ..Default::default() };
        for (i, &user) in self.users.iter().enumerate() {
            let before = kept.ts_ms.len();
            for r in self.starts[i] as usize..self.starts[i + 1] as usize {
                if holds(state.timelines.arena().get(self.props_at[r])) {
                    kept.ts_ms.push(self.ts_ms[r]);
                    kept.props_at.push(self.props_at[r]);
                }
            }
            if kept.ts_ms.len() > before {
                kept.users.push(user);
                kept.starts.push(kept.ts_ms.len() as u32);
            }
        }
        kept
    }

    fn bytes(&self) -> usize {
        self.users.len() * 4 + self.starts.len() * 4 + self.ts_ms.len() * 16
    }
}

/// A per-row value of one property, as `sum`/`avg`/`min`/`max` and counts need it.
pub type NumberColumn = Vec<f64>;

/// Per-row codes of one property's values: equal values, equal codes (within
/// one cache generation); [`NO_VALUE`] where the row lacks the property.
pub type CodeColumn = Vec<u32>;

/// The code of a row without the property.
pub const NO_VALUE: u32 = u32::MAX;

/// Codes below this fit a [`CodeSet`].
pub const CODE_SET_BITS: usize = 256;

/// A set of codes below [`CODE_SET_BITS`], one bit each.
pub type CodeSet = [u64; CODE_SET_BITS / 64];

struct Stamped<T> {
    stamp: u64,
    value: Arc<T>,
}

/// Which rows: those of `event` on `day`, where `condition` (canonical text,
/// empty for none) holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RowsKey {
    event: EventId,
    day: i32,
    condition: String,
}

impl RowsKey {
    fn new(event: EventId, day: i32, condition: Option<&RowCondition<'_>>) -> Self {
        RowsKey { event, day, condition: condition.map_or("", |c| c.text).to_owned() }
    }
}

/// A `where` condition: its canonical text (the cache key) and its test.
pub struct RowCondition<'c> {
    /// The condition in canonical syntax.
    pub text: &'c str,
    /// Whether a property blob satisfies it.
    pub holds: &'c (dyn Fn(&[u8]) -> bool + Sync),
}

#[derive(Default)]
struct CacheInner {
    rows: FastMap<RowsKey, Stamped<DayRows>>,
    numbers: FastMap<(RowsKey, KeyId), Stamped<NumberColumn>>,
    codes: FastMap<(RowsKey, KeyId), Stamped<CodeColumn>>,
    code_sets: FastMap<(RowsKey, KeyId), Stamped<Vec<CodeSet>>>,
    unions: FastMap<(EventId, i32, i32), Stamped<RoaringBitmap>>,
    dense: FastMap<(EventId, i32, i32), Stamped<Vec<u64>>>,
    dictionary: FastMap<KeyId, FastMap<DistinctValue, u32>>,
    bytes: usize,
}

impl CacheInner {
    /// Stores `value` (of `bytes`) under `key` in `table`, stamped `stamp`;
    /// first empties the cache when it would grow past its bound.
    fn keep<K: std::hash::Hash + Eq, T>(
        &mut self,
        table: impl Fn(&mut CacheInner) -> &mut FastMap<K, Stamped<T>>,
        key: K,
        stamp: u64,
        bytes: usize,
        value: &Arc<T>,
    ) {
        self.account(bytes);
        table(self).insert(key, Stamped { stamp, value: Arc::clone(value) });
    }

    fn account(&mut self, bytes: usize) {
        self.bytes += bytes;
        if self.bytes > COLUMN_CACHE_MAX_BYTES {
            // Codes stay: columns built before and after the reset must agree.
            let dictionary = std::mem::take(&mut self.dictionary);
            *self = CacheInner { dictionary, ..CacheInner::default() };
        }
    }
}

/// Day rows, columns, condition masks and window unions built on demand.
#[derive(Default)]
pub struct ColumnCache {
    inner: Mutex<CacheInner>,
}

impl std::fmt::Debug for ColumnCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnCache").field("bytes", &self.inner.lock().bytes).finish()
    }
}

/// A clone starts empty: the cache is rebuilt from what it caches.
impl Clone for ColumnCache {
    fn clone(&self) -> Self {
        ColumnCache::default()
    }
}

fn current<K: std::hash::Hash + Eq, T>(
    map: &FastMap<K, Stamped<T>>,
    key: &K,
    changes: &DayChanges,
    day: i32,
) -> Option<Arc<T>> {
    map.get(key).filter(|s| changes.changed_at(day) <= s.stamp).map(|s| Arc::clone(&s.value))
}

impl ColumnCache {
    /// The rows of `event` on `day` (those satisfying `condition`, if given).
    /// Built without holding the cache lock, so queries building different
    /// days do not wait for each other.
    pub fn day_rows(
        &self,
        state: &StoreState,
        event: EventId,
        day: i32,
        condition: Option<&RowCondition<'_>>,
    ) -> Arc<DayRows> {
        let changes = &state.day_changes;
        let key = RowsKey::new(event, day, condition);
        if let Some(rows) = current(&self.inner.lock().rows, &key, changes, day) {
            return rows;
        }
        let rows = Arc::new(match condition {
            None => DayRows::build(state, event, day),
            Some(c) => self.day_rows(state, event, day, None).filtered(state, c.holds),
        });
        let mut inner = self.inner.lock();
        inner.keep(|c| &mut c.rows, key, changes.stamp(), rows.bytes(), &rows);
        rows
    }

    /// Builds the day rows of `days` not cached yet, on one thread per core
    /// when two or more are missing (a query's first run over a long window).
    pub fn prefetch(
        &self,
        state: &StoreState,
        event: EventId,
        condition: Option<&RowCondition<'_>>,
        days: &[i32],
    ) {
        let missing: Vec<i32> = {
            let inner = self.inner.lock();
            days.iter()
                .copied()
                .filter(|&day| {
                    let key = RowsKey::new(event, day, condition);
                    current(&inner.rows, &key, &state.day_changes, day).is_none()
                })
                .collect()
        };
        let threads =
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(missing.len());
        if threads < 2 {
            return;
        }
        std::thread::scope(|scope| {
            for first in 0..threads {
                let missing = &missing;
                scope.spawn(move || {
                    for &day in missing.iter().skip(first).step_by(threads) {
                        self.day_rows(state, event, day, condition);
                    }
                });
            }
        });
    }

    /// A column of `key`'s values over the rows [`ColumnCache::day_rows`] gives.
    fn column<T>(
        &self,
        state: &StoreState,
        (event, day, condition): (EventId, i32, Option<&RowCondition<'_>>),
        key: KeyId,
        table: impl Fn(&mut CacheInner) -> &mut FastMap<(RowsKey, KeyId), Stamped<Vec<T>>>,
        value: impl Fn(&mut CacheInner, Option<ValueRef<'_>>) -> T,
    ) -> Arc<Vec<T>> {
        let changes = &state.day_changes;
        let rows_key = RowsKey::new(event, day, condition);
        let column_key = (rows_key, key);
        if let Some(column) = current(table(&mut self.inner.lock()), &column_key, changes, day) {
            return column;
        }
        let rows = self.day_rows(state, event, day, condition);
        let mut inner = self.inner.lock();
        let column: Vec<T> = rows
            .props_at
            .iter()
            .map(|&at| value(&mut inner, props::get(state.timelines.arena().get(at), key)))
            .collect();
        let column = Arc::new(column);
        let bytes = column.len() * std::mem::size_of::<T>();
        inner.keep(table, column_key, changes.stamp(), bytes, &column);
        column
    }

    /// The numeric value of `key` on each row (NaN where it is missing or not a number).
    pub fn numbers(
        &self,
        state: &StoreState,
        rows: (EventId, i32, Option<&RowCondition<'_>>),
        key: KeyId,
    ) -> Arc<NumberColumn> {
        self.column(
            state,
            rows,
            key,
            |inner| &mut inner.numbers,
            |_, value| match value {
                Some(ValueRef::Number(n)) => n,
                _ => f64::NAN,
            },
        )
    }

    /// How many distinct values of `key` have codes (every code is below it).
    pub fn code_count(&self, key: KeyId) -> usize {
        self.inner.lock().dictionary.get(&key).map_or(0, FastMap::len)
    }

    /// The code of `key`'s value on each row ([`NO_VALUE`] where it is missing).
    pub fn codes(
        &self,
        state: &StoreState,
        rows: (EventId, i32, Option<&RowCondition<'_>>),
        key: KeyId,
    ) -> Arc<CodeColumn> {
        self.column(
            state,
            rows,
            key,
            |inner| &mut inner.codes,
            |inner, value| {
                let Some(value) = value else { return NO_VALUE };
                let dictionary = inner.dictionary.entry(key).or_default();
                let next = dictionary.len() as u32;
                *dictionary.entry(DistinctValue::from(value)).or_insert(next)
            },
        )
    }

    /// Users who did `event` on some day of `from..=to`, kept while none of
    /// those days changes.
    pub fn union(
        &self,
        state: &StoreState,
        event: EventId,
        from: i32,
        to: i32,
        build: impl FnOnce() -> RoaringBitmap,
    ) -> Arc<RoaringBitmap> {
        let changes = &state.day_changes;
        let key = (event, from, to);
        {
            let inner = self.inner.lock();
            if let Some(s) = inner.unions.get(&key)
                && !changes.changed_since(from, to, s.stamp)
            {
                return Arc::clone(&s.value);
            }
        }
        let union = Arc::new(build());
        let mut inner = self.inner.lock();
        inner.keep(|c| &mut c.unions, key, changes.stamp(), union.serialized_size(), &union);
        union
    }

    /// For each user of the rows, the set of `key`'s codes on their rows;
    /// `None` while the property has more than [`CODE_SET_BITS`] codes.
    pub fn code_sets(
        &self,
        state: &StoreState,
        rows: (EventId, i32, Option<&RowCondition<'_>>),
        key: KeyId,
    ) -> Option<Arc<Vec<CodeSet>>> {
        let (event, day, condition) = rows;
        let changes = &state.day_changes;
        let rows_key = RowsKey::new(event, day, condition);
        let set_key = (rows_key, key);
        if let Some(sets) = current(&self.inner.lock().code_sets, &set_key, changes, day) {
            return Some(sets);
        }
        let codes = self.codes(state, rows, key);
        let day_rows = self.day_rows(state, event, day, condition);
        let mut sets = Vec::with_capacity(day_rows.users.len());
        for bounds in day_rows.starts.windows(2) {
            let mut set = CodeSet::default();
            for &code in &codes[bounds[0] as usize..bounds[1] as usize] {
                if code == NO_VALUE {
                    continue;
                }
                let bit = code as usize;
                *set.get_mut(bit / 64)? |= 1 << (bit % 64);
            }
            sets.push(set);
        }
        let sets = Arc::new(sets);
        let bytes = sets.len() * std::mem::size_of::<CodeSet>();
        self.inner.lock().keep(|c| &mut c.code_sets, set_key, changes.stamp(), bytes, &sets);
        Some(sets)
    }

    /// The users of [`ColumnCache::union`] as a plain bit set of `words`
    /// 64-bit words (bit `u` is user `u`), kept while none of the days changes.
    pub fn dense(
        &self,
        state: &StoreState,
        (event, from, to): (EventId, i32, i32),
        words: usize,
        users: impl FnOnce() -> Arc<RoaringBitmap>,
    ) -> Arc<Vec<u64>> {
        let changes = &state.day_changes;
        let key = (event, from, to);
        {
            let inner = self.inner.lock();
            if let Some(s) = inner.dense.get(&key)
                && s.value.len() == words
                && !changes.changed_since(from, to, s.stamp)
            {
                return Arc::clone(&s.value);
            }
        }
        let mut bits = vec![0u64; words];
        for user in users().iter() {
            if let Some(word) = bits.get_mut(user as usize / 64) {
                *word |= 1 << (user % 64);
            }
        }
        let bits = Arc::new(bits);
        let mut inner = self.inner.lock();
        inner.keep(|c| &mut c.dense, key, changes.stamp(), words * 8, &bits);
        bits
    }
}
