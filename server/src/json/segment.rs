//! Segment Spec payloads (`POST /v1/integrations/segment`): a `track`,
//! `identify`, `page` or `screen` call, or `{"batch": [...]}` of them, become
//! Nudge's caller records, so a team already sending to Segment or
//! RudderStack can point a webhook destination at Nudge.
//!
//! - `userId`, else `anonymousId`, is the user; `timestamp` the event time;
//!   `messageId` the idempotency id of an event.
//! - `track` → the event `event` with `properties`; `page` → `Page Viewed`
//!   and `screen` → `Screen Viewed`, with `properties` plus the call's `name`
//!   (and a page's `category`); `identify` → a profile update setting `traits`.
//! - The Spec's delivery fields (`context`, `integrations`, `sentAt`,
//!   `receivedAt`, `originalTimestamp`, `version`, `channel`) are accepted and
//!   not stored; any other field is refused by name, as everywhere.
//! - `alias` is refused by name until identity merge is built
//!   (`docs/design/users-data.md`), and `group` is not taken.

use std::collections::BTreeMap;

use nudge_engine::{Event, ProfileUpdate, Record, Value};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::values::{Props, Text, TimestampMs};
use super::{FieldError, JsonError, from_slice};

/// The event a `page` call becomes (the browser SDK's own page event).
pub const PAGE_EVENT: &str = "Page Viewed";
/// The event a `screen` call becomes.
pub const SCREEN_EVENT: &str = "Screen Viewed";

/// Fields a `{"batch": [...]}` body may carry beside `batch`.
const BATCH_FIELDS: [&str; 4] = ["batch", "context", "integrations", "sentAt"];

/// One Segment Spec call.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Call {
    #[serde(rename = "type")]
    kind: Text,
    user_id: Option<Text>,
    anonymous_id: Option<Text>,
    event: Option<Text>,
    name: Option<Text>,
    category: Option<Text>,
    properties: Option<Props>,
    traits: Option<Props>,
    timestamp: Option<TimestampMs>,
    message_id: Option<Text>,
    // Delivery fields of the Spec, accepted and not stored.
    #[serde(rename = "context")]
    _context: Option<IgnoredAny>,
    #[serde(rename = "integrations")]
    _integrations: Option<IgnoredAny>,
    #[serde(rename = "sentAt")]
    _sent_at: Option<IgnoredAny>,
    #[serde(rename = "receivedAt")]
    _received_at: Option<IgnoredAny>,
    #[serde(rename = "originalTimestamp")]
    _original_timestamp: Option<IgnoredAny>,
    #[serde(rename = "version")]
    _version: Option<IgnoredAny>,
    #[serde(rename = "channel")]
    _channel: Option<IgnoredAny>,
}

fn missing(field: &str) -> JsonError {
    JsonError::Field(FieldError::new(field, "missing"))
}

impl Call {
    fn into_record(self) -> Result<Record, JsonError> {
        let user_id = self
            .user_id
            .or(self.anonymous_id)
            .map(|Text(id)| id)
            .ok_or_else(|| missing("userId"))?;
        let event = |name: String, mut props: Vec<(String, Value)>| {
            Record::Event(Event {
                user_id: user_id.clone(),
                name,
                ts_ms: self.timestamp.map(|TimestampMs(ms)| ms),
                props: {
                    props.extend(self.properties.clone().unwrap_or_default().0);
                    props
                },
                id: self.message_id.clone().map(|Text(id)| id),
            })
        };
        let named = |kind: &str| -> Vec<(String, Value)> {
            let mut props = Vec::new();
            if let Some(Text(name)) = &self.name {
                props.push(("name".to_owned(), Value::from(name.as_str())));
            }
            if kind == "page"
                && let Some(Text(category)) = &self.category
            {
                props.push(("category".to_owned(), Value::from(category.as_str())));
            }
            props
        };
        match self.kind.0.as_str() {
            "track" => {
                let Text(name) = self.event.clone().ok_or_else(|| missing("event"))?;
                Ok(event(name, Vec::new()))
            }
            "page" => Ok(event(PAGE_EVENT.to_owned(), named("page"))),
            "screen" => Ok(event(SCREEN_EVENT.to_owned(), named("screen"))),
            "identify" => Ok(Record::Profile(ProfileUpdate {
                user_id,
                set: self.traits.unwrap_or_default().0,
                ..Default::default()
            })),
            "alias" => Err(JsonError::Field(FieldError::new(
                "type",
                "alias calls are not taken yet: identity merge is not built (docs/design/users-data.md)",
            ))),
            other => Err(JsonError::Field(FieldError::new(
                "type",
                format!("{other:?} is not one of track, identify, page, screen, alias"),
            ))),
        }
    }
}

/// The records of a Segment payload: one call, or `{"batch": [...]}` of
/// calls (an error in a batch names the call's `index`). At most `limit`
/// calls are decoded; the count says how many the body holds.
pub fn decode(body: &[u8], limit: usize) -> Result<(Vec<Record>, usize), JsonError> {
    let fields: BTreeMap<String, &RawValue> = from_slice(body)?;
    let Some(batch) = fields.get("batch") else {
        let call: Call = from_slice(body)?;
        return Ok((vec![call.into_record()?], 1));
    };
    if let Some(other) = fields.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
        let reason = format!("not taken beside batch (only {})", BATCH_FIELDS.join(", "));
        return Err(JsonError::Field(FieldError::new(other.as_str(), reason)));
    }
    let calls: Vec<&RawValue> = serde_json::from_str(batch.get()).map_err(|_| {
        JsonError::Field(FieldError::new("batch", "expected an array of Segment calls"))
    })?;
    let mut records = Vec::with_capacity(calls.len().min(limit));
    for (index, call) in calls.iter().enumerate().take(limit) {
        let record = from_slice::<Call>(call.get().as_bytes())
            .and_then(Call::into_record)
            .map_err(|error| error.at_index(index))?;
        records.push(record);
    }
    Ok((records, calls.len()))
}
