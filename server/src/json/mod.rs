//! JSON ⇄ engine types: NDJSON records (`ndjson.rs`, for `nudge import`,
//! `nudge gen` and the HTTP ingest bodies), campaigns (`campaign.rs`),
//! delivery settings (`settings.rs`), campaign statistics (`stats.rs`) and
//! query answers (here). The shapes are those of `shared/spec/interfaces.md`.
//!
//! These are pure conversions: no engine calls, no HTTP. Bodies decode into
//! derived `#[serde(deny_unknown_fields)]` structs, so a typo such as
//! `"mesage"` or `"limt"` is refused by name, never silently ignored. Every
//! refusal is one [`FieldError`] naming the JSON path of the field at fault
//! (`message.ttl`, `variants[1].weight`, `props.cart.id`), and for a batch the
//! item; `serde_path_to_error` finds the path. The single values (strings,
//! timestamps, durations, properties) are read by `values.rs`, in the API's
//! words ("expected a string, found a number").

mod campaign;
pub mod ndjson;
pub mod segment;
mod settings;
mod stats;
mod values;

use std::fmt;
use std::marker::PhantomData;

use nudge_engine::Answer;
use serde::Deserialize;
use serde::de::DeserializeSeed;
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

pub use campaign::{
    CampaignJson, DEFAULT_IF_PASSED, USER_TIMEZONE, campaign_from_json, campaign_to_json,
};
pub use settings::{DEFAULT_TIMEZONE, SettingsJson, settings_from_json, settings_to_json};
pub use stats::{STATS_DROP_REASONS, decision_to_json, stats_to_json};
pub use values::{
    Accepts, DurationMs, Increments, Kind, MAX_JSON_DEPTH, NonEmptyText, Object, Props, Strict,
    Text, TimestampMs, Unset, WholeNumber, format_duration, parse_duration, parse_timestamp_text,
    timestamp_json,
};

/// A field-level error, the one kind of refusal of a JSON input: `field` is a
/// JSON path like `message.ttl` or `variants[1].weight` (empty when the input
/// as a whole is wrong), `reason` says what was wrong, and `index` is the item
/// of a batch it is in, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON path of the field at fault.
    pub field: String,
    /// What was wrong with it, in one sentence.
    pub reason: String,
    /// The position of the item at fault in a batch.
    pub index: Option<usize>,
}

impl FieldError {
    /// A field error outside any batch.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into(), index: None }
    }

    /// From an engine error: `InvalidInput` keeps its field and index;
    /// anything else (which validation does not produce) is a reason without
    /// a field.
    pub fn from_engine(error: nudge_engine::Error) -> Self {
        match error {
            nudge_engine::Error::InvalidInput { field, reason, index } => {
                FieldError { field, reason, index }
            }
            nudge_engine::Error::Query { field, rendered, .. } => {
                FieldError { field, reason: rendered, index: None }
            }
            other => FieldError::new("", other.to_string()),
        }
    }

    /// From a serde error at `path`. With `in_batch`, the path's first array
    /// index is the item's `index` and the field is named within the item
    /// (`ts`, not `[1].ts` or `events[1].ts`). A missing field is named by
    /// its own path (`message.title`); every other error by the path of the
    /// value that did not fit, which for an unknown field ends with its name.
    fn from_serde(path: &Path, reason: String, in_batch: bool) -> Self {
        let segments: Vec<&Segment> = path.iter().collect();
        let item = in_batch
            .then(|| segments.iter().position(|s| matches!(s, Segment::Seq { .. })))
            .flatten();
        let (index, within) = match item {
            Some(at) => match segments[at] {
                Segment::Seq { index } => (Some(*index), &segments[at + 1..]),
                _ => (None, &segments[..]),
            },
            None => (None, &segments[..]),
        };
        let mut field = String::new();
        for segment in within {
            match segment {
                Segment::Seq { index } => field.push_str(&format!("[{index}]")),
                Segment::Map { key } => field = join(&field, key),
                Segment::Enum { variant } => field = join(&field, variant),
                Segment::Unknown => field = join(&field, "?"),
            }
        }
        // serde's words for a field the input lacks: "missing field `name`".
        if let Some(rest) = reason.strip_prefix("missing field `")
            && let Some((name, _)) = rest.split_once('`')
        {
            return FieldError { field: join(&field, name), reason: "missing".into(), index };
        }
        FieldError { field, reason, index }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.index {
            write!(f, "item {index}: ")?;
        }
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "invalid `{}`: {}", self.field, self.reason)
        }
    }
}

impl std::error::Error for FieldError {}

/// Why JSON text could not be decoded: it is not JSON at all, or a field is wrong.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON (a syntax error, or the text ended early): where, in serde_json's words.
    NotJson(serde_json::Error),
    /// JSON, but a field is wrong.
    Field(FieldError),
}

impl JsonError {
    /// This error as the refusal of item `index` of a batch (an item that
    /// is not JSON is named by its index too).
    pub fn at_index(self, index: usize) -> JsonError {
        let mut field = match self {
            JsonError::NotJson(e) => FieldError::new("", format!("not valid JSON: {e}")),
            JsonError::Field(field) => field,
        };
        field.index = Some(index);
        JsonError::Field(field)
    }

    fn from_serde(error: serde_path_to_error::Error<serde_json::Error>, in_batch: bool) -> Self {
        let inner = error.inner();
        if inner.is_data() {
            // serde_json ends an error in text with its position; the path says where.
            let reason = inner.to_string();
            let position = format!(" at line {} column {}", inner.line(), inner.column());
            let reason = match reason.strip_suffix(&position) {
                Some(words) if inner.line() > 0 => words.to_owned(),
                _ => reason,
            };
            JsonError::Field(FieldError::from_serde(error.path(), reason, in_batch))
        } else {
            JsonError::NotJson(error.into_inner())
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::NotJson(e) => write!(f, "not valid JSON: {e}"),
            JsonError::Field(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for JsonError {}

/// `parent.child`, or `child` at the top.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() { child.to_owned() } else { format!("{parent}.{child}") }
}

/// Decodes JSON text that must be one object into `T`, whole (nothing may
/// follow it).
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, JsonError> {
    from_slice_seed(bytes, PhantomData::<Object<T>>, false).map(|Object(value)| value)
}

/// Decodes JSON text with `seed`; with `in_batch`, errors name the item (see
/// [`FieldError::index`]).
fn from_slice_seed<'de, S: DeserializeSeed<'de>>(
    bytes: &'de [u8],
    seed: S,
    in_batch: bool,
) -> Result<S::Value, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let decoded =
        seed.deserialize(serde_path_to_error::Deserializer::new(&mut deserializer, &mut track));
    let value = decoded.map_err(|e| {
        JsonError::from_serde(serde_path_to_error::Error::new(track.path(), e), in_batch)
    })?;
    deserializer.end().map_err(JsonError::NotJson)?;
    Ok(value)
}

/// Decodes a JSON value that must be an object into `T`, naming the path of
/// a value that does not fit.
pub fn from_value<'de, T: Deserialize<'de>>(body: &'de Value) -> Result<T, FieldError> {
    match serde_path_to_error::deserialize::<_, Object<T>>(body) {
        Ok(Object(value)) => Ok(value),
        Err(error) => match JsonError::from_serde(error, false) {
            JsonError::Field(field) => Err(field),
            // A value is JSON already; kept for completeness.
            JsonError::NotJson(e) => Err(FieldError::new("", e.to_string())),
        },
    }
}

/// A query's answer, as `POST /v1/query` and `nudge query --json` write it.
pub fn answer_to_json(answer: &Answer) -> Value {
    serde_json::json!({
        "count": answer.count,
        "users": answer.users,
        "took_us": answer.took_us,
        "warnings": answer.warnings,
        "now": answer.now_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn serde_errors_name_the_path() {
        let error = FieldError::new("message.ttl", "bad");
        assert_eq!(error.to_string(), "invalid `message.ttl`: bad");
        assert_eq!(FieldError::new("", "bad").to_string(), "bad");
        let engine = nudge_engine::Error::invalid(None, "dnd.from", "no");
        assert_eq!(FieldError::from_engine(engine), FieldError::new("dnd.from", "no"));
        assert_eq!(from_value::<BTreeMap<String, u32>>(&json!([1])).unwrap_err().field, "");
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Text,
        inner: Option<Object<Inner>>,
        list: Option<Vec<Object<Inner>>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        n: WholeNumber,
    }

    fn refused(text: &str) -> FieldError {
        match from_slice::<Body>(text.as_bytes()) {
            Err(JsonError::Field(error)) => error,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn one_field_error_for_unknown_missing_and_wrong_fields_at_any_depth() {
        assert!(from_slice::<Body>(br#"{"name": "a", "inner": {"n": 1}}"#).is_ok());
        let error = refused(r#"{"name": "a", "nmae": "b"}"#);
        assert_eq!(error.field, "nmae");
        assert!(error.reason.starts_with("unknown field `nmae`, expected one of"), "{error}");
        let error = refused(r#"{"inner": {"n": 1}}"#);
        assert_eq!((error.field.as_str(), error.reason.as_str()), ("name", "missing"));
        assert_eq!(error.to_string(), "invalid `name`: missing");
        let error = refused(r#"{"name": 5}"#);
        assert_eq!(error.to_string(), "invalid `name`: expected a string, found a number");
        let error = refused(r#"{"name": "a", "inner": {"n": 1, "m": 2}}"#);
        assert_eq!(error.field, "inner.m");
        let error = refused(r#"{"name": "a", "inner": {}}"#);
        assert_eq!(error.field, "inner.n");
        let error = refused(r#"{"name": "a", "list": [{"n": 1}, {"n": -1}]}"#);
        assert_eq!(error.field, "list[1].n");
        assert_eq!(error.index, None, "not a batch");
        // Arrays are not objects, at the top or inside.
        let error = refused(r#"["a"]"#);
        assert_eq!(error.to_string(), "expected a JSON object, found an array");
        let error = refused(r#"{"name": "a", "inner": [1]}"#);
        assert_eq!(error.to_string(), "invalid `inner`: expected a JSON object, found an array");
        // Not JSON, or more than one value, is not a field error.
        for text in [r#"{"name": "a""#, r#"{"name": "a"} {}"#, ""] {
            assert!(matches!(from_slice::<Body>(text.as_bytes()), Err(JsonError::NotJson(_))));
        }
    }

    #[test]
    fn a_batch_error_names_the_item_and_the_field_within_it() {
        let text = br#"{"list": [{"n": 1}, {"n": "x"}]}"#;
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Batch {
            list: Vec<Object<Inner>>,
        }
        let Err(JsonError::Field(error)) =
            from_slice_seed(text, PhantomData::<Object<Batch>>, true)
        else {
            panic!("refused")
        };
        assert_eq!((error.index, error.field.as_str()), (Some(1), "n"));
        assert_eq!(
            error.to_string(),
            "item 1: invalid `n`: expected a whole number, found a string"
        );
    }
}
