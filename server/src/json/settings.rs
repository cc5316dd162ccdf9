//! `PUT /v1/settings` and its `GET`: JSON ⇄ the engine's [`DeliverySettings`]
//! (global caps, default time zone, global quiet hours). Times and zones are
//! read here into the engine's types, so a setting the server accepts is one
//! the engine can use. Campaigns are in `campaign.rs`.

use nudge_engine::campaign::{
    Caps, DeliverySettings, QuietHours, QuietMode, format_local_time, parse_local_time,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{FieldError, from_value};

/// The default time zone when the settings name none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Frequency caps, per user: `{"webpush_per_day": 3, "webpush_per_week": 10}`
/// (also a campaign's own `caps`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "an object such as {\"webpush_per_day\": 3}")]
pub(super) struct CapsJson {
    webpush_per_day: Option<u32>,
    webpush_per_week: Option<u32>,
}

impl CapsJson {
    pub(super) fn into_engine(self) -> Caps {
        Caps { per_day: self.webpush_per_day, per_week: self.webpush_per_week }
    }

    pub(super) fn to_json(caps: &Caps) -> Value {
        let mut json = Map::new();
        if let Some(n) = caps.per_day {
            json.insert("webpush_per_day".into(), n.into());
        }
        if let Some(n) = caps.per_week {
            json.insert("webpush_per_week".into(), n.into());
        }
        Value::Object(json)
    }
}

/// What quiet hours do to a message: hold it until they end, or drop it.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum DndMode {
    Delay,
    Discard,
}

/// Quiet hours: `{"from": "21:00", "to": "09:00", "mode": "delay"}` (also a
/// campaign's `dnd`). `mode` defaults to `delay`.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object such as {\"from\": \"21:00\", \"to\": \"09:00\"}"
)]
pub(super) struct DndJson {
    from: String,
    to: String,
    mode: Option<DndMode>,
}

impl DndJson {
    /// The engine's quiet hours; an error names `dnd.from` or `dnd.to`.
    pub(super) fn into_engine(self) -> Result<QuietHours, FieldError> {
        let time =
            |field, text: &str| parse_local_time(field, text).map_err(FieldError::from_engine);
        let mode = match self.mode.unwrap_or(DndMode::Delay) {
            DndMode::Delay => QuietMode::Delay,
            DndMode::Discard => QuietMode::Discard,
        };
        Ok(QuietHours { from: time("dnd.from", &self.from)?, to: time("dnd.to", &self.to)?, mode })
    }

    pub(super) fn to_json(quiet: &QuietHours) -> Value {
        json!({
            "from": format_local_time(quiet.from),
            "to": format_local_time(quiet.to),
            "mode": quiet.mode.name(),
        })
    }
}

/// The body of `PUT /v1/settings` as it is read, before its checks;
/// [`SettingsJson::into_settings`] makes the engine's settings of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsJson {
    caps: Option<CapsJson>,
    default_timezone: Option<String>,
    dnd: Option<DndJson>,
}

/// Reads the body of `PUT /v1/settings`:
///
/// ```json
/// {"caps": {"webpush_per_day": 3, "webpush_per_week": 10},
///  "default_timezone": "UTC",
///  "dnd": {"from": "21:00", "to": "09:00", "mode": "delay"}}
/// ```
///
/// The body replaces the settings as a whole: an absent (or `null`) field
/// means its default (no caps, [`DEFAULT_TIMEZONE`], no quiet hours). Each
/// cap is optional; `dnd.mode` defaults to `delay`. An error names the field
/// (`default_timezone`, `dnd.from`, `caps.webpush_per_day`).
pub fn settings_from_json(body: &Value) -> Result<DeliverySettings, FieldError> {
    from_value::<SettingsJson>(body)?.into_settings()
}

impl SettingsJson {
    /// The settings of this body, checked; see [`settings_from_json`].
    pub fn into_settings(self) -> Result<DeliverySettings, FieldError> {
        let zone = self.default_timezone.as_deref().unwrap_or(DEFAULT_TIMEZONE);
        let default_timezone = nudge_engine::campaign::parse_timezone(zone)
            .map_err(|e| FieldError::new("default_timezone", e.0))?;
        Ok(DeliverySettings {
            caps: self.caps.unwrap_or_default().into_engine(),
            default_timezone,
            dnd: self.dnd.map(DndJson::into_engine).transpose()?,
        })
    }
}

/// Writes the settings in the shape [`settings_from_json`] reads: `caps`
/// (with the caps that are set) and `default_timezone` always, `dnd` when
/// there are quiet hours.
pub fn settings_to_json(settings: &DeliverySettings) -> Value {
    let mut json = json!({
        "caps": CapsJson::to_json(&settings.caps),
        "default_timezone": settings.default_timezone.iana_name().unwrap_or(DEFAULT_TIMEZONE),
    });
    if let (Some(dnd), Some(object)) = (&settings.dnd, json.as_object_mut()) {
        object.insert("dnd".into(), DndJson::to_json(dnd));
    }
    json
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use jiff::civil::Time;
    use jiff::tz::TimeZone;

    use super::*;

    fn field(body: Value) -> String {
        settings_from_json(&body).unwrap_err().field
    }

    #[test]
    fn settings_round_trip() {
        let body = json!({
            "caps": {"webpush_per_day": 3, "webpush_per_week": 10},
            "default_timezone": "Asia/Kolkata",
            "dnd": {"from": "21:00", "to": "09:00", "mode": "discard"}
        });
        let settings = settings_from_json(&body).unwrap();
        assert_eq!(
            settings,
            DeliverySettings {
                caps: Caps { per_day: Some(3), per_week: Some(10) },
                default_timezone: TimeZone::get("Asia/Kolkata").unwrap(),
                dnd: Some(QuietHours {
                    from: Time::constant(21, 0, 0, 0),
                    to: Time::constant(9, 0, 0, 0),
                    mode: QuietMode::Discard,
                }),
            }
        );
        assert_eq!(settings_to_json(&settings), body);
        assert_eq!(settings_from_json(&settings_to_json(&settings)).unwrap(), settings);
    }

    #[test]
    fn absent_fields_are_the_defaults() {
        let settings = settings_from_json(&json!({})).unwrap();
        assert_eq!(settings, DeliverySettings::default());
        assert_eq!(settings_to_json(&settings), json!({"caps": {}, "default_timezone": "UTC"}));
        let partial =
            json!({"caps": {"webpush_per_week": 5}, "dnd": {"from": "22:00", "to": "07:30"}});
        let settings = settings_from_json(&partial).unwrap();
        assert_eq!(settings.caps, Caps { per_day: None, per_week: Some(5) });
        let dnd = settings.dnd.unwrap();
        assert_eq!(
            (dnd.from, dnd.to, dnd.mode),
            (Time::constant(22, 0, 0, 0), Time::constant(7, 30, 0, 0), QuietMode::Delay)
        );
        let nulls = json!({"caps": null, "default_timezone": null, "dnd": null});
        assert_eq!(settings_from_json(&nulls).unwrap(), settings_from_json(&json!({})).unwrap());
        // Seconds are kept, and written only when there are some.
        let seconds = json!({"dnd": {"from": "21:00:30", "to": "09:00"}});
        let written = settings_to_json(&settings_from_json(&seconds).unwrap());
        assert_eq!(written["dnd"], json!({"from": "21:00:30", "to": "09:00", "mode": "delay"}));
    }

    #[test]
    fn every_bad_setting_names_its_field() {
        assert_eq!(field(json!({"default_timezone": "Mars/Olympus"})), "default_timezone");
        assert_eq!(field(json!({"default_timezone": 5})), "default_timezone");
        assert_eq!(field(json!({"caps": {"webpush_per_day": -1}})), "caps.webpush_per_day");
        assert_eq!(field(json!({"caps": {"webpush_per_day": "3"}})), "caps.webpush_per_day");
        assert_eq!(field(json!({"caps": {"per_day": 3}})), "caps.per_day");
        assert_eq!(field(json!({"caps": 3})), "caps");
        assert_eq!(field(json!({"dnd": {"from": "25:00", "to": "09:00"}})), "dnd.from");
        assert_eq!(field(json!({"dnd": {"from": "21:00", "to": "9am"}})), "dnd.to");
        assert_eq!(field(json!({"dnd": {"from": "21:00"}})), "dnd.to");
        let error =
            settings_from_json(&json!({"dnd": {"from": "21:00", "to": "09:00", "mode": "x"}}))
                .unwrap_err();
        assert_eq!(error.field, "dnd.mode");
        assert!(error.reason.contains("delay"), "{}", error.reason);
        let error = settings_from_json(&json!({"default_timezon": "UTC"})).unwrap_err();
        assert_eq!(error.field, "default_timezon");
        assert!(error.reason.contains("unknown field"), "{}", error.reason);
        assert_eq!(field(json!([])), "");
    }
}
