//! Shared by the log-level simulation tests: a log writer over `SimStorage`
//! driven one request at a time, and records whose bodies say who they are.
#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use nudge_engine::internals::log::format::{self, RecordKind};
use nudge_engine::internals::log::recovery::{self, Recovered};
use nudge_engine::internals::log::sim::SimStorage;
use nudge_engine::internals::log::writer::{self, Request, WriterConfig, Written};
use nudge_engine::{Durability, RecoveryMode};
use nudge_engine::{Error, Result};

/// The log directory inside the simulated disk.
pub const LOG: &str = "/sim/log";

/// The body of record `id`: its id, then `len - 8` bytes derived from it.
pub fn body(id: u64, len: usize) -> Vec<u8> {
    let mut body = id.to_le_bytes().to_vec();
    body.extend((0..len.saturating_sub(8)).map(|i| (id as u8).wrapping_mul(31) ^ (i / 7) as u8));
    body
}

/// The id of a recovered body, checking every byte.
pub fn id_of(body: &[u8]) -> Result<u64> {
    let id = u64::from_le_bytes(body.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
    if body != body_for_check(id, body.len()) {
        return Err(Error::corrupt(LOG, format!("record {id} came back with other bytes")));
    }
    Ok(id)
}

fn body_for_check(id: u64, len: usize) -> Vec<u8> {
    body(id, len.max(8))
}

/// A running writer, answering one request at a time.
pub struct Log {
    requests: Option<Sender<Request<u64>>>,
    answers: Receiver<Written<u64>>,
    thread: Option<JoinHandle<()>>,
    pub recovered: Recovered,
}

/// Recovers the log on the current boot of `sim`, then starts a writer.
/// Returns the ids of the records found, in log order.
pub fn open(
    sim: &SimStorage,
    durability: Durability,
    chunk_target_bytes: u64,
    mode: RecoveryMode,
) -> Result<(Vec<u64>, Log)> {
    let storage = sim.storage();
    let mut ids = Vec::new();
    let recovered = recovery::recover(storage.as_ref(), Path::new(LOG), mode, 0, |_, frame| {
        ids.push(id_of(&frame.body)?);
        Ok(())
    })?;
    let (answers_tx, answers) = crossbeam_channel::unbounded();
    let config = WriterConfig {
        dir: LOG.into(),
        durability,
        chunk_target_bytes,
        storage,
        fault_injector: None,
    };
    let (requests, thread) = writer::spawn(config, &recovered, answers_tx)?;
    Ok((ids, Log { requests: Some(requests), answers, thread: Some(thread), recovered }))
}

impl Log {
    fn ask(&self, request: Request<u64>) -> Result<u64> {
        self.requests.as_ref().ok_or(Error::Closed)?.send(request).map_err(|_| Error::Closed)?;
        self.answers.recv().map_err(|_| Error::Closed)?.result
    }

    /// Appends record `id` with a body of `len` bytes; waits for the answer.
    pub fn append(&self, id: u64, len: usize) -> Result<u64> {
        let mut frame = Vec::new();
        format::encode_frame(&mut frame, RecordKind::Batch, &body(id, len));
        self.ask(Request::Append { frame, payload: id })
    }

    /// Syncs everything written; waits for the answer.
    pub fn sync(&self) -> Result<u64> {
        self.ask(Request::Sync { payload: u64::MAX })
    }
}

impl Drop for Log {
    /// Stops the writer the way the engine does: it syncs what it wrote, unless poisoned.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The number of seeds to run: `NUDGE_SIM_SEEDS`, or `default`.
pub fn seeds(default: u64) -> u64 {
    std::env::var("NUDGE_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}
