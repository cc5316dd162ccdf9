//! Test support: `SimStorage`, an in-memory [`LogStorage`] that simulates
//! crashes, failing operations and a full disk.
//!
//! It is modelled on SQLite's crash-test VFS and redb's `CrashBackend`. Every
//! file has a *live* image (what reads see) and a *durable* image (what a
//! crash keeps). Writes and truncations change the live image and are queued
//! as pending; `sync_data`/`sync_all` make a file's pending changes durable.
//! A created file's *name* is durable only after `sync_dir` of its directory,
//! and so is a removal.
//!
//! [`SimStorage::crash`] builds the post-crash disk from the durable images
//! plus some of the pending changes, chosen by the caller's random number
//! generator:
//!
//! - [`CrashModel::InOrder`] (the default): a prefix of each file's pending
//!   changes survives; the first change not kept may be torn at a 512 B or
//!   4 KiB block boundary, and the part past the tear is cut off, zero-filled
//!   (the size grew, the data did not land) or garbage.
//! - [`CrashModel::Reordered`]: every 512 B or 4 KiB block of every pending
//!   write survives or not on its own, so a later block can land while an
//!   earlier one does not (the "out of order" of the log's assumptions).
//!
//! A file whose creation was never made durable survives a crash or not (an
//! even chance), and so does a removed file whose removal was not.
//!
//! The storage can also fail the Nth operation ([`SimStorage::fail_op`]) with
//! `EIO`, with a short write followed by `EIO`, or with a power cut (that
//! operation and every later one of this boot fail, ready for `crash`), and
//! report `ENOSPC` once the live files would exceed a capacity.
//!
//! Each engine (or writer) gets a handle bound to the current *boot* from
//! [`SimStorage::storage`]. A crash starts a new boot: every handle of the old
//! one fails from then on, so a crashed engine that is dropped afterwards
//! cannot sync anything into the post-crash disk.
//!
//! What it does not model: directories (any directory exists; only its
//! entries' durability is tracked), the data directory's lock, metadata and
//! snapshots (real files, outside the log), bit rot of synced data, a removed
//! file still open through an old handle (a handle follows the path), and
//! metadata-only syncs (`sync_data` and `sync_all` behave alike).
//!
//! It is compiled into the library (not behind a feature) so that integration
//! tests can use it without a feature flag to remember; nothing outside tests
//! constructs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::Rng;

use super::storage::{FileBytes, LogFile, LogStorage};

/// The block sizes a torn write is cut at: a sector and a page.
pub const TEAR_BLOCKS: [usize; 2] = [512, 4096];
/// Operations kept in the trace (the oldest are dropped beyond this).
pub const TRACE_MAX_OPS: usize = 10_000;
/// `EIO` on Linux and macOS.
const EIO: i32 = 5;
/// `ENOSPC` on Linux and macOS.
const ENOSPC: i32 = 28;

/// An operation the storage performs, as counted for [`SimStorage::fail_op`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOp {
    /// Listing a directory.
    List,
    /// Creating a file.
    Create,
    /// Opening a file for append.
    Open,
    /// Reading a file's length.
    Len,
    /// Reading a whole file.
    Read,
    /// Appending to a file.
    Write,
    /// `sync_data` or `sync_all` of a file.
    Sync,
    /// Changing a file's length.
    SetLen,
    /// Removing a file.
    Remove,
    /// Syncing a directory.
    SyncDir,
    /// Renaming a file.
    Rename,
    /// Mapping a file for reading.
    Map,
}

/// How the chosen operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It fails with `EIO` and changes nothing.
    Eio,
    /// A write stores the first half of its bytes, then fails with `EIO`
    /// (other operations fail as with [`Fault::Eio`]).
    ShortWrite,
    /// The power goes: this operation and every later one of the boot fail
    /// and change nothing. Call [`SimStorage::crash`] next.
    PowerCut,
}

/// Which pending changes can survive a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrashModel {
    /// A prefix of each file's pending changes, the last one possibly torn.
    #[default]
    InOrder,
    /// Any subset of the blocks of the pending writes.
    Reordered,
}

#[derive(Debug, Clone)]
enum Change {
    Write { at: usize, bytes: Vec<u8> },
    SetLen(usize),
}

impl Change {
    fn apply(&self, image: &mut Vec<u8>) {
        match self {
            Change::Write { at, bytes } => {
                if image.len() < at + bytes.len() {
                    image.resize(at + bytes.len(), 0);
                }
                image[*at..at + bytes.len()].copy_from_slice(bytes);
            }
            Change::SetLen(len) => image.resize(*len, 0),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct SimFile {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    pending: Vec<Change>,
    /// The directory entry survives a crash.
    name_durable: bool,
}

impl SimFile {
    fn sync(&mut self) {
        for change in self.pending.drain(..) {
            change.apply(&mut self.durable);
        }
    }

    /// The file's contents after a crash.
    fn crash_image<R: Rng + ?Sized>(&self, model: CrashModel, rng: &mut R) -> Vec<u8> {
        let mut image = self.durable.clone();
        match model {
            CrashModel::InOrder => {
                let kept = rng.gen_range(0..=self.pending.len());
                for change in &self.pending[..kept] {
                    change.apply(&mut image);
                }
                if let Some(Change::Write { at, bytes }) = self.pending.get(kept) {
                    tear(&mut image, *at, bytes, rng);
                }
            }
            CrashModel::Reordered => {
                let block = TEAR_BLOCKS[rng.gen_range(0..TEAR_BLOCKS.len())];
                let mut longest = image.len();
                for change in &self.pending {
                    match change {
                        Change::SetLen(_) => change.apply(&mut image),
                        Change::Write { at, bytes } => {
                            let mut from = *at;
                            while from < at + bytes.len() {
                                let to = ((from / block + 1) * block).min(at + bytes.len());
                                if rng.gen_bool(0.5) {
                                    let piece = &bytes[from - at..to - at];
                                    Change::Write { at: from, bytes: piece.to_vec() }
                                        .apply(&mut image);
                                }
                                longest = longest.max(to);
                                from = to;
                            }
                        }
                    }
                }
                // The size may have reached the end of every write, the holes reading as zeros.
                if rng.gen_bool(0.5) && longest > image.len() {
                    image.resize(longest, 0);
                }
            }
        }
        image
    }
}

/// Applies the first part of a write, cut at a block boundary, and leaves the
/// rest missing, zero-filled or garbage.
fn tear<R: Rng + ?Sized>(image: &mut Vec<u8>, at: usize, bytes: &[u8], rng: &mut R) {
    let block = TEAR_BLOCKS[rng.gen_range(0..TEAR_BLOCKS.len())];
    let end = at + bytes.len();
    // Cut points: the start of the write, or a block boundary inside it.
    let first_boundary = (at / block + 1) * block;
    let boundaries = if first_boundary < end { (end - 1 - first_boundary) / block + 1 } else { 0 };
    let cut = match rng.gen_range(0..=boundaries) {
        0 => at,
        i => first_boundary + (i - 1) * block,
    };
    Change::Write { at, bytes: bytes[..cut - at].to_vec() }.apply(image);
    match rng.gen_range(0..3) {
        0 => {}
        1 => {
            if image.len() < end {
                image.resize(end, 0);
            }
        }
        _ => {
            let to = end.min(cut + block);
            let mut garbage = vec![0u8; to - cut];
            rng.fill(&mut garbage[..]);
            Change::Write { at: cut, bytes: garbage }.apply(image);
        }
    }
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<PathBuf, SimFile>,
    /// Removed files whose removal is not durable yet.
    unlinked: Vec<(PathBuf, SimFile)>,
    boot: u64,
    /// Operations counted so far, over every boot.
    ops: u64,
    trace: Vec<String>,
    faults: BTreeMap<u64, Fault>,
    halted: bool,
    capacity: Option<u64>,
    model: CrashModel,
}

impl Disk {
    /// Counts an operation and decides whether it fails.
    fn begin(&mut self, boot: u64, op: SimOp, path: &Path) -> std::io::Result<Option<Fault>> {
        if boot != self.boot {
            return Err(std::io::Error::other(
                "simulated crash: this handle belongs to a process that crashed",
            ));
        }
        if self.halted {
            return Err(std::io::Error::other("simulated power cut"));
        }
        self.ops += 1;
        if self.trace.len() == TRACE_MAX_OPS {
            self.trace.remove(0);
        }
        self.trace.push(format!("{} {op:?} {}", self.ops, path.display()));
        match self.faults.remove(&self.ops) {
            None => Ok(None),
            Some(Fault::PowerCut) => {
                self.halted = true;
                Err(std::io::Error::other("simulated power cut"))
            }
            Some(Fault::ShortWrite) if op == SimOp::Write => Ok(Some(Fault::ShortWrite)),
            Some(_) => Err(std::io::Error::from_raw_os_error(EIO)),
        }
    }

    fn file(&mut self, path: &Path) -> std::io::Result<&mut SimFile> {
        self.files.get_mut(path).ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }

    fn used(&self) -> u64 {
        self.files.values().map(|f| f.live.len() as u64).sum()
    }
}

/// The simulated disk, owned by a test. Cheap to clone; clones share the disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

impl SimStorage {
    /// An empty disk with no capacity limit and [`CrashModel::InOrder`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets which pending changes a crash may keep.
    pub fn set_model(&self, model: CrashModel) {
        self.disk.lock().model = model;
    }

    /// A storage handle for one process (an engine or a writer) of the
    /// current boot. After [`SimStorage::crash`] it fails every operation.
    pub fn storage(&self) -> Arc<dyn LogStorage> {
        Arc::new(SimHandle { disk: Arc::clone(&self.disk), boot: self.disk.lock().boot })
    }

    /// Operations performed so far, over every boot. Operation numbers given
    /// to [`SimStorage::fail_op`] continue from here: the next one is `ops() + 1`.
    pub fn ops(&self) -> u64 {
        self.disk.lock().ops
    }

    /// Makes operation number `n` (counting from 1, over every boot) fail.
    pub fn fail_op(&self, n: u64, fault: Fault) {
        self.disk.lock().faults.insert(n, fault);
    }

    /// Cancels the faults set with [`SimStorage::fail_op`] and not hit yet.
    pub fn clear_faults(&self) {
        self.disk.lock().faults.clear();
    }

    /// Limits the total size of the live files; a write past it stores what
    /// fits and fails with `ENOSPC`. `None` removes the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.disk.lock().capacity = bytes;
    }

    /// Bytes of the live files.
    pub fn used_bytes(&self) -> u64 {
        self.disk.lock().used()
    }

    /// The last operations, one line each: number, operation, path.
    pub fn trace(&self) -> Vec<String> {
        self.disk.lock().trace.clone()
    }

    /// Every file: path, live length, durable length, whether its name is durable.
    pub fn files(&self) -> Vec<(PathBuf, usize, usize, bool)> {
        let disk = self.disk.lock();
        disk.files
            .iter()
            .map(|(p, f)| (p.clone(), f.live.len(), f.durable.len(), f.name_durable))
            .collect()
    }

    /// The live contents of a file, if it exists.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.disk.lock().files.get(path).map(|f| f.live.clone())
    }

    /// Replaces a file's contents, durably (for tests that damage a log by hand).
    pub fn write_durably(&self, path: &Path, bytes: &[u8]) {
        let mut disk = self.disk.lock();
        let file = disk.files.entry(path.to_path_buf()).or_default();
        *file = SimFile {
            live: bytes.to_vec(),
            durable: bytes.to_vec(),
            pending: Vec::new(),
            name_durable: true,
        };
    }

    /// Crashes: builds the disk a restart would find (durable data plus some
    /// of the pending changes, see the module docs), cancels the faults not
    /// yet hit, clears a power cut, and starts a new boot. Handles from
    /// [`SimStorage::storage`] taken before this fail from now on.
    pub fn crash<R: Rng + ?Sized>(&self, rng: &mut R) {
        let mut disk = self.disk.lock();
        let model = disk.model;
        let mut survivors = BTreeMap::new();
        let files = std::mem::take(&mut disk.files);
        let unlinked = std::mem::take(&mut disk.unlinked);
        // A removed file whose removal was not synced may come back, unless
        // its name was reused since.
        let unlinked = unlinked.into_iter().map(|(path, file)| (path, file, true));
        let files = files.into_iter().map(|(path, file)| (path, file, false));
        for (path, file, removed) in unlinked.chain(files) {
            // An entry whose creation or removal was not synced: an even chance either way.
            if (removed || !file.name_durable) && rng.gen_bool(0.5) == removed {
                continue;
            }
            let image = file.crash_image(model, rng);
            survivors.insert(
                path,
                SimFile {
                    live: image.clone(),
                    durable: image,
                    pending: Vec::new(),
                    name_durable: true,
                },
            );
        }
        disk.files = survivors;
        disk.faults.clear();
        disk.halted = false;
        disk.boot += 1;
    }
}

/// One process's view of a [`SimStorage`].
#[derive(Debug)]
struct SimHandle {
    disk: Arc<Mutex<Disk>>,
    boot: u64,
}

/// An open file of a [`SimHandle`].
#[derive(Debug)]
struct SimFileHandle {
    disk: Arc<Mutex<Disk>>,
    boot: u64,
    path: PathBuf,
}

impl SimHandle {
    fn file(&self, path: &Path) -> Box<dyn LogFile> {
        Box::new(SimFileHandle {
            disk: Arc::clone(&self.disk),
            boot: self.boot,
            path: path.to_path_buf(),
        })
    }
}

fn in_dir(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
}

impl LogStorage for SimHandle {
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::List, dir)?;
        Ok(disk
            .files
            .keys()
            .filter(|p| in_dir(p, dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn create_new(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Create, path)?;
        if disk.files.contains_key(path) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        disk.unlinked.retain(|(p, _)| p != path);
        disk.files.insert(path.to_path_buf(), SimFile::default());
        Ok(self.file(path))
    }

    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn LogFile>> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Open, path)?;
        disk.file(path)?;
        Ok(self.file(path))
    }

    fn len(&self, path: &Path) -> std::io::Result<u64> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Len, path)?;
        Ok(disk.file(path)?.live.len() as u64)
    }

    fn read_to_end(&self, path: &Path, buffer: &mut Vec<u8>) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Read, path)?;
        buffer.extend_from_slice(&disk.file(path)?.live);
        Ok(())
    }

    fn remove(&self, path: &Path) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Remove, path)?;
        let file = disk.files.remove(path).ok_or(std::io::ErrorKind::NotFound)?;
        if file.name_durable {
            disk.unlinked.push((path.to_path_buf(), file));
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Rename, from)?;
        let file = disk.files.remove(from).ok_or(std::io::ErrorKind::NotFound)?;
        // Until the directory is synced, the old name may come back and the
        // new one may vanish (each on its own: more than a journaling file
        // system allows, so recovery is tested against the worst case).
        if file.name_durable {
            disk.unlinked.push((from.to_path_buf(), file.clone()));
        }
        disk.unlinked.retain(|(p, _)| p != to);
        if let Some(replaced) = disk.files.remove(to)
            && replaced.name_durable
        {
            disk.unlinked.push((to.to_path_buf(), replaced));
        }
        disk.files.insert(to.to_path_buf(), SimFile { name_durable: false, ..file });
        Ok(())
    }

    fn map(&self, path: &Path) -> std::io::Result<FileBytes> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Map, path)?;
        Ok(FileBytes::copied(&disk.file(path)?.live))
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::SyncDir, dir)?;
        for (path, file) in disk.files.iter_mut() {
            if in_dir(path, dir) {
                file.name_durable = true;
            }
        }
        disk.unlinked.retain(|(p, _)| !in_dir(p, dir));
        Ok(())
    }
}

impl LogFile for SimFileHandle {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        let fault = disk.begin(self.boot, SimOp::Write, &self.path)?;
        let room = match disk.capacity {
            Some(capacity) => capacity.saturating_sub(disk.used()),
            None => u64::MAX,
        };
        let (stored, error) = if fault == Some(Fault::ShortWrite) {
            (bytes.len() / 2, Some(std::io::Error::from_raw_os_error(EIO)))
        } else if (bytes.len() as u64) > room {
            (room as usize, Some(std::io::Error::from_raw_os_error(ENOSPC)))
        } else {
            (bytes.len(), None)
        };
        let file = disk.file(&self.path)?;
        if stored > 0 {
            let change = Change::Write { at: file.live.len(), bytes: bytes[..stored].to_vec() };
            change.apply(&mut file.live);
            file.pending.push(change);
        }
        error.map_or(Ok(()), Err)
    }

    fn sync_data(&mut self) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Sync, &self.path)?;
        disk.file(&self.path)?.sync();
        Ok(())
    }

    fn sync_all(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }

    fn byte_len(&self) -> std::io::Result<u64> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::Len, &self.path)?;
        Ok(disk.file(&self.path)?.live.len() as u64)
    }

    fn set_len(&mut self, len: u64) -> std::io::Result<()> {
        let mut disk = self.disk.lock();
        disk.begin(self.boot, SimOp::SetLen, &self.path)?;
        let file = disk.file(&self.path)?;
        let change = Change::SetLen(len as usize);
        change.apply(&mut file.live);
        file.pending.push(change);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn disk_with_pending(durable: &[u8], pending: &[u8]) -> (SimStorage, PathBuf) {
        let sim = SimStorage::new();
        let storage = sim.storage();
        let path = PathBuf::from("/log/a");
        let mut file = storage.create_new(&path).expect("create");
        file.write_all(durable).expect("write");
        file.sync_data().expect("sync");
        storage.sync_dir(Path::new("/log")).expect("sync dir");
        file.write_all(pending).expect("write");
        (sim, path)
    }

    #[test]
    fn a_crash_keeps_synced_data_and_a_torn_prefix_of_the_rest() {
        let durable = vec![7u8; 1000];
        let pending = vec![9u8; 9000];
        let mut lengths = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let (sim, path) = disk_with_pending(&durable, &pending);
            sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            let image = sim.read(&path).expect("file survives: its name was synced");
            assert_eq!(&image[..1000], &durable[..], "seed {seed}");
            // Kept pending bytes end where the write started, on a block
            // boundary, or at its end.
            let kept = image[1000..].iter().take_while(|&&b| b == 9).count();
            assert!(
                kept == 0 || kept == 9000 || (1000 + kept) % 512 == 0,
                "seed {seed}: kept {kept}"
            );
            assert!(image.len() <= 10_000, "seed {seed}");
            lengths.insert(image.len());
        }
        assert!(lengths.len() > 5, "crashes vary: {lengths:?}");
    }

    #[test]
    fn an_unsynced_creation_may_vanish_and_old_handles_fail_after_a_crash() {
        let mut vanished = 0;
        for seed in 0..64 {
            let sim = SimStorage::new();
            let storage = sim.storage();
            let mut file = storage.create_new(Path::new("/d/x")).expect("create");
            file.write_all(b"abc").expect("write");
            file.sync_all().expect("sync");
            sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            match sim.read(Path::new("/d/x")) {
                None => vanished += 1,
                Some(bytes) => assert_eq!(bytes, b"abc"),
            }
            assert!(file.write_all(b"more").is_err(), "the crashed process is gone");
            assert!(storage.sync_dir(Path::new("/d")).is_err());
        }
        assert!(vanished > 0 && vanished < 64, "{vanished} of 64 vanished");
    }

    #[test]
    fn faults_and_a_full_disk_fail_with_the_real_error_codes() {
        let sim = SimStorage::new();
        let storage = sim.storage();
        let mut file = storage.create_new(Path::new("/d/x")).expect("create");
        sim.fail_op(sim.ops() + 1, Fault::ShortWrite);
        let error = file.write_all(&[1; 10]).expect_err("short write");
        assert_eq!(error.raw_os_error(), Some(EIO));
        assert_eq!(sim.read(Path::new("/d/x")).expect("file").len(), 5);
        sim.set_capacity(Some(8));
        let error = file.write_all(&[2; 10]).expect_err("full");
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(sim.used_bytes(), 8, "what fits is stored");
        sim.fail_op(sim.ops() + 2, Fault::PowerCut);
        file.sync_data().expect("the op before the cut works");
        assert!(file.sync_data().is_err() && storage.list(Path::new("/d")).is_err());
    }
}
