//! Sequencing: turning validated records into one log batch under the
//! sequencer lock: idempotency ids checked, new users, event names and
//! property keys given their dense ids, and every record mapped to the
//! `LogEntry` the log stores.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::store::dedupe::Dedupe;
use crate::store::dict::{Dictionaries, Dictionary, FastMap, Full};
use crate::store::log::entry::{
    self, LogBatch, LogEntry, LogEvent, LogProfile, LogSegment, LogSegmentRemoved, LogSubscribe,
    LogUnsubscribe,
};
use crate::store::props::{self, KeyId, Value};
use crate::store::record::Record;

impl Engine {
    /// Turns validated records into a log batch, assigning ids. Runs under the sequencer lock.
    pub(crate) fn sequence(
        &self,
        dedupe: &mut Dedupe,
        records: Vec<Record>,
        now: i64,
    ) -> Result<(LogBatch, Vec<usize>)> {
        let mut batch = LogBatch { received_ms: now, ..Default::default() };
        let mut duplicates = Vec::new();
        let mut ids_in_batch = std::collections::HashSet::new();
        let mut new_names = NewNames::default();
        let dicts = self.dicts.upgradable_read();
        for (index, record) in records.into_iter().enumerate() {
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
                    let increment: Vec<(String, Value)> = update
                        .increment
                        .iter()
                        .map(|(k, n)| (k.clone(), Value::Number(*n)))
                        .collect();
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
                Record::Unsubscribe { endpoint } => {
                    LogEntry::Unsubscribe(LogUnsubscribe { endpoint })
                }
                Record::SaveSegment { name, query } => {
                    LogEntry::SegmentSaved(LogSegment { name, query })
                }
                Record::RemoveSegment { name } => {
                    LogEntry::SegmentRemoved(LogSegmentRemoved { name })
                }
                Record::SaveTrigger { name, trigger } => {
                    LogEntry::TriggerSaved(entry::LogTrigger { name, trigger })
                }
                Record::RemoveTrigger { name } => {
                    LogEntry::TriggerRemoved(entry::LogTriggerRemoved { name })
                }
                Record::History => LogEntry::History,
                Record::SaveCampaign(campaign) => LogEntry::CampaignSaved(entry::LogCampaign {
                    id: campaign.id.clone(),
                    definition: campaign.encode(),
                }),
                Record::RemoveCampaign { id } => {
                    LogEntry::CampaignRemoved(entry::LogCampaignRemoved { id })
                }
                Record::SetCampaignPaused { id, paused } => {
                    LogEntry::CampaignPaused(entry::LogCampaignPaused { id, paused })
                }
                Record::Delivery(delivery) => {
                    LogEntry::Delivery(entry::LogDelivery { body: delivery.encode() })
                }
                Record::Fire(fire) => LogEntry::Fire(entry::LogFire {
                    trigger: fire.trigger,
                    user: fire.user,
                    cause: fire.cause,
                    due_ms: fire.due_ms,
                    outcome: fire.outcome as u8,
                }),
            };
            batch.entries.push(entry);
        }
        dicts
            .room_for(new_names.users.len(), new_names.events.len(), new_names.keys.len())
            .map_err(|full| {
                let (field, what) = match full {
                    Full::Users => ("user_id", "users"),
                    Full::Events => ("name", "event names"),
                    Full::Keys => ("props", "property keys"),
                };
                Error::invalid(None, field, format!("the dictionary of {what} is full"))
            })?;
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
