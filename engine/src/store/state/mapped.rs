//! Sections of a snapshot file read in place: the profiles and the web push
//! subscriptions as of the snapshot. Open maps the file and checks each
//! section's shape (counts that fit, offsets that never decrease); the bytes
//! stay in the page cache, not on the heap. What changed since lives on the
//! heap in `profiles.rs` and `subscriptions.rs`, shadowing these.
//!
//! Every number is little-endian and read unaligned, so a section may start
//! anywhere in the file.

use std::ops::Range;
use std::sync::Arc;

use crate::store::dict::UserId;
use crate::store::log::storage::FileBytes;

/// Bytes of an offset or a count.
const WORD_BYTES: usize = 8;
/// Bytes of a user id, a record length or an endpoint table slot.
const HALF_BYTES: usize = 4;

type Parsed<T> = std::result::Result<T, String>;

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + WORD_BYTES].try_into().expect("eight bytes"))
}

fn half(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + HALF_BYTES].try_into().expect("four bytes"))
}

/// Reads a count at `at`, bounded by what is left before `end`.
fn count(bytes: &[u8], at: usize, what: &str) -> Parsed<usize> {
    if bytes.len().saturating_sub(at) < WORD_BYTES {
        return Err(format!("{what}: truncated at byte {at}"));
    }
    usize::try_from(word(bytes, at)).ok().filter(|&n| n <= bytes.len()).ok_or_else(|| {
        format!("{what}: count {} at byte {at} does not fit the file", word(bytes, at))
    })
}

/// Where an array of `n` items of `size` bytes at `at` ends, if it fits.
fn array_end(bytes: &[u8], at: usize, n: usize, size: usize, what: &str) -> Parsed<usize> {
    n.checked_mul(size)
        .and_then(|len| at.checked_add(len))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| format!("{what}: {n} entries do not fit the file"))
}

/// Checks `n + 1` offsets at `at`: they start at 0 and never decrease.
/// Returns the last (the bytes of data they index).
fn check_offsets(bytes: &[u8], at: usize, n: usize, what: &str) -> Parsed<usize> {
    let end = array_end(bytes, at, n + 1, WORD_BYTES, what)?;
    let mut previous = 0u64;
    for (i, chunk) in bytes[at..end].chunks_exact(WORD_BYTES).enumerate() {
        let offset = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if (i == 0 && offset != 0) || offset < previous {
            return Err(format!("{what}: offset {i} ({offset}) is out of order"));
        }
        previous = offset;
    }
    usize::try_from(previous).map_err(|_| format!("{what}: {previous} bytes do not fit"))
}

/// The profiles section of a snapshot, read in place:
///
/// ```text
/// profiles := slots u64 | offsets (slots + 1) × u64 | blobs
/// ```
///
/// User `u`'s blob is `blobs[offsets[u]..offsets[u + 1]]`; an empty range is
/// a user without a profile (a stored blob is never empty: the empty profile
/// is two bytes, `props::EMPTY`).
#[derive(Debug, Clone, Default)]
pub struct MappedProfiles {
    file: Option<Arc<FileBytes>>,
    /// Where the offsets start in `file`.
    offsets_at: usize,
    /// Where the first blob starts in `file`.
    blobs_at: usize,
    /// User slots the section holds.
    slots: usize,
}

impl MappedProfiles {
    /// Reads the section at `at` in `file`, which must end by `end`; returns
    /// it and the position just after it.
    pub fn parse(file: Arc<FileBytes>, at: usize, end: usize) -> Parsed<(Self, usize)> {
        let bytes: &[u8] = &file[..end.min(file.len())];
        let slots = count(bytes, at, "profiles")?;
        let offsets_at = at + WORD_BYTES;
        let blobs_len = check_offsets(bytes, offsets_at, slots, "profiles")?;
        let blobs_at = offsets_at + (slots + 1) * WORD_BYTES;
        let after = array_end(bytes, blobs_at, blobs_len, 1, "profiles")?;
        Ok((MappedProfiles { file: Some(file), offsets_at, blobs_at, slots }, after))
    }

    /// User slots the section holds.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// `user`'s blob, if the section holds one.
    pub fn get(&self, user: UserId) -> Option<&[u8]> {
        let file = self.file.as_deref()?;
        let slot = user as usize;
        if slot >= self.slots {
            return None;
        }
        let at = self.offsets_at + slot * WORD_BYTES;
        let (start, end) = (word(file, at) as usize, word(file, at + WORD_BYTES) as usize);
        (end > start).then(|| &file[self.blobs_at + start..self.blobs_at + end])
    }

    /// Bytes of the file the section covers.
    pub fn mapped_bytes(&self) -> usize {
        match &self.file {
            Some(file) => {
                let blobs = word(file, self.offsets_at + self.slots * WORD_BYTES) as usize;
                self.blobs_at + blobs - self.offsets_at + WORD_BYTES
            }
            None => 0,
        }
    }
}

/// One subscription as a section holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionRef<'a> {
    /// Owner.
    pub user: UserId,
    /// Push service URL.
    pub endpoint: &'a str,
    /// Browser public key, base64url.
    pub p256dh: &'a str,
    /// Auth secret, base64url.
    pub auth: &'a str,
    /// When it was stored: the engine clock of the batch that subscribed it, epoch ms.
    pub created_ms: i64,
}

/// The hash of an endpoint in a section's table: CRC32C, fixed forever (a
/// table written by one build is probed by every later one).
pub fn endpoint_hash(endpoint: &str) -> u32 {
    crc32c::crc32c(endpoint.as_bytes())
}

/// The subscriptions section of a snapshot, read in place:
///
/// ```text
/// subscriptions := count u64 | table_slots u64 | users count × u32
///                  | offsets (count + 1) × u64 | table table_slots × u32 | records
/// record        := created_ms i64 | endpoint_len u32 | endpoint | p256dh_len u32
///                  | p256dh | auth
/// ```
///
/// Subscriptions are in (user, age) order, so one user's are a run found by
/// binary search in `users`. The table finds an endpoint: open addressing
/// from [`endpoint_hash`] modulo `table_slots` (a power of two, more than
/// `count`), linear probing; a slot holds a subscription's index + 1, or 0
/// when empty.
#[derive(Debug, Clone, Default)]
pub struct MappedSubscriptions {
    file: Option<Arc<FileBytes>>,
    count: usize,
    table_slots: usize,
    users_at: usize,
    offsets_at: usize,
    table_at: usize,
    records_at: usize,
    end: usize,
}

impl MappedSubscriptions {
    /// Writes `all` (in (user, age) order, endpoints unique) as a section.
    pub fn encode<'a>(out: &mut Vec<u8>, all: &[SubscriptionRef<'a>]) {
        let table_slots = if all.is_empty() { 0 } else { (all.len() * 2).next_power_of_two() };
        out.extend_from_slice(&(all.len() as u64).to_le_bytes());
        out.extend_from_slice(&(table_slots as u64).to_le_bytes());
        for sub in all {
            out.extend_from_slice(&sub.user.to_le_bytes());
        }
        let mut offset = 0u64;
        out.extend_from_slice(&offset.to_le_bytes());
        for sub in all {
            offset += (WORD_BYTES
                + 2 * HALF_BYTES
                + sub.endpoint.len()
                + sub.p256dh.len()
                + sub.auth.len()) as u64;
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let mut table = vec![0u32; table_slots];
        for (index, sub) in all.iter().enumerate() {
            let mut slot = endpoint_hash(sub.endpoint) as usize & (table_slots - 1);
            while table[slot] != 0 {
                slot = (slot + 1) & (table_slots - 1);
            }
            table[slot] = index as u32 + 1;
        }
        for slot in table {
            out.extend_from_slice(&slot.to_le_bytes());
        }
        for sub in all {
            out.extend_from_slice(&sub.created_ms.to_le_bytes());
            out.extend_from_slice(&(sub.endpoint.len() as u32).to_le_bytes());
            out.extend_from_slice(sub.endpoint.as_bytes());
            out.extend_from_slice(&(sub.p256dh.len() as u32).to_le_bytes());
            out.extend_from_slice(sub.p256dh.as_bytes());
            out.extend_from_slice(sub.auth.as_bytes());
        }
    }

    /// Reads the section at `at` in `file`, which must end by `end`; returns
    /// it and the position just after it. Records are checked when read.
    pub fn parse(file: Arc<FileBytes>, at: usize, end: usize) -> Parsed<(Self, usize)> {
        const WHAT: &str = "subscriptions";
        let bytes: &[u8] = &file[..end.min(file.len())];
        let count = self::count(bytes, at, WHAT)?;
        let table_slots = self::count(bytes, at + WORD_BYTES, WHAT)?;
        if u32::try_from(count).is_err()
            || (count > 0 && (!table_slots.is_power_of_two() || table_slots <= count))
        {
            return Err(format!("{WHAT}: a table of {table_slots} slots for {count} entries"));
        }
        let users_at = at + 2 * WORD_BYTES;
        let offsets_at = array_end(bytes, users_at, count, HALF_BYTES, WHAT)?;
        let mut previous = 0;
        for i in 0..count {
            let user = half(bytes, users_at + i * HALF_BYTES);
            if user < previous {
                return Err(format!("{WHAT}: user {i} ({user}) is out of order"));
            }
            previous = user;
        }
        let records_len = check_offsets(bytes, offsets_at, count, WHAT)?;
        let table_at = offsets_at + (count + 1) * WORD_BYTES;
        let records_at = array_end(bytes, table_at, table_slots, HALF_BYTES, WHAT)?;
        let after = array_end(bytes, records_at, records_len, 1, WHAT)?;
        let section = MappedSubscriptions {
            file: Some(file),
            count,
            table_slots,
            users_at,
            offsets_at,
            table_at,
            records_at,
            end: after,
        };
        Ok((section, after))
    }

    /// Subscriptions the section holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The owner of subscription `index` (`index` < [`Self::count`]).
    pub fn user(&self, index: u32) -> UserId {
        half(self.bytes(), self.users_at + index as usize * HALF_BYTES)
    }

    fn bytes(&self) -> &[u8] {
        self.file.as_deref().map_or(&[], |f| &f[..self.end])
    }

    /// Subscription `index`; `None` past the end or when its record is
    /// malformed (a file that passed its checksum never has one).
    pub fn get(&self, index: u32) -> Option<SubscriptionRef<'_>> {
        let i = index as usize;
        if i >= self.count {
            return None;
        }
        let bytes = self.bytes();
        let user = half(bytes, self.users_at + i * HALF_BYTES);
        let at = self.offsets_at + i * WORD_BYTES;
        let start = self.records_at.checked_add(word(bytes, at) as usize)?;
        let end = self.records_at.checked_add(word(bytes, at + WORD_BYTES) as usize)?;
        let record = bytes.get(start..end)?;
        let created_ms = i64::from_le_bytes(record.get(..WORD_BYTES)?.try_into().ok()?);
        let (endpoint, rest) = Self::field(&record[WORD_BYTES..])?;
        let (p256dh, auth) = Self::field(rest)?;
        let auth = std::str::from_utf8(auth).ok()?;
        Some(SubscriptionRef { user, endpoint, p256dh, auth, created_ms })
    }

    /// A length-prefixed string and what follows it.
    fn field(record: &[u8]) -> Option<(&str, &[u8])> {
        let len = u32::from_le_bytes(record.get(..HALF_BYTES)?.try_into().ok()?) as usize;
        let text = record.get(HALF_BYTES..HALF_BYTES.checked_add(len)?)?;
        Some((std::str::from_utf8(text).ok()?, &record[HALF_BYTES + len..]))
    }

    /// The index of the subscription with `endpoint`.
    pub fn find(&self, endpoint: &str) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        let bytes = self.bytes();
        let mask = self.table_slots - 1;
        let mut slot = endpoint_hash(endpoint) as usize & mask;
        for _ in 0..self.table_slots {
            let entry = half(bytes, self.table_at + slot * HALF_BYTES);
            if entry == 0 {
                return None;
            }
            if self.get(entry - 1).is_some_and(|s| s.endpoint == endpoint) {
                return Some(entry - 1);
            }
            slot = (slot + 1) & mask;
        }
        None
    }

    /// The indexes of `user`'s subscriptions, oldest first.
    pub fn of(&self, user: UserId) -> Range<u32> {
        let bytes = self.bytes();
        let user_at = |i: usize| half(bytes, self.users_at + i * HALF_BYTES);
        let first = partition_point(self.count, |i| user_at(i) < user);
        let end = first + partition_point(self.count - first, |i| user_at(first + i) <= user);
        first as u32..end as u32
    }

    /// Bytes of the file the section covers.
    pub fn mapped_bytes(&self) -> usize {
        if self.file.is_some() { self.end - self.users_at + 2 * WORD_BYTES } else { 0 }
    }
}

/// The first `i` in `0..n` for which `before(i)` is false (`before` holds
/// for a prefix).
fn partition_point(n: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}
