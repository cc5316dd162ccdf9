//! Sealed days: immutable, checksummed, columnar files of one UTC day's
//! events, read in place through memory maps (`docs/design/sealed-days.md`).
//!
//! - `format.rs`: the layout (header, aligned sections, directory, footer)
//!   and the file names (`2026-12-01-v3.day`).
//! - `write.rs`: [`write_day_file`] sorts each event's rows by user, time and
//!   log order, writes the columns to `<name>.tmp`, syncs, renames into place
//!   and syncs the directory.
//! - `read.rs`: [`DayFile`] maps a file, checks header, footer, directory and
//!   bounds at open, and each event's checksums and shapes on first read.
//! - `buffer.rs`: [`SealBuffer`], a day's rows cut from the head
//!   (`Timelines::cut_day`) and waiting to be written.
//!
//! A day file is derived state: the log says which days are sealed, and a
//! file that is missing or fails a check is rebuilt from the log, never read.
//! This module knows files only; which days are sealed, and reading across
//! the in-memory head and the sealed days, belong to the state and query
//! code that use it.

#[cfg(target_endian = "big")]
compile_error!("sealed day files are read in place as little-endian columns");

pub mod buffer;
pub mod format;
pub mod read;
pub mod write;

pub use buffer::{BufferedEvent, SealBuffer};
pub use read::{CodeColumn, DayFile, EventRows as SealedEventRows};
pub use write::{DayFileSpec, EventRows, SealRow, WrittenDayFile, write_day_file};

/// The directory of the day files inside a data directory.
pub const SEALED_DIR: &str = "sealed";

#[cfg(test)]
mod tests;
