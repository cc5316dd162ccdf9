//! Single JSON values as the API reads them, for the derived structs of the
//! request bodies and records: strings ([`Text`], [`NonEmptyText`]), whole
//! numbers, timestamps ([`TimestampMs`]), durations ([`DurationMs`]),
//! properties flattened to dotted keys ([`Props`], [`Increments`]), lists of
//! property names ([`Unset`]) and objects ([`Object`]).
//!
//! A value of the wrong kind is refused in the API's words, "expected a
//! string, found a number", by [`Strict`]: each decoder declares the kinds it
//! takes ([`Accepts`]) and `Strict` answers every other kind. The errors are
//! serde errors, so `serde_path_to_error` puts the JSON path of the value
//! in front of them ([`super::FieldError`]).
//!
//! Timestamps are RFC 3339 text or epoch milliseconds; durations follow the
//! query language (`10m`, `2h`, `1d`, `1w`, `500ms`, `7 days`).

use std::fmt;
use std::marker::PhantomData;

use nudge_engine::Value;
use serde::de::value::MapAccessDeserializer;
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, Expected, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::Value as Json;

/// Deepest nesting of objects accepted inside properties.
pub const MAX_JSON_DEPTH: usize = 32;

/// The kinds of JSON value, as error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl Kind {
    /// The kind in words: `a number`, `an array`, `null`.
    pub fn words(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A visitor of some kinds of JSON value (its [`Accepts::KINDS`]); wrapped in
/// [`Strict`], every other kind is refused as "expected {what the visitor
/// expects}, found {kind}".
pub trait Accepts<'de>: Visitor<'de> {
    /// The kinds this visitor takes.
    const KINDS: &'static [Kind];
}

/// Runs a visitor on the kinds it accepts and refuses the others in the API's
/// words. Use it with `deserialize_any`.
pub struct Strict<V>(pub V);

impl<V> Strict<V> {
    /// `visit(self.0)` when the visitor takes `kind`, else the refusal.
    fn take<'de, E: de::Error>(
        self,
        kind: Kind,
        visit: impl FnOnce(V) -> Result<V::Value, E>,
    ) -> Result<V::Value, E>
    where
        V: Accepts<'de>,
    {
        if V::KINDS.contains(&kind) { visit(self.0) } else { Err(found(&self.0, kind)) }
    }
}

/// "expected {expected}, found {kind}".
fn found<E: de::Error>(expected: &dyn Expected, kind: Kind) -> E {
    E::custom(format_args!("expected {expected}, found {}", kind.words()))
}

impl<'de, V: Accepts<'de>> Visitor<'de> for Strict<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.take(Kind::Boolean, |inner| inner.visit_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.take(Kind::Number, |inner| inner.visit_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.take(Kind::Number, |inner| inner.visit_u64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.take(Kind::Number, |inner| inner.visit_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.take(Kind::String, |inner| inner.visit_str(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.take(Kind::String, |inner| inner.visit_borrowed_str(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.take(Kind::String, |inner| inner.visit_string(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.take(Kind::Null, |inner| inner.visit_unit())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.take(Kind::Array, |inner| inner.visit_seq(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.take(Kind::Object, |inner| inner.visit_map(map))
    }
}

/// Implements `Deserialize` for a one-field wrapper through a [`Strict`]
/// visitor: the expected text, the kinds, and the visit methods.
macro_rules! strict_value {
    ($ty:ident, $expecting:expr, [$($kind:ident),+], { $($visit:tt)* }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct ValueVisitor;
                impl<'de> Visitor<'de> for ValueVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    $($visit)*
                }
                impl Accepts<'_> for ValueVisitor {
                    const KINDS: &'static [Kind] = &[$(Kind::$kind),+];
                }
                deserializer.deserialize_any(Strict(ValueVisitor))
            }
        }
    };
}

/// A JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

strict_value!(Text, "a string", [String], {
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
        Ok(Text(v))
    }
});

/// A JSON string that is not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmptyText(pub String);

strict_value!(NonEmptyText, "a non-empty string", [String], {
    fn visit_str<E: de::Error>(self, v: &str) -> Result<NonEmptyText, E> {
        self.visit_string(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<NonEmptyText, E> {
        if v.is_empty() {
            return Err(E::custom("expected a non-empty string"));
        }
        Ok(NonEmptyText(v))
    }
});

/// A whole number from 0 (no fraction, no exponent beyond an integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeNumber(pub u64);

strict_value!(WholeNumber, "a whole number", [Number], {
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeNumber, E> {
        Ok(WholeNumber(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeNumber, E> {
        u64::try_from(v).map(WholeNumber).map_err(|_| E::custom(format!("{v} is below 0")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeNumber, E> {
        Err(E::custom(format!("{} is not a whole number", number_text(v))))
    }
});

/// A time: RFC 3339 text or epoch milliseconds, as epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampMs(pub i64);

strict_value!(TimestampMs, "RFC 3339 text or epoch milliseconds", [Number, String], {
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimestampMs, E> {
        Ok(TimestampMs(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimestampMs, E> {
        i64::try_from(v).map(TimestampMs).map_err(|_| E::custom(not_epoch_ms(&v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimestampMs, E> {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            return Ok(TimestampMs(v as i64));
        }
        Err(E::custom(not_epoch_ms(&number_text(v))))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<TimestampMs, E> {
        parse_timestamp_text(v).map(TimestampMs).map_err(E::custom)
    }
});

fn not_epoch_ms(number: &str) -> String {
    format!("{number} is not a whole number of epoch milliseconds")
}

/// A number as JSON writes it (`1.5`, `1e300`).
fn number_text(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string())
}

/// Parses RFC 3339 text or decimal epoch milliseconds (the command line's `TS`).
pub fn parse_timestamp_text(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    text.parse::<jiff::Timestamp>().map(|t| t.as_millisecond()).map_err(|e| {
        format!(
            "{text:?} is neither RFC 3339 (e.g. 2026-11-01T10:00:00Z) nor epoch milliseconds ({e})"
        )
    })
}

/// A JSON object decoded as `T`. serde's derived structs also read an array,
/// field by field; this refuses it, and names the kind found.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<T>(pub T);

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Object<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Object)
    }
}

impl<'de, T: Deserialize<'de>> Accepts<'de> for ObjectVisitor<T> {
    const KINDS: &'static [Kind] = &[Kind::Object];
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Strict(ObjectVisitor(PhantomData)))
    }
}

/// Properties (`props`, `set`, `set_once`, `append`): a JSON object of
/// strings, numbers, booleans and arrays of those, with nested objects
/// flattened to dotted keys (`{"item": {"sku": 1}}` is `item.sku`) at most
/// [`MAX_JSON_DEPTH`] deep. Keys are kept in their order, repeats included
/// (the engine refuses a repeated key). An error names the property at fault.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Props(pub Vec<(String, Value)>);

/// Numbers to add (`increment`): [`Props`] whose every value is a number.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Increments(pub Vec<(String, f64)>);

impl<'de> Deserialize<'de> for Props {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        let visitor = PropsVisitor { prefix: "", depth: 1, numbers_only: false, out: &mut out };
        deserializer.deserialize_any(Strict(visitor))?;
        Ok(Props(out))
    }
}

impl<'de> Deserialize<'de> for Increments {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut out = Vec::new();
        let visitor = PropsVisitor { prefix: "", depth: 1, numbers_only: true, out: &mut out };
        deserializer.deserialize_any(Strict(visitor))?;
        // With `numbers_only`, every value the visitor keeps is a number.
        let numbers = out
            .into_iter()
            .filter_map(|(key, value)| match value {
                Value::Number(n) => Some((key, n)),
                _ => None,
            })
            .collect();
        Ok(Increments(numbers))
    }
}

/// One object of properties at `depth`, its keys under `prefix`.
struct PropsVisitor<'a> {
    prefix: &'a str,
    depth: usize,
    numbers_only: bool,
    out: &'a mut Vec<(String, Value)>,
}

impl<'de> Visitor<'de> for PropsVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            // `{"": {"a": 1}}` would otherwise become `a`, and `{"a": {"": 1}}` `a.`.
            let empty_name = key.is_empty();
            let path = if self.prefix.is_empty() { key } else { format!("{}.{key}", self.prefix) };
            map.next_value_seed(PropSeed {
                path,
                empty_name,
                depth: self.depth,
                numbers_only: self.numbers_only,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }
}

impl Accepts<'_> for PropsVisitor<'_> {
    const KINDS: &'static [Kind] = &[Kind::Object];
}

/// The value of one property, at `path`.
struct PropSeed<'a> {
    path: String,
    empty_name: bool,
    depth: usize,
    numbers_only: bool,
    out: &'a mut Vec<(String, Value)>,
}

impl<'de> DeserializeSeed<'de> for PropSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.empty_name {
            return Err(de::Error::custom("property names must not be empty"));
        }
        deserializer.deserialize_any(self)
    }
}

impl PropSeed<'_> {
    fn keep<E: de::Error>(self, value: Value) -> Result<(), E> {
        if self.numbers_only && !matches!(value, Value::Number(_)) {
            return Err(E::custom("expected a number"));
        }
        self.out.push((self.path, value));
        Ok(())
    }
}

impl<'de> Visitor<'de> for PropSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean, array or object")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.keep(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.keep(Value::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.keep(Value::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.keep(Value::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.keep(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.keep(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom("null is not a property value (use unset to remove a profile property)"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        // An item that is not a scalar is refused for the array as a whole
        // (`props.tags`, not `props.tags[2]`).
        while let Some(item) = seq.next_element::<Item>()? {
            match item {
                Item::Scalar(value) => items.push(value),
                Item::Other(kind) => {
                    return Err(de::Error::custom(format_args!(
                        "expected a string, number or boolean, found {}",
                        kind.words()
                    )));
                }
            }
        }
        self.keep(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(de::Error::custom(format_args!(
                "objects nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let nested = PropsVisitor {
            prefix: &self.path,
            depth: self.depth + 1,
            numbers_only: self.numbers_only,
            out: self.out,
        };
        nested.visit_map(map)
    }
}

/// An item of an array: a scalar, or the kind of anything else (which is
/// read and dropped, for the caller to refuse).
enum Item {
    Scalar(Value),
    Other(Kind),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
                Ok(Item::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
                Ok(Item::Scalar(Value::Number(v as f64)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                Ok(Item::Scalar(Value::Number(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
                Ok(Item::Scalar(Value::Number(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Scalar(Value::String(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
                Ok(Item::Scalar(Value::String(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
                Ok(Item::Other(Kind::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::Other(Kind::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Item::Other(Kind::Object))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}

/// Property names to remove (`unset`): an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unset(pub Vec<String>);

strict_value!(Unset, "an array", [Array], {
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unset, A::Error> {
        let mut names = Vec::new();
        while let Some(item) = seq.next_element::<Item>()? {
            match item {
                Item::Scalar(Value::String(name)) => names.push(name),
                _ => return Err(de::Error::custom("expected an array of property names")),
            }
        }
        Ok(Unset(names))
    }
});

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
pub fn format_duration(ms: i64) -> Json {
    match u64::try_from(ms) {
        Ok(ms) => Json::String(nudge_query_lang::Duration::from_ms(ms).to_string()),
        Err(_) => Json::from(ms),
    }
}

/// A duration field (`"1d"`), as milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationMs(pub i64);

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationMs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"10m\", \"2h\", \"1d\" or \"1w\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationMs, E> {
                parse_duration(text).map(DurationMs).ok_or_else(|| {
                    E::custom(format!(
                        "{text:?} is not a duration: a whole number and a unit, ms, s, m, h, d \
                         or w (e.g. \"30m\", \"1d\"), at most {} days",
                        nudge_query_lang::MAX_DURATION_MS / 86_400_000
                    ))
                })
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// Serde's `Option<Option<T>>` trick: an absent field is `None` (with
/// `#[serde(default)]`), `null` is `Some(None)`, a value is `Some(Some(v))`.
pub(super) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    <Option<T> as Deserialize>::deserialize(deserializer).map(Some)
}

/// Epoch milliseconds as RFC 3339 UTC (`2026-11-01T10:00:00Z`, with a
/// fraction only when there is one); a number when out of jiff's range.
pub fn timestamp_json(ms: i64) -> Json {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => Json::String(ts.to_string()),
        Err(_) => Json::from(ms),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

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
                Json::String(segment.to_string()),
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

    #[derive(serde::Deserialize, Debug)]
    struct Holder {
        props: Option<Props>,
        increment: Option<Increments>,
        unset: Option<Unset>,
        ts: Option<TimestampMs>,
        n: Option<WholeNumber>,
    }

    fn read(text: &str) -> Result<Holder, String> {
        crate::json::from_slice::<Holder>(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn properties_flatten_to_dotted_keys_within_the_depth_limit() {
        let props = read(r#"{"props": {"a.": 1, "b": {"c": true, "d": ["x", 2]}, "a.": 3}}"#)
            .unwrap()
            .props
            .unwrap();
        assert_eq!(
            props.0,
            vec![
                ("a.".into(), Value::Number(1.0)),
                ("b.c".into(), Value::Bool(true)),
                ("b.d".into(), Value::Array(vec!["x".into(), Value::Number(2.0)])),
                ("a.".into(), Value::Number(3.0)),
            ],
            "a dot inside a name is kept, and a repeat is left for the engine to refuse"
        );
        let nested = |depth: usize| {
            format!("{{\"props\": {}1{}}}", "{\"k\": ".repeat(depth), "}".repeat(depth))
        };
        let deepest = read(&nested(MAX_JSON_DEPTH)).unwrap().props.unwrap();
        assert_eq!(deepest.0[0].0, vec!["k"; MAX_JSON_DEPTH].join("."));
        let error = read(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        let path = vec!["k"; MAX_JSON_DEPTH].join(".");
        assert_eq!(
            error,
            format!("invalid `props.{path}`: objects nested deeper than {MAX_JSON_DEPTH} levels")
        );
        assert_eq!(
            read(r#"{"props": [1]}"#).unwrap_err(),
            "invalid `props`: expected an object, found an array"
        );
        assert_eq!(
            read(r#"{"increment": {"a": {"b": [1]}}}"#).unwrap_err(),
            "invalid `increment.a.b`: expected a number"
        );
        let increments = read(r#"{"increment": {"a": {"b": -1.5}}}"#).unwrap().increment.unwrap();
        assert_eq!(increments.0, vec![("a.b".to_string(), -1.5)]);
    }

    #[test]
    fn scalars_say_what_they_expected_and_found() {
        assert_eq!(read(r#"{"unset": ["a", "b"]}"#).unwrap().unset.unwrap().0, vec!["a", "b"]);
        assert_eq!(
            read(r#"{"unset": ["a", 1]}"#).unwrap_err(),
            "invalid `unset`: expected an array of property names"
        );
        assert_eq!(
            read(r#"{"unset": "a"}"#).unwrap_err(),
            "invalid `unset`: expected an array, found a string"
        );
        assert_eq!(
            read(r#"{"ts": 1700000000000}"#).unwrap().ts,
            Some(TimestampMs(1_700_000_000_000))
        );
        assert_eq!(read(r#"{"ts": 1.7e12}"#).unwrap().ts, Some(TimestampMs(1_700_000_000_000)));
        assert_eq!(read(r#"{"ts": "1970-01-01T00:00:01Z"}"#).unwrap().ts, Some(TimestampMs(1000)));
        assert_eq!(
            read(r#"{"ts": 1.5}"#).unwrap_err(),
            "invalid `ts`: 1.5 is not a whole number of epoch milliseconds"
        );
        assert_eq!(
            read(r#"{"ts": true}"#).unwrap_err(),
            "invalid `ts`: expected RFC 3339 text or epoch milliseconds, found a boolean"
        );
        assert_eq!(read(r#"{"n": 7}"#).unwrap().n, Some(WholeNumber(7)));
        assert_eq!(read(r#"{"n": -1}"#).unwrap_err(), "invalid `n`: -1 is below 0");
        assert_eq!(read(r#"{"n": 2.5}"#).unwrap_err(), "invalid `n`: 2.5 is not a whole number");
        assert_eq!(
            read(r#"{"n": "7"}"#).unwrap_err(),
            "invalid `n`: expected a whole number, found a string"
        );
    }
}
