//! Sequencing: turning validated records into one log batch under the
//! sequencer lock: idempotency ids checked, new users, event names and
//! property keys given their dense ids, and every record mapped to the
//! `LogEntry` the log stores.

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::store::dedupe::Dedupe;
use crate::store::dict::{Dictionaries, Dictionary, FastMap, Full};
use crate::store::log::entry::{
    LogBatch, LogEntry, LogEvent, LogProfile, LogSubscribe, LogUnsubscribe,
};
use crate::store::props::{self, KeyId, Value};
use crate::store::record::{Event, Record};

/// One input of a batch: a caller's record (validated), or a log entry a
/// layer above built and checked itself (a definition, a fire, an outbox
/// record), which needs no id assigned.
#[derive(Debug, Clone)]
pub enum Input {
    /// A record of a caller (or an event the engine adds for a user).
    Record(Record),
    /// A ready-made entry.
    Entry(LogEntry),
}

impl From<Record> for Input {
    fn from(record: Record) -> Self {
        Input::Record(record)
    }
}

impl From<Event> for Input {
    fn from(event: Event) -> Self {
        Input::Record(Record::Event(event))
    }
}

impl From<LogEntry> for Input {
    fn from(entry: LogEntry) -> Self {
        Input::Entry(entry)
    }
}

/// How the events of a batch count for triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Events arm and complete triggers as they arrive.
    Live,
    /// History (`nudge import`): stored like any other, but they arm and fire
    /// no trigger (the batch starts with the `History` marker entry).
    History,
}

/// Turns inputs into a log batch, assigning ids; returns the batch and the
/// indexes of the inputs dropped as duplicate events. Runs under the
/// sequencer lock, which makes log order equal id-assignment order.
pub fn sequence(
    dictionaries: &RwLock<Dictionaries>,
    dedupe: &mut Dedupe,
    inputs: impl IntoIterator<Item = Input>,
    now: i64,
    mode: IngestMode,
) -> Result<(LogBatch, Vec<usize>)> {
    let mut batch = LogBatch { received_ms: now, ..Default::default() };
    if mode == IngestMode::History {
        batch.entries.push(LogEntry::History);
    }
    let mut duplicates = Vec::new();
    let mut ids_in_batch = std::collections::HashSet::new();
    let mut new_names = NewNames::default();
    let dicts = dictionaries.upgradable_read();
    for (index, input) in inputs.into_iter().enumerate() {
        let record = match input {
            Input::Entry(entry) => {
                batch.entries.push(entry);
                continue;
            }
            Input::Record(record) => record,
        };
        let entry = match record {
            Record::Event(event) => {
                if let Some(id) = &event.id {
                    let hash = Dedupe::hash(id);
                    if dedupe.is_duplicate(hash, now) || !ids_in_batch.insert(hash) {
                        duplicates.push(index);
                        continue;
                    }
                }
                LogEntry::Event(LogEvent {
                    user: new_names.user(&dicts, &event.user_id),
                    event: new_names.event(&dicts, &event.name),
                    ts_ms: event.ts_ms.unwrap_or(now),
                    props: new_names.blob(&dicts, &event.props),
                    id: event.id,
                })
            }
            Record::Profile(update) => {
                let unset = update.unset.iter().map(|k| new_names.key(&dicts, k)).collect();
                let increment: Vec<(String, Value)> =
                    update.increment.iter().map(|(k, n)| (k.clone(), Value::Number(*n))).collect();
                LogEntry::Profile(LogProfile {
                    user: new_names.user(&dicts, &update.user_id),
                    set: new_names.blob(&dicts, &update.set),
                    set_once: new_names.blob(&dicts, &update.set_once),
                    unset,
                    increment: new_names.blob(&dicts, &increment),
                    append: new_names.blob(&dicts, &update.append),
                })
            }
            Record::Subscribe { user_id, subscription } => LogEntry::Subscribe(LogSubscribe {
                user: new_names.user(&dicts, &user_id),
                endpoint: subscription.endpoint,
                p256dh: subscription.p256dh,
                auth: subscription.auth,
            }),
            Record::Unsubscribe { endpoint } => LogEntry::Unsubscribe(LogUnsubscribe { endpoint }),
        };
        batch.entries.push(entry);
    }
    dicts.room_for(new_names.users.len(), new_names.events.len(), new_names.keys.len()).map_err(
        |full| {
            let (field, what) = match full {
                Full::Users => ("user_id", "users"),
                Full::Events => ("name", "event names"),
                Full::Keys => ("props", "property keys"),
            };
            Error::invalid(None, field, format!("the dictionary of {what} is full"))
        },
    )?;
    // Nothing can fail from here on: commit dedupe entries and names.
    for entry in &batch.entries {
        if let LogEntry::Event(LogEvent { id: Some(id), .. }) = entry {
            dedupe.insert(Dedupe::hash(id), now);
        }
    }
    if !new_names.is_empty() {
        let mut dicts = parking_lot::RwLockUpgradableReadGuard::upgrade(dicts);
        for name in &new_names.users {
            dicts.users.push(name);
        }
        for name in &new_names.events {
            dicts.events.push(name);
        }
        for name in &new_names.keys {
            dicts.keys.push(name);
        }
    }
    batch.new_users = new_names.users;
    batch.new_event_names = new_names.events;
    batch.new_keys = new_names.keys;
    Ok((batch, duplicates))
}

/// Names first seen in the batch being sequenced, with their tentative ids.
#[derive(Default)]
struct NewNames {
    users: Vec<String>,
    events: Vec<String>,
    keys: Vec<String>,
    user_ids: FastMap<String, u32>,
    event_ids: FastMap<String, u32>,
    key_ids: FastMap<String, u32>,
}

fn resolve(
    dict: &Dictionary,
    names: &mut Vec<String>,
    ids: &mut FastMap<String, u32>,
    name: &str,
) -> u32 {
    if let Some(id) = dict.get(name) {
        return id;
    }
    if let Some(id) = ids.get(name) {
        return *id;
    }
    let id = dict.len().saturating_add(names.len() as u32);
    names.push(name.to_owned());
    ids.insert(name.to_owned(), id);
    id
}

impl NewNames {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.events.is_empty() && self.keys.is_empty()
    }

    fn user(&mut self, dicts: &Dictionaries, name: &str) -> u32 {
        resolve(&dicts.users, &mut self.users, &mut self.user_ids, name)
    }

    fn event(&mut self, dicts: &Dictionaries, name: &str) -> u32 {
        resolve(&dicts.events, &mut self.events, &mut self.event_ids, name)
    }

    /// The key id of a property name (room was checked against `MAX_PROPERTY_KEYS`).
    fn key(&mut self, dicts: &Dictionaries, name: &str) -> KeyId {
        let id = resolve(&dicts.keys, &mut self.keys, &mut self.key_ids, name);
        KeyId::try_from(id).unwrap_or(KeyId::MAX)
    }

    /// Encodes properties with key ids, sorted by id.
    fn blob(&mut self, dicts: &Dictionaries, props: &[(String, Value)]) -> Vec<u8> {
        let mut pairs: Vec<(KeyId, &Value)> =
            props.iter().map(|(k, v)| (self.key(dicts, k), v)).collect();
        pairs.sort_by_key(|(k, _)| *k);
        let mut blob = Vec::new();
        props::encode(&mut blob, &pairs);
        blob
    }
}
