//! JSON ⇄ engine types for the HTTP API: campaigns (`campaign.rs`), delivery
//! settings (`settings.rs`) and campaign statistics (here). The shapes are the
//! ones of `shared/spec/interfaces.md` ("Campaign", "Stats", `PUT /v1/settings`).
//!
//! These are pure conversions: no engine, no HTTP. The HTTP layer turns a
//! [`FieldError`] into `400 {"error": {"code": "invalid_campaign", "message":
//! …, "field": …}}`. Every refusal names the JSON path of the field at fault
//! (`message.ttl`, `variants[1].weight`); unknown fields are refused, so a typo
//! such as `"mesage"` is never silently ignored.
//!
//! Durations (`message.ttl`, `conversion.within`) follow the query language's
//! rules (`10m`, `2h`, `1d`, `1w`, `500ms`, `7 days`; see [`parse_duration`]) and
//! are written back in its canonical form ([`format_duration`]). NDJSON records
//! are in `ndjson.rs`, whose timestamp rules (RFC 3339 or epoch milliseconds)
//! are reused here.

mod campaign;
pub mod ndjson;
mod settings;

use std::fmt;

use nudge_engine::stats::CampaignStats;
use serde_json::{Map, Value, json};

pub use campaign::{DEFAULT_IF_PASSED, USER_TIMEZONE, campaign_from_json, campaign_to_json};
pub use settings::{DEFAULT_TIMEZONE, settings_from_json, settings_to_json};

/// Drop reasons the Stats object always lists, 0 when none happened
/// (`shared/spec/interfaces.md`); any other reason the engine recorded is
/// listed beside them.
pub const STATS_DROP_REASONS: [&str; 5] = ["capped", "dnd", "expired", "unreachable", "cutoff"];

/// A field-level error: `field` is a JSON path like `message.ttl` or
/// `variants[1].weight` (empty when the body as a whole is wrong), `reason`
/// says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the field at fault.
    pub field: String,
    /// What was wrong with it, in one sentence.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }

    /// From an engine error: `InvalidInput` keeps its field; anything else
    /// (which validation does not produce) is a reason without a field.
    pub fn from_engine(error: nudge_engine::Error) -> Self {
        match error {
            nudge_engine::Error::InvalidInput { field, reason, .. } => FieldError { field, reason },
            other => FieldError::new("", other.to_string()),
        }
    }

    /// From a serde error with its path: an unknown or missing field is named
    /// by its own path (`message.mesage`, `message.title`), every other error
    /// by the path of the value that did not fit.
    fn from_serde(error: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let reason = error.inner().to_string();
        // The path of an unknown field already ends with its name; a missing
        // one's is the object that lacks it.
        if let Some(rest) = reason.strip_prefix("missing field `")
            && let Some((name, _)) = rest.split_once('`')
        {
            return FieldError::new(join(&path, name), reason.clone());
        }
        FieldError::new(path, reason)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "invalid `{}`: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for FieldError {}

/// `parent.child`, or `child` at the top.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() { child.to_owned() } else { format!("{parent}.{child}") }
}

/// Deserializes `body` into `T`, naming the path of a value that does not fit.
fn decode<'de, T: serde::Deserialize<'de>>(body: &'de Value) -> Result<T, FieldError> {
    if !body.is_object() {
        return Err(FieldError::new("", "the body must be a JSON object"));
    }
    serde_path_to_error::deserialize(body).map_err(FieldError::from_serde)
}

/// Parses a duration as the query language does: a whole number, optional
/// spaces, and a unit (case-insensitive): `ms`, `s`, `m`, `h`, `d`, `w`, or
/// their words (`sec`, `secs`, `second(s)`, `min`, `mins`, `minute(s)`, `hr`,
/// `hrs`, `hour(s)`, `day(s)`, `week(s)`, `millisecond(s)`). Surrounding
/// whitespace is ignored. Returns milliseconds, or `None` when the text is not
/// a duration or is longer than the language's limit
/// ([`nudge_query_lang::MAX_DURATION_MS`]).
///
/// The rules are the query language's (`nudge_query_lang::parse_duration`).
pub fn parse_duration(text: &str) -> Option<i64> {
    nudge_query_lang::parse_duration(text.trim()).and_then(|ms| i64::try_from(ms).ok())
}

/// Writes milliseconds as the query language prints a duration: the largest
/// exact unit among `d`, `h`, `m`, `s`, `ms` (`1d`, `90m`, `7d` for a week).
/// A negative value (which validation refuses) is written as a bare number.
pub fn format_duration(ms: i64) -> Value {
    match u64::try_from(ms) {
        Ok(ms) => Value::String(nudge_query_lang::Duration::from_ms(ms).to_string()),
        Err(_) => Value::from(ms),
    }
}

/// A duration field (`"1d"`), as milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurationMs(i64);

impl<'de> serde::Deserialize<'de> for DurationMs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationMs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"10m\", \"2h\", \"1d\" or \"1w\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<DurationMs, E> {
                parse_duration(text).map(DurationMs).ok_or_else(|| {
                    E::custom(format!(
                        "{text:?} is not a duration: a whole number and a unit, ms, s, m, h, d \
                         or w (e.g. \"30m\", \"1d\"), at most {} days",
                        nudge_query_lang::MAX_DURATION_MS / 86_400_000
                    ))
                })
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Serde's `Option<Option<T>>` trick: an absent field is `None` (with
/// `#[serde(default)]`), `null` is `Some(None)`, a value is `Some(Some(v))`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Epoch milliseconds as RFC 3339 UTC (`2026-11-01T10:00:00Z`, with a
/// fraction only when there is one); a number when out of jiff's range.
fn timestamp_json(ms: i64) -> Value {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => Value::String(ts.to_string()),
        Err(_) => Value::from(ms),
    }
}

/// A campaign's statistics as the "Stats" object of `interfaces.md`, plus
/// what else the engine counts:
///
/// - `scheduled`: messages held by quiet hours, going out later;
/// - `dropped`: always the reasons of [`STATS_DROP_REASONS`], plus every
///   other reason recorded (`paused`, `audience`, `control`, `template`…);
/// - `variants`: `{name: {sent, clicked, converted}}` for the variants that
///   have any activity (the engine lists no others).
pub fn stats_to_json(stats: &CampaignStats) -> Value {
    let mut dropped: Map<String, Value> =
        STATS_DROP_REASONS.iter().map(|reason| ((*reason).to_owned(), Value::from(0))).collect();
    for (reason, count) in &stats.dropped {
        dropped.insert(reason.clone(), Value::from(*count));
    }
    let variants: Map<String, Value> = stats
        .variants
        .iter()
        .map(|(name, v)| {
            let figures = json!({"sent": v.sent, "clicked": v.clicked, "converted": v.converted});
            (name.clone(), figures)
        })
        .collect();
    json!({
        "targeted": stats.targeted,
        "sent": stats.sent,
        "scheduled": stats.scheduled,
        "delivered": stats.delivered,
        "failed": stats.failed,
        "dropped": dropped,
        "control": {"users": stats.control_users, "converted": stats.control_converted},
        "viewed": stats.viewed,
        "clicked": stats.clicked,
        "converted": stats.converted,
        "revenue": stats.revenue,
        "variants": variants,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use nudge_engine::stats::VariantStats;

    use super::*;

    #[test]
    fn durations_follow_the_query_language() {
        let cases = [
            ("30s", 30_000),
            ("10m", 600_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("500ms", 500),
            ("7 days", 604_800_000),
            ("1 Week", 604_800_000),
            ("10 MINS", 600_000),
            ("0s", 0),
            (" 3h ", 10_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text), Some(ms), "{text}");
            // The query language reads the same text as the same duration.
            let segment = nudge_query_lang::parse_segment(&format!("did \"x\" in last {text}"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let canonical = format_duration(ms);
            assert_eq!(
                Value::String(segment.to_string()),
                json!(format!("did \"x\" in last {}", canonical.as_str().unwrap()))
            );
            assert_eq!(parse_duration(canonical.as_str().unwrap()), Some(ms));
        }
        for bad in ["", "d", "1", "1y", "-1d", "1.5h", "1d2h", "1 d x", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        let limit = i64::try_from(nudge_query_lang::MAX_DURATION_MS).unwrap();
        assert_eq!(parse_duration("1000000d"), Some(limit));
        assert_eq!(parse_duration("1000001d"), None);
        assert_eq!(format_duration(86_400_000), json!("1d"));
        assert_eq!(format_duration(5_400_000), json!("90m"));
        assert_eq!(format_duration(1_500), json!("1500ms"));
        assert_eq!(format_duration(-5), json!(-5));
    }

    #[test]
    fn stats_have_every_key_of_the_interface() {
        let stats = CampaignStats {
            targeted: 10,
            sent: 6,
            scheduled: 1,
            delivered: 5,
            failed: 1,
            dropped: BTreeMap::from([("capped".into(), 2), ("paused".into(), 1)]),
            control_users: 1,
            control_converted: 1,
            viewed: 4,
            clicked: 3,
            converted: 2,
            revenue: 99.5,
            variants: BTreeMap::from([(
                "A".into(),
                VariantStats { sent: 6, clicked: 3, converted: 2 },
            )]),
        };
        let json = stats_to_json(&stats);
        assert_eq!(
            json,
            json!({
                "targeted": 10, "sent": 6, "scheduled": 1, "delivered": 5, "failed": 1,
                "dropped": {"capped": 2, "dnd": 0, "expired": 0, "unreachable": 0, "cutoff": 0,
                            "paused": 1},
                "control": {"users": 1, "converted": 1},
                "viewed": 4, "clicked": 3, "converted": 2, "revenue": 99.5,
                "variants": {"A": {"sent": 6, "clicked": 3, "converted": 2}}
            })
        );
        // Empty stats keep the shape: every key of interfaces.md, revenue a float.
        let empty = stats_to_json(&CampaignStats::default());
        let spec = json!({"targeted": 0, "sent": 0, "delivered": 0, "failed": 0,
            "dropped": {"capped": 0, "dnd": 0, "expired": 0, "unreachable": 0, "cutoff": 0},
            "control": {"users": 0, "converted": 0},
            "viewed": 0, "clicked": 0, "converted": 0, "revenue": 0.0,
            "variants": {}});
        for (key, value) in spec.as_object().unwrap() {
            assert_eq!(&empty[key], value, "{key}");
        }
        assert!(empty["revenue"].is_f64());
    }

    #[test]
    fn serde_errors_name_the_path() {
        let error = FieldError::new("message.ttl", "bad");
        assert_eq!(error.to_string(), "invalid `message.ttl`: bad");
        assert_eq!(FieldError::new("", "bad").to_string(), "bad");
        let engine = nudge_engine::Error::invalid(None, "dnd.from", "no");
        assert_eq!(FieldError::from_engine(engine), FieldError::new("dnd.from", "no"));
        assert_eq!(decode::<BTreeMap<String, u32>>(&json!([1])).unwrap_err().field, "");
    }
}
