//! From a campaign decision to queued messages: the one place a campaign's
//! delivery is decided for a user, whether a trigger fired it (`Engine::fire_due`), a
//! schedule reached it (`schedule.rs`) or someone asked for a test send.
//!
//! [`Planner::plan`] checks, in this order: paused, audience, cut-off,
//! reachability, then the delivery policy (`policy::decide`: expiry, control
//! group, quiet hours, caps, variant) in the user's time zone with their past
//! sends; then it renders the message (`template.rs`) and queues one outbox
//! item per subscription, plus the campaign's webhook. Each decision is a
//! system event of the user, written in the same batch as the outbox items
//! and the record that caused it:
//!
//! - `$campaign_fired`: the user was targeted (past the pause and audience checks);
//! - `$push_sent`: queued, at the time it goes out (later than now when quiet
//!   hours delay it, with `$push_delayed` now);
//! - `$push_dropped` with `reason`: `paused`, `audience`, `cutoff`,
//!   `unreachable`, `expired`, `control` ("would have sent"), `dnd`, `capped`,
//!   `template`, `passed`, `late`.

pub use crate::campaigns::events::{
    CAMPAIGN_FIRED_EVENT, PUSH_DELAYED_EVENT, PUSH_DROPPED_EVENT, PUSH_SENT_EVENT,
};
use std::collections::HashMap;

use crate::campaigns::CampaignState;
use crate::campaigns::campaign::StoredCampaign;
use crate::campaigns::events::keys;
use crate::campaigns::outbox::{self, DeliveryRecord, OutboxItem, Target};
use crate::campaigns::policy::{self, Caps, Decision, DeliveryRules, QuietHours};
use crate::campaigns::stored::{self, SettingsRecord};
use crate::campaigns::template;
use crate::error::{Error, Result};
use crate::query::Source;
use crate::store::dict::{Dictionaries, EventId, FastMap, UserId};
use crate::store::props::{self, KeyId, ValueRef};
use crate::store::record::Event;
use crate::store::sequencer::Input;

/// Most records one decision writes: `$campaign_fired`, one per
/// subscription, the webhook, `$push_delayed` and `$push_sent`.
pub const MAX_RECORDS_PER_DECISION: usize = crate::limits::MAX_SUBSCRIPTIONS_PER_USER + 4;
/// How far back sends are read for the caps (a week, and a day for zones).
const CAP_LOOKBACK_MS: i64 = 8 * 24 * 60 * 60 * 1000;

/// Delivery settings that apply to every campaign (`PUT /v1/settings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Global frequency caps.
    pub caps: Caps,
    /// Time zone of users without a valid `timezone` profile property (an
    /// IANA zone; UTC by default).
    pub default_timezone: jiff::tz::TimeZone,
    /// Global quiet hours, when a campaign has none.
    pub dnd: Option<QuietHours>,
}

impl Default for DeliverySettings {
    /// UTC, no caps, no quiet hours.
    fn default() -> DeliverySettings {
        DeliverySettings {
            caps: Caps::default(),
            default_timezone: jiff::tz::TimeZone::UTC,
            dnd: None,
        }
    }
}

impl DeliverySettings {
    /// Resolves stored settings; errors name the field.
    pub(crate) fn from_record(record: &SettingsRecord) -> Result<DeliverySettings> {
        let default_timezone = if record.default_timezone.is_empty() {
            jiff::tz::TimeZone::UTC
        } else {
            policy::parse_timezone(&record.default_timezone)
                .map_err(|e| Error::invalid(None, "default_timezone", e.0))?
        };
        let dnd =
            match &record.dnd {
                Some(stored) => Some(stored::read_quiet_hours(stored).ok_or_else(|| {
                    Error::invalid(None, "dnd", format!("{stored:?} does not read"))
                })?),
                None => None,
            };
        Ok(DeliverySettings {
            caps: Caps { per_day: record.webpush_per_day, per_week: record.webpush_per_week },
            default_timezone,
            dnd,
        })
    }

    /// The stored form; the default zone must have an IANA name (the only
    /// zones a name can be stored for).
    pub(crate) fn to_record(&self) -> Result<SettingsRecord> {
        let Some(zone) = self.default_timezone.iana_name() else {
            return Err(Error::invalid(
                None,
                "default_timezone",
                "must be an IANA time zone (such as \"Europe/Paris\"), not a fixed offset",
            ));
        };
        Ok(SettingsRecord {
            webpush_per_day: self.caps.per_day,
            webpush_per_week: self.caps.per_week,
            default_timezone: zone.to_owned(),
            dnd: self.dnd.as_ref().map(stored::store_quiet_hours),
        })
    }
}

/// What one decision came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Queued: it goes out at `send_at_ms` (later than now when quiet hours delay it).
    Send {
        /// The user's external id.
        user_id: String,
        /// The delivery's id (notification tag, idempotency key).
        delivery_id: String,
        /// The variant's name, if the campaign has variants.
        variant: Option<String>,
        /// When it goes out, epoch ms.
        send_at_ms: i64,
        /// Outbox items queued (one per subscription, plus the webhook).
        items: usize,
    },
    /// Not sent, for this reason.
    Dropped {
        /// The user's external id.
        user_id: String,
        /// Why (see the module docs).
        reason: &'static str,
    },
}

/// What caused a decision.
pub(crate) struct Cause<'a> {
    /// Stable key of the cause (fire id, schedule occurrence, test): with the
    /// user it makes the delivery id.
    pub key: String,
    /// The triggering event's properties (`event.*` in templates).
    pub event: Option<&'a [u8]>,
    /// When the cause fell due (TTL counts from here), epoch ms.
    pub due_ms: i64,
    /// Whether the campaign's audience is checked here (scheduled runs check it in bulk).
    pub check_audience: bool,
    /// A test send: only the subscriptions matter.
    pub test: bool,
}

/// Decides deliveries against one view of the state; sends decided in the
/// same pass count toward the caps.
pub(crate) struct Planner<'a> {
    pub(crate) dicts: &'a Dictionaries,
    pub(crate) state: Source<'a>,
    settings: DeliverySettings,
    now: i64,
    timezone_key: Option<KeyId>,
    test_key: Option<KeyId>,
    sent_event: Option<EventId>,
    audiences: HashMap<String, nudge_query_lang::Expr>,
    sent_now: FastMap<UserId, Vec<i64>>,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(
        dicts: &'a Dictionaries,
        state: Source<'a>,
        campaigns: &'a CampaignState,
        now: i64,
    ) -> Self {
        let key = |name: &str| dicts.keys.get(name).and_then(|k| KeyId::try_from(k).ok());
        Planner {
            dicts,
            state,
            // Checked when saved; settings that no longer resolve fall back to the defaults.
            settings: DeliverySettings::from_record(&campaigns.outbox.settings).unwrap_or_default(),
            now,
            timezone_key: key("timezone"),
            test_key: key(keys::TEST),
            sent_event: dicts.events.get(PUSH_SENT_EVENT),
            audiences: HashMap::new(),
            sent_now: FastMap::default(),
        }
    }

    /// The user's time zone: their `timezone` property, else the default.
    pub(crate) fn timezone_of(&self, user: UserId) -> jiff::tz::TimeZone {
        let name = self.timezone_key.and_then(|k| match self.state.profiles.value(user, k) {
            Some(ValueRef::Str(name)) => Some(name),
            _ => None,
        });
        policy::timezone(name, &self.settings.default_timezone)
    }

    /// The default time zone.
    pub(crate) fn default_timezone(&self) -> &jiff::tz::TimeZone {
        &self.settings.default_timezone
    }

    fn sends(&self, user: UserId) -> Vec<i64> {
        let mut sent: Vec<i64> = self.sent_event.map_or_else(Vec::new, |event| {
            let timeline =
                self.state.events_in(user, self.now - CAP_LOOKBACK_MS, i64::MAX, Some(&[event]));
            timeline
                .iter()
                .filter(|e| e.event() == event)
                .filter(|e| {
                    let test = self.test_key.and_then(|k| props::get(self.state.props(e), k));
                    test != Some(ValueRef::Bool(true))
                })
                .map(|e| e.ts_ms)
                .collect()
        });
        if let Some(now) = self.sent_now.get(&user) {
            sent.extend_from_slice(now);
        }
        sent
    }

    /// Decides one campaign for one user and appends the records of the
    /// decision (events, outbox items) to `out`.
    pub(crate) fn plan(
        &mut self,
        stored: &StoredCampaign,
        user: UserId,
        cause: &Cause<'_>,
        out: &mut Vec<Input>,
    ) -> Result<Delivery> {
        let campaign = &stored.campaign;
        let now = self.now;
        let user_id = self.dicts.users.name(user).unwrap_or_default().to_owned();
        let event = |name: &str| {
            let mut e =
                Event::new(user_id.clone(), name).at(now).prop(keys::CAMPAIGN, campaign.id.clone());
            if cause.test {
                e = e.prop(keys::TEST, true);
            }
            e
        };
        let dropped = |out: &mut Vec<Input>, reason: &'static str| {
            out.push(event(PUSH_DROPPED_EVENT).prop(keys::REASON, reason).into());
            Delivery::Dropped { user_id: user_id.clone(), reason }
        };
        if !cause.test {
            if stored.paused {
                return Ok(dropped(out, "paused"));
            }
            if cause.check_audience
                && let Some(audience) = &campaign.audience
            {
                if !self.audiences.contains_key(&campaign.id) {
                    let expr = crate::query::parse(audience)?;
                    self.audiences.insert(campaign.id.clone(), expr);
                }
                let expr = &self.audiences[&campaign.id];
                let scope: roaring::RoaringBitmap = std::iter::once(user).collect();
                let selected = crate::query::select_by(
                    self.dicts,
                    &self.state,
                    expr,
                    now,
                    &scope,
                    None,
                    crate::query::Strategy::Timelines,
                )?;
                if !selected.contains(user) {
                    return Ok(dropped(out, "audience"));
                }
            }
            out.push(event(CAMPAIGN_FIRED_EVENT).prop(keys::FIRE_ID, cause.key.clone()).into());
            if campaign.schedule.as_ref().and_then(|s| s.cutoff_ms).is_some_and(|c| now > c) {
                return Ok(dropped(out, "cutoff"));
            }
        }
        let subscriptions = self.state.subscriptions.of(user);
        if subscriptions.is_empty() && (cause.test || campaign.webhook.is_none()) {
            return Ok(dropped(out, "unreachable"));
        }
        let tz = self.timezone_of(user);
        let (send_at, variant) = if cause.test {
            (now, None)
        } else {
            let sent = self.sends(user);
            // The caps count sends read from day files: none may have failed its check.
            self.state.sealed.damage()?;
            let rules = DeliveryRules {
                campaign: campaign.id.clone(),
                caps: campaign.caps.unwrap_or(self.settings.caps),
                ignore_caps: campaign.ignore_global_caps,
                quiet: campaign.dnd.or(self.settings.dnd),
                control_percent: campaign.control_group_percent,
                variant_weights: campaign.variants.iter().map(|v| v.weight).collect(),
                expires_at_ms: campaign.message.ttl_ms.map(|ttl| cause.due_ms.saturating_add(ttl)),
            };
            let policy_error = |e: policy::PolicyError| Error::invalid(None, "campaign", e.0);
            match policy::decide(&rules, &user_id, &tz, &sent, now).map_err(policy_error)? {
                Decision::Drop(reason) => return Ok(dropped(out, reason.name())),
                Decision::Send { variant } => (now, variant),
                Decision::Delay { until_ms } => {
                    // Caps count on the day it goes out.
                    let capped = !rules.ignore_caps
                        && !rules.caps.allow(&sent, until_ms, &tz).map_err(policy_error)?;
                    if capped {
                        return Ok(dropped(out, "capped"));
                    }
                    let variant = (!rules.variant_weights.is_empty())
                        .then(|| {
                            policy::pick_variant(&campaign.id, &user_id, &rules.variant_weights)
                        })
                        .flatten();
                    (until_ms, variant)
                }
            }
        };
        if campaign.schedule.as_ref().and_then(|s| s.cutoff_ms).is_some_and(|c| send_at > c) {
            return Ok(dropped(out, "cutoff"));
        }
        let chosen = variant.and_then(|v| campaign.variants.get(v));
        let message = chosen.map_or(&campaign.message, |v| &v.message);
        let context = minijinja::context! {
            user => template::object(self.state.profiles.get(user), &self.dicts.keys, &[("id", &user_id)]),
            event => template::object(cause.event.unwrap_or_default(), &self.dicts.keys, &[]),
            campaign => minijinja::context! { id => campaign.id.clone(), name => campaign.name.clone() },
        };
        let notification = match template::render_message(message, &context) {
            Ok(n) => n,
            Err(error) => {
                out.push(
                    event(PUSH_DROPPED_EVENT)
                        .prop(keys::REASON, "template")
                        .prop("error", error)
                        .into(),
                );
                return Ok(Delivery::Dropped { user_id, reason: "template" });
            }
        };
        let delivery_id = format!(
            "{user:x}.{:016x}",
            xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", campaign.id, cause.key).as_bytes())
        );
        let expiry = message.ttl_ms.unwrap_or(outbox::DEFAULT_EXPIRY_MS);
        let mut expires_at = send_at.saturating_add(expiry);
        if let Some(cutoff) = campaign.schedule.as_ref().and_then(|s| s.cutoff_ms) {
            expires_at = expires_at.min(cutoff);
        }
        let variant_name = chosen.map(|v| v.name.clone());
        let mut targets: Vec<(Target, outbox::Notification)> = Vec::new();
        for sub in &subscriptions {
            let shown = if template::is_safari(sub.endpoint) {
                match template::for_safari(&notification) {
                    Ok(n) => n,
                    Err(reason) => {
                        out.push(
                            event(outbox::PUSH_FAILED_EVENT).prop(keys::REASON, reason).into(),
                        );
                        continue;
                    }
                }
            } else {
                notification.clone()
            };
            let target = Target::WebPush {
                endpoint: sub.endpoint.to_owned(),
                p256dh: sub.p256dh.to_owned(),
                auth: sub.auth.to_owned(),
            };
            targets.push((target, shown));
        }
        if let (Some(webhook), false) = (&campaign.webhook, cause.test) {
            let target =
                Target::Webhook { url: webhook.url.clone(), secret: webhook.secret.clone() };
            targets.push((target, notification.clone()));
        }
        let items = targets.len();
        for (target, notification) in targets {
            out.push(outbox::record(DeliveryRecord::Queue(Box::new(OutboxItem {
                id: OutboxItem::key(&delivery_id, &target),
                delivery_id: delivery_id.clone(),
                user,
                user_id: user_id.clone(),
                campaign: campaign.id.clone(),
                variant: variant_name.clone(),
                test: cause.test,
                target,
                notification,
                not_before_ms: send_at,
                expires_at_ms: expires_at,
                attempts: 0,
            }))));
        }
        if send_at > now {
            out.push(
                event(PUSH_DELAYED_EVENT)
                    .prop(keys::REASON, "dnd")
                    .prop("until", send_at)
                    .prop(keys::DELIVERY_ID, delivery_id.clone())
                    .into(),
            );
        }
        let mut sent =
            event(PUSH_SENT_EVENT).at(send_at).prop(keys::DELIVERY_ID, delivery_id.clone());
        if let Some(name) = &variant_name {
            sent = sent.prop(keys::VARIANT, name.clone());
        }
        out.push(sent.into());
        if !cause.test {
            self.sent_now.entry(user).or_default().push(send_at);
        }
        Ok(Delivery::Send {
            user_id,
            delivery_id,
            variant: variant_name,
            send_at_ms: send_at,
            items,
        })
    }
}

/// The records of a test send of `stored` to `user` at `now`: no audience,
/// caps, quiet hours or control group; kept out of the stats. `key` makes
/// the delivery id unique per test send.
pub(crate) fn test_send(
    planner: &mut Planner<'_>,
    stored: &StoredCampaign,
    user: UserId,
    key: String,
) -> Result<(Delivery, Vec<Input>)> {
    let cause = Cause { key, event: None, due_ms: planner.now, check_audience: false, test: true };
    let mut records = Vec::new();
    let delivery = planner.plan(stored, user, &cause, &mut records)?;
    Ok((delivery, records))
}
