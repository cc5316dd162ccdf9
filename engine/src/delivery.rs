//! From a campaign's fire to a delivery decision: the campaign's state and
//! audience, reachability, then the delivery policy (`policy::decide`) with
//! the user's time zone and past sends. Every decision is recorded as an
//! event of the user (`$campaign_fired` or `$push_dropped` with its reason),
//! durably, before the intents are returned; sending them is the server's.

use crate::campaign::Message;
use crate::engine::Engine;
use crate::error::Result;
use crate::firing::Fire;
use crate::policy::{self, Caps, Decision, DeliveryRules, QuietHours, QuietMode};
use crate::record::{Event, Record};
use crate::rules::FireOutcome;

/// The event recorded when a campaign decides to send.
pub const CAMPAIGN_FIRED_EVENT: &str = "$campaign_fired";
/// The event recorded when a campaign does not send (`reason`).
pub const PUSH_DROPPED_EVENT: &str = "$push_dropped";
/// The event the sender records for each message sent; caps count these.
pub const PUSH_SENT_EVENT: &str = "$push_sent";
/// How far back sends are read for the caps (a week, and a day for zones).
const CAP_LOOKBACK_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// Settings that apply to every campaign.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Global frequency caps.
    pub caps: Caps,
    /// Time zone of users without a valid `timezone` profile property.
    pub default_timezone: jiff::tz::TimeZone,
    /// Global quiet hours, when a campaign has none.
    pub dnd: Option<QuietHours>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            caps: Caps::default(),
            default_timezone: jiff::tz::TimeZone::UTC,
            dnd: None,
        }
    }
}

/// What became of one campaign fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Send this message (templates not rendered yet).
    Send {
        /// The campaign.
        campaign: String,
        /// The user's external id.
        user_id: String,
        /// The fire's id (the idempotency key of the send).
        fire_id: String,
        /// The variant's name, if the campaign has variants.
        variant: Option<String>,
        /// The message.
        message: Box<Message>,
        /// Not to be sent after this time (TTL), epoch ms.
        expires_at_ms: Option<i64>,
    },
    /// Quiet hours: decide again at this time.
    Delay {
        /// The campaign.
        campaign: String,
        /// The user's external id.
        user_id: String,
        /// Epoch ms.
        until_ms: i64,
    },
    /// Not sent, for this reason (`paused`, `audience`, `unreachable`, `expired`,
    /// `control`, `dnd`, `capped`).
    Dropped {
        /// The campaign.
        campaign: String,
        /// The user's external id.
        user_id: String,
        /// Why.
        reason: &'static str,
    },
}

impl Engine {
    /// Decides what each fired campaign trigger (`campaign:{id}`) delivers,
    /// records every decision as an event of the user, and returns them.
    /// Fires of other triggers, and dropped fires, are ignored.
    pub fn decide_deliveries(
        &self,
        fires: &[Fire],
        settings: &DeliverySettings,
    ) -> Result<Vec<Delivery>> {
        let now = self.options.clock.now_ms();
        let mut decisions = Vec::new();
        {
            let reader = self.read();
            let (dicts, state) = (&*reader.dicts, &*reader.state);
            let timezone_key = dicts.keys.get("timezone").and_then(|k| u16::try_from(k).ok());
            let sent_event = dicts.events.get(PUSH_SENT_EVENT);
            // Each campaign's audience is parsed once per call, not once per fire.
            let mut audiences: std::collections::HashMap<&str, nudge_query_lang::Expr> =
                std::collections::HashMap::new();
            for fire in fires.iter().filter(|f| f.outcome == FireOutcome::Fired) {
                let Some(id) = fire.trigger.strip_prefix("campaign:") else { continue };
                let Some(stored) = state.campaigns.get(id) else { continue };
                let Some(user) = dicts.users.get(&fire.user_id) else { continue };
                let campaign = &stored.campaign;
                let dropped = |reason| Delivery::Dropped {
                    campaign: id.to_owned(),
                    user_id: fire.user_id.clone(),
                    reason,
                };
                if stored.paused {
                    decisions.push(dropped("paused"));
                    continue;
                }
                if let Some(audience) = &campaign.audience {
                    let expr = match audiences.entry(id) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            e.insert(crate::segment::parse(audience)?)
                        }
                    };
                    let scope: roaring::RoaringBitmap = std::iter::once(user).collect();
                    let selected = crate::segment::select(dicts, state, expr, now, &scope, None)?;
                    if !selected.contains(user) {
                        decisions.push(dropped("audience"));
                        continue;
                    }
                }
                if !state.indexes.webpush_user_ids.contains(user) {
                    decisions.push(dropped("unreachable"));
                    continue;
                }
                let zone_name = timezone_key.and_then(|k| match state.profiles.value(user, k) {
                    Some(crate::props::ValueRef::Str(name)) => Some(name),
                    _ => None,
                });
                let tz = policy::timezone(zone_name, &settings.default_timezone);
                let sent: Vec<i64> = sent_event.map_or_else(Vec::new, |event| {
                    state
                        .timelines
                        .of(user)
                        .iter()
                        .filter(|e| e.event() == event && e.ts_ms >= now - CAP_LOOKBACK_MS)
                        .map(|e| e.ts_ms)
                        .collect()
                });
                let quiet = match &campaign.dnd {
                    Some((from, to, mode)) => Some(QuietHours {
                        from: from.parse().unwrap_or_default(),
                        to: to.parse().unwrap_or_default(),
                        mode: if mode == "discard" { QuietMode::Discard } else { QuietMode::Delay },
                    }),
                    None => settings.dnd,
                };
                let rules = DeliveryRules {
                    campaign: id.to_owned(),
                    caps: settings.caps,
                    ignore_caps: campaign.ignore_global_caps,
                    quiet,
                    control_percent: campaign.control_group_percent,
                    variant_weights: campaign.variants.iter().map(|v| v.weight).collect(),
                    expires_at_ms: campaign
                        .message
                        .ttl_ms
                        .map(|ttl| fire.due_ms.saturating_add(ttl)),
                };
                decisions.push(
                    match policy::decide(&rules, &fire.user_id, &tz, &sent, now)
                        .map_err(|e| crate::Error::invalid(None, "campaign", e.0))?
                    {
                        Decision::Drop(reason) => dropped(reason.name()),
                        Decision::Delay { until_ms } => Delivery::Delay {
                            campaign: id.to_owned(),
                            user_id: fire.user_id.clone(),
                            until_ms,
                        },
                        Decision::Send { variant } => {
                            let chosen = variant.and_then(|v| campaign.variants.get(v));
                            Delivery::Send {
                                campaign: id.to_owned(),
                                user_id: fire.user_id.clone(),
                                fire_id: fire.id(),
                                variant: chosen.map(|v| v.name.clone()),
                                message: Box::new(
                                    chosen.map_or(&campaign.message, |v| &v.message).clone(),
                                ),
                                expires_at_ms: rules.expires_at_ms,
                            }
                        }
                    },
                );
            }
        }
        let records: Vec<Record> = decisions.iter().filter_map(|d| record(d, now)).collect();
        if !records.is_empty() {
            self.ingest(records)?;
        }
        Ok(decisions)
    }
}

/// The event a decision adds to the user's timeline (none for a delay).
fn record(decision: &Delivery, now: i64) -> Option<Record> {
    Some(match decision {
        Delivery::Send { campaign, user_id, fire_id, variant, .. } => {
            let mut event = Event::new(user_id.clone(), CAMPAIGN_FIRED_EVENT)
                .at(now)
                .prop("campaign", campaign.clone())
                .prop("fire_id", fire_id.clone());
            if let Some(variant) = variant {
                event = event.prop("variant", variant.clone());
            }
            event.into()
        }
        Delivery::Dropped { campaign, user_id, reason } => {
            Event::new(user_id.clone(), PUSH_DROPPED_EVENT)
                .at(now)
                .prop("campaign", campaign.clone())
                .prop("reason", *reason)
                .into()
        }
        Delivery::Delay { .. } => return None,
    })
}
