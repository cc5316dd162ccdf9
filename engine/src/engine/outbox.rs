//! The engine's outbox calls: how many messages wait, claiming due items for
//! a sender with leases, recording what became of them, and the delivery
//! settings. The decisions are the campaigns layer's (`campaigns/outbox/`);
//! this file holds the leases and writes the records.

use crate::campaigns::delivery::DeliverySettings;
use crate::campaigns::outbox::{self, Attempt, OutboxItem};
use crate::engine::Engine;
use crate::error::Result;

impl Engine {
    /// Messages queued and not settled.
    pub fn outbox_len(&self) -> usize {
        self.read_state().state.campaigns.outbox.len()
    }

    /// Items claimed and not yet reported, leases that ran out excluded.
    pub fn outbox_leased(&self) -> usize {
        let now = self.options.clock.now_ms();
        self.outbox_leases.lock().until.values().filter(|until| **until > now).count()
    }

    /// When the next queued message falls due.
    pub fn next_outbox_due(&self) -> Option<i64> {
        self.read_state().state.campaigns.outbox.next_due()
    }

    /// Takes up to `limit` due items for sending and leases them for
    /// [`outbox::OUTBOX_LEASE_MS`]: a later claim skips them until they are
    /// reported or the lease runs out. Due items already past their expiry are
    /// not handed out: they fail as `expired` (recorded before this returns).
    pub fn claim_outbox(&self, limit: usize) -> Result<Vec<OutboxItem>> {
        let now = self.options.clock.now_ms();
        let (claimed, expired) = {
            let reader = self.read_state();
            let mut leases = self.outbox_leases.lock();
            outbox::claim(&reader.state.campaigns.outbox, &mut leases, limit, now)
        };
        if !expired.is_empty() {
            self.report_outbox(expired)?;
        }
        Ok(claimed)
    }

    /// Records what became of claimed items, durably: delivered or failed
    /// (settled, with `$push_delivered` / `$push_failed`, or the webhook
    /// events), or a retry at the backoff time. An item whose retry would
    /// fall after its expiry, or past [`outbox::MAX_ATTEMPTS`], fails as
    /// `expired`. A gone subscription is removed. Unknown ids are ignored.
    pub fn report_outbox(&self, reports: Vec<(u64, Attempt)>) -> Result<()> {
        let now = self.options.clock.now_ms();
        let records = {
            let reader = self.read_state();
            outbox::report_records(&reader.state.campaigns.outbox, &reports, now)
        };
        for chunk in records.chunks(crate::limits::MAX_BATCH_RECORDS) {
            self.ingest_inputs(chunk.to_vec())?;
        }
        let mut leases = self.outbox_leases.lock();
        for (id, _) in &reports {
            leases.until.remove(id);
        }
        Ok(())
    }

    /// Replaces the delivery settings, durably. The default time zone must
    /// be an IANA zone (the error names `default_timezone`).
    pub fn save_delivery_settings(&self, settings: &DeliverySettings) -> Result<()> {
        self.ingest_inputs(vec![outbox::settings_record(settings)?]).map(|_| ())
    }

    /// The delivery settings in force.
    pub fn delivery_settings(&self) -> DeliverySettings {
        DeliverySettings::from_record(&self.read_state().state.campaigns.outbox.settings)
            .unwrap_or_default()
    }
}
