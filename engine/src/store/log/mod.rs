//! The append-only event log: the only source of truth of a data directory.
//!
//! Everything else the engine holds (dictionaries, bitmaps, timelines,
//! profiles, subscriptions, the idempotency index) is derived from the log
//! and is rebuilt by replaying it. The log is a sequence of *chunks* (files
//! named by the log position they start at), each holding *frames*: a length,
//! a CRC32C, a version and kind, and an rkyv body (zstd-compressed when that
//! helps). The byte layout and its invariants are specified in
//! `docs/design/event-log-format.md`; `format.rs` mirrors it in code.
//!
//! - `format.rs`: chunk header and frame layout, encode and decode of one frame.
//! - `recovery.rs`: reading chunks back at open, keeping the valid prefix of a
//!   torn tail and refusing mid-log corruption.
//! - `writer.rs`: the writer thread with group commit, rotation, directory
//!   fsyncs and poisoning after a failed write or sync.
//! - `storage.rs`: the file operations the writer and recovery make, behind
//!   the `LogStorage` trait; `FsStorage` is the real file system.
//! - `sim.rs`: test support, `SimStorage`, an in-memory storage that simulates
//!   crashes (unsynced data lost or torn), failing operations and a full disk.
//!
//! What this module does not do: decide what a record means (each layer's state), or
//! assign ids (`sequencer.rs`).

pub mod entry;
pub mod format;
pub mod recovery;
#[cfg(any(test, feature = "internals"))]
pub mod sim;
pub mod storage;
pub mod writer;

/// A position in the log: the number of frame bytes before it, across all chunks.
/// Snapshots are stamped with the position they cover up to.
pub type LogPosition = u64;

/// When an appended record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fdatasync` before every acknowledgement; concurrent callers share one
    /// sync (group commit). The server's mode.
    #[default]
    SyncPerBatch,
    /// Acknowledge once written to the operating system; sync at rotation,
    /// on `Engine::flush`, snapshot and close. For bulk import.
    Buffered,
}

/// What recovery does with a damaged log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Drop an incomplete or damaged tail of the last chunk (a crash mid-write);
    /// refuse to open when damage is followed by valid records.
    #[default]
    TolerateTornTail,
    /// Keep the valid prefix up to the first damage anywhere, discarding the rest.
    /// Loses data: for an operator who has decided so.
    Salvage,
}

/// Directory inside the data directory that holds the chunks.
pub const LOG_DIR: &str = "log";
