//! The body of a log record: the rkyv-encoded structures the log stores.
//!
//! One ingest call becomes one [`LogBatch`]. A batch first lists the dictionary
//! entries it introduces (new users, event names and property keys, in the
//! order their dense ids were assigned), then its entries, which refer to
//! users, events and keys by dense id only. Replaying batches in log order
//! therefore rebuilds exactly the same ids (see `dict.rs`).
//!
//! Event and profile properties are carried as blobs of the property codec
//! (`props.rs`), so replay copies them into the arena without re-encoding.
//! The record kinds that later parts of the engine append (definitions, fire
//! records, timers, deliveries) get their own frame kind byte; see
//! `docs/design/event-log-format.md`.

use rkyv::{Archive, Deserialize, Serialize};

/// One ingest call, as stored in the log.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct LogBatch {
    /// Engine clock when the batch was sequenced (drives the idempotency window).
    pub received_ms: i64,
    /// External ids of users first seen in this batch; their dense ids follow the
    /// current user count, in this order.
    pub new_users: Vec<String>,
    /// Event names first seen in this batch, likewise.
    pub new_event_names: Vec<String>,
    /// Property keys first seen in this batch, likewise.
    pub new_keys: Vec<String>,
    /// The records, in arrival order.
    pub entries: Vec<LogEntry>,
}

/// One stored record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum LogEntry {
    /// A behavioural event.
    Event(LogEvent),
    /// A profile update.
    Profile(LogProfile),
    /// A web push subscription added.
    Subscribe(LogSubscribe),
    /// A web push subscription removed.
    Unsubscribe(LogUnsubscribe),
    /// A segment saved under a name.
    SegmentSaved(LogSegment),
    /// A saved segment removed.
    SegmentRemoved(LogSegmentRemoved),
    /// A trigger saved under a name.
    TriggerSaved(LogTrigger),
    /// A saved trigger removed.
    TriggerRemoved(LogTriggerRemoved),
    /// A trigger's fire decided (fired or dropped), written before any action.
    Fire(LogFire),
    /// Marks a batch of history (import): its events arm and fire no trigger.
    History,
    /// A campaign saved (its definition, rkyv-encoded: `campaign::Campaign::encode`).
    CampaignSaved(LogCampaign),
    /// A campaign removed.
    CampaignRemoved(LogCampaignRemoved),
    /// A campaign paused or resumed.
    CampaignPaused(LogCampaignPaused),
    /// An outbox, settings or schedule record (`outbox::DeliveryRecord`, rkyv-encoded).
    Delivery(LogDelivery),
    /// A UTC day's rows leave the in-memory head for a sealing buffer (the
    /// cut; `docs/design/sealed-days.md`).
    SealDay(LogSealDay),
    /// The day file of a cut is durable.
    DaySealed(LogDaySealed),
    /// Whether a saved segment may be named to the write key; written in the
    /// batch that saves it (a save without it makes the segment private).
    SegmentVisibility(LogSegmentVisibility),
}

/// An event with dense ids.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogEvent {
    /// Dense user id.
    pub user: u32,
    /// Dense event-name id.
    pub event: u32,
    /// Event time, epoch ms UTC (the engine clock filled it in when absent).
    pub ts_ms: i64,
    /// Idempotency id, when the caller gave one.
    pub id: Option<String>,
    /// Properties in the property codec.
    pub props: Vec<u8>,
}

/// A profile update with dense ids; applied set, set_once, unset, increment, append.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogProfile {
    /// Dense user id.
    pub user: u32,
    /// Properties to overwrite (property codec).
    pub set: Vec<u8>,
    /// Properties to set when absent (property codec).
    pub set_once: Vec<u8>,
    /// Key ids to remove.
    pub unset: Vec<u16>,
    /// Numbers to add (property codec, numbers only).
    pub increment: Vec<u8>,
    /// Values to append (property codec).
    pub append: Vec<u8>,
}

/// A subscription added.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogSubscribe {
    /// Dense user id.
    pub user: u32,
    /// Push service URL.
    pub endpoint: String,
    /// Browser public key, base64url.
    pub p256dh: String,
    /// Auth secret, base64url.
    pub auth: String,
}

/// A subscription removed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogUnsubscribe {
    /// Push service URL.
    pub endpoint: String,
}

/// A segment saved.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogSegment {
    /// Its name.
    pub name: String,
    /// Its expression, as the user wrote it.
    pub query: String,
}

/// A saved segment removed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogSegmentRemoved {
    /// Its name.
    pub name: String,
}

/// A saved segment's visibility.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogSegmentVisibility {
    /// The segment's name.
    pub name: String,
    /// Whether `GET /v1/users/{id}/segments` (the write key) may name it.
    pub public: bool,
}

/// A trigger saved.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogTrigger {
    /// Its name.
    pub name: String,
    /// Its text, as the user wrote it.
    pub trigger: String,
}

/// A saved trigger removed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogTriggerRemoved {
    /// Its name.
    pub name: String,
}

/// A fire decided for (trigger, user, cause).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogFire {
    /// The trigger's name.
    pub trigger: String,
    /// Dense user id.
    pub user: u32,
    /// The triggering event: its batch's log position and index (`rules::cause`).
    pub cause: u64,
    /// When it fell due, epoch ms.
    pub due_ms: i64,
    /// What was decided (`rules::FireOutcome` as a byte).
    pub outcome: u8,
}

/// A campaign saved.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogCampaign {
    /// Its id.
    pub id: String,
    /// Its definition, encoded on its own so campaign fields never change this layout.
    pub definition: Vec<u8>,
}

/// A campaign removed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogCampaignRemoved {
    /// Its id.
    pub id: String,
}

/// A campaign paused or resumed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogCampaignPaused {
    /// Its id.
    pub id: String,
    /// Paused (true) or running (false).
    pub paused: bool,
}

/// An outbox, settings or schedule record.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogDelivery {
    /// `outbox::DeliveryRecord::encode`: its own encoding, so new kinds never change this layout.
    pub body: Vec<u8>,
}

/// A day's head rows cut for sealing.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogSealDay {
    /// The UTC day: days since 1970-01-01.
    pub day: i32,
}

/// A day file made durable.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogDaySealed {
    /// The UTC day.
    pub day: i32,
    /// The file's version.
    pub version: u32,
    /// Rows in the file.
    pub rows: u64,
    /// The file's checksum (the CRC-32C of its directory).
    pub checksum: u32,
}

/// Encodes a value that is stored on its own inside a log entry or a
/// snapshot (a campaign, a delivery record, the outbox).
pub fn encode_blob<T>(value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    // Serializing plain owned data into a growable buffer cannot fail.
    rkyv::to_bytes::<rkyv::rancor::Error>(value).map(|b| b.to_vec()).unwrap_or_default()
}

/// Decodes what [`encode_blob`] wrote (`None` when the bytes do not check out).
pub fn decode_blob<T>(bytes: &[u8]) -> Option<T>
where
    T: Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rkyv::rancor::Error>(&aligned).ok()
}

/// Encodes a batch with rkyv.
pub fn encode_batch(batch: &LogBatch) -> rkyv::util::AlignedVec {
    // Serializing plain owned data into a growable buffer cannot fail.
    rkyv::to_bytes::<rkyv::rancor::Error>(batch).unwrap_or_default()
}

/// Validates and accesses an encoded batch (bytes must be 16-byte aligned).
pub fn access_batch(bytes: &[u8]) -> Result<&ArchivedLogBatch, String> {
    rkyv::access::<ArchivedLogBatch, rkyv::rancor::Error>(bytes).map_err(|e| e.to_string())
}

/// The bytes of a batch, validated once with `rkyv::access`; reading them
/// afterwards skips validation. Replay validates on the reading thread and
/// applies on others; ingest validates in the caller's thread, off the applier.
#[derive(Debug)]
pub struct ValidatedBatch {
    bytes: rkyv::util::AlignedVec,
}

impl ValidatedBatch {
    /// Validates `bytes` as a `LogBatch`.
    pub fn new(bytes: rkyv::util::AlignedVec) -> Result<Self, String> {
        access_batch(&bytes)?;
        Ok(ValidatedBatch { bytes })
    }

    /// The archived batch.
    #[allow(unsafe_code)]
    pub fn get(&self) -> &ArchivedLogBatch {
        // SAFETY: `new` validated exactly these bytes with `rkyv::access`; they are
        // owned by `self`, never mutated afterwards, and `AlignedVec` keeps the
        // alignment the validation saw. This is the case rkyv documents for
        // `access_unchecked`.
        unsafe { rkyv::access_unchecked::<ArchivedLogBatch>(&self.bytes) }
    }
}
