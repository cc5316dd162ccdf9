//! NDJSON records (the format of `nudge gen`, `nudge import` and the HTTP
//! bodies): decoding JSON into engine records and encoding records as JSON.
//!
//! Decoding follows `shared/spec/interfaces.md`: `type` defaults to `event`;
//! `ts` is RFC 3339 or epoch milliseconds and defaults to the engine clock;
//! nested objects in `props`, `set`, `set_once` and `append` are flattened
//! to dotted keys (`{"item": {"sku": 1}}` becomes `item.sku`); arrays hold
//! scalars only. Every error names the field at fault.

use nudge_engine::{Event, ProfileUpdate, Record, Subscription, Value};
use serde_json::{Map, Value as Json};

/// Deepest nesting of objects accepted inside properties.
pub const MAX_JSON_DEPTH: usize = 32;

type Decoded<T> = std::result::Result<T, String>;

fn field_error(field: &str, reason: impl std::fmt::Display) -> String {
    format!("invalid `{field}`: {reason}")
}

/// Parses a timestamp: RFC 3339 text or epoch milliseconds.
pub fn parse_timestamp(field: &str, value: &Json) -> Decoded<i64> {
    match value {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
            })
            .ok_or_else(|| {
                field_error(field, format!("{n} is not a whole number of epoch milliseconds"))
            }),
        Json::String(s) => parse_timestamp_text(s).map_err(|e| field_error(field, e)),
        other => Err(field_error(
            field,
            format!("expected RFC 3339 text or epoch milliseconds, found {}", kind(other)),
        )),
    }
}

/// Parses RFC 3339 text or decimal epoch milliseconds (the command line's `TS`).
pub fn parse_timestamp_text(text: &str) -> Decoded<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    text.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|e| {
        format!(
            "{text:?} is neither RFC 3339 (e.g. 2026-11-01T10:00:00Z) nor epoch milliseconds ({e})"
        )
    })
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn scalar(field: &str, value: &Json) -> Decoded<Value> {
    match value {
        Json::Bool(b) => Ok(Value::Bool(*b)),
        Json::Number(n) => {
            n.as_f64().map(Value::Number).ok_or_else(|| field_error(field, "number out of range"))
        }
        Json::String(s) => Ok(Value::String(s.clone())),
        other => Err(field_error(
            field,
            format!("expected a string, number or boolean, found {}", kind(other)),
        )),
    }
}

fn flatten_into(
    prefix: &str,
    object: &Map<String, Json>,
    depth: usize,
    out: &mut Vec<(String, Value)>,
) -> Decoded<()> {
    if depth > MAX_JSON_DEPTH {
        return Err(field_error(
            prefix,
            format!("objects nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    for (key, value) in object {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        if key.is_empty() {
            // `{"": {"a": 1}}` would otherwise become `a`, and `{"a": {"": 1}}` `a.`.
            return Err(field_error(&path, "property names must not be empty"));
        }
        match value {
            Json::Object(inner) => flatten_into(&path, inner, depth + 1, out)?,
            Json::Array(items) => {
                let items = items.iter().map(|v| scalar(&path, v)).collect::<Decoded<Vec<_>>>()?;
                out.push((path, Value::Array(items)));
            }
            Json::Null => {
                return Err(field_error(
                    &path,
                    "null is not a property value (use unset to remove a profile property)",
                ));
            }
            other => {
                let value = scalar(&path, other)?;
                out.push((path, value));
            }
        }
    }
    Ok(())
}

/// Flattens an optional JSON object of properties.
fn props(record: &Map<String, Json>, field: &str) -> Decoded<Vec<(String, Value)>> {
    match record.get(field) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Object(object)) => {
            let mut out = Vec::new();
            flatten_into("", object, 1, &mut out)
                .map_err(|e| e.replacen("invalid `", &format!("invalid `{field}."), 1))?;
            Ok(out)
        }
        Some(other) => {
            Err(field_error(field, format!("expected an object, found {}", kind(other))))
        }
    }
}

fn string(record: &Map<String, Json>, field: &str) -> Decoded<String> {
    match record.get(field) {
        Some(Json::String(s)) => Ok(s.clone()),
        Some(other) => Err(field_error(field, format!("expected a string, found {}", kind(other)))),
        None => Err(field_error(field, "missing")),
    }
}

fn optional_string(record: &Map<String, Json>, field: &str) -> Decoded<Option<String>> {
    match record.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(_) => string(record, field).map(Some),
    }
}

/// Decodes one JSON record.
pub fn decode(value: &Json) -> Decoded<Record> {
    let Json::Object(record) = value else {
        return Err(format!("expected a JSON object, found {}", kind(value)));
    };
    let kind_name = optional_string(record, "type")?.unwrap_or_else(|| "event".into());
    match kind_name.as_str() {
        "event" => Ok(Record::Event(Event {
            user_id: string(record, "user_id")?,
            name: string(record, "name")?,
            ts_ms: record
                .get("ts")
                .filter(|v| !v.is_null())
                .map(|v| parse_timestamp("ts", v))
                .transpose()?,
            props: props(record, "props")?,
            id: optional_string(record, "id")?,
        })),
        "profile" => {
            let unset = match record.get("unset") {
                None | Some(Json::Null) => Vec::new(),
                Some(Json::Array(keys)) => keys
                    .iter()
                    .map(|k| {
                        k.as_str().map(str::to_owned).ok_or_else(|| {
                            field_error("unset", "expected an array of property names")
                        })
                    })
                    .collect::<Decoded<_>>()?,
                Some(other) => {
                    return Err(field_error(
                        "unset",
                        format!("expected an array, found {}", kind(other)),
                    ));
                }
            };
            let increment = props(record, "increment")?
                .into_iter()
                .map(|(k, v)| match v {
                    Value::Number(n) => Ok((k, n)),
                    _ => Err(field_error(&format!("increment.{k}"), "expected a number")),
                })
                .collect::<Decoded<_>>()?;
            Ok(Record::Profile(ProfileUpdate {
                user_id: string(record, "user_id")?,
                set: props(record, "set")?,
                set_once: props(record, "set_once")?,
                unset,
                increment,
                append: props(record, "append")?,
            }))
        }
        "subscription" => {
            let Some(Json::Object(sub)) = record.get("subscription") else {
                return Err(field_error(
                    "subscription",
                    "expected an object with endpoint and keys",
                ));
            };
            let Some(Json::Object(keys)) = sub.get("keys") else {
                return Err(field_error(
                    "subscription.keys",
                    "expected an object with p256dh and auth",
                ));
            };
            Ok(Record::Subscribe {
                user_id: string(record, "user_id")?,
                subscription: Subscription {
                    endpoint: string(sub, "endpoint")
                        .map_err(|e| e.replacen('`', "`subscription.", 1))?,
                    p256dh: string(keys, "p256dh")
                        .map_err(|e| e.replacen('`', "`subscription.keys.", 1))?,
                    auth: string(keys, "auth")
                        .map_err(|e| e.replacen('`', "`subscription.keys.", 1))?,
                },
            })
        }
        "unsubscribe" => Ok(Record::Unsubscribe { endpoint: string(record, "endpoint")? }),
        "segment" => {
            Ok(Record::SaveSegment { name: string(record, "name")?, query: string(record, "q")? })
        }
        "segment_removed" => Ok(Record::RemoveSegment { name: string(record, "name")? }),
        "trigger" => Ok(Record::SaveTrigger {
            name: string(record, "name")?,
            trigger: string(record, "trigger")?,
        }),
        "trigger_removed" => Ok(Record::RemoveTrigger { name: string(record, "name")? }),
        other => Err(field_error(
            "type",
            format!(
                "{other:?} is not one of event, profile, subscription, unsubscribe, segment, segment_removed, trigger, trigger_removed"
            ),
        )),
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
        Record::SaveSegment { name, query } => {
            out.insert("type".into(), "segment".into());
            out.insert("name".into(), name.clone().into());
            out.insert("q".into(), query.clone().into());
        }
        Record::RemoveSegment { name } => {
            out.insert("type".into(), "segment_removed".into());
            out.insert("name".into(), name.clone().into());
        }
        Record::SaveTrigger { name, trigger } => {
            out.insert("type".into(), "trigger".into());
            out.insert("name".into(), name.clone().into());
            out.insert("trigger".into(), trigger.clone().into());
        }
        Record::RemoveTrigger { name } => {
            out.insert("type".into(), "trigger_removed".into());
            out.insert("name".into(), name.clone().into());
        }
        // Written by the engine itself, never read from NDJSON.
        Record::History => {
            out.insert("type".into(), "history".into());
        }
        // The campaign JSON of interfaces.md belongs to the HTTP API (not built
        // yet); NDJSON only names the campaign.
        Record::SaveCampaign(campaign) => {
            out.insert("type".into(), "campaign".into());
            out.insert("id".into(), campaign.id.clone().into());
            out.insert("name".into(), campaign.name.clone().into());
        }
        // Written by the engine itself (outbox, settings, schedule progress).
        Record::Delivery(_) => {
            out.insert("type".into(), "delivery".into());
        }
        Record::RemoveCampaign { id } => {
            out.insert("type".into(), "campaign_removed".into());
            out.insert("id".into(), id.clone().into());
        }
        Record::SetCampaignPaused { id, paused } => {
            out.insert("type".into(), "campaign_paused".into());
            out.insert("id".into(), id.clone().into());
            out.insert("paused".into(), (*paused).into());
        }
        Record::Fire(fire) => {
            out.insert("type".into(), "fire".into());
            out.insert("trigger".into(), fire.trigger.clone().into());
            out.insert("user".into(), fire.user.into());
            out.insert("cause".into(), fire.cause.into());
            out.insert("due_ms".into(), fire.due_ms.into());
            out.insert("outcome".into(), fire.outcome.name().into());
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_text(text: &str) -> Decoded<Record> {
        decode(&serde_json::from_str(text).map_err(|e| e.to_string())?)
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
            decode(&encode(&profile)),
            Ok(profile.clone()),
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
}
