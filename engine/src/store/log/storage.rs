//! The file operations the event log performs, behind a small trait.
//!
//! The writer (`writer.rs`) and recovery (`recovery.rs`) touch the disk only
//! through [`LogStorage`] and the [`LogFile`] handles it opens. In production
//! that is [`FsStorage`], a thin pass-through to `std::fs`: every method is
//! exactly one `std` call on an open `File` (no buffering, no copy, no extra
//! syscall), so the hot path costs one virtual call per group commit on top
//! of the `write` and `fdatasync` it always made.
//!
//! Tests swap in `log::sim::SimStorage`, which keeps the files in memory and
//! can throw away unsynced data at a simulated crash, fail the Nth operation,
//! or run out of space. Only the log goes through this trait: the data
//! directory's `LOCK`, `meta/` and `snapshots/` stay on the real file system.
//!
//! Paths are full paths (the log directory joined with a chunk name), so the
//! errors the log reports keep naming the real file.
//!
//! Sealed day files (`store/sealed/`) go through the same trait, so the crash
//! simulation covers them too: they add [`LogStorage::rename`] (written under
//! a temporary name, renamed into place) and [`LogStorage::map`] (read
//! through a memory map).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

/// One open log file: a chunk being appended to, or a chunk recovery repairs.
///
/// Writes always go to the end of the file (the log is append-only; the only
/// other change is [`LogFile::set_len`] at recovery).
pub trait LogFile: Send {
    /// Appends all of `bytes` (like `Write::write_all` on an `O_APPEND` file).
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// `fdatasync`: makes every byte written so far, and the length, durable.
    fn sync_data(&mut self) -> std::io::Result<()>;
    /// `fsync`: as [`LogFile::sync_data`], plus the file's metadata.
    fn sync_all(&mut self) -> std::io::Result<()>;
    /// The file's current length in bytes.
    fn byte_len(&self) -> std::io::Result<u64>;
    /// Truncates (or extends with zeros) the file to `len` bytes; not durable until synced.
    fn set_len(&mut self, len: u64) -> std::io::Result<()>;
}

/// Where the log's files live. Implementations must be usable from the writer
/// thread and the opening thread at once.
pub trait LogStorage: Send + Sync {
    /// The names (not paths) of the entries of `dir` that are valid UTF-8.
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>>;
    /// Creates a new, empty file for appending; fails if it exists. The new
    /// name is durable only after [`LogStorage::sync_dir`] of its directory.
    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>>;
    /// Opens an existing file for appending (and for truncation at recovery).
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>>;
    /// The length of a file, without opening it for writing.
    fn len(&self, path: &Path) -> std::io::Result<u64>;
    /// Appends the whole contents of a file to `buffer`.
    fn read_to_end(&self, path: &Path, buffer: &mut Vec<u8>) -> std::io::Result<()>;
    /// Removes a file; the removal is durable only after a directory sync.
    fn remove(&self, path: &Path) -> std::io::Result<()>;
    /// `fsync` of a directory: makes creations and removals in it durable.
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()>;
    /// Renames `from` to `to` in the same directory, replacing `to`. Durable
    /// only after [`LogStorage::sync_dir`] of the directory.
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// The contents of a file that is never written again (a sealed day
    /// file; `FsStorage` maps snapshots too), read-only: a memory map on the
    /// real file system.
    fn map(&self, path: &Path) -> std::io::Result<FileBytes>;
}

/// The bytes of an immutable file: mapped, or (simulated storage, empty
/// files) held in memory. Either way a `&[u8]` that starts page-aligned.
#[derive(Debug)]
pub enum FileBytes {
    /// A read-only memory map; the page cache holds the data.
    Mapped(memmap2::Mmap),
    /// A copy on the heap, 8-byte aligned.
    Owned(Vec<u64>, usize),
}

impl FileBytes {
    /// A heap copy of `bytes`, aligned like a map (to 8 bytes at least).
    pub fn copied(bytes: &[u8]) -> FileBytes {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        FileBytes::Owned(words, bytes.len())
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Owned(words, len) => &bytemuck::cast_slice::<u64, u8>(words)[..*len],
        }
    }
}

/// The real file system: the storage every engine uses unless a test says otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsStorage;

/// A chunk open on the real file system.
#[derive(Debug)]
pub struct FsFile(File);

impl LogFile for FsFile {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.0.sync_all()
    }

    fn byte_len(&self) -> std::io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
}

impl LogStorage for FsStorage {
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>> {
        let file = OpenOptions::new().create_new(true).append(true).open(path)?;
        Ok(Box::new(FsFile(file)))
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>> {
        Ok(Box::new(FsFile(OpenOptions::new().append(true).open(path)?)))
    }

    fn len(&self, path: &Path) -> std::io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn read_to_end(&self, path: &Path, buffer: &mut Vec<u8>) -> std::io::Result<()> {
        File::open(path)?.read_to_end(buffer).map(|_| ())
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        fs::rename(from, to)
    }

    #[allow(unsafe_code)]
    fn map(&self, path: &Path) -> std::io::Result<FileBytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            // An empty file cannot be mapped; it is simply empty.
            return Ok(FileBytes::copied(&[]));
        }
        // SAFETY: a map is undefined behaviour if the file changes while it is
        // mapped. The engine maps only sealed day files and snapshots: each
        // written once under a temporary name, renamed into place, and never
        // written again (a new version or position is a new file). The data directory's lock keeps other Nudge
        // processes out; another program writing into `sealed/` is outside
        // what the engine can defend against, as for any database's files.
        unsafe { memmap2::Mmap::map(&file) }.map(FileBytes::Mapped)
    }
}
