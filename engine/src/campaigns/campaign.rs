//! Campaign definitions (the fields of `shared/spec/interfaces.md`), their
//! validation, and the log entries that store them.
//!
//! A campaign is stored in the log as a `CampaignSaved` record whose body is
//! the rkyv encoding of [`Campaign`], so new fields never change the layout
//! of the log's entries. A live campaign (one with a `trigger`) also saves its
//! trigger under [`Campaign::trigger_name`] in the same batch, so its fires
//! come from the triggers layer (`triggers/`); a scheduled one is run by
//! `schedule.rs`. Pausing is a record too. What a campaign does for one user
//! is decided in `delivery.rs`.

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::log::entry::{LogCampaign, LogCampaignPaused, LogCampaignRemoved, LogEntry};

/// The prefix of a live campaign's trigger name (`campaign:{id}`).
pub const TRIGGER_PREFIX: &str = "campaign:";
/// Longest campaign id, in bytes.
pub const MAX_CAMPAIGN_ID_BYTES: usize = 128;
/// Most variants a campaign may have.
pub const MAX_VARIANTS: usize = 16;
/// Longest Web Push `Topic` (RFC 8030 §5.4: 32 characters of the URL-safe base64 alphabet).
pub const MAX_TOPIC_CHARS: usize = 32;

/// A message's content and Web Push options. Texts are templates.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// Title template.
    pub title: String,
    /// Body template.
    pub body: String,
    /// Where a click leads (deeplink) template.
    pub url: Option<String>,
    /// Icon URL.
    pub icon: Option<String>,
    /// Image URL.
    pub image: Option<String>,
    /// Action buttons: (title, url).
    pub actions: Vec<(String, String)>,
    /// Keep the notification until the user acts.
    pub require_interaction: bool,
    /// Time to live, ms.
    pub ttl_ms: Option<i64>,
    /// Web Push urgency: `very-low`, `low`, `normal` or `high`.
    pub urgency: Option<String>,
    /// Web Push topic (replaces an undelivered message with the same topic).
    pub topic: Option<String>,
}

/// An A/B variant.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Variant {
    /// Its name (`A`, `B`, …).
    pub name: String,
    /// Relative weight.
    pub weight: u32,
    /// Its message.
    pub message: Message,
}

/// When a scheduled campaign sends.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    /// One-off local date-times (`2026-12-01T09:00:00`).
    pub at: Vec<String>,
    /// `day`, `week` or `month`, with a local `HH:MM` and, weekly, the days (`mon`…).
    pub recurring: Option<(String, String, Vec<String>)>,
    /// `user` (each user's `timezone` property, else the default) or an IANA name.
    pub timezone: String,
    /// `drop` or `next_day` when the local time has passed for a user.
    pub if_passed: String,
    /// Start, end and cut-off, epoch ms.
    pub start_ms: Option<i64>,
    /// See `start_ms`.
    pub end_ms: Option<i64>,
    /// See `start_ms`.
    pub cutoff_ms: Option<i64>,
}

/// A campaign.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Campaign {
    /// Its id (the path segment of `/v1/campaigns/{id}`).
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Live campaigns: the trigger (section 3 of the language spec).
    pub trigger: Option<String>,
    /// Who may receive it: a segment expression (for live ones, an extra filter).
    pub audience: Option<String>,
    /// Scheduled campaigns: when.
    pub schedule: Option<Schedule>,
    /// The message (or the default one, with variants).
    pub message: Message,
    /// A/B variants.
    pub variants: Vec<Variant>,
    /// Share of users held out, percent.
    pub control_group_percent: f64,
    /// Whether the global frequency caps do not apply.
    pub ignore_global_caps: bool,
    /// This campaign's own caps (per local day, per local week), instead of the global ones.
    pub caps: Option<(Option<u32>, Option<u32>)>,
    /// Quiet hours: (from `HH:MM`, to `HH:MM`, `delay` or `discard`).
    pub dnd: Option<(String, String, String)>,
    /// Conversion: (event, within ms, revenue property).
    pub conversion: Option<(String, i64, Option<String>)>,
    /// Webhook: (url, secret).
    pub webhook: Option<(String, String)>,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(None, field, reason.into())
}

/// A local time of day (`09:00`); the error names `field`.
pub(crate) fn local_time(field: &str, text: &str) -> Result<jiff::civil::Time> {
    text.parse::<jiff::civil::Time>()
        .map_err(|e| invalid(field, format!("{text:?} is not a local time like \"09:00\": {e}")))
}

impl Campaign {
    /// The name its trigger is saved under.
    pub fn trigger_name(&self) -> String {
        format!("{TRIGGER_PREFIX}{}", self.id)
    }

    /// Checks every field; the error names the field and says what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.id.len() > MAX_CAMPAIGN_ID_BYTES {
            return Err(invalid("id", format!("must be 1 to {MAX_CAMPAIGN_ID_BYTES} bytes")));
        }
        match (&self.trigger, &self.audience, &self.schedule) {
            (Some(_), _, Some(_)) => {
                return Err(invalid(
                    "schedule",
                    "a live campaign (with a trigger) has no schedule",
                ));
            }
            (None, None, _) | (None, Some(_), None) => {
                return Err(invalid(
                    "trigger",
                    "a campaign needs a trigger (live) or an audience and a schedule (scheduled)",
                ));
            }
            _ => {}
        }
        if let Some(trigger) = &self.trigger {
            nudge_query_lang::parse_trigger(trigger)
                .map_err(|e| Error::query(&e, trigger, "trigger"))?;
        }
        if let Some(audience) = &self.audience {
            nudge_query_lang::parse_segment(audience)
                .map_err(|e| Error::query(&e, audience, "audience"))?;
        }
        if let Some(schedule) = &self.schedule {
            if schedule.at.is_empty() && schedule.recurring.is_none() {
                return Err(invalid("schedule", "needs `at` times or `recurring`"));
            }
            for at in &schedule.at {
                at.parse::<jiff::civil::DateTime>().map_err(|e| {
                    invalid("schedule.at", format!("{at:?} is not a local date-time: {e}"))
                })?;
            }
            if let Some((every, time, days)) = &schedule.recurring {
                if !["day", "week", "month"].contains(&every.as_str()) {
                    return Err(invalid("schedule.recurring.every", "must be day, week or month"));
                }
                local_time("schedule.recurring.time", time)?;
                let week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                if let Some(day) = days.iter().find(|d| !week.contains(&d.as_str())) {
                    return Err(invalid(
                        "schedule.recurring.days",
                        format!("{day:?} is not mon…sun"),
                    ));
                }
            }
            if schedule.timezone != "user" {
                crate::campaigns::policy::parse_timezone(&schedule.timezone)
                    .map_err(|e| invalid("schedule.timezone", e.0))?;
            }
            if !["drop", "next_day"].contains(&schedule.if_passed.as_str()) {
                return Err(invalid("schedule.if_passed", "must be drop or next_day"));
            }
        }
        if !(0.0..=100.0).contains(&self.control_group_percent) {
            return Err(invalid("control_group_percent", "must be between 0 and 100"));
        }
        if self.variants.len() > MAX_VARIANTS {
            return Err(invalid("variants", format!("at most {MAX_VARIANTS}")));
        }
        if !self.variants.is_empty() && self.variants.iter().all(|v| v.weight == 0) {
            return Err(invalid("variants", "at least one weight must be positive"));
        }
        for message in
            std::iter::once(&self.message).chain(self.variants.iter().map(|v| &v.message))
        {
            if let Some(urgency) = &message.urgency
                && !["very-low", "low", "normal", "high"].contains(&urgency.as_str())
            {
                return Err(invalid("message.urgency", "must be very-low, low, normal or high"));
            }
            if let Some(topic) = &message.topic
                && (topic.len() > MAX_TOPIC_CHARS
                    || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            {
                return Err(invalid(
                    "message.topic",
                    format!("at most {MAX_TOPIC_CHARS} characters of A–Z a–z 0–9 - _"),
                ));
            }
            let texts =
                [("message.title", Some(&message.title)), ("message.body", Some(&message.body))]
                    .into_iter()
                    .chain([
                        ("message.url", message.url.as_ref()),
                        ("message.icon", message.icon.as_ref()),
                        ("message.image", message.image.as_ref()),
                    ])
                    .chain(message.actions.iter().flat_map(|(title, url)| {
                        [("message.actions.title", Some(title)), ("message.actions.url", Some(url))]
                    }));
            for (field, text) in texts {
                if let Some(text) = text {
                    crate::campaigns::template::check(field, text)?;
                }
            }
            if message.ttl_ms.is_some_and(|ttl| ttl < 0) {
                return Err(invalid("message.ttl", "must not be negative"));
            }
        }
        if let Some(dnd) = &self.dnd {
            crate::campaigns::delivery::quiet_hours(dnd)?;
        }
        Ok(())
    }

    /// The stored form (rkyv).
    pub fn encode(&self) -> Vec<u8> {
        crate::store::log::entry::encode_blob(self)
    }

    /// Reads the stored form back (`None` when it does not decode).
    pub fn decode(bytes: &[u8]) -> Option<Campaign> {
        crate::store::log::entry::decode_blob(bytes)
    }
}

/// A campaign as the engine holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCampaign {
    /// The definition.
    pub campaign: Campaign,
    /// Whether it is paused.
    pub paused: bool,
    /// When it was last saved (its batch's arrival), epoch ms: a scheduled
    /// campaign's occurrences before this time are "passed".
    pub saved_ms: i64,
}

impl Campaign {
    /// The log entry that saves this campaign (validated by the caller).
    pub fn saved_entry(&self) -> LogEntry {
        LogEntry::CampaignSaved(LogCampaign { id: self.id.clone(), definition: self.encode() })
    }
}

/// The log entry that removes campaign `id`.
pub fn removed_entry(id: &str) -> LogEntry {
    LogEntry::CampaignRemoved(LogCampaignRemoved { id: id.to_owned() })
}

/// The log entry that pauses or resumes campaign `id`.
pub fn paused_entry(id: &str, paused: bool) -> LogEntry {
    LogEntry::CampaignPaused(LogCampaignPaused { id: id.to_owned(), paused })
}

/// The campaign whose live trigger is named `trigger`, if it is one.
pub fn campaign_of_trigger(trigger: &str) -> Option<&str> {
    trigger.strip_prefix(TRIGGER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaigns::outbox::{DeliveryRecord, OutboxItem, SettingsRecord, Target};

    fn hex(bytes: &[u8]) -> String {
        let lines: Vec<String> = bytes
            .chunks(32)
            .map(|chunk| chunk.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        lines.join("\n") + "\n"
    }

    fn message() -> Message {
        Message {
            title: "Hi {{ name }}".into(),
            body: "Your cart".into(),
            url: Some("/cart".into()),
            icon: None,
            image: Some("https://img.example/1.png".into()),
            actions: vec![("Pay".into(), "/pay".into()), ("Later".into(), "/later".into())],
            require_interaction: true,
            ttl_ms: Some(3_600_000),
            urgency: Some("high".into()),
            topic: Some("cart".into()),
        }
    }

    /// The stored forms of a campaign, the delivery settings and an outbox
    /// item are part of the log's format: a change of layout fails here
    /// (rewrite the file only with a new format version and a reader for the old).
    #[test]
    fn stored_forms_keep_their_layout() {
        let campaign = Campaign {
            id: "cart".into(),
            name: "Cart".into(),
            trigger: None,
            audience: Some("did \"Visit\"".into()),
            schedule: Some(Schedule {
                at: vec!["2026-12-01T09:00:00".into()],
                recurring: Some(("week".into(), "09:30".into(), vec!["mon".into(), "thu".into()])),
                timezone: "Europe/Paris".into(),
                if_passed: "next_day".into(),
                start_ms: Some(1),
                end_ms: None,
                cutoff_ms: Some(3),
            }),
            message: message(),
            variants: vec![Variant { name: "B".into(), weight: 2, message: Message::default() }],
            control_group_percent: 12.5,
            ignore_global_caps: true,
            caps: Some((Some(1), None)),
            dnd: Some(("21:00".into(), "09:00".into(), "discard".into())),
            conversion: Some(("Charged".into(), 86_400_000, Some("amount".into()))),
            webhook: Some(("https://hooks.example/in".into(), "s3cret".into())),
        };
        let settings = DeliveryRecord::Settings(SettingsRecord {
            webpush_per_day: Some(2),
            webpush_per_week: None,
            default_timezone: "Asia/Tokyo".into(),
            dnd: Some(("22:00".into(), "07:30".into(), "delay".into())),
        });
        let item = DeliveryRecord::Queue(Box::new(OutboxItem {
            id: 7,
            delivery_id: "d-1".into(),
            user: 3,
            user_id: "u3".into(),
            campaign: "cart".into(),
            variant: Some("B".into()),
            test: false,
            target: Target::Webhook { url: "https://hooks.example/in".into(), secret: "s".into() },
            notification: message(),
            not_before_ms: 10,
            expires_at_ms: 20,
            attempts: 1,
        }));
        let rendering = format!(
            "# campaign\n{}# settings\n{}# outbox item\n{}",
            hex(&campaign.encode()),
            hex(&settings.encode()),
            hex(&item.encode())
        );
        crate::golden::check("src/campaigns/testdata/stored_forms_v1.hex", &rendering);
        assert_eq!(Campaign::decode(&campaign.encode()), Some(campaign));
    }
}
