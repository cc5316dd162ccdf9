//! The layout of a day file: header, sections, directory, footer, and the
//! file's name. See `docs/design/sealed-days.md` ("The day file").
//!
//! All integers are little-endian. Sections start at multiples of
//! [`SECTION_ALIGN_BYTES`], so a reader views them in place as typed slices.

use rkyv::{Archive, Deserialize, Serialize};

/// First bytes of every day file.
pub const HEADER_MAGIC: &[u8; 8] = b"NUDGEDAY";
/// Last bytes of every day file.
pub const FOOTER_MAGIC: &[u8; 8] = b"NUDGEEND";
/// The layout version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Header length.
pub const HEADER_BYTES: usize = 64;
/// Footer length.
pub const FOOTER_BYTES: usize = 32;
/// Every section starts at a multiple of this.
pub const SECTION_ALIGN_BYTES: usize = 8;
/// The code of a row without a value in a code column.
pub const NO_CODE: u32 = u32::MAX;
/// Extension of a day file; a file being written adds [`TEMP_SUFFIX`].
pub const DAY_FILE_EXTENSION: &str = "day";
/// Suffix of a day file being written (removed at open if left by a crash).
pub const TEMP_SUFFIX: &str = ".tmp";

/// What the header says about the file (64 bytes on disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The UTC day: days since 1970-01-01.
    pub day: i32,
    /// The day's version: 1 when first sealed, one more per compaction.
    pub version: u32,
    /// The log position of the cut (`SealDay`) whose rows complete this version.
    pub cut_position: u64,
    /// How many events (names) have rows.
    pub events: u32,
    /// Rows over all events.
    pub rows: u64,
}

impl Header {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..8].copy_from_slice(HEADER_MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&self.day.to_le_bytes());
        out[16..20].copy_from_slice(&self.version.to_le_bytes());
        out[20..24].copy_from_slice(&self.events.to_le_bytes());
        out[24..32].copy_from_slice(&self.cut_position.to_le_bytes());
        out[32..40].copy_from_slice(&self.rows.to_le_bytes());
        out
    }

    /// Reads a header; the error says what does not match.
    pub fn decode(bytes: &[u8]) -> Result<Header, String> {
        let Some(bytes) = bytes.get(..HEADER_BYTES) else {
            return Err(format!("{} bytes is shorter than a header", bytes.len()));
        };
        if &bytes[0..8] != HEADER_MAGIC {
            return Err("not a day file (bad magic)".into());
        }
        let version = u32_at(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(format!("format version {version}, this build reads {FORMAT_VERSION}"));
        }
        Ok(Header {
            day: i32::from_le_bytes(array(bytes, 12)),
            version: u32_at(bytes, 16),
            events: u32_at(bytes, 20),
            cut_position: u64_at(bytes, 24),
            rows: u64_at(bytes, 32),
        })
    }
}

/// Where the directory is, and the checksums of it and of the header (the
/// last 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Byte offset of the directory.
    pub directory_offset: u64,
    /// Its length.
    pub directory_len: u64,
    /// CRC-32C of the directory bytes.
    pub directory_crc: u32,
    /// CRC-32C of the header bytes.
    pub header_crc: u32,
}

impl Footer {
    /// The 32 footer bytes.
    pub fn encode(&self) -> [u8; FOOTER_BYTES] {
        let mut out = [0u8; FOOTER_BYTES];
        out[0..8].copy_from_slice(&self.directory_offset.to_le_bytes());
        out[8..16].copy_from_slice(&self.directory_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.directory_crc.to_le_bytes());
        out[20..24].copy_from_slice(&self.header_crc.to_le_bytes());
        out[24..32].copy_from_slice(FOOTER_MAGIC);
        out
    }

    /// Reads the footer at the end of `file`.
    pub fn decode(file: &[u8]) -> Result<Footer, String> {
        if file.len() < HEADER_BYTES + FOOTER_BYTES {
            return Err(format!("{} bytes is shorter than a header and a footer", file.len()));
        }
        let bytes = &file[file.len() - FOOTER_BYTES..];
        if &bytes[24..32] != FOOTER_MAGIC {
            return Err(
                "no footer (bad end magic): the file is truncated or was not finished".into()
            );
        }
        Ok(Footer {
            directory_offset: u64_at(bytes, 0),
            directory_len: u64_at(bytes, 8),
            directory_crc: u32_at(bytes, 16),
            header_crc: u32_at(bytes, 20),
        })
    }
}

/// One section: where it is and its checksum.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SectionRef {
    /// Byte offset (a multiple of [`SECTION_ALIGN_BYTES`]).
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32C of its bytes.
    pub crc: u32,
}

/// How a property's values of one event on one day are stored.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `f64` per row, NaN where the row has no value.
    Number,
    /// `u32` code per row into the column's dictionary, [`NO_CODE`] where absent.
    Code,
}

/// A typed column of one property key.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The property key (dense id).
    pub key: u16,
    /// How values are stored.
    pub kind: ColumnKind,
    /// One value per row.
    pub values: SectionRef,
    /// Code columns: `u32` offsets (one more than the codes) into `dictionary_bytes`.
    pub dictionary_at: SectionRef,
    /// Code columns: the UTF-8 strings of the codes, in code order.
    pub dictionary_bytes: SectionRef,
}

/// The sections of one event's rows.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// The event (dense id).
    pub event: u32,
    /// Users with rows.
    pub users: u32,
    /// Rows.
    pub rows: u64,
    /// `u32[users]`: the users, ascending.
    pub user_ids: SectionRef,
    /// `u32[users + 1]`: each user's first row, then the row count.
    pub starts: SectionRef,
    /// `i64[rows]`: timestamps, ascending within a user.
    pub ts_ms: SectionRef,
    /// `u32[rows]`: each row's rank among its user's rows of the day (see `SealRow::order`).
    pub order: SectionRef,
    /// `u64[rows + 1]`: offsets of each row's property blob in `props`.
    pub props_at: SectionRef,
    /// The property blobs (the log's codec, `store/props.rs`).
    pub props: SectionRef,
    /// Typed columns, by key.
    pub columns: Vec<ColumnRef>,
}

/// The directory: every event's sections, by event id.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Directory {
    /// Events with rows, ascending by id.
    pub events: Vec<EventRef>,
}

/// The name of version `version` of day `day`'s file: `2026-12-01-v3.day`.
pub fn file_name(day: i32, version: u32) -> String {
    format!("{}-v{version}.{DAY_FILE_EXTENSION}", day_text(day))
}

/// Reads a day file's name back: `(day, version)`; `None` for any other name
/// (temporary files included).
pub fn parse_file_name(name: &str) -> Option<(i32, u32)> {
    let stem = name.strip_suffix(DAY_FILE_EXTENSION)?.strip_suffix('.')?;
    let (date, version) = stem.rsplit_once("-v")?;
    let date: jiff::civil::Date = date.parse().ok()?;
    let epoch = jiff::civil::date(1970, 1, 1);
    let day = (date - epoch).get_days();
    (day_text(day) == date.to_string()).then_some(())?;
    Some((day, version.parse().ok().filter(|v| *v > 0)?))
}

fn day_text(day: i32) -> String {
    let epoch = jiff::civil::date(1970, 1, 1);
    epoch
        .checked_add(jiff::Span::new().days(i64::from(day)))
        .map_or_else(|_| format!("day{day}"), |d| d.to_string())
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(bytes, at))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(bytes, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_reads_as_one() {
        let day = 20_788; // 2026-12-01
        assert_eq!(file_name(day, 3), "2026-12-01-v3.day");
        assert_eq!(parse_file_name("2026-12-01-v3.day"), Some((day, 3)));
        assert_eq!(parse_file_name(&file_name(-1, 1)), Some((-1, 1)));
        for other in ["2026-12-01-v3.day.tmp", "2026-12-01-v0.day", "2026-13-01-v1.day", "x.day"] {
            assert_eq!(parse_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn header_and_footer_round_trip_and_refuse_what_they_are_not() {
        let header = Header { day: 20_788, version: 2, cut_position: 1 << 40, events: 7, rows: 99 };
        assert_eq!(Header::decode(&header.encode()), Ok(header));
        let mut wrong = header.encode();
        wrong[8] = 9;
        assert!(Header::decode(&wrong).expect_err("refused").contains("format version 9"));
        wrong[0] = b'X';
        assert!(Header::decode(&wrong).expect_err("refused").contains("magic"));
        let footer =
            Footer { directory_offset: 4096, directory_len: 120, directory_crc: 7, header_crc: 9 };
        let mut file = vec![0u8; HEADER_BYTES + 8];
        file.extend_from_slice(&footer.encode());
        assert_eq!(Footer::decode(&file), Ok(footer));
        assert!(
            Footer::decode(&file[..file.len() - 1]).expect_err("refused").contains("truncated")
        );
        assert!(Footer::decode(&file[..HEADER_BYTES]).expect_err("refused").contains("shorter"));
    }
}
