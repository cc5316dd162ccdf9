//! The store's derived state: timelines, bitmap indexes, profiles and
//! subscriptions, folded from the core log entries.
//!
//! [`StoreState::apply_entry`] applies one entry of a durable batch (events,
//! profile updates, subscription changes; the rest belong to higher layers)
//! and hands back an event as it was applied, for the triggers layer. The
//! facade's `DerivedState` calls it for every entry in log order, on ingest
//! and at replay. The same entries in the same order give the same state,
//! which the replay tests check bit for bit.
//!
//! Dictionaries and the idempotency index are derived too, but they are
//! updated earlier, when a batch is sequenced (`sequencer.rs`), because they
//! decide what the batch contains.

mod day_changes;
pub mod index;
pub mod lazy_bitmap;
pub mod mapped;
pub mod profiles;
pub mod sealed_days;
pub mod subscriptions;
pub mod timeline;

use crate::store::dict::{Dictionaries, EventId, FastMap, UserId};
use crate::store::log::LogPosition;
use crate::store::log::entry::{ArchivedLogBatch, ArchivedLogEntry};
use crate::store::props;
use crate::store::props::KeyId;
pub use day_changes::DayChanges;
use index::Indexes;
use index::ValueUserIds;
use profiles::Profiles;
use sealed_days::SealedDays;
use std::borrow::Cow;
use subscriptions::{StoredSubscription, Subscriptions};
use timeline::TimelineEntry;
use timeline::Timelines;

/// Timelines, indexes, profiles and subscriptions, as of a log position.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    /// Per-user events in time order.
    pub timelines: Timelines,
    /// Bitmap indexes.
    pub indexes: Indexes,
    /// Current profiles.
    pub profiles: Profiles,
    /// Active web push subscriptions.
    pub subscriptions: Subscriptions,
    /// The log position this state reflects.
    pub position: LogPosition,
    /// When each day last received an event (not saved: a fresh state starts at zero).
    pub day_changes: DayChanges,
    /// The sealed days (`sealed_days.rs`).
    pub sealed: SealedDays,
}

/// An event as the store just applied it, for the layers above that react to
/// events (triggers arm on the fresh events of live batches).
#[derive(Debug, Clone, Copy)]
pub struct AppliedEvent<'a> {
    /// Dense user id.
    pub user: UserId,
    /// Dense event-name id.
    pub event: EventId,
    /// Event time, epoch ms.
    pub ts_ms: i64,
    /// Its properties (property codec).
    pub blob: &'a [u8],
}

impl StoreState {
    /// Applies one core entry of a durable batch: events, profile updates and
    /// subscriptions; every other entry belongs to a higher layer and is
    /// ignored. An event is handed back as it was applied.
    pub fn apply_entry<'a>(
        &mut self,
        entry: &'a ArchivedLogEntry,
        received_ms: i64,
    ) -> Option<AppliedEvent<'a>> {
        match entry {
            ArchivedLogEntry::Event(event) => {
                let user = event.user.to_native();
                let name = event.event.to_native();
                let ts = event.ts_ms.to_native();
                self.timelines.insert(user, name, ts, &event.props);
                self.indexes.add_event(user, name, ts);
                self.day_changes.touch(crate::clock::day_of(ts));
                return Some(AppliedEvent { user, event: name, ts_ms: ts, blob: &event.props });
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
                    created_ms: received_ms,
                };
                self.subscriptions.subscribe(stored, &mut self.indexes.webpush_user_ids);
            }
            ArchivedLogEntry::Unsubscribe(unsub) => {
                self.subscriptions.unsubscribe(&unsub.endpoint, &mut self.indexes.webpush_user_ids);
            }
            ArchivedLogEntry::SealDay(seal) => self.seal_day(seal.day.to_native()),
            ArchivedLogEntry::DaySealed(sealed) => self.sealed.file_durable(
                sealed.day.to_native(),
                sealed.version.to_native(),
                sealed.checksum.to_native(),
            ),
            _ => {}
        }
        None
    }

    /// Folds `SealDay`: the head's rows of `day` go to a sealing buffer (the
    /// next version when the day was sealed before); the arena is compacted
    /// once cut blobs are most of it. A day without head rows is left as it
    /// is.
    fn seal_day(&mut self, day: i32) {
        if self.timelines.rows_of_day(day) == 0 {
            return;
        }
        let mut users = roaring::RoaringBitmap::new();
        for event in &self.indexes.event_user_ids {
            if let Some(bucket) = event.by_bucket[0].get(&day) {
                users |= bucket.get();
            }
        }
        let cut = self.timelines.cut_day(day, users.iter(), self.position);
        self.timelines.compact_arena_when_sparse();
        self.sealed.cut(cut);
    }

    /// `user`'s events within `lo..=hi` (epoch ms), in time and then log
    /// order, from the head and the sealed days: borrowed when only the head
    /// holds any. With `only`, the sealed days give only those events (the
    /// head's slice still holds every event): enough for a caller that
    /// looks at those events alone, and far fewer lookups.
    pub fn events_in(
        &self,
        user: UserId,
        lo: i64,
        hi: i64,
        only: Option<&[EventId]>,
    ) -> Cow<'_, [TimelineEntry]> {
        let head = self.timelines.range(user, lo, hi);
        if self.sealed.is_empty() || lo > hi {
            return Cow::Borrowed(head);
        }
        let mut sealed = Vec::new();
        let has_rows = |event: EventId, day: i32| {
            self.indexes
                .event_user_ids
                .get(event as usize)
                .and_then(|e| e.by_bucket[0].get(&day))
                .is_some_and(|users| users.contains(user))
        };
        self.sealed.user_rows(user, (lo, hi), only, has_rows, &mut sealed);
        if sealed.is_empty() {
            return Cow::Borrowed(head);
        }
        if head.is_empty() {
            return Cow::Owned(sealed);
        }
        // A head row of a sealed day came after the sealed rows in the log:
        // at equal times, sealed rows first.
        let mut merged = Vec::with_capacity(sealed.len() + head.len());
        let (mut s, mut h) = (0, 0);
        while s < sealed.len() && h < head.len() {
            if sealed[s].ts_ms <= head[h].ts_ms {
                merged.push(sealed[s]);
                s += 1;
            } else {
                merged.push(head[h]);
                h += 1;
            }
        }
        merged.extend_from_slice(&sealed[s..]);
        merged.extend_from_slice(&head[h..]);
        Cow::Owned(merged)
    }

    /// All of `user`'s events, in order (see [`StoreState::events_in`]).
    pub fn events_of(&self, user: UserId) -> Cow<'_, [TimelineEntry]> {
        self.events_in(user, i64::MIN, i64::MAX, None)
    }

    /// The properties of an entry, in the head or a sealed day.
    pub fn props(&self, entry: &TimelineEntry) -> &[u8] {
        self.props_at(entry.props_at())
    }

    /// The properties behind a handle (an entry's `props_at`).
    pub fn props_at(&self, handle: u64) -> &[u8] {
        if handle < sealed_days::SEALED_PROPS_BASE {
            self.timelines.arena().get(handle)
        } else {
            self.sealed.props(handle)
        }
    }

    /// Approximate heap bytes held by derived state.
    pub fn heap_bytes(&self) -> usize {
        self.timelines.heap_bytes()
            + self.indexes.heap_bytes()
            + self.profiles.heap_bytes()
            + self.sealed.heap_bytes()
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
                        crate::limits::check_timestamp("ts", e.ts_ms.to_native())
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
            | ArchivedLogEntry::SegmentVisibility(_)
            | ArchivedLogEntry::TriggerSaved(_)
            | ArchivedLogEntry::TriggerRemoved(_)
            | ArchivedLogEntry::History
            | ArchivedLogEntry::CampaignSaved(_)
            | ArchivedLogEntry::CampaignRemoved(_)
            | ArchivedLogEntry::CampaignPaused(_)
            | ArchivedLogEntry::Delivery(_)
            | ArchivedLogEntry::SealDay(_)
            | ArchivedLogEntry::DaySealed(_) => Ok(()),
        };
        checked.map_err(|e| format!("entry {i}: {e}"))?;
    }
    Ok(())
}
