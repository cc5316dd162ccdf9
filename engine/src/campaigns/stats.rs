//! Campaign statistics and engagement tracking, both from and into the
//! decision events of the log: nothing here is stored beside the events.
//!
//! - `targeted`: `$campaign_fired`; `sent`: `$push_sent` at or before now
//!   (later ones are `scheduled`: quiet hours hold them);
//! - `delivered` / `failed`: deliveries with `$push_delivered` / only `$push_failed`;
//! - `dropped`: `$push_dropped` by `reason`; `control.users`: the `control` drops;
//! - `viewed` / `clicked`: deliveries with `$push_viewed` / `$push_clicked`
//!   ([`Engine::track`] records them from the service worker's reports);
//! - `converted`: users who did the campaign's conversion event within its
//!   window after a send (each conversion counts once, for the latest send
//!   before it); `revenue`: the sum of its revenue property over those
//!   conversions; `control.converted` likewise after a control decision.
//!
//! Test sends are left out. Every figure is also available per variant.

pub use crate::campaigns::events::{
    DECISION_EVENTS, PUSH_CLICKED_EVENT, PUSH_CLOSED_EVENT, PUSH_VIEWED_EVENT,
};
use std::collections::BTreeMap;

use crate::campaigns::CampaignState;
use crate::campaigns::delivery::{CAMPAIGN_FIRED_EVENT, PUSH_DROPPED_EVENT, PUSH_SENT_EVENT};
use crate::campaigns::events::keys;
use crate::campaigns::outbox::{PUSH_DELIVERED_EVENT, PUSH_FAILED_EVENT};
use crate::error::{Error, Result};
use crate::store::dict::Dictionaries;
use crate::store::props::{self, KeyId, ValueRef};
use crate::store::record::Event;
use crate::store::state::StoreState;
use crate::store::state::timeline::TimelineEntry;

/// Longest action name in a track report, in bytes.
pub const MAX_ACTION_BYTES: usize = 128;

/// Figures of one variant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantStats {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries clicked.
    pub clicked: u64,
    /// Users converted.
    pub converted: u64,
}

/// A campaign's figures (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignStats {
    /// Users the campaign reached past its pause and audience checks (per decision).
    pub targeted: u64,
    /// Messages sent (queued and due).
    pub sent: u64,
    /// Messages held by quiet hours, going out later.
    pub scheduled: u64,
    /// Deliveries a push service accepted.
    pub delivered: u64,
    /// Deliveries that failed on every target.
    pub failed: u64,
    /// Decisions not to send, by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Control-group decisions ("would have sent").
    pub control_users: u64,
    /// Control-group users who converted within the window.
    pub control_converted: u64,
    /// Deliveries shown.
    pub viewed: u64,
    /// Deliveries clicked.
    pub clicked: u64,
    /// Users who converted within the window after a send.
    pub converted: u64,
    /// Sum of the revenue property over those conversions.
    pub revenue: f64,
    /// Per variant.
    pub variants: BTreeMap<String, VariantStats>,
}

/// What a service worker reports about a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engagement {
    /// Shown.
    View,
    /// Clicked (the notification or an action).
    Click,
    /// Dismissed.
    Close,
}

impl Engagement {
    /// `view`, `click` or `close`.
    pub fn parse(text: &str) -> Option<Engagement> {
        match text {
            "view" => Some(Engagement::View),
            "click" => Some(Engagement::Click),
            "close" => Some(Engagement::Close),
            _ => None,
        }
    }

    fn event(self) -> &'static str {
        match self {
            Engagement::View => PUSH_VIEWED_EVENT,
            Engagement::Click => PUSH_CLICKED_EVENT,
            Engagement::Close => PUSH_CLOSED_EVENT,
        }
    }
}

fn text(blob: &[u8], key: Option<KeyId>) -> Option<&str> {
    match props::get(blob, key?) {
        Some(ValueRef::Str(s)) => Some(s),
        _ => None,
    }
}

fn number(blob: &[u8], key: Option<KeyId>) -> Option<f64> {
    match props::get(blob, key?) {
        Some(ValueRef::Number(n)) => Some(n),
        _ => None,
    }
}

/// The latest of `times` (ascending) that `at` falls within `window` after.
fn attributed(times: &[(i64, Option<String>)], at: i64, window: i64) -> Option<&Option<String>> {
    let before = times.partition_point(|(t, _)| *t < at);
    let (t, variant) = times.get(before.checked_sub(1)?)?;
    (at - t <= window).then_some(variant)
}

/// One decision or outcome about a message, as `GET /v1/decisions` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionEntry {
    /// When it was recorded (a `$push_sent` held by quiet hours: when it goes out), epoch ms.
    pub ts_ms: i64,
    /// The event: `$campaign_fired`, `$push_sent`, `$push_delayed`, `$push_dropped`,
    /// `$push_delivered`, `$push_failed`, `$push_viewed`, `$push_clicked` or `$push_closed`.
    pub name: String,
    /// Its properties: campaign, delivery id, reason, variant, status…
    pub props: Vec<(String, crate::store::props::Value)>,
}

/// A campaign's statistics at `now`; `None` when there is no such campaign.
pub fn campaign_stats(
    dicts: &Dictionaries,
    state: &StoreState,
    campaigns: &CampaignState,
    id: &str,
    now: i64,
) -> Option<CampaignStats> {
    let stored = campaigns.campaigns.get(id)?;
    let key = |name: &str| dicts.keys.get(name).and_then(|k| KeyId::try_from(k).ok());
    let (campaign_key, delivery_key, variant_key) =
        (key(keys::CAMPAIGN), key(keys::DELIVERY_ID), key(keys::VARIANT));
    let (reason_key, test_key) = (key(keys::REASON), key(keys::TEST));
    let event = |name: &str| dicts.events.get(name);
    let [fired, sent, dropped, delivered, failed, viewed, clicked] = [
        CAMPAIGN_FIRED_EVENT,
        PUSH_SENT_EVENT,
        PUSH_DROPPED_EVENT,
        PUSH_DELIVERED_EVENT,
        PUSH_FAILED_EVENT,
        PUSH_VIEWED_EVENT,
        PUSH_CLICKED_EVENT,
    ]
    .map(event);
    let conversion = stored.campaign.conversion.as_ref();
    let converting = conversion.and_then(|c| event(&c.event));
    let window = conversion.map_or(0, |c| c.within_ms);
    let revenue_key = conversion.and_then(|c| c.revenue_property.as_deref()).and_then(key);
    let mut users = roaring::RoaringBitmap::new();
    for e in [fired, sent, dropped].into_iter().flatten() {
        if let Some(index) = state.indexes.event_user_ids.get(e as usize) {
            users |= index.all.get();
        }
    }
    let mut stats = CampaignStats::default();
    for user in &users {
        let mut sends: Vec<(i64, Option<String>)> = Vec::new();
        let mut controls: Vec<(i64, Option<String>)> = Vec::new();
        let mut outcomes: BTreeMap<&str, [bool; 4]> = BTreeMap::new();
        let mut variant_of: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let timeline = state.events_of(user);
        for entry in timeline.iter() {
            let name = Some(entry.event());
            if ![fired, sent, dropped, delivered, failed, viewed, clicked].contains(&name) {
                continue;
            }
            let blob = state.props(entry);
            if text(blob, campaign_key) != Some(id)
                || props::get(blob, test_key.unwrap_or(KeyId::MAX)) == Some(ValueRef::Bool(true))
            {
                continue;
            }
            let variant = text(blob, variant_key).map(str::to_owned);
            let delivery = text(blob, delivery_key).unwrap_or_default();
            if name == fired {
                stats.targeted += 1;
            } else if name == sent {
                if entry.ts_ms > now {
                    stats.scheduled += 1;
                    continue;
                }
                stats.sent += 1;
                if let Some(v) = &variant {
                    stats.variants.entry(v.clone()).or_default().sent += 1;
                }
                variant_of.insert(delivery, variant.clone());
                sends.push((entry.ts_ms, variant));
            } else if name == dropped {
                let reason = text(blob, reason_key).unwrap_or("unknown");
                *stats.dropped.entry(reason.to_owned()).or_default() += 1;
                if reason == "control" {
                    stats.control_users += 1;
                    controls.push((entry.ts_ms, None));
                }
            } else {
                let slot = [delivered, failed, viewed, clicked]
                    .iter()
                    .position(|e| *e == name)
                    .unwrap_or(0);
                outcomes.entry(delivery).or_default()[slot] = true;
            }
        }
        for (delivery, [was_delivered, was_failed, was_viewed, was_clicked]) in &outcomes {
            stats.delivered += u64::from(*was_delivered);
            stats.failed += u64::from(*was_failed && !*was_delivered);
            stats.viewed += u64::from(*was_viewed);
            stats.clicked += u64::from(*was_clicked);
            if let (true, Some(Some(v))) = (*was_clicked, variant_of.get(delivery)) {
                stats.variants.entry(v.clone()).or_default().clicked += 1;
            }
        }
        let Some(converting) = converting else { continue };
        if sends.is_empty() && controls.is_empty() {
            continue;
        }
        let (mut converted, mut control_converted) = (None, false);
        for entry in timeline.iter().filter(|e| e.event() == converting) {
            if let Some(variant) = attributed(&sends, entry.ts_ms, window) {
                converted.get_or_insert(variant.clone());
                let blob = state.props(entry);
                stats.revenue += number(blob, revenue_key).unwrap_or(0.0);
            }
            control_converted |= attributed(&controls, entry.ts_ms, window).is_some();
        }
        if let Some(variant) = converted {
            stats.converted += 1;
            if let Some(v) = variant {
                stats.variants.entry(v).or_default().converted += 1;
            }
        }
        stats.control_converted += u64::from(control_converted);
    }
    Some(stats)
}

/// Why each message to `user_id` was sent, dropped or delayed, and what
/// became of it, oldest first; only `campaign`'s when given. Empty for an
/// unknown user.
pub fn decisions(
    dicts: &Dictionaries,
    state: &StoreState,
    user_id: &str,
    campaign: Option<&str>,
) -> Vec<DecisionEntry> {
    let Some(user) = dicts.users.get(user_id) else { return Vec::new() };
    decisions_in(dicts, state, &state.events_of(user), campaign)
}

/// [`decisions`] among a user's events already read (`events`, in order).
pub fn decisions_in(
    dicts: &Dictionaries,
    state: &StoreState,
    events: &[TimelineEntry],
    campaign: Option<&str>,
) -> Vec<DecisionEntry> {
    let wanted: Vec<u32> = DECISION_EVENTS.iter().filter_map(|n| dicts.events.get(n)).collect();
    let campaign_key = dicts.keys.get(keys::CAMPAIGN).and_then(|k| KeyId::try_from(k).ok());
    let mut entries = Vec::new();
    for entry in events {
        if !wanted.contains(&entry.event()) {
            continue;
        }
        let blob = state.props(entry);
        if campaign.is_some() && text(blob, campaign_key) != campaign {
            continue;
        }
        let props = props::named(blob, &dicts.keys);
        let name = dicts.events.name(entry.event()).unwrap_or_default().to_owned();
        entries.push(DecisionEntry { ts_ms: entry.ts_ms, name, props });
    }
    entries
}

/// The engagement event that records a service worker's report about
/// `delivery_id` (`$push_viewed`, `$push_clicked` or `$push_closed`, with the
/// campaign, variant, delivery id and action), at `now`; `Ok(None)` when no
/// such delivery was sent.
pub fn engagement_event(
    dicts: &Dictionaries,
    state: &StoreState,
    delivery_id: &str,
    kind: Engagement,
    action: Option<&str>,
    now: i64,
) -> Result<Option<Event>> {
    if action.is_some_and(|a| a.len() > MAX_ACTION_BYTES) {
        return Err(Error::invalid(None, "action", format!("at most {MAX_ACTION_BYTES} bytes")));
    }
    let found = {
        let user =
            delivery_id.split_once('.').and_then(|(user, _)| u32::from_str_radix(user, 16).ok());
        let key = |name: &str| dicts.keys.get(name).and_then(|k| KeyId::try_from(k).ok());
        let sent = dicts.events.get(PUSH_SENT_EVENT);
        user.zip(sent).and_then(|(user, sent)| {
            let timeline = state.events_of(user);
            let entry = timeline.iter().rev().find(|e| {
                e.event() == sent
                    && text(state.props(e), key(keys::DELIVERY_ID)) == Some(delivery_id)
            })?;
            let blob = state.props(entry);
            Some((
                dicts.users.name(user)?.to_owned(),
                text(blob, key(keys::CAMPAIGN)).unwrap_or_default().to_owned(),
                text(blob, key(keys::VARIANT)).map(str::to_owned),
                key(keys::TEST).and_then(|k| props::get(blob, k)) == Some(ValueRef::Bool(true)),
            ))
        })
    };
    let Some((user_id, campaign, variant, test)) = found else { return Ok(None) };
    let mut event = Event::new(user_id, kind.event())
        .at(now)
        .prop(keys::CAMPAIGN, campaign)
        .prop(keys::DELIVERY_ID, delivery_id.to_owned());
    if let Some(variant) = variant {
        event = event.prop(keys::VARIANT, variant);
    }
    if let Some(action) = action {
        event = event.prop(keys::ACTION, action.to_owned());
    }
    if test {
        event = event.prop(keys::TEST, true);
    }
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversion_counts_for_the_latest_send_within_the_window() {
        let sends = vec![(100, Some("A".to_owned())), (200, Some("B".to_owned()))];
        assert_eq!(attributed(&sends, 150, 60), Some(&Some("A".to_owned())));
        assert_eq!(attributed(&sends, 250, 60), Some(&Some("B".to_owned())));
        assert_eq!(attributed(&sends, 261, 60), None, "outside the window");
        assert_eq!(attributed(&sends, 100, 60), None, "not at the send itself");
        assert_eq!(attributed(&sends, 50, 60), None, "before any send");
    }
}
