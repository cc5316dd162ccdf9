//! Reading a day file in place: open checks the header, the footer, the
//! directory and every section's bounds; each section's checksum and shape
//! (ascending users, row ranges that fit) is checked the first time it is
//! read, and the result kept. A section that fails a check is never read;
//! the error says which file and what was wrong, the file reports itself
//! damaged ([`DayFile::damage`]), and the caller rebuilds the day.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::store::log::storage::{FileBytes, LogStorage};
use crate::store::sealed::format::{
    ColumnKind, Directory, EventRef, FOOTER_BYTES, Footer, HEADER_BYTES, Header, NO_CODE,
    SECTION_ALIGN_BYTES, SectionRef,
};

/// An open day file.
#[derive(Debug)]
pub struct DayFile {
    path: PathBuf,
    bytes: FileBytes,
    header: Header,
    directory: Directory,
    checksum: u32,
    /// One per event of the directory: whether its sections checked out.
    verified: Vec<OnceLock<std::result::Result<(), String>>>,
    /// Whether a section failed its check (read on every answer, so kept
    /// apart from `verified`).
    damaged: AtomicBool,
}

impl DayFile {
    /// Maps and checks the day file at `path` (see the module docs).
    pub fn open(storage: &dyn LogStorage, path: &Path) -> Result<DayFile> {
        let bytes = storage.map(path).context(|| format!("opening day file {}", path.display()))?;
        let corrupt = |reason: String| Error::corrupt(path, reason);
        let footer = Footer::decode(&bytes).map_err(corrupt)?;
        let header_bytes = &bytes[..HEADER_BYTES];
        if crc32c::crc32c(header_bytes) != footer.header_crc {
            return Err(corrupt("header checksum mismatch".into()));
        }
        let header = Header::decode(header_bytes).map_err(corrupt)?;
        let directory_ref = SectionRef {
            offset: footer.directory_offset,
            len: footer.directory_len,
            crc: footer.directory_crc,
        };
        let body_end = (bytes.len() - FOOTER_BYTES) as u64;
        let directory_bytes = section_bytes(&bytes, directory_ref, body_end)
            .ok_or_else(|| corrupt("directory out of bounds".into()))?;
        if crc32c::crc32c(directory_bytes) != footer.directory_crc {
            return Err(corrupt("directory checksum mismatch".into()));
        }
        let directory: Directory = crate::store::log::entry::decode_blob(directory_bytes)
            .ok_or_else(|| corrupt("directory does not decode".into()))?;
        check_shapes(&header, &directory, footer.directory_offset).map_err(corrupt)?;
        let verified = directory.events.iter().map(|_| OnceLock::new()).collect();
        Ok(DayFile {
            path: path.to_path_buf(),
            bytes,
            header,
            directory,
            checksum: footer.directory_crc,
            verified,
            damaged: AtomicBool::new(false),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its header: day, version, through which log position, sizes.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Its fingerprint: the directory's CRC-32C (see `WrittenDayFile::checksum`).
    pub fn checksum(&self) -> u32 {
        self.checksum
    }

    /// Its length in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The events with rows, ascending.
    pub fn events(&self) -> impl Iterator<Item = u32> + '_ {
        self.directory.events.iter().map(|e| e.event)
    }

    /// The rows of `event`, checked on first use; `Ok(None)` when it has none.
    pub fn event(&self, event: u32) -> Result<Option<EventRows<'_>>> {
        let Ok(index) = self.directory.events.binary_search_by_key(&event, |e| e.event) else {
            return Ok(None);
        };
        let entry = &self.directory.events[index];
        self.verified[index]
            .get_or_init(|| {
                let checked = self.verify_event(entry);
                if checked.is_err() {
                    self.damaged.store(true, Ordering::Release);
                }
                checked
            })
            .clone()
            .map_err(|reason| Error::corrupt(&self.path, reason))?;
        Ok(Some(self.rows_unchecked(entry)))
    }

    /// Bytes of `event`'s property blobs, from the directory (no section is
    /// read or checked).
    pub fn props_len(&self, event: u32) -> u64 {
        let events = &self.directory.events;
        events.binary_search_by_key(&event, |e| e.event).map_or(0, |i| events[i].props.len)
    }

    /// Checks every section now (the background pass after open); the
    /// first failure, once all are checked.
    pub fn verify_all(&self) -> Result<()> {
        let mut first_failure = Ok(());
        for event in self.events() {
            if let Err(e) = self.event(event)
                && first_failure.is_ok()
            {
                first_failure = Err(e);
            }
        }
        first_failure
    }

    /// Whether every section has been checked (whatever the outcome).
    pub fn is_checked(&self) -> bool {
        self.verified.iter().all(|v| v.get().is_some())
    }

    /// The first failed check, once a section failed one: its rows were
    /// never read, so whatever was being answered from this file is wrong.
    pub fn damage(&self) -> Option<Error> {
        if !self.damaged.load(Ordering::Acquire) {
            return None;
        }
        let reason = self.verified.iter().find_map(|v| v.get().and_then(|r| r.clone().err()));
        Some(Error::corrupt(&self.path, reason.unwrap_or_default()))
    }

    fn bytes_of(&self, section: SectionRef) -> &[u8] {
        // Bounds were checked at open.
        section_bytes(&self.bytes, section, self.bytes.len() as u64).unwrap_or_default()
    }

    fn rows_unchecked<'a>(&'a self, entry: &'a EventRef) -> EventRows<'a> {
        EventRows {
            entry,
            users: cast(self.bytes_of(entry.user_ids)),
            starts: cast(self.bytes_of(entry.starts)),
            ts_ms: cast(self.bytes_of(entry.ts_ms)),
            order: cast(self.bytes_of(entry.order)),
            props_at: cast(self.bytes_of(entry.props_at)),
            props: self.bytes_of(entry.props),
            file: self,
        }
    }

    /// Checksums of every section of `entry`, then the shapes the accessors rely on.
    fn verify_event(&self, entry: &EventRef) -> std::result::Result<(), String> {
        let name = entry.event;
        let mut sections = vec![
            ("users", entry.user_ids),
            ("starts", entry.starts),
            ("ts_ms", entry.ts_ms),
            ("order", entry.order),
            ("props_at", entry.props_at),
            ("props", entry.props),
        ];
        for column in &entry.columns {
            sections.push(("column", column.values));
            if column.kind == ColumnKind::Code {
                sections.push(("dictionary offsets", column.dictionary_at));
                sections.push(("dictionary", column.dictionary_bytes));
            }
        }
        for (what, section) in sections {
            if crc32c::crc32c(self.bytes_of(section)) != section.crc {
                return Err(format!(
                    "event {name}: {what} checksum mismatch at byte {}",
                    section.offset
                ));
            }
        }
        let rows = self.rows_unchecked(entry);
        if rows.users.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("event {name}: users not ascending"));
        }
        // Offsets from 0 to `end`, never going down (strictly up for `starts`:
        // every user listed has a row).
        fn covers<T: Copy + Into<u64>>(offsets: &[T], end: u64, strictly: bool) -> bool {
            let up = |w: &[T]| {
                if strictly { w[0].into() < w[1].into() } else { w[0].into() <= w[1].into() }
            };
            offsets.first().map(|&o| o.into()) == Some(0)
                && offsets.windows(2).all(up)
                && offsets.last().map(|&o| o.into()) == Some(end)
        }
        if !covers(rows.starts, entry.rows, true) {
            return Err(format!("event {name}: row ranges do not cover the rows"));
        }
        if !covers(rows.props_at, entry.props.len, false) {
            return Err(format!("event {name}: property offsets do not cover the blobs"));
        }
        for column in entry.columns.iter().filter(|c| c.kind == ColumnKind::Code) {
            let at: &[u32] = cast(self.bytes_of(column.dictionary_at));
            let words = at.len() as u32 - 1;
            if !covers(at, column.dictionary_bytes.len, false)
                || std::str::from_utf8(self.bytes_of(column.dictionary_bytes)).is_err()
            {
                return Err(format!("event {name}: key {} dictionary is damaged", column.key));
            }
            let codes: &[u32] = cast(self.bytes_of(column.values));
            if codes.iter().any(|&c| c != NO_CODE && c >= words) {
                return Err(format!(
                    "event {name}: key {} has codes past its dictionary",
                    column.key
                ));
            }
        }
        Ok(())
    }
}

/// One event's rows in a day file, in place: users ascending, each user's
/// rows by time then log order.
#[derive(Debug, Clone, Copy)]
pub struct EventRows<'a> {
    entry: &'a EventRef,
    file: &'a DayFile,
    /// The users with rows, ascending.
    pub users: &'a [u32],
    /// Row ranges: `users[i]`'s rows are `starts[i]..starts[i + 1]`.
    pub starts: &'a [u32],
    /// Each row's timestamp, epoch ms.
    pub ts_ms: &'a [i64],
    /// Each row's rank among its user's rows of the day (see `SealRow::order`).
    pub order: &'a [u32],
    props_at: &'a [u64],
    props: &'a [u8],
}

impl<'a> EventRows<'a> {
    /// The event (dense id).
    pub fn event(&self) -> u32 {
        self.entry.event
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts_ms.len()
    }

    /// Whether there are no rows (never, in a written file).
    pub fn is_empty(&self) -> bool {
        self.ts_ms.is_empty()
    }

    /// The rows of `user` (empty when it has none), by binary search.
    pub fn rows_of(&self, user: u32) -> Range<usize> {
        match self.users.binary_search(&user) {
            Ok(i) => self.starts[i] as usize..self.starts[i + 1] as usize,
            Err(_) => 0..0,
        }
    }

    /// Offsets of each row's blob in [`EventRows::props_section`] (one more than the rows).
    pub fn props_at(&self) -> &'a [u64] {
        self.props_at
    }

    /// The property blobs of all rows, back to back.
    pub fn props_section(&self) -> &'a [u8] {
        self.props
    }

    /// Row `row`'s property blob.
    pub fn props(&self, row: usize) -> &'a [u8] {
        let (from, to) = (self.props_at[row] as usize, self.props_at[row + 1] as usize);
        &self.props[from..to]
    }

    /// The number column of `key`: one value per row, NaN where absent.
    /// `None` when the key's values that day are not all numbers.
    pub fn numbers(&self, key: u16) -> Option<&'a [f64]> {
        let column = self.column(key, ColumnKind::Number)?;
        Some(cast(self.file.bytes_of(column.values)))
    }

    /// The code column of `key`: one code per row ([`NO_CODE`] where
    /// absent) and the strings of the codes. `None` when the key's values
    /// that day are not all strings.
    pub fn codes(&self, key: u16) -> Option<CodeColumn<'a>> {
        let column = self.column(key, ColumnKind::Code)?;
        Some(CodeColumn {
            codes: cast(self.file.bytes_of(column.values)),
            at: cast(self.file.bytes_of(column.dictionary_at)),
            text: self.file.bytes_of(column.dictionary_bytes),
        })
    }

    fn column(
        &self,
        key: u16,
        kind: ColumnKind,
    ) -> Option<&'a crate::store::sealed::format::ColumnRef> {
        let columns = &self.entry.columns;
        let column = &columns[columns.binary_search_by_key(&key, |c| c.key).ok()?];
        (column.kind == kind).then_some(column)
    }
}

/// A code column and its dictionary.
#[derive(Debug, Clone, Copy)]
pub struct CodeColumn<'a> {
    /// One code per row, [`NO_CODE`] where absent.
    pub codes: &'a [u32],
    at: &'a [u32],
    text: &'a [u8],
}

impl<'a> CodeColumn<'a> {
    /// How many distinct strings.
    pub fn dictionary_len(&self) -> usize {
        self.at.len() - 1
    }

    /// The string of `code` (`None` for [`NO_CODE`]).
    pub fn text(&self, code: u32) -> Option<&'a str> {
        let code = code as usize;
        let (from, to) = (*self.at.get(code)? as usize, *self.at.get(code + 1)? as usize);
        std::str::from_utf8(&self.text[from..to]).ok()
    }
}

/// A section's bytes, when it lies within `0..end`.
fn section_bytes(bytes: &[u8], section: SectionRef, end: u64) -> Option<&[u8]> {
    let to = section.offset.checked_add(section.len)?;
    if to > end || section.offset < HEADER_BYTES as u64 {
        return None;
    }
    bytes.get(usize::try_from(section.offset).ok()?..usize::try_from(to).ok()?)
}

/// A section as typed values (its length and alignment were checked at open).
fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> &[T] {
    bytemuck::try_cast_slice(bytes).unwrap_or_default()
}

/// Bounds, alignment and lengths of every section, against the header.
fn check_shapes(
    header: &Header,
    directory: &Directory,
    body_end: u64,
) -> std::result::Result<(), String> {
    if directory.events.len() != header.events as usize {
        return Err(format!(
            "the header counts {} events, the directory {}",
            header.events,
            directory.events.len()
        ));
    }
    if directory.events.windows(2).any(|w| w[0].event >= w[1].event) {
        return Err("directory events not ascending".into());
    }
    let rows: u64 = directory.events.iter().map(|e| e.rows).sum();
    if rows != header.rows {
        return Err(format!("the header counts {} rows, the directory {rows}", header.rows));
    }
    let fits = |what: &str, event: u32, section: SectionRef, len: Option<u64>| {
        let aligned = section.offset.is_multiple_of(SECTION_ALIGN_BYTES as u64);
        let inside = section.offset >= HEADER_BYTES as u64
            && section.offset.checked_add(section.len).is_some_and(|to| to <= body_end);
        match (aligned && inside, len) {
            (false, _) => Err(format!("event {event}: {what} out of bounds")),
            (true, Some(len)) if len != section.len => {
                Err(format!("event {event}: {what} is {} bytes, {len} expected", section.len))
            }
            _ => Ok(()),
        }
    };
    for e in &directory.events {
        let (users, rows) = (u64::from(e.users), e.rows);
        fits("users", e.event, e.user_ids, Some(users * 4))?;
        fits("starts", e.event, e.starts, Some((users + 1) * 4))?;
        fits("ts_ms", e.event, e.ts_ms, Some(rows * 8))?;
        fits("order", e.event, e.order, Some(rows * 4))?;
        fits("props_at", e.event, e.props_at, Some((rows + 1) * 8))?;
        fits("props", e.event, e.props, None)?;
        if e.columns.windows(2).any(|w| w[0].key >= w[1].key) {
            return Err(format!("event {}: columns not ascending by key", e.event));
        }
        for c in &e.columns {
            let width = if c.kind == ColumnKind::Number { 8 } else { 4 };
            fits("column", e.event, c.values, Some(rows * width))?;
            if c.kind == ColumnKind::Code {
                if c.dictionary_at.len < 4 {
                    return Err(format!(
                        "event {}: key {} dictionary has no offsets",
                        e.event, c.key
                    ));
                }
                fits("dictionary offsets", e.event, c.dictionary_at, None)?;
                fits("dictionary", e.event, c.dictionary_bytes, None)?;
                if !c.dictionary_at.len.is_multiple_of(4) {
                    return Err(format!(
                        "event {}: key {} dictionary offsets misaligned",
                        e.event, c.key
                    ));
                }
            }
        }
    }
    Ok(())
}
