//! NDJSON records (the format of `nudge gen`, `nudge import` and the HTTP
//! ingest bodies): decoding JSON into engine records and encoding records as
//! JSON.
//!
//! Decoding follows `shared/spec/interfaces.md`: `type` defaults to `event`;
//! `ts` is RFC 3339 or epoch milliseconds and defaults to the engine clock;
//! nested objects in `props`, `set`, `set_once`, `increment` and `append` are
//! flattened to dotted keys (`{"item": {"sku": 1}}` becomes `item.sku`);
//! arrays hold scalars only. Each record type is a derived
//! `#[serde(deny_unknown_fields)]` struct, so an unknown field is refused by
//! name, and every error names the field at fault ([`FieldError`]).
//!
//! The `type` tag is read first ([`decode`]) and picks the struct; serde's
//! own internally tagged enums have no default variant and buffer every
//! record. An endpoint that takes one type decodes its struct directly
//! ([`decode_events`], or `ApiJson<ProfileJson>`), whose `type` field must
//! then name that type.

use std::fmt;
use std::marker::PhantomData;

use nudge_engine::{Event, ProfileUpdate, Record, Subscription, Value};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::values::{Accepts, Increments, Kind, Object, Props, Strict, Text, TimestampMs, Unset};
use super::{FieldError, JsonError, from_slice, from_slice_seed};

/// A record's JSON shape: its `type` name and what it decodes to (an engine
/// record, or a definition).
pub trait RecordJson: for<'de> Deserialize<'de> {
    /// The `type` of such records.
    const TYPE: &'static str;
    /// What it becomes.
    type Output;
    /// Converts the decoded shape.
    fn into_record(self) -> Self::Output;
}

/// A definition an NDJSON file may carry beside its records (`nudge import`):
/// the engine saves it with its own call, not as an ingested record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Definition {
    /// A segment saved under a name.
    SaveSegment {
        /// Its name.
        name: String,
        /// Its expression.
        query: String,
    },
    /// A saved segment removed.
    RemoveSegment {
        /// Its name.
        name: String,
    },
    /// A trigger saved under a name.
    SaveTrigger {
        /// Its name.
        name: String,
        /// Its text.
        trigger: String,
    },
    /// A saved trigger removed.
    RemoveTrigger {
        /// Its name.
        name: String,
    },
}

/// One line of an NDJSON file: a record, or a definition.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// An event, profile update or subscription change.
    Record(Record),
    /// A segment or trigger saved or removed.
    Definition(Definition),
}

/// A record's `type` field: it must name the type its struct decodes. (Over
/// NDJSON the struct is picked by the type, so only a single-type endpoint
/// can meet another.)
struct Tag<R>(PhantomData<R>);

impl<'de, R: RecordJson> Deserialize<'de> for Tag<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Text(kind) = Text::deserialize(deserializer)?;
        if kind != R::TYPE {
            return Err(de::Error::custom(format_args!(
                "this endpoint takes `{}` records, not {kind:?}",
                R::TYPE
            )));
        }
        Ok(Tag(PhantomData))
    }
}

/// An event: `{"type": "event"?, "user_id", "name", "ts"?, "props"?, "id"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventJson {
    #[serde(rename = "type")]
    _type: Option<Tag<EventJson>>,
    user_id: Text,
    name: Text,
    ts: Option<TimestampMs>,
    props: Option<Props>,
    id: Option<Text>,
}

impl RecordJson for EventJson {
    const TYPE: &'static str = "event";
    type Output = Record;
    fn into_record(self) -> Record {
        Record::Event(Event {
            user_id: self.user_id.0,
            name: self.name.0,
            ts_ms: self.ts.map(|t| t.0),
            props: self.props.unwrap_or_default().0,
            id: self.id.map(|id| id.0),
        })
    }
}

/// A profile update: `{"type": "profile"?, "user_id", "set"?, "set_once"?,
/// "unset"?, "increment"?, "append"?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileJson {
    #[serde(rename = "type")]
    _type: Option<Tag<ProfileJson>>,
    user_id: Text,
    set: Option<Props>,
    set_once: Option<Props>,
    unset: Option<Unset>,
    increment: Option<Increments>,
    append: Option<Props>,
}

impl RecordJson for ProfileJson {
    const TYPE: &'static str = "profile";
    type Output = Record;
    fn into_record(self) -> Record {
        Record::Profile(ProfileUpdate {
            user_id: self.user_id.0,
            set: self.set.unwrap_or_default().0,
            set_once: self.set_once.unwrap_or_default().0,
            unset: self.unset.unwrap_or_default().0,
            increment: self.increment.unwrap_or_default().0,
            append: self.append.unwrap_or_default().0,
        })
    }
}

/// A Web Push subscription: `{"type": "subscription"?, "user_id",
/// "subscription": PushSubscription.toJSON()}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionJson {
    #[serde(rename = "type")]
    _type: Option<Tag<SubscriptionJson>>,
    user_id: Text,
    subscription: Object<PushSubscriptionJson>,
}

/// The browser's `PushSubscription.toJSON()`: `expirationTime` is accepted
/// (and not used).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushSubscriptionJson {
    endpoint: Text,
    #[serde(rename = "expirationTime")]
    _expiration_time: Option<IgnoredAny>,
    keys: Object<PushKeysJson>,
}

/// The subscription's keys. The Push API makes `keys` an open record, so
/// keys besides these two are not refused.
#[derive(Deserialize)]
struct PushKeysJson {
    p256dh: Text,
    auth: Text,
}

impl RecordJson for SubscriptionJson {
    const TYPE: &'static str = "subscription";
    type Output = Record;
    fn into_record(self) -> Record {
        let Object(subscription) = self.subscription;
        let Object(keys) = subscription.keys;
        Record::Subscribe {
            user_id: self.user_id.0,
            subscription: Subscription {
                endpoint: subscription.endpoint.0,
                p256dh: keys.p256dh.0,
                auth: keys.auth.0,
            },
        }
    }
}

/// Defines a record struct of `type` `$name` with string fields, and its
/// engine record.
macro_rules! text_record {
    ($(#[$doc:meta])* $ty:ident, $name:literal, [$($field:ident),+], $out:ty, $record:expr) => {
        $(#[$doc])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $ty {
            #[serde(rename = "type")]
            _type: Option<Tag<$ty>>,
            $($field: Text,)+
        }

        impl RecordJson for $ty {
            const TYPE: &'static str = $name;
            type Output = $out;
            fn into_record(self) -> $out {
                let $ty { $($field: Text($field),)+ .. } = self;
                $record
            }
        }
    };
}

text_record!(
    /// `{"type": "unsubscribe", "endpoint"}`; also the body of `DELETE /v1/subscriptions`.
    UnsubscribeJson, "unsubscribe", [endpoint], Record, Record::Unsubscribe { endpoint }
);
text_record!(
    /// `{"type": "segment", "name", "q"}`: a saved segment.
    SegmentJson, "segment", [name, q], Definition, Definition::SaveSegment { name, query: q }
);
text_record!(
    /// `{"type": "segment_removed", "name"}`.
    SegmentRemovedJson, "segment_removed", [name], Definition, Definition::RemoveSegment { name }
);
text_record!(
    /// `{"type": "trigger", "name", "trigger"}`: a saved trigger.
    TriggerJson, "trigger", [name, trigger], Definition, Definition::SaveTrigger { name, trigger }
);
text_record!(
    /// `{"type": "trigger_removed", "name"}`.
    TriggerRemovedJson, "trigger_removed", [name], Definition, Definition::RemoveTrigger { name }
);

/// Decodes one record of type `R` from JSON text.
pub fn decode_as<R: RecordJson>(text: &[u8]) -> Result<R::Output, JsonError> {
    from_slice::<R>(text).map(R::into_record)
}

/// Decodes one line from JSON text.
type Decoder = fn(&[u8]) -> Result<Line, JsonError>;

/// The decoder of each type NDJSON carries, in the order errors list them;
/// the first four are records, the rest definitions.
const DECODERS: [(&str, Decoder); 8] = [
    (EventJson::TYPE, |t| decode_as::<EventJson>(t).map(Line::Record)),
    (ProfileJson::TYPE, |t| decode_as::<ProfileJson>(t).map(Line::Record)),
    (SubscriptionJson::TYPE, |t| decode_as::<SubscriptionJson>(t).map(Line::Record)),
    (UnsubscribeJson::TYPE, |t| decode_as::<UnsubscribeJson>(t).map(Line::Record)),
    (SegmentJson::TYPE, |t| decode_as::<SegmentJson>(t).map(Line::Definition)),
    (SegmentRemovedJson::TYPE, |t| decode_as::<SegmentRemovedJson>(t).map(Line::Definition)),
    (TriggerJson::TYPE, |t| decode_as::<TriggerJson>(t).map(Line::Definition)),
    (TriggerRemovedJson::TYPE, |t| decode_as::<TriggerRemovedJson>(t).map(Line::Definition)),
];

/// Only the `type` of a record (its other fields are skipped).
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<Text>,
}

/// Decodes one NDJSON line: its `type` (default `event`) picks the struct.
pub fn decode_line(text: &[u8]) -> Result<Line, JsonError> {
    let TypeOnly { kind } = from_slice(text)?;
    let kind = kind.map_or_else(|| EventJson::TYPE.to_owned(), |Text(kind)| kind);
    match DECODERS.iter().find(|(name, _)| *name == kind) {
        Some((_, decode)) => decode(text),
        None => {
            let names: Vec<&str> = DECODERS.iter().map(|(name, _)| *name).collect();
            let reason = format!("{kind:?} is not one of {}", names.join(", "));
            Err(JsonError::Field(FieldError::new("type", reason)))
        }
    }
}

/// Decodes one record (an event, profile update or subscription change); a
/// definition is refused by its `type`: it is saved with its own call.
pub fn decode(text: &[u8]) -> Result<Record, JsonError> {
    match decode_line(text)? {
        Line::Record(record) => Ok(record),
        Line::Definition(_) => {
            let TypeOnly { kind } = from_slice(text)?;
            let kind = kind.map(|Text(kind)| kind).unwrap_or_default();
            let reason = format!(
                "{kind:?} is a definition, not a record: save it with its own call (`nudge import` also reads it)"
            );
            Err(JsonError::Field(FieldError::new("type", reason)))
        }
    }
}

/// The records of a `POST /v1/batch` body: NDJSON (`ndjson`: one record per
/// line, blank lines skipped) or a JSON array, each item any caller record
/// (event, profile, subscription, unsubscribe). An error names the item
/// (`index`, counting records from 0) and its field. At most `limit` items
/// are decoded; the returned count says how many the body holds.
pub fn decode_batch(
    body: &[u8],
    ndjson: bool,
    limit: usize,
) -> Result<(Vec<Record>, usize), JsonError> {
    let items: Vec<&[u8]> = if ndjson {
        body.split(|&b| b == b'\n').filter(|line| !line.trim_ascii().is_empty()).collect()
    } else {
        if body.trim_ascii_start().first() != Some(&b'[') {
            let reason = "expected a JSON array of records, or NDJSON sent with Content-Type: application/x-ndjson";
            return Err(JsonError::Field(FieldError::new("", reason)));
        }
        let raw: Vec<&serde_json::value::RawValue> =
            serde_json::from_slice(body).map_err(JsonError::NotJson)?;
        raw.into_iter().map(|item| item.get().as_bytes()).collect()
    };
    let mut records = Vec::with_capacity(items.len().min(limit));
    for (index, item) in items.iter().enumerate().take(limit) {
        let record = decode_batch_item(item).map_err(|error| error.at_index(index))?;
        records.push(record);
    }
    Ok((records, items.len()))
}

/// One record of a batch; an `alias` is refused by name until identity
/// merge is built (`docs/design/users-data.md`).
fn decode_batch_item(text: &[u8]) -> Result<Record, JsonError> {
    let TypeOnly { kind } = from_slice(text)?;
    if kind.as_ref().is_some_and(|Text(kind)| kind == "alias") {
        let reason = "alias records are not taken yet: identity merge is not built (docs/design/users-data.md)";
        return Err(JsonError::Field(FieldError::new("type", reason)));
    }
    decode(text)
}

/// The events of a `POST /v1/events` body: its first `limit` events decoded,
/// and how many it holds.
#[derive(Debug)]
pub struct EventBatch {
    /// The events, as records, up to the limit.
    pub records: Vec<Record>,
    /// How many events the body holds (past the limit, counted, not decoded).
    pub count: usize,
}

/// Decodes the body of `POST /v1/events`: an array of events, or
/// `{"events": [...]}`, each as [`EventJson`] (`type` may be left out). An
/// error names the event (`index`) and its field. At most `limit` events are
/// decoded; the rest are only counted, for the caller to refuse the body.
pub fn decode_events(body: &[u8], limit: usize) -> Result<EventBatch, JsonError> {
    from_slice_seed(body, Events::<true> { limit }, true)
}

/// The events of a body: with `OUTER` the body itself (an array, or an
/// object with `events` only), without it the array of `{"events": [...]}`.
struct Events<const OUTER: bool> {
    limit: usize,
}

impl<'de, const OUTER: bool> DeserializeSeed<'de> for Events<OUTER> {
    type Value = EventBatch;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<EventBatch, D::Error> {
        deserializer.deserialize_any(Strict(self))
    }
}

impl<'de, const OUTER: bool> Visitor<'de> for Events<OUTER> {
    type Value = EventBatch;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if OUTER {
            "an array of events or {\"events\": [...]}"
        } else {
            "an array of events"
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventBatch, A::Error> {
        events(seq, self.limit)
    }
    /// Only the outer body is let through as an object (see `KINDS`).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventBatch, A::Error> {
        let mut batch = None;
        while map.next_key_seed(EventsKey)?.is_some() {
            if batch.is_some() {
                return Err(de::Error::duplicate_field("events"));
            }
            batch = Some(map.next_value_seed(Events::<false> { limit: self.limit })?);
        }
        batch.ok_or_else(|| de::Error::missing_field("events"))
    }
}

impl<const OUTER: bool> Accepts<'_> for Events<OUTER> {
    const KINDS: &'static [Kind] =
        if OUTER { &[Kind::Array, Kind::Object] } else { &[Kind::Array] };
}

/// The one key of `{"events": [...]}`; any other is refused by name.
struct EventsKey;

impl<'de> DeserializeSeed<'de> for EventsKey {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let Text(key) = Text::deserialize(deserializer)?;
        if key == "events" { Ok(()) } else { Err(de::Error::unknown_field(&key, &["events"])) }
    }
}

/// Decodes up to `limit` events and counts the rest.
fn events<'de, A: SeqAccess<'de>>(mut seq: A, limit: usize) -> Result<EventBatch, A::Error> {
    let mut records = Vec::new();
    let mut count = 0;
    loop {
        let more = if count < limit {
            match seq.next_element::<Object<EventJson>>()? {
                Some(Object(event)) => {
                    records.push(event.into_record());
                    true
                }
                None => false,
            }
        } else {
            seq.next_element::<IgnoredAny>()?.is_some()
        };
        if !more {
            return Ok(EventBatch { records, count });
        }
        count += 1;
    }
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Json::from(*n as i64),
        Value::Number(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(items) => Json::Array(items.iter().map(value_json).collect()),
    }
}

/// Properties as a JSON object.
pub fn object(pairs: &[(String, Value)]) -> Json {
    Json::Object(pairs.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

/// Encodes one record as a JSON object (dotted keys stay dotted).
pub fn encode(record: &Record) -> Json {
    let mut out = Map::new();
    match record {
        Record::Event(e) => {
            out.insert("type".into(), "event".into());
            out.insert("user_id".into(), e.user_id.clone().into());
            out.insert("name".into(), e.name.clone().into());
            if let Some(ts) = e.ts_ms {
                let text = jiff::Timestamp::from_millisecond(ts)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| ts.to_string());
                out.insert("ts".into(), text.into());
            }
            if !e.props.is_empty() {
                out.insert("props".into(), object(&e.props));
            }
            if let Some(id) = &e.id {
                out.insert("id".into(), id.clone().into());
            }
        }
        Record::Profile(p) => {
            out.insert("type".into(), "profile".into());
            out.insert("user_id".into(), p.user_id.clone().into());
            for (name, pairs) in [("set", &p.set), ("set_once", &p.set_once), ("append", &p.append)]
            {
                if !pairs.is_empty() {
                    out.insert(name.into(), object(pairs));
                }
            }
            if !p.unset.is_empty() {
                out.insert("unset".into(), p.unset.clone().into());
            }
            if !p.increment.is_empty() {
                let pairs: Vec<(String, Value)> =
                    p.increment.iter().map(|(k, n)| (k.clone(), Value::Number(*n))).collect();
                out.insert("increment".into(), object(&pairs));
            }
        }
        Record::Subscribe { user_id, subscription } => {
            out.insert("type".into(), "subscription".into());
            out.insert("user_id".into(), user_id.clone().into());
            out.insert(
                "subscription".into(),
                serde_json::json!({"endpoint": subscription.endpoint, "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth}}),
            );
        }
        Record::Unsubscribe { endpoint } => {
            out.insert("type".into(), "unsubscribe".into());
            out.insert("endpoint".into(), endpoint.clone().into());
        }
    }
    Json::Object(out)
}

/// Encodes one line: a record, or a definition.
pub fn encode_line(line: &Line) -> Json {
    let definition = match line {
        Line::Record(record) => return encode(record),
        Line::Definition(definition) => definition,
    };
    let mut out = Map::new();
    match definition {
        Definition::SaveSegment { name, query } => {
            out.insert("type".into(), "segment".into());
            out.insert("name".into(), name.clone().into());
            out.insert("q".into(), query.clone().into());
        }
        Definition::RemoveSegment { name } => {
            out.insert("type".into(), "segment_removed".into());
            out.insert("name".into(), name.clone().into());
        }
        Definition::SaveTrigger { name, trigger } => {
            out.insert("type".into(), "trigger".into());
            out.insert("name".into(), name.clone().into());
            out.insert("trigger".into(), trigger.clone().into());
        }
        Definition::RemoveTrigger { name } => {
            out.insert("type".into(), "trigger_removed".into());
            out.insert("name".into(), name.clone().into());
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn decode_text(text: &str) -> Result<Record, String> {
        decode(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn decodes_the_interface_examples() {
        let event = decode_text(r#"{"type": "event", "user_id": "u1", "name": "Added To Cart", "ts": "2026-11-01T10:00:00Z", "props": {"price": 49.5, "cart_id": "c9", "item": {"sku": "s1", "tags": ["a", 1]}}, "id": "evt-123"}"#).expect("event");
        let Record::Event(e) = event else { panic!("not an event") };
        assert_eq!(e.ts_ms, Some(1_793_527_200_000));
        assert!(e.props.contains(&("item.sku".into(), Value::String("s1".into()))));
        assert!(
            e.props.contains(&(
                "item.tags".into(),
                Value::Array(vec!["a".into(), Value::Number(1.0)])
            ))
        );
        let profile = decode_text(r#"{"type": "profile", "user_id": "u1", "set": {"city": "Delhi", "timezone": "Asia/Kolkata"}, "set_once": {"signup": "2026-01-02"}, "unset": ["coupon"], "increment": {"visits": 1}}"#).expect("profile");
        let Record::Profile(p) = &profile else { panic!("not a profile") };
        assert_eq!(p.increment, vec![("visits".to_string(), 1.0)]);
        assert_eq!(
            decode(encode(&profile).to_string().as_bytes()).ok(),
            Some(profile.clone()),
            "encode then decode is identity"
        );
        let default_type = decode_text(r#"{"user_id": "u", "name": "E", "ts": 1700000000000}"#)
            .expect("event by default");
        assert!(matches!(
            default_type,
            Record::Event(Event { ts_ms: Some(1_700_000_000_000), .. })
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"name": "E"}"#, "invalid `user_id`: missing"),
            (r#"{"user_id": "u", "name": 5}"#, "invalid `name`: expected a string, found a number"),
            (
                r#"{"user_id": "u", "name": "E", "ts": "yesterday"}"#,
                "invalid `ts`: \"yesterday\" is neither RFC 3339",
            ),
            (
                r#"{"user_id": "u", "name": "E", "props": {"a": {"b": null}}}"#,
                "invalid `props.a.b`: null is not a property value",
            ),
            (
                r#"{"user_id": "u", "name": "E", "props": {"a": [[1]]}}"#,
                "invalid `props.a`: expected a string, number or boolean, found an array",
            ),
            (
                r#"{"type": "profile", "user_id": "u", "increment": {"n": "x"}}"#,
                "invalid `increment.n`: expected a number",
            ),
            (r#"{"type": "thing"}"#, "invalid `type`: \"thing\" is not one of"),
            // Found by the `json_record` fuzz target: an empty name in a nested object
            // made `{"": {"a": 1}}` the property `a`, next to a real `a`.
            (
                r#"{"type": "profile", "user_id": "u", "set": {"a": 1, "": {"a": 2}}}"#,
                "invalid `set.`: property names must not be empty",
            ),
            (
                r#"{"user_id": "u", "name": "E", "props": {"a": {"": 1}}}"#,
                "invalid `props.a.`: property names must not be empty",
            ),
            (r#"[1]"#, "expected a JSON object, found an array"),
        ];
        for (text, expected) in cases {
            let error = decode_text(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name_in_every_record() {
        let sub = r#""subscription": {"endpoint": "https://p.example/x", "keys": {"p256dh": "k", "auth": "a"}}"#;
        let cases = [
            (r#"{"user_id": "u", "name": "E", "prop": {"a": 1}}"#.to_owned(), "prop"),
            (r#"{"user_id": "u", "name": "E", "timestamp": 1}"#.to_owned(), "timestamp"),
            (r#"{"type": "profile", "user_id": "u", "sett": {"a": 1}}"#.to_owned(), "sett"),
            (format!(r#"{{"type": "subscription", "user_id": "u", {sub}, "x": 1}}"#), "x"),
            (
                r#"{"type": "subscription", "user_id": "u", "subscription": {"endpont": "e", "keys": {"p256dh": "k", "auth": "a"}}}"#
                    .to_owned(),
                "subscription.endpont",
            ),
            (r#"{"type": "unsubscribe", "endpoint": "e", "user_id": "u"}"#.to_owned(), "user_id"),
            (r#"{"type": "segment", "name": "s", "q": "did \"A\"", "public": true}"#.to_owned(), "public"),
            (r#"{"type": "segment_removed", "name": "s", "q": "x"}"#.to_owned(), "q"),
            (r#"{"type": "trigger", "name": "t", "trigger": "on \"A\"", "x": 1}"#.to_owned(), "x"),
            (r#"{"type": "trigger_removed", "name": "t", "trigger": "x"}"#.to_owned(), "trigger"),
        ];
        for (text, field) in cases {
            match decode_line(text.as_bytes()) {
                Err(JsonError::Field(error)) => {
                    assert_eq!(error.field, field, "{text}");
                    assert!(error.reason.starts_with("unknown field `"), "{error}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // The browser's PushSubscription.toJSON(): expirationTime is known, and
        // `keys` is an open record in the Push API.
        let browser = r#"{"type": "subscription", "user_id": "u", "subscription": {"endpoint": "https://p.example/x", "expirationTime": null, "keys": {"p256dh": "k", "auth": "a", "future": "z"}}}"#;
        let Ok(Record::Subscribe { subscription, .. }) = decode(browser.as_bytes()) else {
            panic!("a browser's subscription is accepted")
        };
        assert_eq!((subscription.p256dh.as_str(), subscription.auth.as_str()), ("k", "a"));
    }

    #[test]
    fn numbers_are_read_exactly_and_round_trip() {
        // Found by the CI fuzz run (json_record): without serde_json's
        // `float_roundtrip`, -4.5e+300 was read one unit in the last place off
        // (a stored value silently changed), and again off after a round trip.
        let text = br#"{"user_id": "u1", "name": "E", "props": {"n": -4.5e+300, "m": 0.1}}"#;
        let Ok(Record::Event(event)) = decode(text) else { panic!("an event") };
        assert_eq!(event.props[0], ("n".to_owned(), Value::Number(-4.5e300)));
        assert_eq!(event.props[1], ("m".to_owned(), Value::Number(0.1)));
        let again = decode(encode(&Record::Event(event.clone())).to_string().as_bytes()).unwrap();
        let Record::Event(again) = again else { panic!("an event") };
        let mut props = again.props.clone();
        props.sort_by(|a, b| b.0.cmp(&a.0));
        assert_eq!(props, event.props);
    }

    #[test]
    fn every_record_type_decodes_and_round_trips() {
        for text in [
            r#"{"type": "unsubscribe", "endpoint": "https://p.example/x"}"#,
            r#"{"type": "segment", "name": "s", "q": "did \"A\""}"#,
            r#"{"type": "segment_removed", "name": "s"}"#,
            r#"{"type": "trigger", "name": "t", "trigger": "on \"A\""}"#,
            r#"{"type": "trigger_removed", "name": "t"}"#,
            r#"{"type": "subscription", "user_id": "u", "subscription": {"endpoint": "https://p.example/x", "keys": {"p256dh": "k", "auth": "a"}}}"#,
            r#"{"type": "profile", "user_id": "u", "append": {"tags": ["a"]}, "increment": {"n": {"m": 2}}}"#,
        ] {
            let line = decode_line(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
            let again = decode_line(encode_line(&line).to_string().as_bytes()).unwrap();
            assert_eq!(again, line, "{text}");
        }
    }

    #[test]
    fn a_definition_is_not_a_record() {
        let text = br#"{"type": "segment", "name": "s", "q": "did \"A\""}"#;
        let Err(JsonError::Field(error)) = decode(text) else { panic!("refused") };
        assert_eq!(error.field, "type");
        assert!(error.reason.contains("is a definition"), "{error}");
        assert!(matches!(decode_line(text), Ok(Line::Definition(Definition::SaveSegment { .. }))));
    }

    #[test]
    fn a_record_of_another_type_is_refused_by_its_type() {
        // The type comes first here, so it is what is named.
        let text = br#"{"type": "profile", "user_id": "u", "set": {"a": 1}}"#;
        let Err(JsonError::Field(error)) = decode_as::<EventJson>(text) else { panic!("refused") };
        assert_eq!(error.field, "type");
        assert_eq!(error.reason, "this endpoint takes `event` records, not \"profile\"");
        let Err(JsonError::Field(error)) = decode(br#"{"type": 5}"#) else { panic!("refused") };
        assert_eq!(error.to_string(), "invalid `type`: expected a string, found a number");
        assert!(matches!(decode(b"{\"type\": "), Err(JsonError::NotJson(_))));
    }

    fn batch_error(body: &str) -> FieldError {
        match decode_events(body.as_bytes(), 3) {
            Err(JsonError::Field(error)) => error,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn an_events_body_is_an_array_or_an_events_object_and_errors_name_the_event() {
        let event = r#"{"user_id": "u", "name": "E"}"#;
        for body in [format!("[{event}, {event}]"), format!(r#"{{"events": [{event}, {event}]}}"#)]
        {
            let batch = decode_events(body.as_bytes(), 3).unwrap();
            assert_eq!((batch.records.len(), batch.count), (2, 2), "{body}");
        }
        let error =
            batch_error(&format!(r#"[{event}, {{"user_id": "u", "name": "E", "ts": "x"}}]"#));
        assert_eq!((error.index, error.field.as_str()), (Some(1), "ts"));
        let error = batch_error(&format!(r#"{{"events": [{event}, {event}, {{"name": 1}}]}}"#));
        assert_eq!((error.index, error.field.as_str()), (Some(2), "name"));
        let error = batch_error(r#"[{"user_id": "u", "name": "E", "nmae": 1}]"#);
        assert_eq!((error.index, error.field.as_str()), (Some(0), "nmae"));
        let error = batch_error(r#"{"events": 3}"#);
        assert_eq!((error.index, error.field.as_str()), (None, "events"));
        assert_eq!(error.reason, "expected an array of events, found a number");
        let error = batch_error(r#"{"evnets": []}"#);
        assert_eq!((error.field.as_str(), &error.reason[..15]), ("evnets", "unknown field `"));
        assert_eq!(batch_error("{}").field, "events");
        assert_eq!(batch_error(r#""events""#).field, "");
        let error = batch_error(r#"[{"type": "profile", "user_id": "u"}]"#);
        assert_eq!((error.index, error.field.as_str()), (Some(0), "type"));
        // Past the limit events are counted, not decoded (even bad ones).
        let many = format!("[{event}, {event}, {event}, {event}, {{\"bad\": 1}}]");
        let batch = decode_events(many.as_bytes(), 3).unwrap();
        assert_eq!((batch.records.len(), batch.count), (3, 5));
    }
}
