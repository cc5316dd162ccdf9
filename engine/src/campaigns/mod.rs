//! The campaigns layer: "who gets which message, when?"
//!
//! Campaign definitions, the delivery decision, the delivery policy (time
//! zones, quiet hours, caps, variants), schedules, message templates,
//! statistics, settings and the durable outbox.

pub mod campaign;
pub mod delivery;
pub mod events;
pub mod outbox;
pub mod policy;
pub mod schedule;
pub mod stats;
pub mod stored;
pub mod template;

use std::collections::BTreeMap;

use crate::store::log::entry::ArchivedLogEntry;
use campaign::{Campaign, StoredCampaign};
use outbox::{DeliveryRecord, OutboxState};

/// The campaigns layer's derived state: a fold of its log entries.
#[derive(Debug, Clone, Default)]
pub struct CampaignState {
    /// Campaigns, by id.
    pub campaigns: BTreeMap<String, StoredCampaign>,
    /// Queued messages, delivery settings, scheduled campaigns' progress.
    pub outbox: OutboxState,
}

impl CampaignState {
    /// Applies one entry of a durable batch that arrived at `received_ms`:
    /// campaigns saved, removed, paused, and outbox records; entries of other
    /// layers are ignored.
    pub fn apply_entry(&mut self, entry: &ArchivedLogEntry, received_ms: i64) {
        match entry {
            ArchivedLogEntry::CampaignSaved(saved) => {
                // Validated before it was logged; one that no longer decodes is skipped.
                if let Some(campaign) = Campaign::decode(&saved.definition) {
                    let paused = self.campaigns.get(saved.id.as_str()).is_some_and(|c| c.paused);
                    let stored = StoredCampaign { campaign, paused, saved_ms: received_ms };
                    self.campaigns.insert(saved.id.to_string(), stored);
                }
            }
            ArchivedLogEntry::CampaignRemoved(removed) => {
                self.campaigns.remove(removed.id.as_str());
                self.outbox.forget_campaign(removed.id.as_str());
            }
            ArchivedLogEntry::Delivery(delivery) => {
                // Written by the engine; one that no longer decodes is skipped.
                if let Some(record) = DeliveryRecord::decode(&delivery.body) {
                    self.outbox.apply(record);
                }
            }
            ArchivedLogEntry::CampaignPaused(paused) => {
                if let Some(stored) = self.campaigns.get_mut(paused.id.as_str()) {
                    stored.paused = paused.paused;
                }
            }
            _ => {}
        }
    }
}
