//! Derived state: everything the engine knows that is not the log itself.
//!
//! [`DerivedState`] is a pure fold of log batches: [`DerivedState::apply`]
//! takes one batch (already durable) and updates timelines, bitmap indexes,
//! profiles and subscriptions. Ingest calls it for new batches; open calls it
//! for the batches a snapshot does not cover. The same function on the same
//! batches in the same order gives the same state, which the replay tests
//! check bit for bit (`snapshot::encode` of both must be equal).
//!
//! Dictionaries and the idempotency index are derived too, but they are
//! updated earlier, when a batch is sequenced (`engine.rs`), because they
//! decide what the batch contains.

pub mod index;
pub mod profiles;
pub mod subscriptions;
pub mod timeline;

use crate::store::dict::{Dictionaries, EventId, FastMap};
use crate::store::log::LogPosition;
use crate::store::log::entry::{ArchivedLogBatch, ArchivedLogEntry};
use crate::store::props;
use crate::store::props::KeyId;
use index::Indexes;
use index::ValueUserIds;
use profiles::Profiles;
use subscriptions::{StoredSubscription, Subscriptions};
use timeline::Timelines;

/// Timelines, indexes, profiles and subscriptions, as of a log position.
#[derive(Debug, Clone, Default)]
pub struct DerivedState {
    /// Per-user events in time order.
    pub timelines: Timelines,
    /// Bitmap indexes.
    pub indexes: Indexes,
    /// Current profiles.
    pub profiles: Profiles,
    /// Active web push subscriptions.
    pub subscriptions: Subscriptions,
    /// Saved segments: name → expression text.
    pub segments: std::collections::BTreeMap<String, String>,
    /// Saved triggers and their pending fires.
    pub rules: crate::triggers::RuleState,
    /// Campaigns, by id.
    pub campaigns: std::collections::BTreeMap<String, crate::campaigns::campaign::StoredCampaign>,
    /// Queued messages, delivery settings, scheduled campaigns' progress.
    pub outbox: crate::campaigns::outbox::OutboxState,
    /// The log position this state reflects.
    pub position: LogPosition,
    /// When each day last received an event (not saved: a fresh state starts at zero).
    pub day_changes: crate::query::day_rows::DayChanges,
    /// Event-major views built on demand by queries (not saved, not compared).
    pub columns: crate::query::day_rows::ColumnCache,
}

impl DerivedState {
    /// Applies one durable batch ending at log position `end` (`dicts` already
    /// holds the batch's new names).
    pub fn apply(&mut self, batch: &ArchivedLogBatch, end: LogPosition, dicts: &Dictionaries) {
        self.apply_except_event_values(batch, end, dicts);
        apply_event_values(&mut self.indexes.event_property_value_user_ids, batch);
    }

    /// Applies everything of a batch but the event property value indexes, which
    /// the caller applies with [`apply_event_values`] (replay does so on another thread).
    pub fn apply_except_event_values(
        &mut self,
        batch: &ArchivedLogBatch,
        end: LogPosition,
        dicts: &Dictionaries,
    ) {
        let received_ms = batch.received_ms.to_native();
        // Triggers see the fresh events of live batches only.
        let live = !self.rules.is_empty()
            && !batch.entries.iter().any(|e| matches!(e, ArchivedLogEntry::History));
        for (index, entry) in batch.entries.iter().enumerate() {
            match entry {
                ArchivedLogEntry::Event(event) => {
                    let user = event.user.to_native();
                    let name = event.event.to_native();
                    let ts = event.ts_ms.to_native();
                    let props_at = self.timelines.insert(user, name, ts, &event.props);
                    self.indexes.add_event(user, name, ts);
                    self.day_changes.touch(crate::clock::day_of(ts));
                    if live && ts >= received_ms.saturating_sub(self.rules.freshness_ms) {
                        let event = crate::triggers::LiveEvent {
                            user,
                            event: name,
                            ts_ms: ts,
                            blob: &event.props,
                            props_at,
                            cause: crate::triggers::cause(end, index),
                            received_ms,
                        };
                        self.rules.on_event(dicts, self.timelines.arena(), &event);
                    }
                }
                ArchivedLogEntry::Profile(update) => {
                    self.indexes.all_user_ids.insert(update.user.to_native());
                    self.profiles.apply(update, &mut self.indexes.profile_property_value_user_ids);
                }
                ArchivedLogEntry::Subscribe(sub) => {
                    let user = sub.user.to_native();
                    self.indexes.all_user_ids.insert(user);
                    let stored = StoredSubscription {
                        user,
                        endpoint: sub.endpoint.to_string(),
                        p256dh: sub.p256dh.to_string(),
                        auth: sub.auth.to_string(),
                    };
                    self.subscriptions.subscribe(stored, &mut self.indexes.webpush_user_ids);
                }
                ArchivedLogEntry::Unsubscribe(unsub) => {
                    self.subscriptions
                        .unsubscribe(&unsub.endpoint, &mut self.indexes.webpush_user_ids);
                }
                ArchivedLogEntry::SegmentSaved(segment) => {
                    self.segments.insert(segment.name.to_string(), segment.query.to_string());
                }
                ArchivedLogEntry::SegmentRemoved(removed) => {
                    self.segments.remove(removed.name.as_str());
                }
                ArchivedLogEntry::TriggerSaved(trigger) => {
                    self.rules.save(&trigger.name, &trigger.trigger);
                }
                ArchivedLogEntry::TriggerRemoved(removed) => self.rules.remove(&removed.name),
                ArchivedLogEntry::Fire(fire) => self.rules.settle(
                    &fire.trigger,
                    fire.user.to_native(),
                    fire.cause.to_native(),
                    fire.due_ms.to_native(),
                ),
                ArchivedLogEntry::History => {}
                ArchivedLogEntry::CampaignSaved(saved) => {
                    // Validated before it was logged; one that no longer decodes is skipped.
                    if let Some(campaign) =
                        crate::campaigns::campaign::Campaign::decode(&saved.definition)
                    {
                        let paused =
                            self.campaigns.get(saved.id.as_str()).is_some_and(|c| c.paused);
                        let stored = crate::campaigns::campaign::StoredCampaign {
                            campaign,
                            paused,
                            saved_ms: received_ms,
                        };
                        self.campaigns.insert(saved.id.to_string(), stored);
                    }
                }
                ArchivedLogEntry::CampaignRemoved(removed) => {
                    self.campaigns.remove(removed.id.as_str());
                    self.outbox.forget_campaign(removed.id.as_str());
                }
                ArchivedLogEntry::Delivery(delivery) => {
                    // Written by the engine; one that no longer decodes is skipped.
                    if let Some(record) =
                        crate::campaigns::outbox::DeliveryRecord::decode(&delivery.body)
                    {
                        self.outbox.apply(record);
                    }
                }
                ArchivedLogEntry::CampaignPaused(paused) => {
                    if let Some(stored) = self.campaigns.get_mut(paused.id.as_str()) {
                        stored.paused = paused.paused;
                    }
                }
            }
        }
        debug_assert!(end >= self.position);
        self.position = end;
    }

    /// Approximate heap bytes held by derived state.
    pub fn heap_bytes(&self) -> usize {
        self.timelines.heap_bytes() + self.indexes.heap_bytes() + self.profiles.heap_bytes()
    }
}

/// Applies a batch's event property values to the value indexes.
pub fn apply_event_values(
    values: &mut FastMap<(EventId, KeyId), ValueUserIds>,
    batch: &ArchivedLogBatch,
) {
    for entry in batch.entries.iter() {
        if let ArchivedLogEntry::Event(event) = entry {
            Indexes::add_event_values(
                values,
                event.user.to_native(),
                event.event.to_native(),
                &event.props,
            );
        }
    }
}

/// How many users, event names and keys the dictionaries hold: enough to check
/// references without the names themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DictionarySizes {
    /// Users defined.
    pub users: u32,
    /// Event names defined.
    pub events: u32,
    /// Property keys defined.
    pub keys: u32,
}

impl DictionarySizes {
    /// The sizes of `dicts`.
    pub fn of(dicts: &Dictionaries) -> Self {
        DictionarySizes {
            users: dicts.users.len(),
            events: dicts.events.len(),
            keys: dicts.keys.len(),
        }
    }

    /// Adds the entries `batch` defines.
    pub fn extend(&mut self, batch: &ArchivedLogBatch) {
        self.users = self.users.saturating_add(batch.new_users.len() as u32);
        self.events = self.events.saturating_add(batch.new_event_names.len() as u32);
        self.keys = self.keys.saturating_add(batch.new_keys.len() as u32);
    }
}

/// Checks that a batch read from disk only refers to ids the dictionaries
/// define (`sizes` counts the batch's own new entries already) and that every
/// property blob is well formed. A batch that fails is treated as corruption.
pub fn check_batch_refs(batch: &ArchivedLogBatch, sizes: DictionarySizes) -> Result<(), String> {
    let DictionarySizes { users, events, keys } = sizes;
    let user_ok = |u: u32| {
        if u < users { Ok(()) } else { Err(format!("user id {u} is not defined ({users} users)")) }
    };
    let blob_ok =
        |b: &[u8], what: &str| props::validate(b, keys).map_err(|e| format!("{what}: {e}"));
    for (i, entry) in batch.entries.iter().enumerate() {
        let checked = match entry {
            ArchivedLogEntry::Event(e) => {
                let name = e.event.to_native();
                user_ok(e.user.to_native())
                    .and_then(|()| {
                        if name < events {
                            Ok(())
                        } else {
                            Err(format!("event id {name} is not defined"))
                        }
                    })
                    .and_then(|()| blob_ok(&e.props, "props"))
                    .and_then(|()| {
                        crate::store::record::check_timestamp("ts", e.ts_ms.to_native())
                            .map_err(|e| e.to_string())
                    })
            }
            ArchivedLogEntry::Profile(p) => user_ok(p.user.to_native())
                .and_then(|()| blob_ok(&p.set, "set"))
                .and_then(|()| blob_ok(&p.set_once, "set_once"))
                .and_then(|()| blob_ok(&p.increment, "increment"))
                .and_then(|()| blob_ok(&p.append, "append"))
                .and_then(|()| match p.unset.iter().find(|k| u32::from(k.to_native()) >= keys) {
                    Some(k) => Err(format!("unset key id {k} is not defined")),
                    None => Ok(()),
                }),
            ArchivedLogEntry::Subscribe(s) => user_ok(s.user.to_native()),
            ArchivedLogEntry::Fire(f) => user_ok(f.user.to_native()),
            ArchivedLogEntry::Unsubscribe(_)
            | ArchivedLogEntry::SegmentSaved(_)
            | ArchivedLogEntry::SegmentRemoved(_)
            | ArchivedLogEntry::TriggerSaved(_)
            | ArchivedLogEntry::TriggerRemoved(_)
            | ArchivedLogEntry::History
            | ArchivedLogEntry::CampaignSaved(_)
            | ArchivedLogEntry::CampaignRemoved(_)
            | ArchivedLogEntry::CampaignPaused(_)
            | ArchivedLogEntry::Delivery(_) => Ok(()),
        };
        checked.map_err(|e| format!("entry {i}: {e}"))?;
    }
    Ok(())
}
