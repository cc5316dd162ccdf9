//! `PUT /v1/settings` and its `GET`: JSON ⇄ the engine's [`SettingsRecord`]
//! (global caps, default time zone, global quiet hours). Checked by the
//! engine's own resolver (`DeliverySettings::from_record`), so a setting the
//! server accepts is one the engine can use. Campaigns are in `campaign.rs`.

use nudge_engine::campaign::DeliverySettings;
use nudge_engine::campaign::SettingsRecord;
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
    pub(super) webpush_per_day: Option<u32>,
    pub(super) webpush_per_week: Option<u32>,
}

impl CapsJson {
    pub(super) fn to_json(per_day: Option<u32>, per_week: Option<u32>) -> Value {
        let mut caps = Map::new();
        if let Some(n) = per_day {
            caps.insert("webpush_per_day".into(), n.into());
        }
        if let Some(n) = per_week {
            caps.insert("webpush_per_week".into(), n.into());
        }
        Value::Object(caps)
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
    /// The engine's form: (from, to, mode).
    pub(super) fn into_engine(self) -> (String, String, String) {
        let mode = match self.mode.unwrap_or(DndMode::Delay) {
            DndMode::Delay => "delay",
            DndMode::Discard => "discard",
        };
        (self.from, self.to, mode.to_owned())
    }

    pub(super) fn to_json((from, to, mode): &(String, String, String)) -> Value {
        json!({"from": from, "to": to, "mode": mode})
    }
}

/// The body of `PUT /v1/settings` as it is read, before its checks;
/// [`SettingsJson::into_record`] makes the engine's record of it.
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
/// cap is optional; `dnd.mode` defaults to `delay`. The record is checked as
/// the engine will use it (a known IANA zone, `HH:MM` times), and an error
/// names the field (`default_timezone`, `dnd.from`, `caps.webpush_per_day`).
pub fn settings_from_json(body: &Value) -> Result<SettingsRecord, FieldError> {
    from_value::<SettingsJson>(body)?.into_record()
}

impl SettingsJson {
    /// The settings record of this body, checked; see [`settings_from_json`].
    pub fn into_record(self) -> Result<SettingsRecord, FieldError> {
        let caps = self.caps.unwrap_or_default();
        let record = SettingsRecord {
            webpush_per_day: caps.webpush_per_day,
            webpush_per_week: caps.webpush_per_week,
            default_timezone: self.default_timezone.unwrap_or_else(|| DEFAULT_TIMEZONE.to_owned()),
            dnd: self.dnd.map(DndJson::into_engine),
        };
        DeliverySettings::from_record(&record).map_err(FieldError::from_engine)?;
        Ok(record)
    }
}

/// Writes the settings in the shape [`settings_from_json`] reads: `caps`
/// (with the caps that are set) and `default_timezone` always, `dnd` when
/// there are quiet hours. An unset zone is written as the one that applies,
/// [`DEFAULT_TIMEZONE`].
pub fn settings_to_json(record: &SettingsRecord) -> Value {
    let timezone = if record.default_timezone.is_empty() {
        DEFAULT_TIMEZONE
    } else {
        record.default_timezone.as_str()
    };
    let mut json = json!({
        "caps": CapsJson::to_json(record.webpush_per_day, record.webpush_per_week),
        "default_timezone": timezone,
    });
    if let (Some(dnd), Some(object)) = (&record.dnd, json.as_object_mut()) {
        object.insert("dnd".into(), DndJson::to_json(dnd));
    }
    json
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        let record = settings_from_json(&body).unwrap();
        assert_eq!(
            record,
            SettingsRecord {
                webpush_per_day: Some(3),
                webpush_per_week: Some(10),
                default_timezone: "Asia/Kolkata".into(),
                dnd: Some(("21:00".into(), "09:00".into(), "discard".into())),
            }
        );
        assert_eq!(settings_to_json(&record), body);
        assert_eq!(settings_from_json(&settings_to_json(&record)).unwrap(), record);
    }

    #[test]
    fn absent_fields_are_the_defaults() {
        let record = settings_from_json(&json!({})).unwrap();
        assert_eq!(
            record,
            SettingsRecord { default_timezone: "UTC".into(), ..SettingsRecord::default() }
        );
        assert_eq!(settings_to_json(&record), json!({"caps": {}, "default_timezone": "UTC"}));
        // The engine's unset settings read as UTC, and read back the same.
        let unset = settings_to_json(&SettingsRecord::default());
        assert_eq!(unset, json!({"caps": {}, "default_timezone": "UTC"}));
        assert_eq!(settings_from_json(&unset).unwrap(), record);
        let partial =
            json!({"caps": {"webpush_per_week": 5}, "dnd": {"from": "22:00", "to": "07:30"}});
        let record = settings_from_json(&partial).unwrap();
        assert_eq!((record.webpush_per_day, record.webpush_per_week), (None, Some(5)));
        assert_eq!(record.dnd, Some(("22:00".into(), "07:30".into(), "delay".into())));
        let nulls = json!({"caps": null, "default_timezone": null, "dnd": null});
        assert_eq!(settings_from_json(&nulls).unwrap(), settings_from_json(&json!({})).unwrap());
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
