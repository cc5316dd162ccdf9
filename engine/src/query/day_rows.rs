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
use crate::query::condition::Cond;
use crate::store::dict::{EventId, FastMap, UserId};
use crate::store::props::{self, DistinctValue, KeyId, ValueRef};
use crate::store::sealed::SealedEventRows;
use crate::store::state::DayChanges;
use crate::store::state::StoreState;
use crate::store::state::sealed_days::{SealedDay, SealedRows};

/// Most bytes the column cache holds before it is emptied.
pub const COLUMN_CACHE_MAX_BYTES: usize = 4 << 30;

/// The rows of one event on one UTC day, grouped by user: built from the
/// head's timelines, or read in place from a sealed day, or both merged
/// while a sealed day has late rows in the head. Read through [`DayRows::view`].
#[derive(Debug)]
pub struct DayRows {
    kind: RowsKind,
}

#[derive(Debug)]
enum RowsKind {
    /// Built here; `props_at` are property handles (`StoreState::props_at`).
    Owned { users: Vec<UserId>, starts: Vec<u32>, ts_ms: Vec<i64>, props_at: Vec<u64> },
    /// A sealed day's rows of the event, in place.
    Sealed { day: Arc<SealedDay>, event: EventId },
}

/// [`DayRows`] as slices: users ascending, `starts[i]..starts[i + 1]` the
/// rows of `users[i]` in time and then log order.
#[derive(Debug, Clone, Copy)]
pub struct RowsView<'a> {
    /// Users with at least one row, ascending.
    pub users: &'a [UserId],
    /// Row ranges, one more entry than users.
    pub starts: &'a [u32],
    /// Event time of each row.
    pub ts_ms: &'a [i64],
    props: ViewProps<'a>,
}

#[derive(Debug, Clone, Copy)]
enum ViewProps<'a> {
    Handles(&'a [u64]),
    Sealed(SealedRows<'a>),
}

impl<'a> RowsView<'a> {
    /// Row `r`'s property handle (`StoreState::props_at`).
    pub fn handle(&self, r: usize) -> u64 {
        match self.props {
            ViewProps::Handles(handles) => handles[r],
            ViewProps::Sealed(rows) => rows.handle(r),
        }
    }

    /// Row `r`'s property blob.
    pub fn blob(&self, state: &'a StoreState, r: usize) -> &'a [u8] {
        match self.props {
            ViewProps::Handles(handles) => state.props_at(handles[r]),
            ViewProps::Sealed(rows) => rows.blob(r),
        }
    }
}

const NO_ROWS: RowsView<'static> =
    RowsView { users: &[], starts: &[0], ts_ms: &[], props: ViewProps::Handles(&[]) };

impl DayRows {
    fn empty() -> DayRows {
        DayRows::owned(Vec::new(), vec![0], Vec::new(), Vec::new())
    }

    fn owned(users: Vec<UserId>, starts: Vec<u32>, ts_ms: Vec<i64>, props_at: Vec<u64>) -> Self {
        DayRows { kind: RowsKind::Owned { users, starts, ts_ms, props_at } }
    }

    /// The rows as slices.
    pub fn view(&self) -> RowsView<'_> {
        match &self.kind {
            RowsKind::Owned { users, starts, ts_ms, props_at } => {
                RowsView { users, starts, ts_ms, props: ViewProps::Handles(props_at) }
            }
            RowsKind::Sealed { day, event } => match day.event(*event) {
                Some(rows) => RowsView {
                    users: rows.users,
                    starts: rows.starts,
                    ts_ms: rows.ts_ms,
                    props: ViewProps::Sealed(rows),
                },
                None => NO_ROWS,
            },
        }
    }

    /// The rows in a mapped day file with its typed columns, when they are
    /// read in place from one.
    fn file_rows(&self) -> Option<SealedEventRows<'_>> {
        match &self.kind {
            RowsKind::Sealed { day, event } => day.file_rows(*event),
            RowsKind::Owned { .. } => None,
        }
    }

    /// The rows of `event` on `day`: in place when the day is sealed and the
    /// head holds none of its rows; otherwise read from the timelines of the
    /// users the day bucket lists, merged with the sealed rows if any (those
    /// came first in the log, so they go first at equal times).
    fn build(state: &StoreState, event: EventId, day: i32) -> DayRows {
        let Some(bucket) =
            state.indexes.event_user_ids.get(event as usize).and_then(|e| e.by_bucket[0].get(&day))
        else {
            return DayRows::empty();
        };
        let sealed_day = state.sealed.get(day);
        let sealed = sealed_day.and_then(|d| d.event(event));
        let head_rows = state.timelines.rows_of_day(day);
        match (sealed_day, head_rows) {
            (Some(_), 0) if sealed.is_none() => return DayRows::empty(),
            (Some(day), 0) => {
                return DayRows { kind: RowsKind::Sealed { day: Arc::clone(day), event } };
            }
            _ => {}
        }
        let (mut users, mut starts, mut ts_ms, mut props_at) =
            (Vec::new(), vec![0u32], Vec::new(), Vec::new());
        let from = i64::from(day) * DAY_MS;
        let until = from + DAY_MS;
        let mut cursor = 0;
        for user in bucket.get() {
            let before = ts_ms.len();
            let mut old = 0..0;
            if let Some(sealed) = &sealed {
                cursor += sealed.users[cursor..].partition_point(|&u| u < user);
                if sealed.users.get(cursor) == Some(&user) {
                    old = sealed.starts[cursor] as usize..sealed.starts[cursor + 1] as usize;
                }
            }
            let timeline = state.timelines.range(user, from, until - 1);
            let mut head = timeline.iter().filter(|e| e.event() == event).peekable();
            for r in old {
                let Some(sealed) = &sealed else { break };
                while let Some(e) = head.next_if(|e| e.ts_ms < sealed.ts_ms[r]) {
                    ts_ms.push(e.ts_ms);
                    props_at.push(e.props_at());
                }
                ts_ms.push(sealed.ts_ms[r]);
                props_at.push(sealed.handle(r));
            }
            for e in head {
                ts_ms.push(e.ts_ms);
                props_at.push(e.props_at());
            }
            if ts_ms.len() > before {
                users.push(user);
                starts.push(ts_ms.len() as u32);
            }
        }
        DayRows::owned(users, starts, ts_ms, props_at)
    }

    /// The rows for which `cond` holds: decided over the typed columns when
    /// the rows are a mapped day file's, else blob by blob.
    fn filtered(&self, state: &StoreState, cond: &Cond) -> DayRows {
        let rows = self.view();
        let mask = self.file_rows().map(|file| cond.mask(&file, &|r| rows.blob(state, r)));
        let holds = |r: usize| match &mask {
            Some(mask) => mask[r],
            None => cond.holds(rows.blob(state, r)),
        };
        let (mut users, mut starts, mut ts_ms, mut props_at) =
            (Vec::new(), vec![0u32], Vec::new(), Vec::new());
        for (i, &user) in rows.users.iter().enumerate() {
            let before = ts_ms.len();
            for r in rows.starts[i] as usize..rows.starts[i + 1] as usize {
                if holds(r) {
                    ts_ms.push(rows.ts_ms[r]);
                    props_at.push(rows.handle(r));
                }
            }
            if ts_ms.len() > before {
                users.push(user);
                starts.push(ts_ms.len() as u32);
            }
        }
        DayRows::owned(users, starts, ts_ms, props_at)
    }

    /// Heap bytes held (rows read in place hold none).
    fn bytes(&self) -> usize {
        match &self.kind {
            RowsKind::Owned { users, starts, ts_ms, .. } => {
                users.len() * 4 + starts.len() * 4 + ts_ms.len() * 16
            }
            RowsKind::Sealed { .. } => std::mem::size_of::<Self>(),
        }
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
    /// The condition, bound.
    pub cond: &'c Cond,
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
            Some(c) => self.day_rows(state, event, day, None).filtered(state, c.cond),
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

    /// A column of `key`'s values over the rows [`ColumnCache::day_rows`]
    /// gives: from the day file's typed column when the rows are a mapped
    /// file's and `from_file` reads one, else blob by blob.
    fn column<T>(
        &self,
        state: &StoreState,
        (event, day, condition): (EventId, i32, Option<&RowCondition<'_>>),
        key: KeyId,
        table: impl Fn(&mut CacheInner) -> &mut FastMap<(RowsKey, KeyId), Stamped<Vec<T>>>,
        value: impl Fn(&mut CacheInner, Option<ValueRef<'_>>) -> T,
        from_file: impl Fn(&mut CacheInner, &SealedEventRows<'_>) -> Option<Vec<T>>,
    ) -> Arc<Vec<T>> {
        let changes = &state.day_changes;
        let rows_key = RowsKey::new(event, day, condition);
        let column_key = (rows_key, key);
        if let Some(column) = current(table(&mut self.inner.lock()), &column_key, changes, day) {
            return column;
        }
        let rows = self.day_rows(state, event, day, condition);
        let view = rows.view();
        let mut inner = self.inner.lock();
        let typed = rows.file_rows().and_then(|file| from_file(&mut inner, &file));
        let column: Vec<T> = typed.unwrap_or_else(|| {
            (0..view.ts_ms.len())
                .map(|r| value(&mut inner, props::get(view.blob(state, r), key)))
                .collect()
        });
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
            // NaN where absent, as here.
            |_, file| file.numbers(key).map(<[f64]>::to_vec),
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
            // The file's codes are its own: each distinct string is given the
            // cache's code once, then every row is translated.
            |inner, file| {
                let column = file.codes(key)?;
                let dictionary = inner.dictionary.entry(key).or_default();
                let ours: Vec<u32> = (0..column.dictionary_len() as u32)
                    .map(|c| {
                        let Some(text) = column.text(c) else { return NO_VALUE };
                        let next = dictionary.len() as u32;
                        *dictionary.entry(DistinctValue::from(ValueRef::Str(text))).or_insert(next)
                    })
                    .collect();
                Some(
                    column
                        .codes
                        .iter()
                        .map(|&c| ours.get(c as usize).copied().unwrap_or(NO_VALUE))
                        .collect(),
                )
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
        let day_rows = day_rows.view();
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
