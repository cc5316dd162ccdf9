//! The frozen layouts campaigns and delivery settings are stored in (rkyv,
//! inside the log's `CampaignSaved` and `Delivery` entries and in
//! snapshots), and their conversion to and from the typed forms the rest of
//! the engine uses.
//!
//! These layouts are part of the log's format: times, days and modes are
//! kept as the text the first version wrote (`"09:00"`, `"mon"`,
//! `"delay"`), so logs written before the typed forms existed read back
//! unchanged. `campaign.rs`'s golden test pins the bytes. A change here is
//! a new format version with a reader for the old one.

use rkyv::{Archive, Deserialize, Serialize};

use crate::campaigns::campaign::{
    Campaign, Conversion, Every, IfPassed, Message, Recurring, Schedule, ScheduleZone, Variant,
    Webhook, format_local_time, weekday_name, weekday_of_name,
};
use crate::campaigns::policy::{Caps, QuietHours, QuietMode};

/// Quiet hours as stored: (from `HH:MM`, to `HH:MM`, `delay` or `discard`).
pub type StoredQuietHours = (String, String, String);

/// A schedule as stored.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ScheduleV1 {
    at: Vec<String>,
    /// (`day`/`week`/`month`, local `HH:MM`, weekly days `mon`…).
    recurring: Option<(String, String, Vec<String>)>,
    /// `user` or an IANA name.
    timezone: String,
    /// `drop` or `next_day`.
    if_passed: String,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    cutoff_ms: Option<i64>,
}

/// A campaign as stored.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CampaignV1 {
    id: String,
    name: String,
    trigger: Option<String>,
    audience: Option<String>,
    schedule: Option<ScheduleV1>,
    message: Message,
    variants: Vec<Variant>,
    control_group_percent: f64,
    ignore_global_caps: bool,
    /// (per local day, per local week).
    caps: Option<(Option<u32>, Option<u32>)>,
    dnd: Option<StoredQuietHours>,
    /// (event, within ms, revenue property).
    conversion: Option<(String, i64, Option<String>)>,
    /// (url, secret).
    webhook: Option<(String, String)>,
}

/// Delivery settings as stored (`DeliveryRecord::Settings`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SettingsRecord {
    /// Most web push messages per user per local day.
    pub webpush_per_day: Option<u32>,
    /// Most web push messages per user per local ISO week.
    pub webpush_per_week: Option<u32>,
    /// IANA time zone of users without a valid `timezone` property (`UTC` when empty).
    pub default_timezone: String,
    /// Global quiet hours.
    pub dnd: Option<StoredQuietHours>,
}

/// Quiet hours in their stored form.
pub fn store_quiet_hours(quiet: &QuietHours) -> StoredQuietHours {
    (format_local_time(quiet.from), format_local_time(quiet.to), quiet.mode.name().to_owned())
}

/// Quiet hours from their stored form (`None` when a part does not read).
pub fn read_quiet_hours((from, to, mode): &StoredQuietHours) -> Option<QuietHours> {
    let mode = QuietMode::of_name(mode)?;
    Some(QuietHours { from: from.parse().ok()?, to: to.parse().ok()?, mode })
}

impl From<&Schedule> for ScheduleV1 {
    fn from(schedule: &Schedule) -> ScheduleV1 {
        ScheduleV1 {
            at: schedule.at.iter().map(|at| at.to_string()).collect(),
            recurring: schedule.recurring.as_ref().map(|r| {
                (
                    r.every.name().to_owned(),
                    format_local_time(r.time),
                    r.days.iter().map(|d| weekday_name(*d).to_owned()).collect(),
                )
            }),
            timezone: schedule.timezone.name().to_owned(),
            if_passed: schedule.if_passed.name().to_owned(),
            start_ms: schedule.start_ms,
            end_ms: schedule.end_ms,
            cutoff_ms: schedule.cutoff_ms,
        }
    }
}

impl ScheduleV1 {
    fn into_schedule(self) -> Option<Schedule> {
        let at = self.at.iter().map(|at| at.parse().ok()).collect::<Option<Vec<_>>>()?;
        let recurring = match self.recurring {
            Some((every, time, days)) => Some(Recurring {
                every: Every::of_name(&every)?,
                time: time.parse().ok()?,
                days: days.iter().map(|d| weekday_of_name(d)).collect::<Option<Vec<_>>>()?,
            }),
            None => None,
        };
        Some(Schedule {
            at,
            recurring,
            timezone: ScheduleZone::of_name(&self.timezone),
            if_passed: IfPassed::of_name(&self.if_passed)?,
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            cutoff_ms: self.cutoff_ms,
        })
    }
}

impl From<&Campaign> for CampaignV1 {
    fn from(campaign: &Campaign) -> CampaignV1 {
        CampaignV1 {
            id: campaign.id.clone(),
            name: campaign.name.clone(),
            trigger: campaign.trigger.clone(),
            audience: campaign.audience.clone(),
            schedule: campaign.schedule.as_ref().map(ScheduleV1::from),
            message: campaign.message.clone(),
            variants: campaign.variants.clone(),
            control_group_percent: campaign.control_group_percent,
            ignore_global_caps: campaign.ignore_global_caps,
            caps: campaign.caps.map(|caps| (caps.per_day, caps.per_week)),
            dnd: campaign.dnd.as_ref().map(store_quiet_hours),
            conversion: campaign
                .conversion
                .as_ref()
                .map(|c| (c.event.clone(), c.within_ms, c.revenue_property.clone())),
            webhook: campaign.webhook.as_ref().map(|w| (w.url.clone(), w.secret.clone())),
        }
    }
}

impl CampaignV1 {
    /// The typed campaign (`None` when a stored field does not read as its type).
    pub fn into_campaign(self) -> Option<Campaign> {
        let schedule = match self.schedule {
            Some(schedule) => Some(schedule.into_schedule()?),
            None => None,
        };
        let dnd = match &self.dnd {
            Some(dnd) => Some(read_quiet_hours(dnd)?),
            None => None,
        };
        Some(Campaign {
            id: self.id,
            name: self.name,
            trigger: self.trigger,
            audience: self.audience,
            schedule,
            message: self.message,
            variants: self.variants,
            control_group_percent: self.control_group_percent,
            ignore_global_caps: self.ignore_global_caps,
            caps: self.caps.map(|(per_day, per_week)| Caps { per_day, per_week }),
            dnd,
            conversion: self.conversion.map(|(event, within_ms, revenue_property)| Conversion {
                event,
                within_ms,
                revenue_property,
            }),
            webhook: self.webhook.map(|(url, secret)| Webhook { url, secret }),
        })
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::Time;

    use super::*;
    use crate::campaigns::delivery::DeliverySettings;

    #[test]
    fn times_are_stored_as_people_write_them_and_read_back() {
        for (time, text) in [
            (Time::constant(9, 0, 0, 0), "09:00"),
            (Time::constant(21, 30, 15, 0), "21:30:15"),
            (Time::constant(7, 5, 0, 250_000_000), "07:05:00.25"),
        ] {
            assert_eq!(format_local_time(time), text);
            assert_eq!(text.parse::<Time>().ok(), Some(time));
        }
    }

    #[test]
    fn a_stored_field_that_does_not_read_is_refused_not_guessed() {
        assert_eq!(read_quiet_hours(&("21:00".into(), "09:00".into(), "snooze".into())), None);
        assert_eq!(read_quiet_hours(&("25:00".into(), "09:00".into(), "delay".into())), None);
        let good = ScheduleV1 {
            at: vec!["2026-12-01T09:00:00".into()],
            recurring: Some(("week".into(), "09:00".into(), vec!["mon".into()])),
            timezone: "user".into(),
            if_passed: "drop".into(),
            start_ms: None,
            end_ms: None,
            cutoff_ms: None,
        };
        assert!(good.clone().into_schedule().is_some());
        let bad_day = ScheduleV1 {
            recurring: Some(("week".into(), "09:00".into(), vec!["monday".into()])),
            ..good.clone()
        };
        assert_eq!(bad_day.into_schedule(), None);
        assert_eq!(ScheduleV1 { if_passed: "later".into(), ..good.clone() }.into_schedule(), None);
        assert_eq!(ScheduleV1 { at: vec!["soon".into()], ..good }.into_schedule(), None);
    }

    #[test]
    fn settings_need_a_zone_with_a_name_to_be_stored() {
        let fixed = DeliverySettings {
            default_timezone: jiff::tz::TimeZone::fixed(jiff::tz::offset(2)),
            ..DeliverySettings::default()
        };
        let error = fixed.to_record().expect_err("a fixed offset has no IANA name");
        assert!(
            matches!(error, crate::Error::InvalidInput { ref field, .. } if field == "default_timezone")
        );
        let record = DeliverySettings::default().to_record().expect("UTC");
        assert_eq!(record.default_timezone, "UTC");
        // An empty stored zone (the first versions' unset settings) is UTC.
        let unset = SettingsRecord::default();
        assert_eq!(
            DeliverySettings::from_record(&unset).expect("reads"),
            DeliverySettings::default()
        );
    }
}
