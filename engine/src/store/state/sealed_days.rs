//! The sealed tier of the store's state: which UTC days are sealed, and
//! where each one's rows are — a sealing buffer in memory until its day file
//! is durable, then the memory-mapped file (`docs/design/sealed-days.md`).
//!
//! Two log entries drive it, folded here like every other entry:
//!
//! - `SealDay { day }` cuts the head's rows of the day into a buffer
//!   ([`SealedDays::cut`]). When the day was sealed before, the buffer is
//!   the old version's rows merged with the late rows: the next version.
//! - `DaySealed { day, version, rows, checksum }` says the file of that
//!   version is durable ([`SealedDays::file_durable`]). The fold maps it and
//!   checks every checksum; a file that is missing, damaged or different is
//!   never read: the day stays in its buffer and is written again
//!   ([`SealedDays::unwritten`]).
//!
//! Property blobs of sealed rows are reached through *virtual offsets*:
//! every (day, event) gets a range of handles at or above
//! [`SEALED_PROPS_BASE`] when it is installed, so a [`TimelineEntry`] can
//! point into the head's arena or into a sealed day alike. Handles are
//! process-local and never saved; nothing that is saved holds one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;
use crate::store::log::storage::LogStorage;
use crate::store::props;
use crate::store::sealed::format::file_name;
use crate::store::sealed::{BufferedEvent, DayFile, SealBuffer, SealedEventRows};
use crate::store::state::timeline::TimelineEntry;

/// The first virtual offset of sealed property blobs; the head's arena
/// stays below it (it holds at most twice the head's live blobs: it is
/// compacted once cut blobs are most of it).
pub const SEALED_PROPS_BASE: u64 = 1 << 39;
/// One past the last virtual offset a [`TimelineEntry`] can hold.
const SEALED_PROPS_END: u64 = 1 << 40;

/// Where the day files are written and read.
#[derive(Clone)]
pub struct DayFiles {
    /// The storage the log uses (real, or the crash simulation).
    pub storage: Arc<dyn LogStorage>,
    /// `<data dir>/sealed`.
    pub dir: PathBuf,
}

impl std::fmt::Debug for DayFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayFiles").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Where a sealed day's rows are.
#[derive(Debug)]
pub enum DayRowsSource {
    /// Cut from the head, waiting for (or instead of) its file.
    Buffer(SealBuffer),
    /// The durable file, mapped.
    File(DayFile),
}

/// One event's rows of a sealed day, in place: users ascending, each user's
/// rows by time and then log order.
#[derive(Debug, Clone, Copy)]
pub struct SealedRows<'a> {
    /// The event.
    pub event: u32,
    /// Users with rows, ascending.
    pub users: &'a [u32],
    /// `users[i]`'s rows are `starts[i]..starts[i + 1]`.
    pub starts: &'a [u32],
    /// Each row's time, epoch ms.
    pub ts_ms: &'a [i64],
    /// Each row's rank among its user's rows of the day, all events.
    pub order: &'a [u32],
    props_at: &'a [u64],
    props: &'a [u8],
    /// The virtual offset of the first byte of `props`.
    base: u64,
}

impl<'a> SealedRows<'a> {
    /// The rows of `user` (by binary search; empty when none).
    pub fn rows_of(&self, user: u32) -> std::ops::Range<usize> {
        match self.users.binary_search(&user) {
            Ok(i) => self.starts[i] as usize..self.starts[i + 1] as usize,
            Err(_) => 0..0,
        }
    }

    /// Row `row`'s property blob.
    pub fn blob(&self, row: usize) -> &'a [u8] {
        &self.props[self.props_at[row] as usize..self.props_at[row + 1] as usize]
    }

    /// Row `row`'s property handle (virtual offset).
    pub fn handle(&self, row: usize) -> u64 {
        self.base + self.props_at[row]
    }

    /// Row `row` as a timeline entry.
    pub fn entry(&self, row: usize) -> TimelineEntry {
        TimelineEntry::new(self.ts_ms[row], self.event, self.handle(row))
    }
}

/// One sealed day: its version, its rows, and its file's checksum once durable.
#[derive(Debug)]
pub struct SealedDay {
    /// The UTC day.
    pub day: i32,
    /// Its version (1 for the first seal; each compaction adds one).
    pub version: u32,
    /// The log position of the `SealDay` entry whose rows complete it.
    pub cut_position: u64,
    /// The file's checksum, once `DaySealed` recorded it.
    pub checksum: Option<u32>,
    source: Arc<DayRowsSource>,
    /// The events with rows, ascending, each with its first virtual offset.
    events: Vec<(u32, u64)>,
}

impl SealedDay {
    fn new(
        day: i32,
        version: u32,
        cut_position: u64,
        checksum: Option<u32>,
        source: Arc<DayRowsSource>,
        next_base: &mut u64,
    ) -> SealedDay {
        let mut sealed =
            SealedDay { day, version, cut_position, checksum, source, events: Vec::new() };
        let events: Vec<u32> = match &*sealed.source {
            DayRowsSource::Buffer(buffer) => buffer.events.iter().map(|e| e.event).collect(),
            DayRowsSource::File(file) => file.events().collect(),
        };
        for event in events {
            // A file's lengths come from its directory: installing reads no section.
            let len = match &*sealed.source {
                DayRowsSource::File(file) => file.props_len(event),
                DayRowsSource::Buffer(_) => {
                    sealed.rows_at(event, 0).map_or(0, |rows| rows.props.len() as u64)
                }
            };
            sealed.events.push((event, *next_base));
            // One spare byte, so no range ends where the next begins.
            *next_base += len + 1;
        }
        sealed
    }

    /// The rows of `event` (`None` when it has none that day).
    pub fn event(&self, event: u32) -> Option<SealedRows<'_>> {
        let i = self.events.binary_search_by_key(&event, |&(e, _)| e).ok()?;
        self.rows_at(event, self.events[i].1)
    }

    /// The events with rows, ascending.
    pub fn events(&self) -> impl Iterator<Item = u32> + '_ {
        self.events.iter().map(|&(e, _)| e)
    }

    fn rows_at(&self, event: u32, base: u64) -> Option<SealedRows<'_>> {
        match &*self.source {
            DayRowsSource::Buffer(buffer) => {
                let i = buffer.events.binary_search_by_key(&event, |e| e.event).ok()?;
                Some(buffered_rows(&buffer.events[i], base))
            }
            // A section is checked on its first read. One that fails reads as
            // no rows, and the file reports its damage (`SealedDays::damage`),
            // which every answer checks before it is given.
            DayRowsSource::File(file) => {
                let rows = file.event(event).ok().flatten()?;
                Some(SealedRows {
                    event,
                    users: rows.users,
                    starts: rows.starts,
                    ts_ms: rows.ts_ms,
                    order: rows.order,
                    props_at: rows.props_at(),
                    props: rows.props_section(),
                    base,
                })
            }
        }
    }

    /// The rows of `event` in the mapped file, with its typed columns
    /// (`None` while the day is in a buffer, or without rows of `event`).
    pub fn file_rows(&self, event: u32) -> Option<SealedEventRows<'_>> {
        self.file()?.event(event).ok().flatten()
    }

    /// Rows over all events.
    pub fn rows(&self) -> u64 {
        match &*self.source {
            DayRowsSource::Buffer(buffer) => buffer.rows() as u64,
            DayRowsSource::File(file) => file.header().rows,
        }
    }

    /// The buffer, while the day has no durable file in use.
    pub fn buffer(&self) -> Option<&SealBuffer> {
        match &*self.source {
            DayRowsSource::Buffer(buffer) => Some(buffer),
            DayRowsSource::File(_) => None,
        }
    }

    /// The mapped file, once in use.
    pub fn file(&self) -> Option<&DayFile> {
        match &*self.source {
            DayRowsSource::File(file) => Some(file),
            DayRowsSource::Buffer(_) => None,
        }
    }

    /// The damage its file found, if a section failed its check.
    pub fn damage(&self) -> Option<crate::Error> {
        self.file()?.damage()
    }

    /// Heap bytes held (a buffer's rows; a mapped file counts nothing).
    pub fn heap_bytes(&self) -> usize {
        let rows = match &*self.source {
            DayRowsSource::Buffer(buffer) => {
                buffer.events.iter().map(|e| e.users.len() * 8 + e.len() * 20 + e.props.len()).sum()
            }
            DayRowsSource::File(_) => 0,
        };
        rows + self.events.len() * 16
    }

    /// The rows of `user` that day (of the events `only` when given), in
    /// time and then log order.
    fn user_rows(
        &self,
        user: u32,
        only: Option<&[u32]>,
        has_rows: impl Fn(u32) -> bool,
        out: &mut Vec<TimelineEntry>,
    ) {
        let mut ranked: Vec<(u32, TimelineEntry)> = Vec::new();
        let events: Box<dyn Iterator<Item = u32> + '_> = match only {
            // A few wanted events: look each up rather than pass over the day's.
            Some(only) => Box::new(only.iter().copied()),
            None => Box::new(self.events()),
        };
        for event in events {
            if !has_rows(event) {
                continue;
            }
            let Some(rows) = self.event(event) else { continue };
            for r in rows.rows_of(user) {
                ranked.push((rows.order[r], rows.entry(r)));
            }
        }
        ranked.sort_unstable_by_key(|&(order, _)| order);
        out.extend(ranked.into_iter().map(|(_, entry)| entry));
    }
}

/// The sealed days, and the handles of their property blobs.
#[derive(Debug, Clone)]
pub struct SealedDays {
    days: BTreeMap<i32, Arc<SealedDay>>,
    /// `(first handle, day, event)` of every installed (day, event), ascending.
    ranges: Vec<(u64, i32, u32)>,
    next_base: u64,
    files: Option<DayFiles>,
    /// A merge that met a damaged old version: `(file, what failed)`. The
    /// next version lacks rows, so nothing is answered until a rebuild.
    damaged_merge: Option<(PathBuf, String)>,
}

impl Default for SealedDays {
    fn default() -> Self {
        SealedDays {
            days: BTreeMap::new(),
            ranges: Vec::new(),
            next_base: SEALED_PROPS_BASE,
            files: None,
            damaged_merge: None,
        }
    }
}

/// A row of a merge: which version it comes from decides ties (the old
/// version's rows were in the log before the late ones).
struct MergeRow<'a> {
    user: u32,
    ts_ms: i64,
    late: bool,
    order: u32,
    event: u32,
    blob: &'a [u8],
}

impl SealedDays {
    /// Sets where day files live; without it, sealed days stay in buffers.
    pub fn set_files(&mut self, files: DayFiles) {
        self.files = Some(files);
    }

    /// Where day files live, if anywhere.
    pub fn files(&self) -> Option<&DayFiles> {
        self.files.as_ref()
    }

    /// `Err` naming the file once a day file failed a check: an answer
    /// read while it is `Err` may lack that file's rows, so it is not given.
    /// The day is rebuilt from the log at the next open (the damaged file is
    /// moved aside, see `Engine::check_day_files`).
    pub fn damage(&self) -> Result<()> {
        if let Some((path, reason)) = &self.damaged_merge {
            return Err(crate::Error::corrupt(path, reason.clone()));
        }
        match self.days.values().find_map(|d| d.damage()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Whether no day is sealed.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }

    /// The sealed day `day`, if it is sealed.
    pub fn get(&self, day: i32) -> Option<&Arc<SealedDay>> {
        self.days.get(&day)
    }

    /// The sealed days, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SealedDay>> {
        self.days.values()
    }

    /// The sealed days within `from..=to`, ascending.
    pub fn within(&self, from: i32, to: i32) -> impl Iterator<Item = &Arc<SealedDay>> {
        // (`from..=to` would panic in `BTreeMap::range` when inverted.)
        self.days.range(from..).take_while(move |(d, _)| **d <= to).map(|(_, day)| day)
    }

    /// Rows over all sealed days.
    pub fn rows(&self) -> u64 {
        self.days.values().map(|d| d.rows()).sum()
    }

    /// Heap bytes held (buffers; mapped files are the page cache's).
    pub fn heap_bytes(&self) -> usize {
        self.days.values().map(|d| d.heap_bytes()).sum::<usize>() + self.ranges.len() * 16
    }

    /// The property blob behind a sealed handle.
    pub fn props(&self, handle: u64) -> &[u8] {
        let at = self.ranges.partition_point(|&(base, ..)| base <= handle);
        let Some(&(base, day, event)) = at.checked_sub(1).and_then(|i| self.ranges.get(i)) else {
            return props::EMPTY;
        };
        let Some(rows) = self.days.get(&day).and_then(|d| d.event(event)) else {
            return props::EMPTY;
        };
        rows.props.get((handle - base) as usize..).unwrap_or(props::EMPTY)
    }

    /// Appends `user`'s sealed rows within `lo..=hi` (of the events `only`
    /// when given) to `out`, in time and then log order; `has_rows(event,
    /// day)` may skip events the user has no row of that day.
    pub fn user_rows(
        &self,
        user: u32,
        (lo, hi): (i64, i64),
        only: Option<&[u32]>,
        has_rows: impl Fn(u32, i32) -> bool,
        out: &mut Vec<TimelineEntry>,
    ) {
        let (from, to) = (crate::clock::day_of(lo), crate::clock::day_of(hi));
        // Each wanted event once (a sequence may name one twice).
        let only: Option<Vec<u32>> = only.map(|only| {
            let mut events = only.to_vec();
            events.sort_unstable();
            events.dedup();
            events
        });
        for day in self.within(from, to) {
            let start = out.len();
            day.user_rows(user, only.as_deref(), |event| has_rows(event, day.day), out);
            if day.day == from || day.day == to {
                let mut kept = start;
                for i in start..out.len() {
                    if (lo..=hi).contains(&out[i].ts_ms) {
                        out[kept] = out[i];
                        kept += 1;
                    }
                }
                out.truncate(kept);
            }
        }
    }

    /// Installs a day with fresh handles for its blobs.
    fn put(
        &mut self,
        day: i32,
        version: u32,
        cut_position: u64,
        checksum: Option<u32>,
        source: Arc<DayRowsSource>,
    ) {
        let day = SealedDay::new(day, version, cut_position, checksum, source, &mut self.next_base);
        self.install(day);
    }

    fn install(&mut self, day: SealedDay) {
        self.ranges.retain(|&(_, d, _)| d != day.day);
        for &(event, base) in &day.events {
            self.ranges.push((base, day.day, event));
        }
        debug_assert!(self.ranges.windows(2).all(|w| w[0].0 < w[1].0));
        self.days.insert(day.day, Arc::new(day));
    }

    /// Folds `SealDay`: `cut` holds the head's rows of the day, cut at log
    /// position `cut.cut_position`. A day sealed before gets its next
    /// version: the old rows merged with these late ones.
    pub fn cut(&mut self, cut: SealBuffer) {
        let (version, buffer) = match self.days.get(&cut.day) {
            None => (1, cut),
            Some(old) => {
                // A merge reads every row of the old version: check them all
                // first, so a damaged section is never merged as "no rows".
                if let Some(file) = old.file()
                    && file.verify_all().is_err()
                    && let Some(crate::Error::Corrupt { path, reason }) = file.damage()
                {
                    self.damaged_merge = Some((path, reason));
                }
                (old.version + 1, merge(old, &cut))
            }
        };
        if self.next_base + buffer.events.iter().map(|e| e.props.len() as u64 + 1).sum::<u64>()
            > SEALED_PROPS_END
        {
            // 512 GiB of sealed blobs installed in one process: start the
            // handles again. Nothing holds an old handle across a fold (the
            // query cache is dropped at every cut).
            self.next_base = SEALED_PROPS_BASE;
            self.ranges.clear();
            let days: Vec<i32> = self.days.keys().copied().collect();
            for d in days {
                self.reinstall(d);
            }
        }
        self.put(
            buffer.day,
            version,
            buffer.cut_position,
            None,
            Arc::new(DayRowsSource::Buffer(buffer)),
        );
    }

    /// Gives day `d` fresh handles (same rows).
    fn reinstall(&mut self, d: i32) {
        let Some(old) = self.days.remove(&d) else { return };
        self.put(old.day, old.version, old.cut_position, old.checksum, Arc::clone(&old.source));
    }

    /// Folds `DaySealed`: version `version` of `day` is durable with
    /// `checksum`. The file replaces the buffer when it opens and every
    /// section checks out; otherwise the buffer stays and the day is listed
    /// by [`SealedDays::unwritten`]. A stale version (a later cut already
    /// made the next one) is ignored.
    pub fn file_durable(&mut self, day: i32, version: u32, checksum: u32) {
        let Some(current) = self.days.get(&day) else { return };
        if current.version != version || current.checksum.is_some() {
            return;
        }
        let opened = self.files.as_ref().and_then(|files| {
            let checks = SectionChecks::Now;
            open_checked(
                files,
                (day, version, checksum),
                current.rows(),
                current.cut_position,
                checks,
            )
            .ok()
        });
        let current = Arc::clone(current);
        let source = match opened {
            Some(file) => Arc::new(DayRowsSource::File(file)),
            None => Arc::clone(&current.source),
        };
        self.days.remove(&day);
        self.put(day, version, current.cut_position, Some(checksum), source);
    }

    /// Days whose rows are only in a buffer: `(day, version, checksum)`,
    /// the checksum being `Some` when `DaySealed` was folded but its file was
    /// missing or failed a check (the file is to be written again), `None`
    /// when the file was never recorded durable.
    pub fn unwritten(&self) -> Vec<(i32, u32, Option<u32>)> {
        self.days
            .values()
            .filter(|d| d.buffer().is_some())
            .map(|d| (d.day, d.version, d.checksum))
            .collect()
    }

    /// After a file was written again for a day whose `DaySealed` was
    /// already folded: installs it if it opens and matches.
    pub fn rewritten(&mut self, day: i32) -> Result<()> {
        let Some(current) = self.days.get(&day) else { return Ok(()) };
        let (Some(checksum), Some(files)) = (current.checksum, self.files.as_ref()) else {
            return Ok(());
        };
        let file = open_checked(
            files,
            (day, current.version, checksum),
            current.rows(),
            current.cut_position,
            SectionChecks::Now,
        )?;
        let (version, cut_position) = (current.version, current.cut_position);
        self.days.remove(&day);
        self.put(day, version, cut_position, Some(checksum), Arc::new(DayRowsSource::File(file)));
        Ok(())
    }

    /// Restores a day from a snapshot: its file, already opened and checked.
    pub fn restore_file(&mut self, file: DayFile, checksum: u32) {
        let header = file.header();
        self.put(
            header.day,
            header.version,
            header.cut_position,
            Some(checksum),
            Arc::new(DayRowsSource::File(file)),
        );
    }

    /// Restores a day from a snapshot: a buffer (its file not durable yet,
    /// or to be written again when `checksum` is `Some`).
    pub fn restore_buffer(&mut self, buffer: SealBuffer, version: u32, checksum: Option<u32>) {
        self.put(
            buffer.day,
            version,
            buffer.cut_position,
            checksum,
            Arc::new(DayRowsSource::Buffer(buffer)),
        );
    }
}

/// How much of a day file is checked when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionChecks {
    /// Every section now (a file just written, or met during replay).
    Now,
    /// Header, footer and directory now; each section on its first read and
    /// in the background pass (a snapshot's files at open, so open does not
    /// read every sealed byte).
    OnFirstRead,
}

/// Opens version `version` of `day`'s file, checks that it is the file
/// `DaySealed` recorded, and checks its sections as `checks` says.
pub fn open_checked(
    files: &DayFiles,
    (day, version, checksum): (i32, u32, u32),
    rows: u64,
    cut_position: u64,
    checks: SectionChecks,
) -> Result<DayFile> {
    let path = files.dir.join(file_name(day, version));
    let file = DayFile::open(files.storage.as_ref(), &path)?;
    if checks == SectionChecks::Now {
        file.verify_all()?;
    }
    let header = file.header();
    let expected = (day, version, cut_position, rows, checksum);
    let found = (header.day, header.version, header.cut_position, header.rows, file.checksum());
    if found != expected {
        return Err(crate::Error::corrupt(
            &path,
            format!(
                "it is not the file the log recorded: (day, version, cut, rows, checksum) {found:?}, expected {expected:?}"
            ),
        ));
    }
    Ok(file)
}

/// A buffered event's rows, its blobs' handles from `base`.
fn buffered_rows(e: &BufferedEvent, base: u64) -> SealedRows<'_> {
    SealedRows {
        event: e.event,
        users: &e.users,
        starts: &e.starts,
        ts_ms: &e.ts_ms,
        order: &e.order,
        props_at: &e.props_at,
        props: &e.props,
        base,
    }
}

/// The next version of a day: `old`'s rows and the late rows of `cut`, per
/// user in time order, the old rows first at equal times (they came first
/// in the log), ranked again.
fn merge(old: &SealedDay, cut: &SealBuffer) -> SealBuffer {
    let mut rows: Vec<MergeRow<'_>> = Vec::with_capacity(old.rows() as usize + cut.rows());
    let old_rows = old.events().filter_map(|event| old.event(event)).map(|r| (r, false));
    let late_rows = cut.events.iter().map(|e| (buffered_rows(e, 0), true));
    for (r, late) in old_rows.chain(late_rows) {
        for (i, &user) in r.users.iter().enumerate() {
            for row in r.starts[i] as usize..r.starts[i + 1] as usize {
                rows.push(MergeRow {
                    user,
                    ts_ms: r.ts_ms[row],
                    late,
                    order: r.order[row],
                    event: r.event,
                    blob: r.blob(row),
                });
            }
        }
    }
    rows.sort_unstable_by_key(|r| (r.user, r.ts_ms, r.late, r.order));
    let mut by_event: BTreeMap<u32, BufferedEvent> = BTreeMap::new();
    let (mut user, mut rank) = (None, 0u32);
    for row in &rows {
        if user != Some(row.user) {
            (user, rank) = (Some(row.user), 0);
        }
        by_event
            .entry(row.event)
            .or_insert_with(|| BufferedEvent { event: row.event, ..Default::default() })
            .push(row.user, row.ts_ms, rank, row.blob);
        rank += 1;
    }
    SealBuffer {
        day: cut.day,
        cut_position: cut.cut_position,
        events: by_event.into_values().collect(),
    }
}
