//! Reading the log back at open.
//!
//! Chunks are read in position order. Every frame is checked (length, CRC,
//! version, kind) and handed to the caller, which applies it to derived state.
//! When a frame cannot be read:
//!
//! - a last chunk no longer than a header whose header is not whole (a crash
//!   during its creation) gets its header written again;
//! - in the **last** chunk, and no valid frame follows it anywhere in that
//!   chunk, it is a torn tail left by a crash mid-write: the chunk is truncated
//!   to the end of the last valid frame (and synced), and opening continues;
//! - anywhere else, or when a valid frame follows the damage, acknowledged data
//!   may be damaged: opening stops with `Error::Corrupt` naming the file and
//!   offset, unless the caller chose `RecoveryMode::Salvage`, which truncates
//!   at the first damage and removes every later chunk.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::format::{self, CHUNK_HEADER_BYTES, Frame, FrameError};
use super::storage::LogStorage;
use super::{LogPosition, RecoveryMode};
use crate::error::{Error, IoContext, Result};

/// One chunk file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFile {
    /// Log position of its first frame.
    pub start: LogPosition,
    /// Its path.
    pub path: PathBuf,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Position just after the last valid frame: where appends continue.
    pub end: LogPosition,
    /// Frames handed to the caller.
    pub frames: u64,
    /// Bytes dropped from a torn tail (or salvaged away).
    pub truncated_bytes: u64,
    /// The chunks that remain, in order.
    pub chunks: Vec<ChunkFile>,
}

/// The file name of the chunk starting at `start`.
pub fn chunk_name(start: LogPosition) -> String {
    format!("{start:020}.chunk")
}

/// Lists chunk files in position order, checking that their names parse.
pub fn list_chunks(storage: &dyn LogStorage, dir: &Path) -> Result<Vec<ChunkFile>> {
    let mut chunks = Vec::new();
    let names = storage.list(dir).context(|| format!("listing log directory {}", dir.display()))?;
    for name in names {
        let Some(stem) = name.strip_suffix(".chunk") else { continue };
        let path = dir.join(&name);
        let start = stem
            .parse::<u64>()
            .map_err(|_| Error::corrupt(&path, "chunk file name is not a log position"))?;
        chunks.push(ChunkFile { start, path });
    }
    chunks.sort_by_key(|c| c.start);
    Ok(chunks)
}

/// True when some valid frame starts anywhere in `bytes` after offset 0.
fn valid_frame_follows(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len()).find(|&at| {
        // Cheap pre-checks before a CRC: the version byte must match.
        bytes.get(at + 8) == Some(&format::FRAME_VERSION)
            && format::decode_frame(&bytes[at..]).is_ok()
    })
}

fn truncate(storage: &dyn LogStorage, path: &Path, len: u64) -> Result<()> {
    let mut file = storage
        .open_append(path)
        .context(|| format!("opening {} to truncate its torn tail", path.display()))?;
    file.set_len(len).context(|| format!("truncating {}", path.display()))?;
    file.sync_all().context(|| format!("syncing {}", path.display()))
}

/// Syncs a directory of the real file system so that file creations, renames
/// and removals in it are durable (snapshots use it; the log goes through its
/// `LogStorage`).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}

fn sync_log_dir(storage: &dyn LogStorage, dir: &Path) -> Result<()> {
    storage.sync_dir(dir).context(|| format!("syncing directory {}", dir.display()))
}

/// Reads the log in `dir`, calling `apply(end_position, frame)` for every valid
/// frame that ends after `from` (frames before `from` are covered by a snapshot
/// and skipped unread). Repairs a torn tail as described in the module docs.
pub fn recover(
    storage: &dyn LogStorage,
    dir: &Path,
    mode: RecoveryMode,
    from: LogPosition,
    mut apply: impl FnMut(LogPosition, Frame) -> Result<()>,
) -> Result<Recovered> {
    let mut chunks = list_chunks(storage, dir)?;
    let mut recovered = Recovered::default();
    let mut decoder = format::FrameDecoder::default();
    let mut buffer: Vec<u8> = Vec::new();
    let mut expected_start: LogPosition = 0;
    let mut index = 0;
    while index < chunks.len() {
        let chunk = chunks[index].clone();
        let is_last = index + 1 == chunks.len();
        if chunk.start != expected_start {
            return Err(Error::corrupt(
                &chunk.path,
                format!(
                    "chunk starts at log position {} but the previous one ends at {expected_start}",
                    chunk.start
                ),
            ));
        }
        let file_len =
            storage.len(&chunk.path).context(|| format!("reading {}", chunk.path.display()))?;
        let data_len = file_len.saturating_sub(CHUNK_HEADER_BYTES as u64);
        let next_start = chunk.start + data_len;
        // Chunks entirely covered by the snapshot are not read at all.
        if !is_last && next_start <= from && file_len >= CHUNK_HEADER_BYTES as u64 {
            expected_start = next_start;
            index += 1;
            continue;
        }
        // One buffer for every chunk: its pages are faulted in once, not per chunk.
        buffer.clear();
        storage
            .read_to_end(&chunk.path, &mut buffer)
            .context(|| format!("reading {}", chunk.path.display()))?;
        let bytes = &buffer[..];
        if let Err(reason) = format::check_chunk_header(bytes) {
            let whole_magic =
                bytes.len() == CHUNK_HEADER_BYTES && bytes.starts_with(format::CHUNK_MAGIC);
            if is_last && bytes.len() <= CHUNK_HEADER_BYTES && !whole_magic {
                // Created during rotation (or as the first chunk) but the header
                // never reached disk whole: missing, cut, zero-filled or garbage.
                // Frames are written only after the header is synced, so the
                // chunk holds none and nothing is lost by writing it again. A
                // whole magic with another version is a newer build's: refused.
                let mut file = storage.open_append(&chunk.path).context(|| {
                    format!("opening {} to rewrite its header", chunk.path.display())
                })?;
                file.set_len(0)
                    .and_then(|()| file.write_all(&format::chunk_header()))
                    .context(|| format!("rewriting header of {}", chunk.path.display()))?;
                file.sync_all().context(|| format!("syncing {}", chunk.path.display()))?;
                recovered.truncated_bytes += bytes.len() as u64;
                expected_start = chunk.start;
                index += 1;
                continue;
            }
            return Err(Error::corrupt(&chunk.path, reason));
        }
        let mut at = CHUNK_HEADER_BYTES;
        let mut position = chunk.start;
        if from > position {
            // Hop over frames the snapshot covers by their headers alone. If the
            // hop does not land exactly on `from`, fall back to checking every frame.
            let (mut hop_at, mut hop_position) = (at, position);
            while hop_position < from {
                // A length field may point past the end of a damaged chunk.
                let Some(len) = bytes.get(hop_at..).and_then(format::frame_len) else { break };
                hop_at += len;
                hop_position += len as u64;
            }
            if hop_position == from && hop_at <= bytes.len() {
                (at, position) = (hop_at, hop_position);
            }
        }
        while at < bytes.len() {
            match decoder.decode(&bytes[at..]) {
                Ok(frame) => {
                    let len = frame.len;
                    position += len as u64;
                    if position > from {
                        apply(position, frame)?;
                        recovered.frames += 1;
                    }
                    at += len;
                }
                Err(FrameError::Unsupported(why)) => {
                    return Err(Error::corrupt(
                        &chunk.path,
                        format!(
                            "{why} (byte {at}, log position {position}). Refusing to open; the log is left unchanged."
                        ),
                    ));
                }
                Err(error) => {
                    let follows = valid_frame_follows(&bytes[at..]);
                    let reason = match &error {
                        FrameError::Incomplete => "incomplete frame".to_string(),
                        FrameError::Damaged(why) | FrameError::Unsupported(why) => why.clone(),
                    };
                    let torn_tail = is_last && follows.is_none();
                    if !torn_tail && mode != RecoveryMode::Salvage {
                        let detail = match follows {
                            Some(next) => format!("; a valid record follows at byte {}", at + next),
                            None => "; later chunks exist".into(),
                        };
                        return Err(Error::corrupt(
                            &chunk.path,
                            format!(
                                "{reason} at byte {at} (log position {position}){detail}. Refusing to open: acknowledged data may be damaged. Open with salvage recovery to keep only what precedes it."
                            ),
                        ));
                    }
                    recovered.truncated_bytes += (bytes.len() - at) as u64;
                    truncate(storage, &chunk.path, at as u64)?;
                    for later in chunks.drain(index + 1..) {
                        recovered.truncated_bytes += storage.len(&later.path).unwrap_or(0);
                        storage
                            .remove(&later.path)
                            .context(|| format!("removing {}", later.path.display()))?;
                    }
                    sync_log_dir(storage, dir)?;
                    break;
                }
            }
        }
        expected_start = position;
        index += 1;
    }
    recovered.end = expected_start;
    recovered.chunks = chunks;
    Ok(recovered)
}
