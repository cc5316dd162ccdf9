//! A bitmap index that a snapshot holds, decoded the first time it is read.
//!
//! Open leaves the event and value bitmaps in the mapped snapshot file and
//! records where each one is; reading one decodes it onto the heap once, and
//! changing one decodes it first. A bitmap nobody reads (an old day's users,
//! a value no query names) never leaves the file, and one not changed since
//! open is written to the next snapshot as the bytes it was read from.
//!
//! Past the snapshot's checksum the bytes are trusted, as every other section
//! of it is; a bitmap that still does not decode (a file whose checksum was
//! forged, as the fuzzer does) reads as empty and never panics.

use std::ops::{Deref, DerefMut, Range};
use std::sync::{Arc, OnceLock};

use roaring::RoaringBitmap;

use crate::store::log::storage::FileBytes;

/// The first four bytes of a bitmap as `RoaringBitmap::serialize_into` writes
/// it (the format without run containers).
const BITMAP_COOKIE_NO_RUNS: [u8; 4] = 12346u32.to_le_bytes();

/// Decodes a bitmap in the format snapshots are written in. Only the format
/// without run containers is accepted: the encoder never writes run
/// containers, and roaring accepts a run container with no runs, an empty
/// container on which re-encoding panics (found by the `snapshot_decode` fuzz
/// target).
pub fn decode_bitmap(bytes: &[u8]) -> std::result::Result<RoaringBitmap, String> {
    check_bitmap_format(bytes)?;
    RoaringBitmap::deserialize_from(bytes).map_err(|e| format!("bitmap: {e}"))
}

/// Checks that `bytes` start like a bitmap in the format snapshots are
/// written in (what open checks of a bitmap it leaves in the file).
pub fn check_bitmap_format(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.starts_with(&BITMAP_COOKIE_NO_RUNS) {
        Ok(())
    } else {
        Err("bitmap: not in the format snapshots are written in (no run containers)".into())
    }
}

/// A bitmap on the heap, or still in a mapped snapshot file.
#[derive(Default)]
pub struct LazyBitmap {
    decoded: OnceLock<RoaringBitmap>,
    /// Where it is in the snapshot, while the heap copy (if any) equals it.
    mapped: Option<(Arc<FileBytes>, Range<usize>)>,
}

impl LazyBitmap {
    /// The bitmap serialized at `range` of `file`, decoded when first read.
    /// The range must start with the no-runs cookie ([`decode_bitmap`]).
    pub fn mapped(file: Arc<FileBytes>, range: Range<usize>) -> Self {
        LazyBitmap { decoded: OnceLock::new(), mapped: Some((file, range)) }
    }

    /// The bitmap, decoded on the first call.
    pub fn get(&self) -> &RoaringBitmap {
        self.decoded.get_or_init(|| match &self.mapped {
            Some((file, range)) => {
                file.get(range.clone()).and_then(|b| decode_bitmap(b).ok()).unwrap_or_default()
            }
            None => RoaringBitmap::new(),
        })
    }

    /// The bitmap, to change: decoded first, and no longer tied to the file.
    pub fn get_mut(&mut self) -> &mut RoaringBitmap {
        self.get();
        self.mapped = None;
        self.decoded.get_mut().expect("decoded just above")
    }

    /// Its serialized bytes in the snapshot, while they still describe it.
    pub fn serialized(&self) -> Option<&[u8]> {
        self.mapped.as_ref().and_then(|(file, range)| file.get(range.clone()))
    }

    /// Heap bytes of its decoded copy (0 while it is only in the file).
    pub fn heap_bytes(&self) -> usize {
        self.decoded.get().map_or(0, RoaringBitmap::serialized_size)
    }
}

impl From<RoaringBitmap> for LazyBitmap {
    fn from(bitmap: RoaringBitmap) -> Self {
        LazyBitmap { decoded: OnceLock::from(bitmap), mapped: None }
    }
}

impl Deref for LazyBitmap {
    type Target = RoaringBitmap;

    fn deref(&self) -> &RoaringBitmap {
        self.get()
    }
}

impl DerefMut for LazyBitmap {
    fn deref_mut(&mut self) -> &mut RoaringBitmap {
        self.get_mut()
    }
}

impl Clone for LazyBitmap {
    fn clone(&self) -> Self {
        LazyBitmap { decoded: self.decoded.clone(), mapped: self.mapped.clone() }
    }
}

impl PartialEq for LazyBitmap {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for LazyBitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.decoded.get(), &self.mapped) {
            (Some(bitmap), _) => bitmap.fmt(f),
            (None, Some((_, range))) => write!(f, "LazyBitmap(mapped {range:?})"),
            (None, None) => write!(f, "RoaringBitmap<[]>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized(bitmap: &RoaringBitmap) -> Vec<u8> {
        let mut bytes = vec![0xEE; 3];
        bitmap.serialize_into(&mut bytes).expect("into a Vec");
        bytes
    }

    #[test]
    fn decodes_once_on_first_read_and_forgets_the_file_once_changed() {
        let users: RoaringBitmap = [1u32, 5, 70_000].into_iter().collect();
        let bytes = serialized(&users);
        let file = Arc::new(FileBytes::copied(&bytes));
        let mut lazy = LazyBitmap::mapped(file, 3..bytes.len());
        assert_eq!(lazy.heap_bytes(), 0, "nothing decoded yet");
        assert_eq!(lazy.serialized(), Some(&bytes[3..]));
        assert!(lazy.contains(70_000));
        assert!(lazy.heap_bytes() > 0);
        assert_eq!(lazy.serialized(), Some(&bytes[3..]), "read, not changed: the bytes still hold");
        let copy = lazy.clone();
        lazy.insert(9);
        assert_eq!(lazy.serialized(), None, "changed: the bytes no longer describe it");
        assert_eq!(lazy.len(), 4);
        assert_eq!(copy.len(), 3, "a clone is its own");
        assert_ne!(lazy, copy);
    }

    #[test]
    fn bytes_that_do_not_decode_read_as_empty() {
        let file = Arc::new(FileBytes::copied(&[0x3A, 0x30, 0, 0, 0xFF, 0xFF]));
        assert!(LazyBitmap::mapped(file.clone(), 0..6).is_empty());
        assert!(LazyBitmap::mapped(file, 2..99).is_empty(), "a range past the file");
        // One run container with zero runs: refused (re-encoding it would panic).
        let empty_run = [0x3B, 0x30, 0, 0, 0x01, 0, 0, 0, 0, 0, 0];
        assert!(decode_bitmap(&empty_run).is_err());
    }
}
