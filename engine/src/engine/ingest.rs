//! Ingest: caller records, and the inputs the layers build (definitions,
//! fires, outbox records, the events that record decisions), through the
//! sequencer to the writer and the applier (see `mod.rs` for the pipeline).

use crossbeam_channel::Receiver;

use super::{Engine, IngestOutcome, Pending, Sequencer};
use crate::error::{Error, Result};
use crate::limits::{MAX_BATCH_RECORDS, MAX_RECORD_BYTES};
use crate::store::log::LogPosition;
use crate::store::log::entry::{self, ValidatedBatch};
use crate::store::log::format::{self, RecordKind};
use crate::store::log::writer::Request;
use crate::store::record::{self, Record};
use crate::store::sequencer::{self, IngestMode, Input};

impl Engine {
    /// Stores a batch of records; returns once the batch is durable (per the
    /// durability mode) and visible to readers. One invalid record rejects the
    /// whole batch with its index, and nothing is stored.
    pub fn ingest(&self, records: Vec<Record>) -> Result<IngestOutcome> {
        self.ingest_records(records, IngestMode::Live)
    }

    /// Ingests records as history (`nudge import`): stored like any others,
    /// but they arm and fire no trigger.
    pub fn ingest_history(&self, records: Vec<Record>) -> Result<IngestOutcome> {
        self.ingest_records(records, IngestMode::History)
    }

    fn ingest_records(&self, records: Vec<Record>, mode: IngestMode) -> Result<IngestOutcome> {
        record::validate_batch(&records)?;
        // Straight into the sequencer: no second vector of the batch.
        self.ingest_with(records.into_iter().map(Input::Record), mode)
    }

    /// Stores what a layer built: its records are validated like a caller's,
    /// its log entries were checked when they were built.
    pub(crate) fn ingest_inputs(&self, inputs: Vec<Input>) -> Result<IngestOutcome> {
        record::check_batch_len(inputs.len())?;
        for (index, input) in inputs.iter().enumerate() {
            if let Input::Record(record) = input {
                record::validate(record).map_err(|e| e.at_index(index))?;
            }
        }
        self.ingest_with(inputs, IngestMode::Live)
    }

    /// Test support: stores log entries as the engine would write them,
    /// unchecked (a half-done schedule run, a forged record). Never part of
    /// the embedding API.
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn ingest_entries(
        &self,
        entries: Vec<crate::store::log::entry::LogEntry>,
    ) -> Result<IngestOutcome> {
        self.ingest_with(entries.into_iter().map(Input::Entry), IngestMode::Live)
    }

    /// Ingests groups of inputs, never splitting a group across batches.
    pub(crate) fn ingest_groups(&self, groups: Vec<Vec<Input>>) -> Result<()> {
        let total: usize = groups.iter().map(Vec::len).sum();
        let mut batch = Vec::with_capacity(total.min(MAX_BATCH_RECORDS));
        for group in groups {
            if !batch.is_empty() && batch.len() + group.len() > MAX_BATCH_RECORDS {
                let next = Vec::with_capacity(total.min(MAX_BATCH_RECORDS));
                self.ingest_inputs(std::mem::replace(&mut batch, next))?;
            }
            batch.extend(group);
        }
        if !batch.is_empty() {
            self.ingest_inputs(batch)?;
        }
        Ok(())
    }

    /// Sequences validated inputs, hands the batch to the writer and waits
    /// until it is durable and applied.
    fn ingest_with(
        &self,
        inputs: impl IntoIterator<Item = Input>,
        mode: IngestMode,
    ) -> Result<IngestOutcome> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let (accepted, duplicate_indexes) = {
            let mut sequencer = self.sequencer.lock();
            let Some(writer) = sequencer.writer.clone() else { return Err(Error::Closed) };
            let now = self.options.clock.now_ms();
            sequencer.dedupe.prune(now);
            let (batch, duplicate_indexes) =
                sequencer::sequence(&self.dicts, &mut sequencer.dedupe, inputs, now, mode)?;
            let accepted = batch.entries.len();
            let request = if accepted == usize::from(mode == IngestMode::History) {
                // Only duplicates: wait until everything before is durable, store nothing.
                Request::Sync { payload: Pending { batch: None, reply: reply_tx } }
            } else {
                let bytes = entry::encode_batch(&batch);
                let mut frame = Vec::with_capacity(bytes.len() / 2 + format::FRAME_HEADER_BYTES);
                format::encode_frame(&mut frame, RecordKind::Batch, &bytes);
                if frame.len() > MAX_RECORD_BYTES {
                    // Nothing is committed yet except dedupe and names, which select nobody.
                    return Err(Error::invalid(
                        None,
                        "records",
                        format!(
                            "the batch encodes to {} bytes, more than the limit of {MAX_RECORD_BYTES}; send it in smaller batches",
                            frame.len()
                        ),
                    ));
                }
                // Bytes this process just encoded always validate; anything else is a bug
                // worth refusing the batch over rather than panicking.
                let batch = ValidatedBatch::new(bytes).map_err(|why| Error::Poisoned {
                    cause: format!("an encoded batch failed validation: {why}"),
                })?;
                Request::Append { frame, payload: Pending { batch: Some(batch), reply: reply_tx } }
            };
            writer.send(request).map_err(|_| Error::Closed)?;
            (accepted, duplicate_indexes)
        };
        let position = reply_rx.recv().map_err(|_| Error::Closed)??;
        for wake in self.wakers.lock().iter() {
            let _ = wake.try_send(());
        }
        Ok(IngestOutcome {
            // The history marker is the engine's, not the caller's.
            accepted: accepted - usize::from(mode == IngestMode::History),
            duplicates: duplicate_indexes.len(),
            duplicate_indexes,
            position,
        })
    }

    /// Waits until everything acknowledged so far is synced to disk (a no-op
    /// cost in `SyncPerBatch` mode beyond one round trip).
    pub fn flush(&self) -> Result<LogPosition> {
        let reply = Self::request_sync(&self.sequencer.lock())?;
        reply.recv().map_err(|_| Error::Closed)?
    }

    /// Queues a sync behind everything sequenced so far; the answer arrives once
    /// all of it is durable and applied. Call with the sequencer locked.
    pub(super) fn request_sync(sequencer: &Sequencer) -> Result<Receiver<Result<LogPosition>>> {
        let writer = sequencer.writer.as_ref().ok_or(Error::Closed)?;
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        writer
            .send(Request::Sync { payload: Pending { batch: None, reply: reply_tx } })
            .map_err(|_| Error::Closed)?;
        Ok(reply_rx)
    }
}
