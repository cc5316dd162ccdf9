//! Fuzz target `log_recovery`: the recovery scan that runs at every open
//! (`log::recovery::recover`) over chunk files made of arbitrary bytes, in both
//! recovery modes, with replay's validation of each frame it hands over.
//!
//! The first byte says how the rest becomes chunk files in a scratch log directory:
//! - bits 0–1: how many chunks (0 means 1), the rest split evenly between them;
//! - bit 2: prefix each chunk with a valid chunk header;
//! - bit 3: rewrite the checksum of every frame the headers chain together, so that
//!   recovery meets valid frames (torn tails, unknown versions, damage followed by
//!   valid records) rather than stopping at the first checksum;
//! - bit 4: salvage mode instead of tolerating a torn tail;
//! - bit 5: a snapshot position (`from`) taken from the next two bytes;
//! - bit 6: name the chunks with wrong start positions.
//!
//! Failure means a panic, or a recovered log (read from position 0) that is not clean:
//! reading it again must end at the same position with nothing left to truncate.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nudge_engine::RecoveryMode;
use nudge_engine::internals::entry::ValidatedBatch;
use nudge_engine::internals::log::format::{self, CHUNK_HEADER_BYTES, FRAME_HEADER_BYTES};
use nudge_engine::internals::log::recovery::{chunk_name, recover};
use nudge_engine::internals::log::storage::FsStorage;

/// Most chunk files one input becomes.
const MAX_CHUNKS: usize = 3;

/// One scratch directory for the whole run, in memory when the machine has `/dev/shm`
/// (recovery syncs files and the directory; on tmpfs that costs nothing).
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        // libFuzzer exits without running destructors: fuzz/run.sh removes
        // `nudge-fuzz-log_recovery-*` directories after the run.
        let mut scratch = tempfile::Builder::new();
        scratch.prefix("nudge-fuzz-log_recovery-");
        let dir = if shm.is_dir() { scratch.tempdir_in(shm) } else { scratch.tempdir() };
        dir.expect("a scratch directory")
    })
    .path()
}

/// Rewrites the checksum of each frame that the length fields chain together.
fn fix_checksums(chunk: &mut [u8], from: usize) {
    let mut at = from;
    while let Some(len) = format::frame_len(&chunk[at..]) {
        let Some(frame) = chunk.get_mut(at..at + len) else { break };
        let crc = format::frame_crc(frame);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
}

fn clear(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let chunks = usize::from(mode & 0b11).clamp(1, MAX_CHUNKS);
    let with_header = mode & 0b100 != 0;
    let fix = mode & 0b1000 != 0;
    let recovery =
        if mode & 0b1_0000 != 0 { RecoveryMode::Salvage } else { RecoveryMode::TolerateTornTail };
    let mut from = 0;
    if mode & 0b10_0000 != 0
        && let Some((position, tail)) = rest.split_first_chunk::<2>()
    {
        from = u64::from(u16::from_le_bytes(*position));
        rest = tail;
    }
    let wrong_names = mode & 0b100_0000 != 0;

    let dir = scratch();
    clear(dir);
    let part = rest.len().div_ceil(chunks).max(1);
    let mut start = 0u64;
    let mut paths: Vec<PathBuf> = Vec::new();
    for (i, piece) in rest.chunks(part).chain(rest.is_empty().then_some(&[][..])).enumerate() {
        let mut bytes = Vec::with_capacity(CHUNK_HEADER_BYTES + piece.len());
        if with_header {
            bytes.extend_from_slice(&format::chunk_header());
        }
        bytes.extend_from_slice(piece);
        if fix {
            fix_checksums(&mut bytes, if with_header { CHUNK_HEADER_BYTES } else { 0 });
        }
        let name_start = if wrong_names { start + i as u64 } else { start };
        let path = dir.join(chunk_name(name_start));
        std::fs::write(&path, &bytes).expect("writing a chunk");
        start += bytes.len().saturating_sub(CHUNK_HEADER_BYTES) as u64;
        paths.push(path);
    }

    let mut seen = 0u64;
    let result = recover(&FsStorage, dir, recovery, from, |position, frame| {
        assert!(frame.len >= FRAME_HEADER_BYTES);
        assert!(position > from, "frame ending at {position} handed over, from {from}");
        seen += 1;
        if let Ok(batch) = ValidatedBatch::new(frame.body) {
            let _ = batch.get().entries.len();
        }
        Ok(())
    });
    let Ok(recovered) = result else {
        return;
    };
    assert_eq!(recovered.frames, seen);
    if from > 0 {
        // Chunks the snapshot covers were skipped unread: they may hold anything.
        return;
    }
    // What is left is a clean log: read again, it ends at the same place, with nothing
    // to truncate.
    let again = recover(&FsStorage, dir, RecoveryMode::TolerateTornTail, 0, |_, _| Ok(()))
        .unwrap_or_else(|e| panic!("a recovered log does not open again: {e}"));
    assert_eq!(again.end, recovered.end);
    assert_eq!(again.truncated_bytes, 0, "{again:?} after {recovered:?}");
    assert_eq!(again.chunks, recovered.chunks);
});
