//! Campaigns in the facade: saving, removing and pausing them (a live one
//! with its trigger, in one batch), test sends, statistics, the decisions
//! log of a user, and engagement tracking. The decisions are the campaigns
//! layer's; this file reads one consistent state and writes the records.

use std::sync::atomic::Ordering;

use super::{Engine, IngestOutcome};
use crate::campaigns::campaign::{self, Campaign, StoredCampaign};
use crate::campaigns::delivery::{self, Delivery, Planner};
use crate::campaigns::stats::{self, CampaignStats, DecisionEntry, Engagement};
use crate::error::{Error, Result};
use crate::store::sequencer::Input;
use crate::triggers;

impl Engine {
    /// Saves (or replaces) a campaign durably; a live one saves its trigger too.
    pub fn save_campaign(&self, campaign: Campaign) -> Result<IngestOutcome> {
        campaign.validate()?;
        let mut records: Vec<Input> = Vec::new();
        if let Some(trigger) = &campaign.trigger {
            records.push(triggers::saved_entry(&campaign.trigger_name(), trigger)?.into());
        } else if self.read_state().state.triggers.trigger(&campaign.trigger_name()).is_some() {
            records.push(triggers::removed_entry(&campaign.trigger_name()).into());
        }
        records.push(campaign.saved_entry().into());
        let outcome = self.ingest_inputs(records);
        self.schedule_check_ms.store(0, Ordering::Relaxed);
        outcome
    }

    /// Removes a campaign (and its trigger); `Ok(None)` when there was none.
    pub fn remove_campaign(&self, id: &str) -> Result<Option<IngestOutcome>> {
        let Some(stored) = self.campaign(id) else { return Ok(None) };
        let mut records: Vec<Input> = vec![campaign::removed_entry(id).into()];
        if stored.campaign.trigger.is_some() {
            records.push(triggers::removed_entry(&stored.campaign.trigger_name()).into());
        }
        self.ingest_inputs(records).map(Some)
    }

    /// Pauses or resumes a campaign; `Ok(None)` when there is none.
    pub fn set_campaign_paused(&self, id: &str, paused: bool) -> Result<Option<IngestOutcome>> {
        if self.campaign(id).is_none() {
            return Ok(None);
        }
        let outcome = self.ingest_inputs(vec![campaign::paused_entry(id, paused).into()]);
        self.schedule_check_ms.store(0, Ordering::Relaxed);
        outcome.map(Some)
    }

    /// One campaign.
    pub fn campaign(&self, id: &str) -> Option<StoredCampaign> {
        self.read_state().state.campaigns.campaigns.get(id).cloned()
    }

    /// Every campaign, by id.
    pub fn campaigns(&self) -> Vec<StoredCampaign> {
        self.read_state().state.campaigns.campaigns.values().cloned().collect()
    }

    /// Sends a campaign's message to one user now, marked as a test: no
    /// audience, caps, quiet hours or control group; kept out of the stats.
    /// `Ok(None)` when there is no such campaign.
    pub fn test_send(&self, campaign: &str, user_id: &str) -> Result<Option<Delivery>> {
        let now = self.options.clock.now_ms();
        let (delivery, records) = {
            let reader = self.read_state();
            let (dicts, state) = (&*reader.dicts, &*reader.state);
            let Some(stored) = state.campaigns.campaigns.get(campaign) else { return Ok(None) };
            let Some(user) = dicts.users.get(user_id) else {
                return Err(Error::invalid(None, "user_id", format!("no user {user_id:?}")));
            };
            let mut planner = Planner::new(dicts, state.source(), &state.campaigns, now);
            // Unique per test send: the log position it is decided at.
            let key = format!("test\u{0}{}", state.position());
            delivery::test_send(&mut planner, stored, user, key)?
        };
        self.ingest_inputs(records)?;
        Ok(Some(delivery))
    }

    /// A campaign's statistics, now; `None` when there is no such campaign.
    /// `Err` only when a day file they read failed its check.
    pub fn campaign_stats(&self, id: &str) -> Result<Option<CampaignStats>> {
        let now = self.options.clock.now_ms();
        let reader = self.read_state();
        let store = &reader.state.store;
        let stats = stats::campaign_stats(&reader.dicts, store, &reader.state.campaigns, id, now);
        store.sealed.damage()?;
        Ok(stats)
    }

    /// Why each message to `user_id` was sent, dropped or delayed, and what
    /// became of it, oldest first; only `campaign`'s when given. Empty for an
    /// unknown user; `Err` only when a day file read failed its check.
    pub fn decisions(&self, user_id: &str, campaign: Option<&str>) -> Result<Vec<DecisionEntry>> {
        let reader = self.read_state();
        let entries = stats::decisions(&reader.dicts, &reader.state.store, user_id, campaign);
        reader.state.store.sealed.damage()?;
        Ok(entries)
    }

    /// Records a service worker's report about a delivery as an event of its
    /// user (`$push_viewed`, `$push_clicked` or `$push_closed`, with the
    /// campaign, variant, delivery id and action). `Ok(false)` when no such
    /// delivery was sent.
    pub fn track(&self, delivery_id: &str, kind: Engagement, action: Option<&str>) -> Result<bool> {
        let now = self.options.clock.now_ms();
        let event = {
            let reader = self.read_state();
            let found = stats::engagement_event(
                &reader.dicts,
                &reader.state.store,
                delivery_id,
                kind,
                action,
                now,
            )?;
            reader.state.store.sealed.damage()?;
            found
        };
        let Some(event) = event else { return Ok(false) };
        self.ingest_inputs(vec![event.into()])?;
        Ok(true)
    }
}
