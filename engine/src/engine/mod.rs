//! The engine: open a data directory, ingest, read, snapshot, close.
//!
//! Ingest is a three-stage pipeline, ordered end to end:
//!
//! 1. **Sequencer** (the caller's thread, under one mutex): validates the batch,
//!    drops duplicate event ids, assigns dense ids (recording new dictionary
//!    entries in the batch), encodes and frames the record, and hands it to the
//!    writer. The mutex makes log order equal id-assignment order.
//! 2. **Writer thread** (`log::writer`): group commit — one write and one
//!    `fdatasync` for every record waiting — then passes records on in order.
//! 3. **Applier thread**: applies each durable batch to derived state, then
//!    answers the caller. An acknowledged batch is therefore durable *and*
//!    visible to queries.
//!
//! Open takes the directory lock, loads the newest valid snapshot, replays the
//! log after it (repairing a torn tail), and starts the pipeline.

mod campaigns;
mod ingest;
pub mod loops;
mod outbox;
mod queries;
mod sealing;
pub mod snapshot;
pub mod state;
mod triggers;
mod users;

pub use loops::{FireLoop, LOOP_IDLE_WAIT_MS, SealLoop};
pub use sealing::{
    DAMAGED_EXTENSION, DEFAULT_SEAL_GRACE_MS, DayFileCheck, HeapBytes, SealedDayReport,
    StorageTiers, default_head_budget_bytes,
};
pub use state::DerivedState;
pub use triggers::Fire;
pub use users::{USER_LATEST_DECISIONS, USER_LATEST_EVENTS, UserEvent, UserSubscription, UserView};

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::clock::{SharedClock, SystemClock};
use crate::error::{Error, IoContext, Result};
use crate::store::dedupe::{DEFAULT_DEDUPE_WINDOW_MS, Dedupe};
use crate::store::dict::{Dictionaries, Dictionary};
use crate::store::log::entry::{self, ValidatedBatch};
use crate::store::log::format::RecordKind;
use crate::store::log::recovery::{self, Recovered};
use crate::store::log::storage::{FsStorage, LogStorage};
use crate::store::log::writer::{self, FaultInjector, Request, WriterConfig, Written};
use crate::store::log::{Durability, LOG_DIR, LogPosition, RecoveryMode};
use crate::store::meta::Meta;
use crate::store::sealed::SEALED_DIR;
use crate::store::state as store_state;
use crate::store::state::sealed_days::DayFiles;
use snapshot::SNAPSHOT_DIR;

/// Snapshots kept on disk (the newest, plus older ones to fall back on).
pub const SNAPSHOTS_KEPT: usize = 2;
const META_DIR: &str = "meta";
const LOCK_FILE: &str = "LOCK";

/// How to open a data directory.
#[derive(Clone)]
pub struct EngineOptions {
    /// When an acknowledgement implies durability.
    pub durability: Durability,
    /// What to do with a damaged log.
    pub recovery: RecoveryMode,
    /// Source of "now".
    pub clock: SharedClock,
    /// Idempotency window for event ids.
    pub dedupe_window_ms: i64,
    /// Chunk rotation size.
    pub chunk_target_bytes: u64,
    /// Load snapshots at open (false forces a full replay).
    pub load_snapshot: bool,
    /// Write a snapshot at close when the log grew since the last one.
    pub snapshot_on_close: bool,
    /// Test hook: fail chosen log I/O operations.
    pub fault_injector: Option<FaultInjector>,
    /// Where the event log's files live: the real file system (`FsStorage`)
    /// unless a test swaps in `log::sim::SimStorage`. Only the log goes
    /// through it; the lock, metadata and snapshots are always real files.
    pub log_storage: Arc<dyn LogStorage>,
    /// How far an event's time may lag its arrival and still arm triggers.
    pub trigger_freshness_ms: i64,
    /// How long after its due time a fire may still fire (after downtime).
    pub fire_grace_ms: i64,
    /// How long after a UTC day ends it is sealed into a day file
    /// ([`SealLoop`], [`Engine::seal_closed_days`]).
    pub seal_grace_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            durability: Durability::SyncPerBatch,
            recovery: RecoveryMode::TolerateTornTail,
            clock: Arc::new(SystemClock),
            dedupe_window_ms: DEFAULT_DEDUPE_WINDOW_MS,
            chunk_target_bytes: writer::CHUNK_TARGET_BYTES,
            load_snapshot: true,
            snapshot_on_close: true,
            fault_injector: None,
            log_storage: Arc::new(FsStorage),
            trigger_freshness_ms: crate::triggers::DEFAULT_FRESHNESS_MS,
            fire_grace_ms: crate::triggers::DEFAULT_FIRE_GRACE_MS,
            seal_grace_ms: sealing::DEFAULT_SEAL_GRACE_MS,
        }
    }
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("durability", &self.durability)
            .field("recovery", &self.recovery)
            .field("dedupe_window_ms", &self.dedupe_window_ms)
            .field("chunk_target_bytes", &self.chunk_target_bytes)
            .field("load_snapshot", &self.load_snapshot)
            .field("snapshot_on_close", &self.snapshot_on_close)
            .finish_non_exhaustive()
    }
}

/// What one ingest call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records stored.
    pub accepted: usize,
    /// Events acknowledged but not stored again (repeated idempotency id).
    pub duplicates: usize,
    /// Positions in the batch of the events that were repeats (ascending).
    pub duplicate_indexes: Vec<usize>,
    /// Log position after the batch.
    pub position: LogPosition,
}

/// What open found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Position of the snapshot loaded, if any.
    pub snapshot_position: Option<LogPosition>,
    /// Log frames replayed after it.
    pub replayed_frames: u64,
    /// Events replayed after it.
    pub replayed_events: u64,
    /// Bytes dropped from a torn tail.
    pub truncated_bytes: u64,
    /// Snapshots or metadata that could not be used (not fatal).
    pub warnings: Vec<String>,
    /// Time open took.
    pub took: Duration,
}

/// Read access to dictionaries and derived state, consistent with each other.
pub struct StateReader<'a> {
    /// Dictionaries (may hold ids of batches still in flight; they select nobody).
    pub dicts: RwLockReadGuard<'a, Dictionaries>,
    /// Derived state.
    pub state: RwLockReadGuard<'a, DerivedState>,
}

struct Pending {
    /// The batch to apply; `None` for a sync request.
    batch: Option<ValidatedBatch>,
    reply: Sender<Result<LogPosition>>,
}

struct Sequencer {
    dedupe: Dedupe,
    writer: Option<Sender<Request<Pending>>>,
}

/// An open data directory. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Engine {
    dir: PathBuf,
    pub(crate) options: EngineOptions,
    sequencer: Mutex<Sequencer>,
    pub(crate) dicts: Arc<RwLock<Dictionaries>>,
    pub(crate) state: Arc<RwLock<DerivedState>>,
    /// Held while fires are decided and recorded, so no fire is decided twice.
    pub(crate) fire_lock: Mutex<()>,
    /// Wakes the running `FireLoop` and `OutboxLoop` after each ingest (new
    /// fires may be due, new messages queued).
    pub(crate) wakers: Mutex<Vec<Sender<()>>>,
    /// Outbox items handed to a sender and not yet reported.
    pub(crate) outbox_leases: Mutex<crate::campaigns::outbox::Leases>,
    /// Scheduled campaigns are not looked at before this time (0: look now).
    pub(crate) schedule_check_ms: std::sync::atomic::AtomicI64,
    threads: Mutex<Vec<JoinHandle<()>>>,
    meta: Meta,
    last_snapshot: Mutex<Option<LogPosition>>,
    report: OpenReport,
    /// Held while a day is sealed, so one day is sealed at a time.
    seal_lock: Mutex<()>,
    _lock: File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("dir", &self.dir).finish_non_exhaustive()
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Io { context: format!("locking {}", path.display()), source: e })
        }
    }
}

/// Adds a batch's new dictionary entries, checking they are really new.
fn extend_dicts(
    dicts: &mut Dictionaries,
    batch: &entry::ArchivedLogBatch,
) -> std::result::Result<(), String> {
    let add = |dict: &mut Dictionary,
               names: &rkyv::vec::ArchivedVec<rkyv::string::ArchivedString>,
               what: &str| {
        for name in names.iter() {
            if dict.try_push(name).is_none() {
                return Err(format!("{what} {:?} is defined twice", name.as_str()));
            }
        }
        Ok(())
    };
    add(&mut dicts.users, &batch.new_users, "user")?;
    add(&mut dicts.events, &batch.new_event_names, "event name")?;
    add(&mut dicts.keys, &batch.new_keys, "property key")
}

/// Frames decoded by the reading thread, waiting to be applied.
const REPLAY_QUEUE_FRAMES: usize = 64;

/// Replays the log after `state.store.position` into the given state, on three
/// threads in log order: one reads, checks, decompresses and validates frames;
/// this one extends the dictionaries and applies everything but the event
/// value indexes; a third maintains those.
fn replay(
    storage: &dyn LogStorage,
    log_dir: &Path,
    mode: RecoveryMode,
    dicts: &mut Dictionaries,
    dedupe: &mut Dedupe,
    state: &mut DerivedState,
    events: &mut u64,
) -> Result<Recovered> {
    let from = state.store.position;
    let mut sizes = store_state::DictionarySizes::of(dicts);
    let mut values = std::mem::take(&mut state.store.indexes.event_property_value_user_ids);
    let (frames_tx, frames_rx) =
        crossbeam_channel::bounded::<(LogPosition, Arc<ValidatedBatch>)>(REPLAY_QUEUE_FRAMES);
    let (values_tx, values_rx) =
        crossbeam_channel::bounded::<Arc<ValidatedBatch>>(REPLAY_QUEUE_FRAMES);
    let outcome = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            recovery::recover(storage, log_dir, mode, from, |end, frame| {
                let corrupt = |why: String| {
                    Error::corrupt(log_dir, format!("record ending at log position {end}: {why}"))
                };
                let batch = match frame.kind {
                    RecordKind::Batch => ValidatedBatch::new(frame.body).map_err(corrupt)?,
                };
                sizes.extend(batch.get());
                store_state::check_batch_refs(batch.get(), sizes).map_err(corrupt)?;
                // The applying side stopped on an error of its own; it reports it.
                frames_tx.send((end, Arc::new(batch))).map_err(|_| Error::Closed)
            })
        });
        let values = &mut values;
        let value_worker = scope.spawn(move || {
            for batch in values_rx {
                store_state::apply_event_values(values, batch.get());
            }
        });
        let mut applied: Result<()> = Ok(());
        for (end, batch) in frames_rx.iter() {
            applied = apply_replayed(log_dir, end, batch.get(), dicts, dedupe, state, events);
            if applied.is_err() || values_tx.send(batch).is_err() {
                break;
            }
        }
        drop(frames_rx);
        drop(values_tx);
        let recovered = reader
            .join()
            .map_err(|_| Error::corrupt(log_dir, "the log reading thread panicked"))?;
        value_worker
            .join()
            .map_err(|_| Error::corrupt(log_dir, "the value index thread panicked"))?;
        applied?;
        recovered
    });
    state.store.indexes.event_property_value_user_ids = values;
    outcome
}

fn apply_replayed(
    log_dir: &Path,
    end: LogPosition,
    batch: &entry::ArchivedLogBatch,
    dicts: &mut Dictionaries,
    dedupe: &mut Dedupe,
    state: &mut DerivedState,
    events: &mut u64,
) -> Result<()> {
    let corrupt = |why: String| {
        Error::corrupt(log_dir, format!("record ending at log position {end}: {why}"))
    };
    extend_dicts(dicts, batch).map_err(corrupt)?;
    let received = batch.received_ms.to_native();
    for entry in batch.entries.iter() {
        if let entry::ArchivedLogEntry::Event(event) = entry {
            *events += 1;
            if let Some(id) = event.id.as_ref() {
                dedupe.insert(Dedupe::hash(id), received);
            }
        }
    }
    state.apply_except_event_values(batch, end, dicts);
    Ok(())
}

fn applier(
    written: Receiver<Written<Pending>>,
    state: Arc<RwLock<DerivedState>>,
    dicts: Arc<RwLock<Dictionaries>>,
) {
    for Written { result, payload } in written {
        let result = match (result, payload.batch) {
            (Ok(end), Some(batch)) => {
                let dicts = dicts.read();
                state.write().apply(batch.get(), end, &dicts);
                Ok(end)
            }
            (result, _) => result,
        };
        let _ = payload.reply.send(result);
    }
}

impl Engine {
    /// Opens (creating if needed) the data directory `dir`.
    pub fn open(dir: impl AsRef<Path>, options: EngineOptions) -> Result<Engine> {
        let started = Instant::now();
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)
            .context(|| format!("creating data directory {}", dir.display()))?;
        let lock = lock_dir(&dir)?;
        let log_dir = dir.join(LOG_DIR);
        let snapshot_dir = dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&log_dir).context(|| format!("creating {}", log_dir.display()))?;
        let sealed_dir = dir.join(SEALED_DIR);
        fs::create_dir_all(&sealed_dir).context(|| format!("creating {}", sealed_dir.display()))?;
        let day_files =
            DayFiles { storage: Arc::clone(&options.log_storage), dir: sealed_dir.clone() };
        let (meta, recreated) = Meta::open(&dir.join(META_DIR))?;
        let mut report = OpenReport::default();
        if recreated {
            report.warnings.push("metadata store was unreadable and has been recreated".into());
        }

        let fresh = || {
            (Dictionaries::default(), Dedupe::new(options.dedupe_window_ms), {
                let mut state = DerivedState::default();
                state.triggers.freshness_ms = options.trigger_freshness_ms;
                state.store.sealed.set_files(day_files.clone());
                state
            })
        };
        let (mut dicts, mut dedupe, mut state) = fresh();
        if options.load_snapshot {
            let (loaded, problems) = snapshot::load_newest(
                &snapshot_dir,
                meta.newest_snapshot().as_deref(),
                options.dedupe_window_ms,
                &day_files,
            );
            report.warnings.extend(problems);
            if let Some(contents) = loaded {
                report.snapshot_position = Some(contents.state.store.position);
                (dicts, dedupe, state) = (contents.dicts, contents.dedupe, contents.state);
                state.triggers.freshness_ms = options.trigger_freshness_ms;
            }
        }
        let mut events = 0;
        let storage = options.log_storage.as_ref();
        let replay_log = |dicts: &mut _, dedupe: &mut _, state: &mut _, events: &mut _| {
            replay(storage, &log_dir, options.recovery, dicts, dedupe, state, events)
        };
        let mut recovered = replay_log(&mut dicts, &mut dedupe, &mut state, &mut events)?;
        if recovered.end < state.store.position {
            // The snapshot is ahead of the log (the log lost its tail): it cannot be trusted.
            report.warnings.push(format!(
                "snapshot at log position {} is ahead of the log end {}; replaying the whole log",
                state.store.position, recovered.end
            ));
            report.snapshot_position = None;
            // Snapshots beyond the log end can never be used again: remove them.
            for (position, path) in snapshot::list(&snapshot_dir) {
                if position > recovered.end {
                    fs::remove_file(&path)
                        .context(|| format!("removing stale snapshot {}", path.display()))?;
                }
            }
            (dicts, dedupe, state) = fresh();
            events = 0;
            recovered = replay_log(&mut dicts, &mut dedupe, &mut state, &mut events)?;
        }
        if let Err(damage) = state.store.sealed.damage() {
            // Replay after the snapshot merged late rows into a version whose
            // file failed its check: set that file aside and replay the whole
            // log, which rebuilds it.
            report.warnings.push(format!("{damage}; replaying the whole log"));
            report.snapshot_position = None;
            if let crate::Error::Corrupt { path, .. } = &damage {
                sealing::set_aside(&day_files, path)?;
            }
            (dicts, dedupe, state) = fresh();
            events = 0;
            recovered = replay_log(&mut dicts, &mut dedupe, &mut state, &mut events)?;
        }
        dedupe.prune(options.clock.now_ms());
        report.replayed_frames = recovered.frames;
        report.replayed_events = events;
        report.truncated_bytes = recovered.truncated_bytes;

        let state = Arc::new(RwLock::new(state));
        let (written_tx, written_rx) = crossbeam_channel::bounded(1024);
        let config = WriterConfig {
            dir: log_dir,
            durability: options.durability,
            chunk_target_bytes: options.chunk_target_bytes,
            storage: Arc::clone(&options.log_storage),
            fault_injector: options.fault_injector.clone(),
        };
        let (writer_tx, writer_thread) = writer::spawn(config, &recovered, written_tx)?;
        let applier_state = Arc::clone(&state);
        let dicts = Arc::new(RwLock::new(dicts));
        let applier_dicts = Arc::clone(&dicts);
        let applier_thread = std::thread::Builder::new()
            .name("nudge-applier".into())
            .spawn(move || applier(written_rx, applier_state, applier_dicts))
            .context(|| "starting the applier thread".into())?;
        let engine = Engine {
            dir,
            sequencer: Mutex::new(Sequencer { dedupe, writer: Some(writer_tx) }),
            fire_lock: Mutex::new(()),
            wakers: Mutex::new(Vec::new()),
            outbox_leases: Mutex::new(crate::campaigns::outbox::Leases::default()),
            schedule_check_ms: std::sync::atomic::AtomicI64::new(0),
            dicts,
            state,
            threads: Mutex::new(vec![writer_thread, applier_thread]),
            meta,
            last_snapshot: Mutex::new(report.snapshot_position),
            report,
            options,
            seal_lock: Mutex::new(()),
            _lock: lock,
        };
        // Days cut but not written (a crash between the two entries), and
        // files the log recorded but that are missing or damaged.
        engine.finish_sealing()?;
        let mut engine = engine;
        engine.report.took = started.elapsed();
        Ok(engine)
    }

    /// What open found (snapshot used, frames replayed, bytes truncated).
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The engine's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.options.clock
    }

    /// Read access to dictionaries and derived state, consistent with each
    /// other (test support: the `internals` feature).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn read(&self) -> StateReader<'_> {
        self.read_state()
    }

    /// How many users the engine knows (every id seen in a record).
    pub fn user_count(&self) -> u32 {
        self.dicts.read().users.len()
    }

    /// Read access to dictionaries and derived state, consistent with each other.
    pub(crate) fn read_state(&self) -> StateReader<'_> {
        let dicts = self.dicts.read();
        let state = self.state.read();
        StateReader { dicts, state }
    }

    /// Runs `f` on a consistent cut: ingest is held, everything sequenced so far
    /// is durable and applied, so dictionaries, dedupe and state share one position.
    fn with_quiesced<T>(
        &self,
        f: impl FnOnce(&Dictionaries, &Dedupe, &DerivedState) -> Result<T>,
    ) -> Result<T> {
        self.with_quiesced_after(|_| {}, f)
    }

    /// [`Engine::with_quiesced`], running `first` on the state (exclusively)
    /// at the same cut.
    fn with_quiesced_after<T>(
        &self,
        first: impl FnOnce(&mut DerivedState),
        f: impl FnOnce(&Dictionaries, &Dedupe, &DerivedState) -> Result<T>,
    ) -> Result<T> {
        let mut sequencer = self.sequencer.lock();
        Self::request_sync(&sequencer)?.recv().map_err(|_| Error::Closed)??;
        // Expired ids are dropped first, so that the cut does not depend on when
        // pruning last ran (incremental state and replayed state encode equal).
        sequencer.dedupe.prune(self.options.clock.now_ms());
        let dicts = self.dicts.read();
        first(&mut self.state.write());
        let state = self.state.read();
        f(&dicts, &sequencer.dedupe, &state)
    }

    /// Writes a snapshot of derived state at the current log position and
    /// removes older snapshots beyond the few kept. Ingest waits while the
    /// state is encoded in memory, not while the file is written and synced.
    pub fn snapshot(&self) -> Result<PathBuf> {
        // No day file is replaced while the snapshot naming it is written.
        let _sealing = self.seal_lock.lock();
        let dir = self.dir.join(SNAPSHOT_DIR);
        // Subscription changes made while the snapshot is written are kept,
        // to be replayed onto it.
        let journal = |state: &mut DerivedState| state.store.subscriptions.start_journal();
        let encoded = self.with_quiesced_after(journal, |dicts, dedupe, state| {
            // A snapshot is never taken of answers a damaged file left short.
            state.store.sealed.damage()?;
            Ok(snapshot::encode_for_write(dicts, dedupe, state))
        });
        let written = encoded.and_then(|encoded| snapshot::write_encoded(&dir, encoded));
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.state.write().store.subscriptions.drop_journal();
                return Err(e);
            }
        };
        // What the snapshot holds as it stands now leaves the heap: the
        // running state reads it in place from the file just written.
        let (position, path) = (written.position, written.path);
        let mut state = self.state.write();
        state.store.profiles.rebase(written.profiles);
        state.store.subscriptions.rebase(written.subscriptions);
        drop(state);
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            self.meta.set_newest_snapshot(name)?;
        }
        snapshot::prune(&dir, SNAPSHOTS_KEPT)?;
        // Versions of days that only the pruned snapshots named.
        self.remove_day_files(None)?;
        *self.last_snapshot.lock() = Some(position);
        Ok(path)
    }

    /// The snapshot encoding of the current state (deterministic: two engines
    /// hold equal derived state exactly when these bytes are equal). For tests
    /// and diagnostics; it copies everything.
    pub fn encode_state(&self) -> Result<Vec<u8>> {
        self.with_quiesced(|dicts, dedupe, state| Ok(snapshot::encode(dicts, dedupe, state)))
    }

    /// Syncs the log, snapshots if configured and the log grew, and stops the
    /// pipeline threads. Dropping the engine does the same.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&self) -> Result<()> {
        if self.sequencer.lock().writer.is_none() {
            return Ok(());
        }
        let mut outcome = self.flush().map(|_| ());
        if outcome.is_ok() && self.options.snapshot_on_close {
            let position = self.state.read().position();
            if position > 0 && *self.last_snapshot.lock() != Some(position) {
                outcome = self.snapshot().map(|_| ());
            }
        }
        self.sequencer.lock().writer = None;
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
        outcome
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
