//! Writing a day file: the rows of each event sorted by user, time and log
//! order, laid out as columns, streamed to `<name>.tmp`, synced, renamed
//! into place and the directory synced. Nothing is visible under the final
//! name until every byte is durable.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::store::dict::FastMap;
use crate::store::log::storage::{LogFile, LogStorage};
use crate::store::props::{self, KeyId, ValueRef};
use crate::store::sealed::format::{
    ColumnKind, ColumnRef, Directory, EventRef, Footer, Header, NO_CODE, SECTION_ALIGN_BYTES,
    SectionRef, TEMP_SUFFIX, file_name,
};

/// Bytes buffered before a write to the file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// One event occurrence to seal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SealRow<'a> {
    /// The user (dense id).
    pub user: u32,
    /// When it happened, epoch ms (within the day).
    pub ts_ms: i64,
    /// Its rank among the same user's rows of the day, all events, in time
    /// and then log order: orders events of the same millisecond as the log
    /// does.
    pub order: u32,
    /// Its property blob (`store/props.rs` codec).
    pub props: &'a [u8],
}

/// The rows of one event on the day, in any order.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRows<'a> {
    /// The event (dense id).
    pub event: u32,
    /// Its rows.
    pub rows: Vec<SealRow<'a>>,
}

/// Which day file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayFileSpec {
    /// The UTC day: days since 1970-01-01.
    pub day: i32,
    /// Its version (1 for the first seal).
    pub version: u32,
    /// The log position of the cut (`SealDay`) whose rows complete this version.
    pub cut_position: u64,
}

/// A day file that is durable under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenDayFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// CRC-32C of its directory, which holds every section's CRC: the
    /// file's fingerprint, recorded when the day is sealed.
    pub checksum: u32,
    /// Rows over all events.
    pub rows: u64,
}

/// Writes `events` as the day file `spec` in `dir`, crash-safely; see the
/// module docs. Rows of an event are sorted here. An existing file of the
/// same day and version is replaced.
pub fn write_day_file(
    storage: &dyn LogStorage,
    dir: &Path,
    spec: DayFileSpec,
    mut events: Vec<EventRows<'_>>,
) -> Result<WrittenDayFile> {
    if spec.version == 0 {
        return Err(Error::invalid(None, "version", "day file versions start at 1"));
    }
    events.retain(|e| !e.rows.is_empty());
    events.sort_by_key(|e| e.event);
    if let Some(pair) = events.windows(2).find(|pair| pair[0].event == pair[1].event) {
        return Err(Error::invalid(None, "events", format!("event {} given twice", pair[0].event)));
    }
    let path = dir.join(file_name(spec.day, spec.version));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", file_name(spec.day, spec.version)));
    let context = || format!("writing day file {}", temp.display());
    // A temporary file left by a crash: replace it.
    if storage.len(&temp).is_ok() {
        storage.remove(&temp).context(context)?;
    }
    let mut out = SectionWriter {
        file: storage.create_new(&temp).context(context)?,
        buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
        offset: 0,
    };
    let rows: u64 = events.iter().map(|e| e.rows.len() as u64).sum();
    let header = Header {
        day: spec.day,
        version: spec.version,
        cut_position: spec.cut_position,
        events: u32::try_from(events.len())
            .map_err(|_| Error::invalid(None, "events", "more than 2^32 events"))?,
        rows,
    };
    let header_bytes = header.encode();
    out.put(&header_bytes).context(context)?;
    let mut directory = Directory::default();
    for event in &mut events {
        directory.events.push(write_event(&mut out, event).context(context)?);
    }
    let directory_bytes = crate::store::log::entry::encode_blob(&directory);
    let directory_ref = out.section(&directory_bytes).context(context)?;
    let footer = Footer {
        directory_offset: directory_ref.offset,
        directory_len: directory_ref.len,
        directory_crc: directory_ref.crc,
        header_crc: crc32c::crc32c(&header_bytes),
    };
    out.put(&footer.encode()).context(context)?;
    out.flush().context(context)?;
    out.file.sync_all().context(context)?;
    let bytes = out.offset;
    drop(out);
    storage.rename(&temp, &path).context(|| format!("renaming {} into place", temp.display()))?;
    storage.sync_dir(dir).context(|| format!("syncing directory {}", dir.display()))?;
    Ok(WrittenDayFile { path, bytes, checksum: footer.directory_crc, rows })
}

/// Streams sections to the file, aligned, with their checksums.
struct SectionWriter {
    file: Box<dyn LogFile>,
    buffer: Vec<u8>,
    offset: u64,
}

impl SectionWriter {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.offset += bytes.len() as u64;
        if self.buffer.len() + bytes.len() > WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        if bytes.len() >= WRITE_BUFFER_BYTES {
            return self.file.write_all(bytes);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Pads to the alignment, then writes one section.
    fn section(&mut self, bytes: &[u8]) -> std::io::Result<SectionRef> {
        let padding = self.offset.next_multiple_of(SECTION_ALIGN_BYTES as u64) - self.offset;
        self.put(&[0u8; SECTION_ALIGN_BYTES][..padding as usize])?;
        let offset = self.offset;
        self.put(bytes)?;
        Ok(SectionRef { offset, len: bytes.len() as u64, crc: crc32c::crc32c(bytes) })
    }

    fn typed<T: bytemuck::Pod>(&mut self, values: &[T]) -> std::io::Result<SectionRef> {
        self.section(bytemuck::cast_slice(values))
    }
}

/// What one key's values are in one event's rows.
#[derive(Default)]
struct KeySeen {
    numbers: bool,
    strings: bool,
    other: bool,
}

fn write_event(out: &mut SectionWriter, event: &mut EventRows<'_>) -> std::io::Result<EventRef> {
    let rows = &mut event.rows;
    rows.sort_by_key(|r| (r.user, r.ts_ms, r.order));
    let mut users = Vec::new();
    let mut starts = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if users.last() != Some(&row.user) {
            users.push(row.user);
            starts.push(i as u32);
        }
    }
    starts.push(rows.len() as u32);
    let ts_ms: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
    let order: Vec<u32> = rows.iter().map(|r| r.order).collect();
    let mut props_at = Vec::with_capacity(rows.len() + 1);
    let mut blobs = Vec::new();
    let mut seen: FastMap<KeyId, KeySeen> = FastMap::default();
    for row in rows.iter() {
        props_at.push(blobs.len() as u64);
        blobs.extend_from_slice(row.props);
        for (key, value) in props::iter(row.props) {
            let kind = seen.entry(key).or_default();
            match value {
                ValueRef::Number(_) => kind.numbers = true,
                ValueRef::Str(_) => kind.strings = true,
                _ => kind.other = true,
            }
        }
    }
    props_at.push(blobs.len() as u64);
    let mut keys: Vec<(KeyId, ColumnKind)> = seen
        .iter()
        .filter_map(|(&key, seen)| match (seen.numbers, seen.strings, seen.other) {
            (true, false, false) => Some((key, ColumnKind::Number)),
            (false, true, false) => Some((key, ColumnKind::Code)),
            _ => None,
        })
        .collect();
    keys.sort_by_key(|(key, _)| *key);
    let user_ids = out.typed(&users)?;
    let starts_ref = out.typed(&starts)?;
    let ts_ref = out.typed(&ts_ms)?;
    let order_ref = out.typed(&order)?;
    let props_at_ref = out.typed(&props_at)?;
    let props_ref = out.section(&blobs)?;
    let mut columns = Vec::with_capacity(keys.len());
    for (key, kind) in keys {
        columns.push(match kind {
            ColumnKind::Number => {
                let values: Vec<f64> = rows
                    .iter()
                    .map(|r| match props::get(r.props, key) {
                        Some(ValueRef::Number(n)) => n,
                        _ => f64::NAN,
                    })
                    .collect();
                ColumnRef {
                    key,
                    kind,
                    values: out.typed(&values)?,
                    dictionary_at: SectionRef::default(),
                    dictionary_bytes: SectionRef::default(),
                }
            }
            ColumnKind::Code => {
                let mut codes_of: FastMap<&str, u32> = FastMap::default();
                let mut dictionary_at = vec![0u32];
                let mut dictionary = Vec::new();
                let mut values = Vec::with_capacity(rows.len());
                for row in rows.iter() {
                    let Some(ValueRef::Str(text)) = props::get(row.props, key) else {
                        values.push(NO_CODE);
                        continue;
                    };
                    let next = codes_of.len() as u32;
                    let code = *codes_of.entry(text).or_insert_with(|| {
                        dictionary.extend_from_slice(text.as_bytes());
                        dictionary_at.push(dictionary.len() as u32);
                        next
                    });
                    values.push(code);
                }
                ColumnRef {
                    key,
                    kind,
                    values: out.typed(&values)?,
                    dictionary_at: out.typed(&dictionary_at)?,
                    dictionary_bytes: out.section(&dictionary)?,
                }
            }
        });
    }
    Ok(EventRef {
        event: event.event,
        users: users.len() as u32,
        rows: rows.len() as u64,
        user_ids,
        starts: starts_ref,
        ts_ms: ts_ref,
        order: order_ref,
        props_at: props_at_ref,
        props: props_ref,
        columns,
    })
}
