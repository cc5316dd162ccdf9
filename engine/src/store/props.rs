//! The property codec: how one event's (or one profile operation's) properties
//! are laid out as bytes, both inside log records and in the in-memory arena.
//!
//! ```text
//! blob  := count:u16le entry*         entries sorted by key id, keys unique
//! entry := key:u16le value
//! value := 0x00                       false
//!        | 0x01                       true
//!        | 0x02 f64le                 number (integers are stored as f64)
//!        | 0x03 len:u16le utf8[len]   string
//!        | 0x04 n:u16le scalar[n]     array of scalars (tags 0x00..=0x03)
//! ```
//!
//! The same bytes travel from the ingest call to the log and to the arena, so
//! replay copies them instead of re-encoding. Blobs read from disk are checked
//! with [`validate`] before use; [`PropsIter`] stops quietly at malformed bytes
//! (it never panics), which only happens if validation was skipped.

use crate::limits::{MAX_ARRAY_ELEMENTS, MAX_PROFILE_PROPERTIES};

const TAG_FALSE: u8 = 0;
const TAG_TRUE: u8 = 1;
const TAG_NUMBER: u8 = 2;
const TAG_STRING: u8 = 3;
const TAG_ARRAY: u8 = 4;

/// The blob of a record with no properties.
pub const EMPTY: &[u8] = &[0, 0];

/// A property key id from the key dictionary.
pub type KeyId = u16;

/// A borrowed property value decoded from a blob.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// `true` or `false`.
    Bool(bool),
    /// Any number; integers and decimals compare numerically.
    Number(f64),
    /// A UTF-8 string.
    Str(&'a str),
    /// An array of scalars; iterate it with [`ArrayRef::iter`].
    Array(ArrayRef<'a>),
}

/// The elements of an array value, still encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayRef<'a> {
    len: u16,
    bytes: &'a [u8],
}

impl<'a> ArrayRef<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order (all scalars).
    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'a>> + 'a {
        let mut rest = self.bytes;
        let mut left = self.len;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let (value, tail) = decode_value(rest, false)?;
            rest = tail;
            Some(value)
        })
    }
}

/// An owned property value, as callers hand it to the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `true` or `false`.
    Bool(bool),
    /// A finite number.
    Number(f64),
    /// A UTF-8 string.
    String(String),
    /// An array of scalars (no nested arrays).
    Array(Vec<Value>),
}

impl Value {
    /// Borrows this value as a [`ValueRef`] when it is a scalar.
    pub fn as_scalar_ref(&self) -> Option<ValueRef<'_>> {
        match self {
            Value::Bool(b) => Some(ValueRef::Bool(*b)),
            Value::Number(n) => Some(ValueRef::Number(*n)),
            Value::String(s) => Some(ValueRef::Str(s)),
            Value::Array(_) => None,
        }
    }
}

impl ValueRef<'_> {
    /// Copies this value into an owned [`Value`].
    pub fn to_owned_value(&self) -> Value {
        match self {
            ValueRef::Bool(b) => Value::Bool(*b),
            ValueRef::Number(n) => Value::Number(*n),
            ValueRef::Str(s) => Value::String((*s).to_owned()),
            ValueRef::Array(a) => Value::Array(a.iter().map(|v| v.to_owned_value()).collect()),
        }
    }
}

/// A value as distinct counting tells values apart (`count_distinct`):
/// owned, hashable, with -0 and 0 one number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DistinctValue {
    /// A number, by its bits.
    Number(u64),
    /// A string.
    Str(Box<str>),
    /// A boolean.
    Bool(bool),
    /// An array, element by element.
    Array(Vec<DistinctValue>),
}

impl From<ValueRef<'_>> for DistinctValue {
    fn from(value: ValueRef<'_>) -> Self {
        match value {
            ValueRef::Number(n) => DistinctValue::Number(if n == 0.0 { 0 } else { n.to_bits() }),
            ValueRef::Str(s) => DistinctValue::Str(s.into()),
            ValueRef::Bool(b) => DistinctValue::Bool(b),
            ValueRef::Array(items) => {
                DistinctValue::Array(items.iter().map(DistinctValue::from).collect())
            }
        }
    }
}

/// Appends the encoding of `value` to `out`. The caller has validated limits.
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(false) => out.push(TAG_FALSE),
        Value::Bool(true) => out.push(TAG_TRUE),
        Value::Number(n) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
        }
        Value::Array(items) => {
            out.push(TAG_ARRAY);
            let len = u16::try_from(items.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            for item in items.iter().take(usize::from(len)) {
                encode_value(out, item);
            }
        }
    }
}

/// Encodes `(key id, value)` pairs, which must be sorted by key and unique, as one blob.
pub fn encode(out: &mut Vec<u8>, entries: &[(KeyId, &Value)]) {
    debug_assert!(entries.len() <= MAX_PROFILE_PROPERTIES);
    debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "keys sorted and unique");
    let count = u16::try_from(entries.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for (key, value) in entries.iter().take(usize::from(count)) {
        out.extend_from_slice(&key.to_le_bytes());
        encode_value(out, value);
    }
}

fn split(bytes: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= n).then(|| bytes.split_at(n))
}

fn read_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, tail) = split(bytes, 2)?;
    Some((u16::from_le_bytes([head[0], head[1]]), tail))
}

fn decode_value(bytes: &[u8], allow_array: bool) -> Option<(ValueRef<'_>, &[u8])> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        TAG_FALSE => Some((ValueRef::Bool(false), rest)),
        TAG_TRUE => Some((ValueRef::Bool(true), rest)),
        TAG_NUMBER => {
            let (head, tail) = split(rest, 8)?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(head);
            Some((ValueRef::Number(f64::from_le_bytes(raw)), tail))
        }
        TAG_STRING => {
            let (len, rest) = read_u16(rest)?;
            let (head, tail) = split(rest, usize::from(len))?;
            Some((ValueRef::Str(std::str::from_utf8(head).ok()?), tail))
        }
        TAG_ARRAY if allow_array => {
            let (len, body) = read_u16(rest)?;
            // Walk the elements once to find where the array ends.
            let mut cursor = body;
            for _ in 0..len {
                cursor = decode_value(cursor, false)?.1;
            }
            let used = body.len() - cursor.len();
            Some((ValueRef::Array(ArrayRef { len, bytes: &body[..used] }), cursor))
        }
        _ => None,
    }
}

/// Iterates `(key id, value)` over a blob.
#[derive(Debug, Clone)]
pub struct PropsIter<'a> {
    rest: &'a [u8],
    left: u16,
}

/// A blob's properties by key name (keys `keys` does not name are left out).
pub fn named(blob: &[u8], keys: &crate::store::dict::Dictionary) -> Vec<(String, Value)> {
    iter(blob)
        .filter_map(|(key, value)| {
            Some((keys.name(u32::from(key))?.to_owned(), value.to_owned_value()))
        })
        .collect()
}

/// Starts iterating a blob.
pub fn iter(blob: &[u8]) -> PropsIter<'_> {
    match read_u16(blob) {
        Some((count, rest)) => PropsIter { rest, left: count },
        None => PropsIter { rest: &[], left: 0 },
    }
}

impl<'a> Iterator for PropsIter<'a> {
    type Item = (KeyId, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let parsed = read_u16(self.rest).and_then(|(key, rest)| {
            let (value, tail) = decode_value(rest, true)?;
            Some((key, value, tail))
        });
        match parsed {
            Some((key, value, tail)) => {
                self.left -= 1;
                self.rest = tail;
                Some((key, value))
            }
            None => {
                self.left = 0;
                None
            }
        }
    }
}

/// The length of the blob at the start of `bytes`, which may continue past
/// it (an arena page): the codec knows where a blob ends.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn blob_len(bytes: &[u8]) -> usize {
    let mut entries = iter(bytes);
    for _ in entries.by_ref() {}
    bytes.len() - entries.rest.len()
}

/// Looks up one key in a blob.
pub fn get(blob: &[u8], key: KeyId) -> Option<ValueRef<'_>> {
    iter(blob).take_while(|(k, _)| *k <= key).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Checks a blob read from disk: well formed, keys ascending and below `key_count`,
/// arrays within limits, strings UTF-8, numbers finite, no trailing bytes.
pub fn validate(blob: &[u8], key_count: u32) -> Result<(), String> {
    let Some((count, mut rest)) = read_u16(blob) else {
        return Err("property blob shorter than its count".into());
    };
    if usize::from(count) > MAX_PROFILE_PROPERTIES {
        return Err(format!("{count} properties, more than any record may hold"));
    }
    let mut previous: Option<KeyId> = None;
    for i in 0..count {
        let (key, tail) = read_u16(rest).ok_or_else(|| format!("property {i}: truncated key"))?;
        if u32::from(key) >= key_count {
            return Err(format!("property {i}: unknown key id {key}"));
        }
        if previous.is_some_and(|p| p >= key) {
            return Err(format!("property {i}: keys out of order"));
        }
        previous = Some(key);
        let (value, tail) =
            decode_value(tail, true).ok_or_else(|| format!("property {i}: malformed value"))?;
        check_value(&value).map_err(|e| format!("property {i}: {e}"))?;
        rest = tail;
    }
    if rest.is_empty() { Ok(()) } else { Err(format!("{} trailing bytes", rest.len())) }
}

fn check_value(value: &ValueRef<'_>) -> Result<(), String> {
    match value {
        ValueRef::Number(n) if !n.is_finite() => Err("number is not finite".into()),
        ValueRef::Array(a) if a.len() > MAX_ARRAY_ELEMENTS => Err("array too long".into()),
        ValueRef::Array(a) => a.iter().try_for_each(|v| check_value(&v)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind_of_value() {
        let values = [
            Value::Bool(false),
            Value::Bool(true),
            Value::Number(-2.5),
            Value::String("🛒 deals".into()),
            Value::Array(vec![Value::String("a".into()), Value::Number(3.0), Value::Bool(true)]),
        ];
        let entries: Vec<(KeyId, &Value)> =
            values.iter().enumerate().map(|(i, v)| (i as KeyId * 3, v)).collect();
        let mut blob = Vec::new();
        encode(&mut blob, &entries);
        validate(&blob, 100).expect("valid");
        let decoded: Vec<(KeyId, Value)> =
            iter(&blob).map(|(k, v)| (k, v.to_owned_value())).collect();
        let expected: Vec<(KeyId, Value)> =
            entries.iter().map(|(k, v)| (*k, (*v).clone())).collect();
        assert_eq!(decoded, expected);
        assert_eq!(get(&blob, 9).map(|v| v.to_owned_value()), Some(values[3].clone()));
        assert_eq!(get(&blob, 4), None);
        let mut followed = blob.clone();
        followed.extend_from_slice(&[9, 9, 9]);
        assert_eq!((blob_len(&followed), blob_len(EMPTY)), (blob.len(), EMPTY.len()));
    }

    #[test]
    fn validate_rejects_every_truncation_without_panicking() {
        let array = Value::Array(vec![Value::String("xy".into())]);
        let number = Value::Number(1.0);
        let mut blob = Vec::new();
        encode(&mut blob, &[(1, &number), (2, &array)]);
        for cut in 0..blob.len() {
            assert!(validate(&blob[..cut], 10).is_err(), "cut at {cut} accepted");
            let _ = iter(&blob[..cut]).count();
        }
        let mut trailing = blob.clone();
        trailing.push(0);
        assert!(validate(&trailing, 10).is_err());
        assert!(validate(&blob, 2).is_err(), "key id 2 is unknown when only 2 keys exist");
    }

    #[test]
    fn validate_rejects_unsorted_keys_and_non_finite_numbers() {
        let one = Value::Number(1.0);
        let mut blob = vec![2u8, 0];
        for key in [5u16, 3] {
            blob.extend_from_slice(&key.to_le_bytes());
            encode_value(&mut blob, &one);
        }
        assert!(validate(&blob, 10).expect_err("unsorted keys").contains("out of order"));
        let mut nan = Vec::new();
        encode(&mut nan, &[(0, &Value::Number(f64::NAN))]);
        assert!(validate(&nan, 10).expect_err("NaN").contains("finite"));
    }
}
