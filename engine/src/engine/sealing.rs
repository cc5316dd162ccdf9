//! Sealing: moving closed UTC days out of the in-memory head into day files
//! (`docs/design/sealed-days.md`).
//!
//! Sealing day `D` is three steps, one day at a time (`seal_lock`):
//!
//! 1. append `SealDay { D }`: the fold cuts the head's rows of `D` into a
//!    sealing buffer (merged with the day's current version, if any);
//! 2. write the buffer as the day file, with no lock held: readers keep
//!    reading the buffer meanwhile;
//! 3. append `DaySealed { D, version, rows, checksum }`: the fold maps the
//!    file, checks it and drops the buffer. Older versions of the day are
//!    then removed.
//!
//! A crash between the steps loses nothing: the log still holds every event,
//! and open finishes what was started ([`Engine::finish_sealing`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::Engine;
use crate::clock::{DAY_MS, day_of};
use crate::error::{IoContext, Result};
use crate::query::ColumnCache;
use crate::store::log::entry::{LogDaySealed, LogEntry, LogSealDay};
use crate::store::sealed::format::{TEMP_SUFFIX, parse_file_name};
use crate::store::sealed::{DayFileSpec, write_day_file};
use crate::store::sequencer::Input;
use crate::store::state::sealed_days::{DayFiles, SealedDay};

/// How long after a UTC day ends it is sealed, by default: late events
/// within this grace still go straight into the day's first version.
pub const DEFAULT_SEAL_GRACE_MS: i64 = 2 * 60 * 60 * 1000;

/// The head budget when physical memory cannot be read.
const FALLBACK_HEAD_BUDGET_BYTES: usize = 2 << 30;

/// A default for [`Engine::seal_over_budget`]: a quarter of physical memory
/// (`MemTotal` of `/proc/meminfo`; 2 GiB where that cannot be read).
pub fn default_head_budget_bytes() -> usize {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
    });
    total_kib.map_or(FALLBACK_HEAD_BUDGET_BYTES, |kib| kib * 1024 / 4)
}

/// What sealing one day did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedDayReport {
    /// The UTC day (days since 1970-01-01).
    pub day: i32,
    /// The version written.
    pub version: u32,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// Time to append and fold `SealDay`: the cut, under the state's write
    /// lock, so queries and ingest wait for about this long.
    pub cut: Duration,
    /// Time to write the day file (no lock held).
    pub write: Duration,
    /// Time to append and fold `DaySealed`: mapping and checking the file.
    pub install: Duration,
}

/// What checking one day file's sections found.
#[derive(Debug)]
pub struct DayFileCheck {
    /// The UTC day.
    pub day: i32,
    /// The file's version.
    pub version: u32,
    /// The failed check, if any (the file is then moved aside).
    pub damage: Option<crate::Error>,
}

/// What a damaged day file is renamed to, beside the others: kept for
/// inspection, never read, and not a day file name (so not removed either).
pub const DAMAGED_EXTENSION: &str = "damaged";

/// Renames the damaged day file at `path` to `<name>.damaged`, durably
/// (nothing when it is gone already): the next open finds the day's file
/// missing and rebuilds it from the log.
pub(super) fn set_aside(files: &DayFiles, path: &Path) -> Result<()> {
    if files.storage.len(path).is_err() {
        return Ok(());
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let aside = path.with_file_name(format!("{name}.{DAMAGED_EXTENSION}"));
    let moving = || format!("moving the damaged {} aside", path.display());
    files.storage.rename(path, &aside).context(moving)?;
    files.storage.sync_dir(&files.dir).context(moving)
}

/// Where the events are: the in-memory head and the sealed days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageTiers {
    /// Rows in the head.
    pub head_rows: u64,
    /// UTC days the head holds rows of.
    pub head_days: usize,
    /// Sealed days.
    pub sealed_days: usize,
    /// Rows in sealed days.
    pub sealed_rows: u64,
    /// Sealed days whose file is mapped (the others wait in a sealing buffer).
    pub mapped_days: usize,
    /// Bytes of the mapped day files.
    pub mapped_bytes: u64,
    /// Bytes of the snapshot file read in place: profiles and subscriptions.
    pub mapped_snapshot_bytes: u64,
    /// Profiles on the heap: changed since that snapshot.
    pub heap_profiles: usize,
    /// Subscriptions on the heap: added since that snapshot.
    pub heap_subscriptions: usize,
    /// Heap bytes of what stays in memory, by kind (approximate).
    pub heap: HeapBytes,
}

/// Approximate heap bytes of the derived state that stays in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapBytes {
    /// The head's timelines and property arena.
    pub head: usize,
    /// Sealing buffers (days cut and not yet in their files).
    pub sealing_buffers: usize,
    /// Per-event user bitmaps (all time and per day, week, month, quarter).
    pub event_bitmaps: usize,
    /// Per (event, property, value) and per (profile property, value) bitmaps.
    pub value_bitmaps: usize,
    /// Profiles.
    pub profiles: usize,
    /// Web push subscriptions.
    pub subscriptions: usize,
    /// User, event and property name dictionaries.
    pub dictionaries: usize,
}

impl Engine {
    /// Where the events are now (see [`StorageTiers`]).
    pub fn storage_tiers(&self) -> StorageTiers {
        // Dictionaries first, never while holding the state (the lock order).
        let dictionaries = self.dicts.read().heap_bytes();
        let state = self.state.read();
        let (timelines, sealed) = (&state.store.timelines, &state.store.sealed);
        let mapped: Vec<_> = sealed.iter().filter_map(|d| d.file()).collect();
        StorageTiers {
            head_rows: timelines.days().values().sum(),
            head_days: timelines.days().len(),
            sealed_days: sealed.iter().count(),
            sealed_rows: sealed.rows(),
            mapped_days: mapped.len(),
            mapped_bytes: mapped.iter().map(|f| f.byte_len() as u64).sum(),
            mapped_snapshot_bytes: (state.store.profiles.mapped_bytes()
                + state.store.subscriptions.mapped_bytes())
                as u64,
            heap_profiles: state.store.profiles.changed_count(),
            heap_subscriptions: state.store.subscriptions.heap_count(),
            heap: HeapBytes {
                head: timelines.heap_bytes(),
                sealing_buffers: sealed.heap_bytes(),
                event_bitmaps: state.store.indexes.event_bitmap_bytes(),
                value_bitmaps: state.store.indexes.value_bitmap_bytes(),
                profiles: state.store.profiles.heap_bytes(),
                subscriptions: state.store.subscriptions.heap_bytes(),
                dictionaries,
            },
        }
    }

    /// The days the head holds rows of that are closed at `now`: they ended
    /// more than the seal grace ago. Ascending.
    pub fn closed_head_days(&self) -> Vec<i32> {
        let now = self.options.clock.now_ms();
        let last_closed = day_of(now.saturating_sub(self.options.seal_grace_ms)) - 1;
        let state = self.state.read();
        state.store.timelines.days().range(..=last_closed).map(|(&day, _)| day).collect()
    }

    /// Seals every closed day the head holds (see [`Engine::closed_head_days`]).
    pub fn seal_closed_days(&self) -> Result<Vec<SealedDayReport>> {
        let mut done = Vec::new();
        for day in self.closed_head_days() {
            done.extend(self.seal_day(day)?);
        }
        Ok(done)
    }

    /// Seals the closed days holding the most head rows until the head's
    /// rows take at most `budget_bytes` (`Timelines::row_bytes`) (history import keeps memory
    /// bounded this way, since every day of history is already closed).
    pub fn seal_over_budget(&self, budget_bytes: usize) -> Result<Vec<SealedDayReport>> {
        let mut done = Vec::new();
        loop {
            let largest = {
                let state = self.state.read();
                if state.store.timelines.row_bytes() <= budget_bytes {
                    break;
                }
                let now = self.options.clock.now_ms();
                let last_closed = day_of(now.saturating_sub(self.options.seal_grace_ms)) - 1;
                state
                    .store
                    .timelines
                    .days()
                    .range(..=last_closed)
                    .max_by_key(|&(_, &rows)| rows)
                    .map(|(&day, _)| day)
            };
            let Some(day) = largest else { break };
            match self.seal_day(day)? {
                Some(report) => done.push(report),
                None => break,
            }
        }
        Ok(done)
    }

    /// Seals UTC day `day` now (whether or not it is closed): its head rows
    /// go into the next version of its day file. `None` when the head holds
    /// no row of it.
    pub fn seal_day(&self, day: i32) -> Result<Option<SealedDayReport>> {
        let _one_at_a_time = self.seal_lock.lock();
        if self.state.read().store.timelines.rows_of_day(day) == 0 {
            return Ok(None);
        }
        // The next version merges the current file's rows: check all of them
        // first, so the cut never meets a damaged section.
        let current = self.state.read().store.sealed.get(day).cloned();
        if let Some(current) = current
            && let Some(DayFileCheck { damage: Some(damage), .. }) =
                self.check_day_file(&current)?
        {
            return Err(damage);
        }
        let started = Instant::now();
        self.ingest_inputs(vec![Input::Entry(LogEntry::SealDay(LogSealDay { day }))])?;
        let cut = started.elapsed();
        Ok(self.write_sealed(day)?.map(|report| SealedDayReport { cut, ..report }))
    }

    /// Writes the buffer of `day` as its file and records it durable.
    fn write_sealed(&self, day: i32) -> Result<Option<SealedDayReport>> {
        let (sealed, files) = {
            let state = self.state.read();
            (state.store.sealed.get(day).cloned(), state.store.sealed.files().cloned())
        };
        let (Some(sealed), Some(files)) = (sealed, files) else { return Ok(None) };
        let Some(buffer) = sealed.buffer() else { return Ok(None) };
        let spec = DayFileSpec { day, version: sealed.version, cut_position: sealed.cut_position };
        let started = Instant::now();
        let written = write_day_file(files.storage.as_ref(), &files.dir, spec, buffer.to_write())?;
        let write = started.elapsed();
        let started = Instant::now();
        match sealed.checksum {
            None => {
                let entry = LogEntry::DaySealed(LogDaySealed {
                    day,
                    version: sealed.version,
                    rows: written.rows,
                    checksum: written.checksum,
                });
                self.ingest_inputs(vec![Input::Entry(entry)])?;
            }
            Some(_) => {
                // Its `DaySealed` is in the log already: install the file again.
                let mut state = self.state.write();
                state.store.sealed.rewritten(day)?;
                state.queries.columns = ColumnCache::default();
            }
        }
        let install = started.elapsed();
        self.remove_day_files(Some(day))?;
        Ok(Some(SealedDayReport {
            day,
            version: sealed.version,
            rows: written.rows,
            bytes: written.bytes,
            cut: Duration::ZERO,
            write,
            install,
        }))
    }

    /// Checks every section of the next mapped day file not checked yet
    /// (open checks only headers and directories); `None` once all are. A
    /// damaged file is moved aside as `<name>.damaged`, answers that would
    /// read it fail (`SealedDays::damage`), and the next open rebuilds the
    /// day from the log.
    pub fn check_next_day_file(&self) -> Result<Option<DayFileCheck>> {
        let next = {
            let state = self.state.read();
            state.store.sealed.iter().find(|d| d.file().is_some_and(|f| !f.is_checked())).cloned()
        };
        match next {
            Some(day) => self.check_day_file(&day),
            None => Ok(None),
        }
    }

    /// Checks every mapped day file not checked yet (see
    /// [`Engine::check_next_day_file`]).
    pub fn check_day_files(&self) -> Result<Vec<DayFileCheck>> {
        let mut done = Vec::new();
        while let Some(check) = self.check_next_day_file()? {
            done.push(check);
        }
        Ok(done)
    }

    fn check_day_file(&self, day: &SealedDay) -> Result<Option<DayFileCheck>> {
        let Some(file) = day.file() else { return Ok(None) };
        let damage = file.verify_all().err();
        if damage.is_some() {
            let files = self.state.read().store.sealed.files().cloned();
            if let Some(files) = files {
                set_aside(&files, file.path())?;
            }
        }
        Ok(Some(DayFileCheck { day: day.day, version: day.version, damage }))
    }

    /// At open: writes the days that are only in buffers (cut before a
    /// crash, or recorded durable but missing or damaged on disk), then
    /// removes every file of the sealed directory that no sealed day uses.
    pub(super) fn finish_sealing(&self) -> Result<()> {
        let _one_at_a_time = self.seal_lock.lock();
        let unwritten = self.state.read().store.sealed.unwritten();
        for (day, ..) in unwritten {
            self.write_sealed(day)?;
        }
        self.remove_day_files(None)
    }

    /// Removes the files of the sealed directory that no sealed day uses and
    /// no snapshot names: of `day` only, or all of them (temporary files,
    /// older versions, files whose `DaySealed` never became durable).
    pub(super) fn remove_day_files(&self, day: Option<i32>) -> Result<()> {
        let named = super::snapshot::day_files_in_use(&self.dir.join(super::SNAPSHOT_DIR));
        let (files, in_use) = {
            let state = self.state.read();
            let sealed = &state.store.sealed;
            let Some(files) = sealed.files().cloned() else { return Ok(()) };
            let in_use: BTreeSet<(i32, u32)> =
                sealed.iter().filter(|d| d.file().is_some()).map(|d| (d.day, d.version)).collect();
            (files, in_use)
        };
        let names = files
            .storage
            .list(&files.dir)
            .context(|| format!("listing {}", files.dir.display()))?;
        let mut removed = false;
        for name in names {
            let parsed = parse_file_name(&name);
            let stray = match parsed {
                Some(key) => {
                    !in_use.contains(&key)
                        && !named.contains(&name)
                        && day.is_none_or(|d| d == key.0)
                }
                None => day.is_none() && name.ends_with(TEMP_SUFFIX),
            };
            if stray {
                let path = files.dir.join(&name);
                files.storage.remove(&path).context(|| format!("removing {}", path.display()))?;
                removed = true;
            }
        }
        if removed {
            files
                .storage
                .sync_dir(&files.dir)
                .context(|| format!("syncing {}", files.dir.display()))?;
        }
        Ok(())
    }

    /// When the next day closes: the end of today plus the seal grace.
    pub(crate) fn next_day_closes(&self) -> i64 {
        let now = self.options.clock.now_ms();
        let today = day_of(now.saturating_sub(self.options.seal_grace_ms));
        (i64::from(today) + 1) * DAY_MS + self.options.seal_grace_ms
    }
}
