//! The log writer thread: group commit, chunk rotation and poisoning.
//!
//! Callers send framed records over a channel. The thread takes every request
//! waiting in the channel (up to [`GROUP_COMMIT_MAX_BYTES`]), writes them with
//! one `write`, and with [`Durability::SyncPerBatch`] issues one `fdatasync`
//! for the whole group; only then does it pass each request on, in order, as
//! [`Written`]. Many callers therefore share one sync, and the order of
//! records in the log is the order of the channel.
//!
//! At start the last chunk and the log directory are synced once: what
//! recovery read may never have been synced by the process that wrote it.
//!
//! A chunk that would grow past its target size is synced and closed, a new
//! chunk file is created (header written and synced), and the directory is
//! synced so the new file survives a crash.
//!
//! The first failed write or sync poisons the writer: the failure is never
//! retried (after a failed fsync the kernel may have dropped the dirty pages,
//! and a later fsync could falsely succeed), and every request from then on
//! gets [`Error::Poisoned`]. Recovery after a restart replays what is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::format::{self, CHUNK_HEADER_BYTES};
use super::recovery::{Recovered, chunk_name};
use super::storage::{LogFile, LogStorage};
use super::{Durability, LogPosition};
use crate::error::{Error, IoContext, Result};

/// Target size of one chunk file; a chunk is rotated before it would exceed it.
pub const CHUNK_TARGET_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes one group commit gathers before writing.
pub const GROUP_COMMIT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// An I/O operation the writer is about to perform (for fault injection in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    /// Writing frames to the current chunk.
    Write,
    /// `fdatasync` of the current chunk.
    Sync,
    /// Creating a new chunk file.
    Rotate,
}

/// Called before every I/O operation; an `Err` is treated as if the operation
/// had failed. Tests use it to fail the Nth write or sync.
pub type FaultInjector = Arc<dyn Fn(IoOp) -> std::io::Result<()> + Send + Sync>;

/// Settings of the writer.
#[derive(Clone)]
pub struct WriterConfig {
    /// The log directory.
    pub dir: PathBuf,
    /// When an append counts as durable.
    pub durability: Durability,
    /// Chunk rotation size.
    pub chunk_target_bytes: u64,
    /// Where the chunks are read and written (`FsStorage` outside tests).
    pub storage: Arc<dyn LogStorage>,
    /// Test hook: fail chosen I/O operations.
    pub fault_injector: Option<FaultInjector>,
}

impl std::fmt::Debug for WriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("chunk_target_bytes", &self.chunk_target_bytes)
            .field("fault_injector", &self.fault_injector.is_some())
            .finish()
    }
}

/// A request to the writer thread.
#[derive(Debug)]
pub enum Request<T> {
    /// Append one framed record; `payload` comes back in [`Written`].
    Append {
        /// The frame bytes (`format::encode_frame`).
        frame: Vec<u8>,
        /// Carried through, in order.
        payload: T,
    },
    /// Sync everything written so far, then answer.
    Sync {
        /// Carried through, in order.
        payload: T,
    },
}

/// The writer's answer to one request, in request order.
#[derive(Debug)]
pub struct Written<T> {
    /// Log position after the request's frame (or the current end, for `Sync`).
    pub result: Result<LogPosition>,
    /// What the caller attached.
    pub payload: T,
}

struct ActiveChunk {
    file: Box<dyn LogFile>,
    path: PathBuf,
    /// Log position of the chunk's first frame.
    start: LogPosition,
    /// Frame bytes in the chunk.
    len: u64,
}

impl ActiveChunk {
    fn end(&self) -> LogPosition {
        self.start + self.len
    }
}

fn create_chunk(storage: &dyn LogStorage, dir: &Path, start: LogPosition) -> Result<ActiveChunk> {
    let path = dir.join(chunk_name(start));
    let mut file =
        storage.create_new(&path).context(|| format!("creating chunk {}", path.display()))?;
    file.write_all(&format::chunk_header())
        .context(|| format!("writing header of {}", path.display()))?;
    file.sync_all().context(|| format!("syncing {}", path.display()))?;
    storage.sync_dir(dir).context(|| format!("syncing directory {}", dir.display()))?;
    Ok(ActiveChunk { file, path, start, len: 0 })
}

fn open_last_chunk(
    storage: &dyn LogStorage,
    dir: &Path,
    recovered: &Recovered,
) -> Result<ActiveChunk> {
    match recovered.chunks.last() {
        None => create_chunk(storage, dir, 0),
        Some(last) => {
            let mut file = storage
                .open_append(&last.path)
                .context(|| format!("opening {} for append", last.path.display()))?;
            // The previous process may have written frames it never synced
            // (`Buffered` mode, a failed fsync, a kill). Recovery has just read
            // them from the page cache and the engine will rely on them (a
            // retried batch is acknowledged as a duplicate), so they are made
            // durable before anything is acknowledged. Its name too: a process
            // that died between creating it and syncing the directory (or a
            // recovery that wrote its header again) left it possibly undurable.
            // One fdatasync and one directory fsync per open.
            file.sync_data().context(|| format!("syncing {}", last.path.display()))?;
            storage.sync_dir(dir).context(|| format!("syncing directory {}", dir.display()))?;
            let len = file.byte_len().context(|| format!("reading {}", last.path.display()))?;
            let len = len.saturating_sub(CHUNK_HEADER_BYTES as u64);
            debug_assert_eq!(last.start + len, recovered.end);
            Ok(ActiveChunk { file, path: last.path.clone(), start: last.start, len })
        }
    }
}

struct Writer {
    config: WriterConfig,
    chunk: ActiveChunk,
    buffer: Vec<u8>,
    /// Bytes written since the last sync.
    dirty: bool,
    poisoned: Option<String>,
}

impl Writer {
    fn inject(&self, op: IoOp) -> std::io::Result<()> {
        match &self.config.fault_injector {
            Some(inject) => inject(op),
            None => Ok(()),
        }
    }

    fn flush_buffer(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let path = &self.chunk.path;
        self.inject(IoOp::Write)
            .and_then(|()| self.chunk.file.write_all(&self.buffer))
            .context(|| format!("writing to {}", path.display()))?;
        self.buffer.clear();
        self.dirty = true;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush_buffer()?;
        if self.dirty {
            let path = &self.chunk.path;
            self.inject(IoOp::Sync)
                .and_then(|()| self.chunk.file.sync_data())
                .context(|| format!("syncing {}", path.display()))?;
            self.dirty = false;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        self.sync()?;
        self.inject(IoOp::Rotate)
            .context(|| format!("creating a chunk in {}", self.config.dir.display()))?;
        self.chunk =
            create_chunk(self.config.storage.as_ref(), &self.config.dir, self.chunk.end())?;
        Ok(())
    }

    /// Writes a group; returns the end position after each request.
    fn write_group<T>(&mut self, group: &[Request<T>]) -> Result<Vec<LogPosition>> {
        let mut ends = Vec::with_capacity(group.len());
        let mut sync_asked = false;
        for request in group {
            match request {
                Request::Append { frame, .. } => {
                    let frame_len = frame.len() as u64;
                    if self.chunk.len > 0
                        && self.chunk.len + frame_len > self.config.chunk_target_bytes
                    {
                        self.rotate()?;
                    }
                    self.buffer.extend_from_slice(frame);
                    self.chunk.len += frame_len;
                }
                Request::Sync { .. } => sync_asked = true,
            }
            ends.push(self.chunk.end());
        }
        if sync_asked || self.config.durability == Durability::SyncPerBatch {
            self.sync()?;
        } else {
            self.flush_buffer()?;
        }
        Ok(ends)
    }

    fn run<T>(mut self, requests: Receiver<Request<T>>, output: Sender<Written<T>>) {
        while let Ok(first) = requests.recv() {
            let mut group = vec![first];
            let mut bytes = 0usize;
            while bytes < GROUP_COMMIT_MAX_BYTES {
                match requests.try_recv() {
                    Ok(request) => {
                        if let Request::Append { frame, .. } = &request {
                            bytes += frame.len();
                        }
                        group.push(request);
                    }
                    Err(_) => break,
                }
            }
            let results: Vec<Result<LogPosition>> = match &self.poisoned {
                Some(cause) => {
                    group.iter().map(|_| Err(Error::Poisoned { cause: cause.clone() })).collect()
                }
                None => match self.write_group(&group) {
                    Ok(ends) => ends.into_iter().map(Ok).collect(),
                    Err(error) => {
                        let cause = error.to_string();
                        self.poisoned = Some(cause.clone());
                        // The first request learns the I/O error itself, the rest that the log is poisoned.
                        let mut first = Some(error.stopped_the_log());
                        group
                            .iter()
                            .map(|_| {
                                Err(first
                                    .take()
                                    .unwrap_or(Error::Poisoned { cause: cause.clone() }))
                            })
                            .collect()
                    }
                },
            };
            for (request, result) in group.into_iter().zip(results) {
                let payload = match request {
                    Request::Append { payload, .. } | Request::Sync { payload } => payload,
                };
                if output.send(Written { result, payload }).is_err() {
                    return;
                }
            }
        }
        // Every sender is gone: make what was written durable before exiting.
        if self.poisoned.is_none() {
            let _ = self.sync();
        }
    }
}

/// Starts the writer thread after recovery. Answers arrive on `output` in request order.
pub fn spawn<T: Send + 'static>(
    config: WriterConfig,
    recovered: &Recovered,
    output: Sender<Written<T>>,
) -> Result<(Sender<Request<T>>, JoinHandle<()>)> {
    let chunk = open_last_chunk(config.storage.as_ref(), &config.dir, recovered)?;
    let writer =
        Writer { config, chunk, buffer: Vec::with_capacity(1 << 20), dirty: false, poisoned: None };
    // Bounded so that a slow disk pushes back on callers instead of growing memory.
    let (sender, receiver) = crossbeam_channel::bounded(1024);
    let handle = std::thread::Builder::new()
        .name("nudge-log-writer".into())
        .spawn(move || writer.run(receiver, output))
        .context(|| "starting the log writer thread".into())?;
    Ok((sender, handle))
}
