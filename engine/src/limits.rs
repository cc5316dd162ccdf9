//! Named limits on everything the engine accepts or stores.
//!
//! Each limit is checked at the boundary where input enters the engine
//! (`record::validate_*`); violating one gives `Error::InvalidInput` naming the
//! record, the field and the limit. The log format relies on some of them (a
//! property count fits in a `u8`, a string length in a `u16`), which the
//! `const` assertions at the bottom keep true.

/// Largest encoded size of one event's properties, in bytes (32 KiB, as Segment allows).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Most properties one event or one profile operation may carry.
pub const MAX_PROPERTIES: usize = 255;
/// Most properties one profile may hold; `set` of further new keys is ignored.
pub const MAX_PROFILE_PROPERTIES: usize = 1024;
/// Longest external user id, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Longest event name, in bytes.
pub const MAX_EVENT_NAME_BYTES: usize = 256;
/// Longest property key (after flattening nested objects to dotted keys), in bytes.
pub const MAX_PROPERTY_KEY_BYTES: usize = 256;
/// Longest string property value, in bytes.
pub const MAX_STRING_VALUE_BYTES: usize = 8 * 1024;
/// Most elements in one array property value.
pub const MAX_ARRAY_ELEMENTS: usize = 256;
/// Longest idempotency id, in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 128;
/// How long a segment query may run before it is stopped, unless its options
/// say otherwise (`QueryOptions::deadline_ms`), in milliseconds.
pub const DEFAULT_QUERY_DEADLINE_MS: u64 = 2000;
/// A deadline that never passes (`QueryOptions::deadline_ms`): for local tools
/// and benchmarks, where the one caller waiting is the one who asked.
pub const NO_QUERY_DEADLINE_MS: u64 = u64::MAX;
/// Inside a clause's check of its candidates, the deadline is read for one user
/// id in this many (a power of two), so the check costs nothing measurable.
pub const QUERY_DEADLINE_SAMPLE_USERS: u32 = 1024;
/// How many bytes of intermediate results a segment query may build before it
/// is stopped, unless its options say otherwise (`QueryOptions::memory_limit_bytes`):
/// 256 MiB. Every clause's result bitmap is counted when it is made, and the
/// listing of the answer's ids, so the count is an upper bound of what the
/// query holds at once.
pub const DEFAULT_QUERY_MEMORY_LIMIT_BYTES: u64 = 256 * 1024 * 1024;
/// A memory limit that is never reached (`QueryOptions::memory_limit_bytes`).
pub const NO_QUERY_MEMORY_LIMIT_BYTES: u64 = u64::MAX;
/// Most records one ingest call may carry.
pub const MAX_BATCH_RECORDS: usize = 10_000;
/// Longest web push endpoint URL, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 2048;
/// Longest web push key (`p256dh`, `auth`), in bytes of its base64url text.
pub const MAX_PUSH_KEY_BYTES: usize = 256;
/// Most active web push subscriptions one user may hold; the oldest is replaced beyond it.
pub const MAX_SUBSCRIPTIONS_PER_USER: usize = 16;
/// Distinct event names the dictionary can hold (timelines pack the id in 24 bits).
pub const MAX_EVENT_NAMES: u32 = (1 << 24) - 1;
/// Distinct property keys the dictionary can hold (the property codec stores keys as `u16`).
pub const MAX_PROPERTY_KEYS: u32 = u16::MAX as u32;
/// Distinct users the dictionary can hold (bitmaps are over dense `u32` ids).
pub const MAX_USERS: u32 = u32::MAX - 1;
/// Earliest accepted timestamp: 1970-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_MS: i64 = 0;
/// Latest accepted timestamp: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;
/// Largest log record (one framed batch) the writer produces or the reader accepts.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// A value index on (event, property) or (profile property) keeps per-value bitmaps
/// while it has seen at most this many distinct values; beyond it the index is
/// dropped and queries on that property scan timelines or profiles instead.
pub const MAX_INDEXED_VALUES_PER_PROPERTY: usize = 1024;

const _: () = assert!(MAX_PROPERTIES <= MAX_PROFILE_PROPERTIES);
const _: () = assert!(MAX_PROFILE_PROPERTIES <= u16::MAX as usize);
const _: () = assert!(MAX_STRING_VALUE_BYTES <= u16::MAX as usize);
const _: () = assert!(MAX_ARRAY_ELEMENTS <= u16::MAX as usize);
const _: () = assert!(MAX_EVENT_BYTES < MAX_RECORD_BYTES);
const _: () = assert!(MAX_RECORD_BYTES <= u32::MAX as usize);

const _: () = assert!(QUERY_DEADLINE_SAMPLE_USERS.is_power_of_two());

/// Checks a timestamp against the accepted range.
pub fn check_timestamp(field: &str, ts_ms: i64) -> crate::error::Result<()> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ts_ms) {
        return Err(crate::error::Error::invalid(
            None,
            field,
            format!(
                "timestamp {ts_ms} is outside the accepted range {MIN_TIMESTAMP_MS}..={MAX_TIMESTAMP_MS} (1970 to 9999, in epoch milliseconds)"
            ),
        ));
    }
    Ok(())
}

/// Checks a text field: not empty, at most `max` bytes (`what` names it in the error).
pub fn check_text(field: &str, text: &str, max: usize, what: &str) -> crate::error::Result<()> {
    if text.is_empty() {
        return Err(crate::error::Error::invalid(None, field, format!("{what} must not be empty")));
    }
    if text.len() > max {
        return Err(crate::error::Error::invalid(
            None,
            field,
            format!("{what} is {} bytes, more than the limit of {max}", text.len()),
        ));
    }
    Ok(())
}
