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

use jiff::civil::{DateTime, Time, Weekday};
use rkyv::{Archive, Deserialize, Serialize};

pub use crate::campaigns::policy::{Caps, IfPassed, QuietHours, QuietMode};
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

/// An action button of a notification. Texts are templates.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Action {
    /// The button's label.
    pub title: String,
    /// Where a click on it leads.
    pub url: String,
}

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
    /// Action buttons.
    pub actions: Vec<Action>,
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

/// How often a recurring schedule comes round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Every day.
    Day,
    /// Every week, on the schedule's days (Monday when it names none).
    Week,
    /// Every month, on the day of the month of the schedule's start
    /// (clamped to the month's last day; the 1st without a start).
    Month,
}

/// A recurring schedule: every day, week or month at a local time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurring {
    /// How often.
    pub every: Every,
    /// The local time of day.
    pub time: Time,
    /// Weekly schedules: the days (none means Monday). Empty for the others.
    pub days: Vec<Weekday>,
}

/// Whose clock a schedule's local times are read on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScheduleZone {
    /// Each user's: their `timezone` profile property when it is a valid
    /// IANA name, else the settings' default zone.
    #[default]
    User,
    /// One IANA zone for everyone (`Europe/Paris`).
    Named(String),
}

/// When a scheduled campaign sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    /// One-off local date-times.
    pub at: Vec<DateTime>,
    /// A recurring local time.
    pub recurring: Option<Recurring>,
    /// Whose local time.
    pub timezone: ScheduleZone,
    /// What a passed local time does.
    pub if_passed: IfPassed,
    /// Not before this instant, epoch ms.
    pub start_ms: Option<i64>,
    /// Not after this instant, epoch ms.
    pub end_ms: Option<i64>,
    /// Nothing is sent after this instant, epoch ms (an occurrence still
    /// running stops).
    pub cutoff_ms: Option<i64>,
}

/// What counts as a conversion of a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The event (`Charged`).
    pub event: String,
    /// Counted when it happens within this long after a send, ms.
    pub within_ms: i64,
    /// The event property that holds revenue (`amount`), if any.
    pub revenue_property: Option<String>,
}

/// A campaign's webhook: every send is also posted there, signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The HMAC-SHA256 signing secret.
    pub secret: String,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// This campaign's own caps, instead of the global ones.
    pub caps: Option<Caps>,
    /// This campaign's own quiet hours, instead of the global ones.
    pub dnd: Option<QuietHours>,
    /// What counts as a conversion (for its statistics).
    pub conversion: Option<Conversion>,
    /// Where every send is also posted.
    pub webhook: Option<Webhook>,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(None, field, reason.into())
}

/// A local time of day (`09:00`, `09:30:15`); the error names `field`.
pub fn parse_local_time(field: &str, text: &str) -> Result<Time> {
    text.parse::<Time>()
        .map_err(|e| invalid(field, format!("{text:?} is not a local time like \"09:00\": {e}")))
}

/// A local time of day as people write it: `09:00`, with seconds only when
/// it has them (`09:00:30`). [`parse_local_time`] reads it back.
pub fn format_local_time(time: Time) -> String {
    if time.subsec_nanosecond() != 0 {
        time.to_string()
    } else if time.second() != 0 {
        time.strftime("%H:%M:%S").to_string()
    } else {
        time.strftime("%H:%M").to_string()
    }
}

const WEEKDAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Monday, "mon"),
    (Weekday::Tuesday, "tue"),
    (Weekday::Wednesday, "wed"),
    (Weekday::Thursday, "thu"),
    (Weekday::Friday, "fri"),
    (Weekday::Saturday, "sat"),
    (Weekday::Sunday, "sun"),
];

/// A weekday's short name (`mon` … `sun`), as schedules write days.
pub fn weekday_name(day: Weekday) -> &'static str {
    WEEKDAY_NAMES.iter().find(|(d, _)| *d == day).map_or("mon", |(_, name)| name)
}

/// The weekday named `mon` … `sun`.
pub fn weekday_of_name(name: &str) -> Option<Weekday> {
    WEEKDAY_NAMES.iter().find(|(_, n)| *n == name).map(|(day, _)| *day)
}

impl Every {
    /// Its name in the HTTP API and the stored form: `day`, `week`, `month`.
    pub fn name(self) -> &'static str {
        match self {
            Every::Day => "day",
            Every::Week => "week",
            Every::Month => "month",
        }
    }

    /// The inverse of [`Every::name`].
    pub fn of_name(name: &str) -> Option<Every> {
        [Every::Day, Every::Week, Every::Month].into_iter().find(|e| e.name() == name)
    }
}

impl ScheduleZone {
    /// Its name in the HTTP API and the stored form: `user` or the IANA name.
    pub fn name(&self) -> &str {
        match self {
            ScheduleZone::User => USER_ZONE_NAME,
            ScheduleZone::Named(name) => name,
        }
    }

    /// The inverse of [`ScheduleZone::name`] (the IANA name is not checked).
    pub fn of_name(name: &str) -> ScheduleZone {
        if name == USER_ZONE_NAME {
            ScheduleZone::User
        } else {
            ScheduleZone::Named(name.to_owned())
        }
    }
}

/// The name of [`ScheduleZone::User`] in the HTTP API and the stored form.
pub const USER_ZONE_NAME: &str = "user";

fn is_http_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["https://", "http://"]
        .iter()
        .any(|scheme| lower.len() > scheme.len() && lower.starts_with(scheme))
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
            if let Some(recurring) = &schedule.recurring
                && recurring.every != Every::Week
                && !recurring.days.is_empty()
            {
                return Err(invalid(
                    "schedule.recurring.days",
                    "days are for \"every\": \"week\" only",
                ));
            }
            if let ScheduleZone::Named(name) = &schedule.timezone {
                crate::campaigns::policy::parse_timezone(name)
                    .map_err(|e| invalid("schedule.timezone", e.0))?;
            }
            for (field, bound) in [("end", schedule.end_ms), ("cutoff", schedule.cutoff_ms)] {
                if let (Some(start), Some(bound)) = (schedule.start_ms, bound)
                    && bound < start
                {
                    return Err(invalid(&format!("schedule.{field}"), "is before `start`"));
                }
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
                    .chain(message.actions.iter().flat_map(|action| {
                        [
                            ("message.actions.title", Some(&action.title)),
                            ("message.actions.url", Some(&action.url)),
                        ]
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
        if let Some(conversion) = &self.conversion {
            if conversion.event.is_empty() {
                return Err(invalid("conversion.event", "must not be empty"));
            }
            if conversion.within_ms <= 0 {
                return Err(invalid("conversion.within", "must be positive"));
            }
        }
        if let Some(webhook) = &self.webhook {
            if !is_http_url(&webhook.url) {
                return Err(invalid("webhook.url", "must be an http:// or https:// URL"));
            }
            if webhook.secret.is_empty() {
                return Err(invalid("webhook.secret", "must not be empty"));
            }
        }
        Ok(())
    }

    /// The stored form (rkyv; the layout is `stored::CampaignV1`'s).
    pub fn encode(&self) -> Vec<u8> {
        crate::store::log::entry::encode_blob(&crate::campaigns::stored::CampaignV1::from(self))
    }

    /// Reads the stored form back (`None` when it does not decode, or holds
    /// a field that does not read as its type).
    pub fn decode(bytes: &[u8]) -> Option<Campaign> {
        crate::store::log::entry::decode_blob::<crate::campaigns::stored::CampaignV1>(bytes)?
            .into_campaign()
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
    use crate::campaigns::delivery::DeliverySettings;
    use crate::campaigns::outbox::{DeliveryRecord, OutboxItem, Target};

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
            actions: vec![
                Action { title: "Pay".into(), url: "/pay".into() },
                Action { title: "Later".into(), url: "/later".into() },
            ],
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
                at: vec![DateTime::constant(2026, 12, 1, 9, 0, 0, 0)],
                recurring: Some(Recurring {
                    every: Every::Week,
                    time: Time::constant(9, 30, 0, 0),
                    days: vec![Weekday::Monday, Weekday::Thursday],
                }),
                timezone: ScheduleZone::Named("Europe/Paris".into()),
                if_passed: IfPassed::NextDay,
                start_ms: Some(1),
                end_ms: None,
                cutoff_ms: Some(3),
            }),
            message: message(),
            variants: vec![Variant { name: "B".into(), weight: 2, message: Message::default() }],
            control_group_percent: 12.5,
            ignore_global_caps: true,
            caps: Some(Caps { per_day: Some(1), per_week: None }),
            dnd: Some(QuietHours {
                from: Time::constant(21, 0, 0, 0),
                to: Time::constant(9, 0, 0, 0),
                mode: QuietMode::Discard,
            }),
            conversion: Some(Conversion {
                event: "Charged".into(),
                within_ms: 86_400_000,
                revenue_property: Some("amount".into()),
            }),
            webhook: Some(Webhook {
                url: "https://hooks.example/in".into(),
                secret: "s3cret".into(),
            }),
        };
        let settings = DeliverySettings {
            caps: Caps { per_day: Some(2), per_week: None },
            default_timezone: jiff::tz::TimeZone::get("Asia/Tokyo").expect("a zone"),
            dnd: Some(QuietHours {
                from: Time::constant(22, 0, 0, 0),
                to: Time::constant(7, 30, 0, 0),
                mode: QuietMode::Delay,
            }),
        };
        let record = settings.to_record().expect("an IANA zone");
        assert_eq!(DeliverySettings::from_record(&record).expect("reads back"), settings);
        let settings = DeliveryRecord::Settings(record);
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
