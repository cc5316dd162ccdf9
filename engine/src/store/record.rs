//! What callers hand to the engine: events, profile updates and web push
//! subscription changes, and the checks every one of them passes before
//! anything is written.
//!
//! Validation happens here, once, for the whole batch before any id is assigned
//! or any byte is written: one bad record rejects the batch with its index and
//! the field at fault, and nothing is stored.

use crate::error::{Error, Result};
use crate::limits::*;
pub use crate::limits::{check_text, check_timestamp};
use crate::store::props::Value;

/// One behavioural event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The app's user id (any non-empty string).
    pub user_id: String,
    /// Event name, e.g. `Added To Cart`.
    pub name: String,
    /// Event time in epoch milliseconds UTC; `None` means the engine clock at ingest.
    pub ts_ms: Option<i64>,
    /// Flat properties (nested objects already flattened to dotted keys).
    pub props: Vec<(String, Value)>,
    /// Optional idempotency id: a repeat inside the window is acknowledged, not stored.
    pub id: Option<String>,
}

impl Event {
    /// An event with no properties, no explicit time and no id.
    pub fn new(user_id: impl Into<String>, name: impl Into<String>) -> Self {
        Event {
            user_id: user_id.into(),
            name: name.into(),
            ts_ms: None,
            props: Vec::new(),
            id: None,
        }
    }

    /// Sets the timestamp.
    pub fn at(mut self, ts_ms: i64) -> Self {
        self.ts_ms = Some(ts_ms);
        self
    }

    /// Adds a property.
    pub fn prop(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.props.push((key.into(), value.into()));
        self
    }

    /// Sets the idempotency id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Changes to one user's profile, applied in the order: set, set_once, unset,
/// increment, append.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileUpdate {
    /// The app's user id.
    pub user_id: String,
    /// Properties to overwrite.
    pub set: Vec<(String, Value)>,
    /// Properties to set only when absent.
    pub set_once: Vec<(String, Value)>,
    /// Properties to remove.
    pub unset: Vec<String>,
    /// Numeric properties to add to (absent or non-numeric counts as 0).
    pub increment: Vec<(String, f64)>,
    /// Values to append to array properties (a scalar becomes a one-element array first).
    pub append: Vec<(String, Value)>,
}

/// A browser's web push subscription (the `PushSubscription` JSON of the Push API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The push service URL.
    pub endpoint: String,
    /// The browser's P-256 public key, base64url.
    pub p256dh: String,
    /// The 16-byte auth secret, base64url.
    pub auth: String,
}

/// A record a caller may ingest: what users do, who they are, how to reach
/// them. Definitions (segments, triggers, campaigns) have their own calls, and
/// what the engine records itself (fires, outbox progress) is never input, so
/// a forged fire cannot settle a pending one:
///
/// ```compile_fail
/// # use nudge_engine::Record;
/// let forged = Record::Fire { trigger: "cart".into(), user: 0, cause: 0, due_ms: 0 };
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A behavioural event.
    Event(Event),
    /// A profile update.
    Profile(ProfileUpdate),
    /// A subscription added for a user (replaces any with the same endpoint).
    Subscribe {
        /// The app's user id.
        user_id: String,
        /// The subscription.
        subscription: Subscription,
    },
    /// A subscription removed, by endpoint.
    Unsubscribe {
        /// The endpoint to deactivate.
        endpoint: String,
    },
}

impl From<Event> for Record {
    fn from(e: Event) -> Self {
        Record::Event(e)
    }
}

impl From<ProfileUpdate> for Record {
    fn from(p: ProfileUpdate) -> Self {
        Record::Profile(p)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n as f64)
    }
}
impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(f64::from(n))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

/// Encoded size of a value in the property codec.
fn value_size(field: &str, value: &Value, nested: bool) -> Result<usize> {
    match value {
        Value::Bool(_) => Ok(1),
        Value::Number(n) if n.is_finite() => Ok(9),
        Value::Number(n) => Err(Error::invalid(None, field, format!("number {n} is not finite"))),
        Value::String(s) if s.len() > MAX_STRING_VALUE_BYTES => Err(Error::invalid(
            None,
            field,
            format!("string is {} bytes, more than the limit of {MAX_STRING_VALUE_BYTES}", s.len()),
        )),
        Value::String(s) => Ok(3 + s.len()),
        Value::Array(_) if nested => {
            Err(Error::invalid(None, field, "arrays may hold only strings, numbers and booleans"))
        }
        Value::Array(items) if items.len() > MAX_ARRAY_ELEMENTS => Err(Error::invalid(
            None,
            field,
            format!(
                "array has {} elements, more than the limit of {MAX_ARRAY_ELEMENTS}",
                items.len()
            ),
        )),
        Value::Array(items) => {
            items.iter().try_fold(3, |total, item| Ok(total + value_size(field, item, true)?))
        }
    }
}

/// Checks a property list: key limits, unique keys, value types and limits, total size.
fn check_props<'a>(
    prefix: &str,
    props: impl ExactSizeIterator<Item = (&'a str, Option<&'a Value>)>,
) -> Result<()> {
    if props.len() > MAX_PROPERTIES {
        return Err(Error::invalid(
            None,
            prefix,
            format!("{} properties, more than the limit of {MAX_PROPERTIES}", props.len()),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 2usize;
    for (key, value) in props {
        let field = format!("{prefix}.{key}");
        check_text(&field, key, MAX_PROPERTY_KEY_BYTES, "property key")?;
        if !seen.insert(key) {
            return Err(Error::invalid(None, field, "property key appears twice"));
        }
        total += 2 + value.map(|v| value_size(&field, v, false)).transpose()?.unwrap_or(0);
    }
    if total > MAX_EVENT_BYTES {
        return Err(Error::invalid(
            None,
            prefix,
            format!("properties encode to {total} bytes, more than the limit of {MAX_EVENT_BYTES}"),
        ));
    }
    Ok(())
}

fn pairs(props: &[(String, Value)]) -> impl ExactSizeIterator<Item = (&str, Option<&Value>)> {
    props.iter().map(|(k, v)| (k.as_str(), Some(v)))
}

/// Checks one record. Errors carry no index; [`validate_batch`] adds it.
pub fn validate(record: &Record) -> Result<()> {
    match record {
        Record::Event(e) => {
            check_text("user_id", &e.user_id, MAX_USER_ID_BYTES, "user id")?;
            check_text("name", &e.name, MAX_EVENT_NAME_BYTES, "event name")?;
            if let Some(ts) = e.ts_ms {
                check_timestamp("ts", ts)?;
            }
            if let Some(id) = &e.id {
                check_text("id", id, MAX_EVENT_ID_BYTES, "event id")?;
            }
            check_props("props", pairs(&e.props))
        }
        Record::Profile(p) => {
            check_text("user_id", &p.user_id, MAX_USER_ID_BYTES, "user id")?;
            check_props("set", pairs(&p.set))?;
            check_props("set_once", pairs(&p.set_once))?;
            check_props("unset", p.unset.iter().map(|k| (k.as_str(), None)))?;
            for (key, by) in &p.increment {
                if !by.is_finite() {
                    return Err(Error::invalid(
                        None,
                        format!("increment.{key}"),
                        "not a finite number",
                    ));
                }
            }
            check_props(
                "increment",
                p.increment.iter().map(|(k, _)| (k.as_str(), None)).collect::<Vec<_>>().into_iter(),
            )?;
            check_props("append", pairs(&p.append))?;
            let touched =
                p.set.len() + p.set_once.len() + p.unset.len() + p.increment.len() + p.append.len();
            if touched == 0 {
                return Err(Error::invalid(
                    None,
                    "set",
                    "a profile update needs at least one of set, set_once, unset, increment, append",
                ));
            }
            Ok(())
        }
        Record::Subscribe { user_id, subscription } => {
            check_text("user_id", user_id, MAX_USER_ID_BYTES, "user id")?;
            check_text(
                "subscription.endpoint",
                &subscription.endpoint,
                MAX_ENDPOINT_BYTES,
                "endpoint",
            )?;
            check_text(
                "subscription.keys.p256dh",
                &subscription.p256dh,
                MAX_PUSH_KEY_BYTES,
                "p256dh key",
            )?;
            check_text(
                "subscription.keys.auth",
                &subscription.auth,
                MAX_PUSH_KEY_BYTES,
                "auth secret",
            )
        }
        Record::Unsubscribe { endpoint } => {
            check_text("endpoint", endpoint, MAX_ENDPOINT_BYTES, "endpoint")
        }
    }
}

/// Checks that a batch of `len` records is within [`MAX_BATCH_RECORDS`].
pub fn check_batch_len(len: usize) -> Result<()> {
    if len > MAX_BATCH_RECORDS {
        return Err(Error::invalid(
            None,
            "records",
            format!("{len} records, more than the limit of {MAX_BATCH_RECORDS} per batch"),
        ));
    }
    Ok(())
}

/// Checks a whole batch; the first bad record's error carries its index.
pub fn validate_batch(records: &[Record]) -> Result<()> {
    check_batch_len(records.len())?;
    records.iter().enumerate().try_for_each(|(i, r)| validate(r).map_err(|e| e.at_index(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(record: Record) -> String {
        validate_batch(&[Record::Event(Event::new("ok", "fine")), record])
            .expect_err("must be rejected")
            .to_string()
    }

    #[test]
    fn rejects_bad_events_with_index_and_field() {
        assert_eq!(
            reason(Event::new("", "x").into()),
            "record 1: invalid `user_id`: user id must not be empty"
        );
        assert!(
            reason(Event::new("u", "").into()).contains("`name`: event name must not be empty")
        );
        assert!(
            reason(Event::new("u", "n".repeat(300)).into())
                .contains("300 bytes, more than the limit of 256")
        );
        assert!(
            reason(Event::new("u", "x").at(-1).into()).contains("`ts`: timestamp -1 is outside")
        );
        assert!(
            reason(Event::new("u", "x").prop("p", f64::NAN).into())
                .contains("`props.p`: number NaN is not finite")
        );
        assert!(
            reason(Event::new("u", "x").prop("p", 1).prop("p", 2).into()).contains("appears twice")
        );
        let nested = Value::Array(vec![Value::Array(vec![])]);
        assert!(
            reason(Event::new("u", "x").prop("a", nested).into()).contains("arrays may hold only")
        );
        let big = "x".repeat(MAX_STRING_VALUE_BYTES);
        let mut oversized = Event::new("u", "x");
        for i in 0..5 {
            oversized = oversized.prop(format!("k{i}"), big.as_str());
        }
        assert!(reason(oversized.into()).contains("more than the limit of 32768"));
    }

    #[test]
    fn rejects_empty_profile_updates_and_bad_subscriptions() {
        let empty = ProfileUpdate { user_id: "u".into(), ..Default::default() };
        assert!(reason(empty.into()).contains("needs at least one of"));
        let sub = Record::Subscribe {
            user_id: "u".into(),
            subscription: Subscription {
                endpoint: "https://x".into(),
                p256dh: "".into(),
                auth: "a".into(),
            },
        };
        assert!(reason(sub).contains("`subscription.keys.p256dh`"));
    }

    #[test]
    fn accepts_a_well_formed_batch() {
        let event =
            Event::new("u1", "Added To Cart").at(1_700_000_000_000).prop("price", 49.5).id("e1");
        let profile = ProfileUpdate {
            user_id: "u1".into(),
            set: vec![("city".into(), "Delhi".into())],
            increment: vec![("visits".into(), 1.0)],
            ..Default::default()
        };
        validate_batch(&[event.into(), profile.into()]).expect("valid");
    }
}
