//! The durable outbox: every message the engine decided to send, kept until a
//! sender reports what became of it.
//!
//! The outbox is derived state like everything else: `Queue`, `Retry` and
//! `Settle` records ([`DeliveryRecord`], stored rkyv-encoded inside the log's
//! `Delivery` entries) fold into [`OutboxState`]. A message is queued in the
//! same batch as the decision that made it (the `Fire` record, the
//! `$push_sent` event), so a crash can lose neither one without the other.
//!
//! Senders (the server's Web Push and webhook clients) take due items with
//! [`Engine::claim_outbox`], which leases them for [`OUTBOX_LEASE_MS`] so two
//! senders never hold the same item, and report each attempt with
//! [`Engine::report_outbox`]. Sending is therefore at least once per item; the
//! item's `delivery_id` (the Web Push notification tag, the webhook
//! idempotency key) lets the receiver drop a repeat. [`OutboxLoop`]
//! (`engine/loops.rs`) runs claim → send → report as a pipeline on two threads.
//!
//! The same entries carry the delivery settings (caps, default time zone,
//! quiet hours) and the progress of scheduled campaigns (`schedule.rs`).

pub use crate::campaigns::events::{
    PUSH_DELIVERED_EVENT, PUSH_FAILED_EVENT, WEBHOOK_DELIVERED_EVENT, WEBHOOK_FAILED_EVENT,
};
use std::collections::{BTreeMap, BTreeSet};

use rkyv::{Archive, Deserialize, Serialize};

use crate::campaigns::events::keys;
pub use crate::campaigns::stored::SettingsRecord;
use crate::store::log::entry::{LogDelivery, LogEntry};
use crate::store::record::{Event, Record};
use crate::store::sequencer::Input;

/// How long a claimed item stays with its sender before another claim may take it.
pub const OUTBOX_LEASE_MS: i64 = 60_000;
/// First retry delay; each further attempt doubles it (with ±25 % jitter).
pub const RETRY_BASE_MS: i64 = 1_000;
/// Longest retry delay.
pub const RETRY_MAX_MS: i64 = 60 * 60 * 1000;
/// Attempts after which an item fails for good, even within its time to live.
pub const MAX_ATTEMPTS: u32 = 12;
/// How long a message without a TTL (and every webhook) may keep retrying.
pub const DEFAULT_EXPIRY_MS: i64 = 24 * 60 * 60 * 1000;
/// Most items one claim hands out.
pub const MAX_CLAIM: usize = 10_000;
/// How often a claim drops the leases that ran out or whose items are gone.
pub const LEASE_PURGE_INTERVAL_MS: i64 = 1_000;

/// Outbox items handed to a sender and not yet reported (in memory only: a
/// restart sends them again).
#[derive(Default)]
pub(crate) struct Leases {
    /// Item id → lease end, epoch ms.
    pub until: crate::store::dict::FastMap<u64, i64>,
    /// When the last purge ran.
    pub purged_at_ms: i64,
}

impl Leases {
    fn held(&self, id: u64, now: i64) -> bool {
        self.until.get(&id).is_some_and(|until| *until > now)
    }
}

/// A rendered notification: the campaign's message with its templates filled
/// in for one user; what the service worker shows.
pub type Notification = crate::campaigns::campaign::Message;

/// One message to one target.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Its key: [`OutboxItem::key`] of (delivery, target).
    pub id: u64,
    /// The delivery (one user, one decision): notification tag and idempotency key.
    pub delivery_id: String,
    /// Dense user id.
    pub user: u32,
    /// The user's external id.
    pub user_id: String,
    /// The campaign.
    pub campaign: String,
    /// The variant's name, when the campaign has variants.
    pub variant: Option<String>,
    /// A test send (`/v1/campaigns/{id}/test`): kept out of caps and stats.
    pub test: bool,
    /// Where it goes.
    pub target: Target,
    /// What it says.
    pub notification: Notification,
    /// Not before this time (quiet hours that delay), epoch ms.
    pub not_before_ms: i64,
    /// Not after this time (TTL or cut-off), epoch ms.
    pub expires_at_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
}

impl OutboxItem {
    /// The id of the item for `delivery_id` and a target.
    pub fn key(delivery_id: &str, target: &Target) -> u64 {
        let where_to = match target {
            Target::WebPush { endpoint, .. } => endpoint,
            Target::Webhook { url, .. } => url,
        };
        xxhash_rust::xxh3::xxh3_64(format!("{delivery_id}\u{0}{where_to}").as_bytes())
    }

    /// Web Push `TTL` in seconds: what is left of its time to live at `now_ms`.
    pub fn ttl_seconds(&self, now_ms: i64) -> u64 {
        u64::try_from((self.expires_at_ms - now_ms).max(0) / 1000).unwrap_or(0)
    }
}

/// Where a scheduled campaign stands in one time zone.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScheduleMark {
    /// The campaign.
    pub campaign: String,
    /// The IANA zone.
    pub zone: String,
    /// The occurrence, in local civil time: seconds since 1970-01-01T00:00
    /// local (seconds, not ms: a civil time is no instant; the log stores it so).
    pub occurrence_local_s: i64,
    /// `None`: the occurrence is done. `Some(u)`: users below dense id `u` are done.
    pub next_user: Option<u32>,
    /// Why the whole occurrence was skipped in this zone: `passed` (before the
    /// campaign was saved), `late` (the engine was down past the grace period).
    pub dropped: Option<String>,
}

/// Types with struct-like variants: rkyv's archived forms of their fields
/// carry no docs of their own.
#[allow(missing_docs)]
mod variants {
    use super::*;

    /// Where an item goes.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum Target {
        /// A browser's push subscription.
        WebPush {
            /// Push service URL.
            endpoint: String,
            /// Browser public key, base64url.
            p256dh: String,
            /// Auth secret, base64url.
            auth: String,
        },
        /// A campaign's webhook: the body is signed with HMAC-SHA256 under `secret`.
        Webhook {
            /// URL to POST to.
            url: String,
            /// Signing secret.
            secret: String,
        },
    }

    /// The outbox's log records.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
    pub enum DeliveryRecord {
        /// A message queued.
        Queue(Box<OutboxItem>),
        /// An attempt failed; try again at `next_ms`.
        Retry {
            /// The item.
            item: u64,
            /// Failed attempts so far.
            attempts: u32,
            /// Next attempt, epoch ms.
            next_ms: i64,
        },
        /// Done with an item (delivered, or failed for good).
        Settle {
            /// The item.
            item: u64,
        },
        /// New delivery settings.
        Settings(SettingsRecord),
        /// A scheduled campaign's progress.
        Schedule(ScheduleMark),
    }
}
pub use variants::{DeliveryRecord, Target};

impl DeliveryRecord {
    /// The stored form (rkyv).
    pub fn encode(&self) -> Vec<u8> {
        crate::store::log::entry::encode_blob(self)
    }

    /// Reads the stored form back.
    pub fn decode(bytes: &[u8]) -> Option<DeliveryRecord> {
        crate::store::log::entry::decode_blob(bytes)
    }
}

/// The outbox, the settings and the schedules' progress, as snapshots store them.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct StoredOutbox {
    items: Vec<OutboxItem>,
    settings: SettingsRecord,
    marks: Vec<ScheduleMark>,
}

/// Queued messages, delivery settings and schedule progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxState {
    items: BTreeMap<u64, OutboxItem>,
    /// (next attempt, id), earliest first.
    due: BTreeSet<(i64, u64)>,
    /// The delivery settings in force.
    pub settings: SettingsRecord,
    /// (campaign, zone) → (occurrence, next user).
    marks: BTreeMap<(String, String), (i64, Option<u32>)>,
}

impl OutboxState {
    /// Folds one record in.
    pub fn apply(&mut self, record: DeliveryRecord) {
        match record {
            DeliveryRecord::Queue(item) => {
                let item = *item;
                if let Some(old) = self.items.remove(&item.id) {
                    self.due.remove(&(old.not_before_ms, old.id));
                }
                self.due.insert((item.not_before_ms, item.id));
                self.items.insert(item.id, item);
            }
            DeliveryRecord::Retry { item, attempts, next_ms } => {
                if let Some(it) = self.items.get_mut(&item) {
                    self.due.remove(&(it.not_before_ms, item));
                    it.attempts = attempts;
                    it.not_before_ms = next_ms;
                    self.due.insert((next_ms, item));
                }
            }
            DeliveryRecord::Settle { item } => {
                if let Some(old) = self.items.remove(&item) {
                    self.due.remove(&(old.not_before_ms, item));
                }
            }
            DeliveryRecord::Settings(settings) => self.settings = settings,
            DeliveryRecord::Schedule(mark) => {
                self.marks
                    .insert((mark.campaign, mark.zone), (mark.occurrence_local_s, mark.next_user));
            }
        }
    }

    /// Items queued and not settled.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One item.
    pub fn item(&self, id: u64) -> Option<&OutboxItem> {
        self.items.get(&id)
    }

    /// Items whose next attempt is due by `now_ms`, earliest first.
    pub fn due_by(&self, now_ms: i64) -> impl Iterator<Item = &OutboxItem> {
        self.due
            .iter()
            .take_while(move |(at, _)| *at <= now_ms)
            .filter_map(|(_, id)| self.items.get(id))
    }

    /// When the next item falls due.
    pub fn next_due(&self) -> Option<i64> {
        self.due.first().map(|(at, _)| *at)
    }

    /// A scheduled campaign's progress in a zone: (occurrence, next user).
    pub fn mark(&self, campaign: &str, zone: &str) -> Option<(i64, Option<u32>)> {
        self.marks.get(&(campaign.to_owned(), zone.to_owned())).copied()
    }

    /// Forgets a removed campaign's schedule progress.
    pub fn forget_campaign(&mut self, campaign: &str) {
        self.marks.retain(|(c, _), _| c != campaign);
    }

    /// The snapshot section.
    pub fn encode(&self) -> Vec<u8> {
        let stored = StoredOutbox {
            items: self.items.values().cloned().collect(),
            settings: self.settings.clone(),
            marks: self
                .marks
                .iter()
                .map(|((campaign, zone), &(occurrence, next_user))| ScheduleMark {
                    campaign: campaign.clone(),
                    zone: zone.clone(),
                    occurrence_local_s: occurrence,
                    next_user,
                    dropped: None,
                })
                .collect(),
        };
        crate::store::log::entry::encode_blob(&stored)
    }

    /// Reads a snapshot section back.
    pub fn decode(bytes: &[u8]) -> Option<OutboxState> {
        let stored: StoredOutbox = crate::store::log::entry::decode_blob(bytes)?;
        let mut state = OutboxState { settings: stored.settings, ..Default::default() };
        for item in stored.items {
            state.apply(DeliveryRecord::Queue(Box::new(item)));
        }
        for mark in stored.marks {
            state.apply(DeliveryRecord::Schedule(mark));
        }
        Some(state)
    }
}

/// What became of one attempt to send an item, as the sender reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Accepted (Web Push: the push service answered 201).
    Delivered {
        /// HTTP status.
        status: u16,
    },
    /// Failed for good (400, 413; or 404/410 with `unsubscribe`).
    Failed {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What went wrong, for `$push_failed`.
        reason: String,
        /// The subscription is gone (404, 410): remove it.
        unsubscribe: bool,
    },
    /// Failed for now (429, 5xx, network): try again after `after_ms`
    /// (Retry-After), or after the engine's backoff.
    Retry {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
        /// The service asked for this delay.
        after_ms: Option<i64>,
    },
}

/// The delay before attempt `attempts + 1`: exponential from
/// [`RETRY_BASE_MS`] up to [`RETRY_MAX_MS`], with ±25 % jitter drawn from the
/// item id, so retries of many items spread out but replays agree.
pub fn backoff_ms(item: u64, attempts: u32) -> i64 {
    let exponential = RETRY_BASE_MS.saturating_mul(1 << attempts.min(30)).min(RETRY_MAX_MS);
    let spread = xxhash_rust::xxh3::xxh3_64(
        &[item.to_le_bytes(), u64::from(attempts).to_le_bytes()].concat(),
    );
    let jitter = (spread % 501) as i64 - 250; // -250‰ … +250‰
    exponential + exponential * jitter / 1000
}

fn outcome_event(item: &OutboxItem, name: &str, now: i64) -> Event {
    let mut event = Event::new(item.user_id.clone(), name)
        .at(now)
        .prop(keys::CAMPAIGN, item.campaign.clone())
        .prop(keys::DELIVERY_ID, item.delivery_id.clone());
    if let Target::WebPush { endpoint, .. } = &item.target {
        // The push service, never the endpoint (it is a capability URL).
        let service = endpoint.split('/').nth(2).unwrap_or_default().to_owned();
        event = event.prop("service", service);
    }
    if let Some(variant) = &item.variant {
        event = event.prop(keys::VARIANT, variant.clone());
    }
    if item.test {
        event = event.prop(keys::TEST, true);
    }
    event
}

/// Wraps a delivery record for ingest.
pub(crate) fn record(delivery: DeliveryRecord) -> Input {
    Input::Entry(delivery.into_entry())
}

impl DeliveryRecord {
    /// The log entry that carries this record.
    pub fn into_entry(self) -> LogEntry {
        LogEntry::Delivery(LogDelivery { body: self.encode() })
    }
}

/// Takes up to `limit` due items of `outbox` for sending at `now` and leases
/// them for [`OUTBOX_LEASE_MS`]: a later claim skips them until they are
/// reported or the lease runs out. Due items already past their expiry are
/// not handed out: they come back second, to be reported failed as `expired`.
pub(crate) fn claim(
    outbox: &OutboxState,
    leases: &mut Leases,
    limit: usize,
    now: i64,
) -> (Vec<OutboxItem>, Vec<(u64, Attempt)>) {
    let mut claimed = Vec::new();
    let mut expired = Vec::new();
    if now.saturating_sub(leases.purged_at_ms) >= LEASE_PURGE_INTERVAL_MS {
        leases.until.retain(|id, until| *until > now && outbox.item(*id).is_some());
        leases.purged_at_ms = now;
    }
    for item in outbox.due_by(now) {
        if claimed.len() >= limit.min(MAX_CLAIM) || expired.len() >= MAX_CLAIM {
            break;
        }
        if leases.held(item.id, now) {
            continue;
        }
        if now > item.expires_at_ms {
            let failed =
                Attempt::Failed { status: None, reason: "expired".into(), unsubscribe: false };
            expired.push((item.id, failed));
            continue;
        }
        leases.until.insert(item.id, now + OUTBOX_LEASE_MS);
        claimed.push(item.clone());
    }
    (claimed, expired)
}

/// The records of what became of claimed items at `now`: delivered or failed
/// (settled, with `$push_delivered` / `$push_failed`, or the webhook events),
/// or a retry at the backoff time. An item whose retry would fall after its
/// expiry, or past [`MAX_ATTEMPTS`], fails as `expired`. A gone subscription
/// is removed. Unknown ids are ignored.
pub fn report_records(outbox: &OutboxState, reports: &[(u64, Attempt)], now: i64) -> Vec<Input> {
    let mut records = Vec::new();
    for (id, attempt) in reports {
        let Some(item) = outbox.item(*id) else { continue };
        let webhook = matches!(item.target, Target::Webhook { .. });
        let (delivered, failed) = if webhook {
            (WEBHOOK_DELIVERED_EVENT, WEBHOOK_FAILED_EVENT)
        } else {
            (PUSH_DELIVERED_EVENT, PUSH_FAILED_EVENT)
        };
        let failure = |status: Option<u16>, reason: &str| {
            let event = outcome_event(item, failed, now).prop(keys::REASON, reason.to_owned());
            match status {
                Some(status) => event.prop(keys::STATUS, f64::from(status)),
                None => event,
            }
        };
        match attempt {
            Attempt::Delivered { status } => {
                records.push(record(DeliveryRecord::Settle { item: *id }));
                records.push(
                    outcome_event(item, delivered, now)
                        .prop(keys::STATUS, f64::from(*status))
                        .into(),
                );
            }
            Attempt::Failed { status, reason, unsubscribe } => {
                records.push(record(DeliveryRecord::Settle { item: *id }));
                records.push(failure(*status, reason).into());
                if let (true, Target::WebPush { endpoint, .. }) = (*unsubscribe, &item.target) {
                    records.push(Input::Record(Record::Unsubscribe { endpoint: endpoint.clone() }));
                }
            }
            Attempt::Retry { status, reason, after_ms } => {
                let attempts = item.attempts + 1;
                let wait = after_ms.unwrap_or_else(|| backoff_ms(*id, item.attempts));
                let next_ms = now.saturating_add(wait.max(0));
                if next_ms > item.expires_at_ms || attempts >= MAX_ATTEMPTS {
                    records.push(record(DeliveryRecord::Settle { item: *id }));
                    let why = format!("expired after {attempts} attempts: {reason}");
                    records.push(failure(*status, &why).into());
                } else {
                    records.push(record(DeliveryRecord::Retry { item: *id, attempts, next_ms }));
                }
            }
        }
    }
    records
}

/// The record that replaces the delivery settings (the error names the
/// field that cannot be stored).
pub fn settings_record(
    settings: &crate::campaigns::delivery::DeliverySettings,
) -> crate::error::Result<Input> {
    Ok(record(DeliveryRecord::Settings(settings.to_record()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempts in 0..20 {
            let nominal = (RETRY_BASE_MS << attempts.min(30)).min(RETRY_MAX_MS);
            let wait = backoff_ms(7, attempts);
            assert!(wait >= nominal * 3 / 4 && wait <= nominal * 5 / 4, "{attempts}: {wait}");
            assert_eq!(wait, backoff_ms(7, attempts), "deterministic");
        }
        let spread: BTreeSet<i64> = (0..100).map(|item| backoff_ms(item, 3)).collect();
        assert!(spread.len() > 50, "jitter spreads items: {}", spread.len());
    }

    #[test]
    fn state_round_trips_through_its_snapshot_form() {
        let mut state = OutboxState::default();
        let item = |id, at| OutboxItem {
            id,
            delivery_id: format!("d{id}"),
            user: 1,
            user_id: "u1".into(),
            campaign: "c".into(),
            variant: None,
            test: false,
            target: Target::Webhook { url: "https://h.example/x".into(), secret: "s".into() },
            notification: Notification::default(),
            not_before_ms: at,
            expires_at_ms: at + 10,
            attempts: 0,
        };
        state.apply(DeliveryRecord::Queue(Box::new(item(1, 50))));
        state.apply(DeliveryRecord::Queue(Box::new(item(2, 10))));
        state.apply(DeliveryRecord::Retry { item: 2, attempts: 1, next_ms: 70 });
        state.apply(DeliveryRecord::Queue(Box::new(item(3, 5))));
        state.apply(DeliveryRecord::Settle { item: 3 });
        state.apply(DeliveryRecord::Schedule(ScheduleMark {
            campaign: "c".into(),
            zone: "UTC".into(),
            occurrence_local_s: 9,
            next_user: Some(4),
            dropped: None,
        }));
        let due: Vec<u64> = state.due_by(60).map(|i| i.id).collect();
        assert_eq!(due, vec![1]);
        assert_eq!(state.next_due(), Some(50));
        let back = OutboxState::decode(&state.encode()).expect("decodes");
        assert_eq!(back, state);
        assert_eq!(back.mark("c", "UTC"), Some((9, Some(4))));
    }
}
