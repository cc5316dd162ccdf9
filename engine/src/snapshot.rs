//! Snapshots of derived state, stamped with the log position they cover.
//!
//! Open loads the newest snapshot that checks out and replays only the log
//! after its position; a missing, damaged or too-new snapshot falls back to
//! an older one or to full replay. A snapshot is written to a temporary file,
//! synced, renamed into place, and the directory synced, so a crash never
//! leaves a half-written snapshot under a final name.
//!
//! ```text
//! file    := magic "NUDGSNAP" | version u32le | reserved u32le | body | crc32c(all before) u32le
//! body    := position u64le | dictionaries | dedupe | timelines | arena | profiles
//!            | subscriptions | indexes          (each section documented in encode_body)
//! ```
//!
//! Encoding is deterministic (hash maps are written in sorted order), so two
//! states are equal exactly when their encodings are: the replay tests compare
//! bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;

use crate::dedupe::Dedupe;
use crate::dict::{Dictionaries, Dictionary};
use crate::error::{Error, IoContext, Result};
use crate::log::LogPosition;
use crate::log::recovery::sync_dir;
use crate::state::DerivedState;
use crate::state::index::{EventUserIds, IndexedValue, Indexes, TIME_LEVELS, ValueUserIds};
use crate::state::profiles::Profiles;
use crate::state::subscriptions::{StoredSubscription, Subscriptions};
use crate::state::timeline::{PropsArena, TimelineEntry, Timelines};

/// Directory inside the data directory that holds snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";
const MAGIC: &[u8; 8] = b"NUDGSNAP";
/// Version of the snapshot layout written today.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Everything a snapshot holds.
#[derive(Debug, Clone)]
pub struct Contents {
    /// Dictionaries.
    pub dicts: Dictionaries,
    /// Idempotency index.
    pub dedupe: Dedupe,
    /// Derived state (its `position` is the snapshot's).
    pub state: DerivedState,
}

/// The file name of a snapshot at `position`.
pub fn file_name(position: LogPosition) -> String {
    format!("{position:020}.snap")
}

struct Out {
    bytes: Vec<u8>,
}

impl Out {
    fn u8(&mut self, v: u8) {
        self.bytes.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u64(n as u64);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.bytes.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn bitmap(&mut self, b: &RoaringBitmap) {
        self.len(b.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = b.serialize_into(&mut self.bytes);
    }
    fn dict(&mut self, d: &Dictionary) {
        self.len(d.len() as usize);
        for name in d.names() {
            self.str(name);
        }
    }
    fn values(&mut self, v: &ValueUserIds) {
        self.u8(u8::from(!v.is_complete()));
        let entries = v.entries();
        self.len(entries.len());
        for (value, bitmap) in entries {
            match value {
                IndexedValue::Str(s) => {
                    self.u8(0);
                    self.str(&s);
                }
                IndexedValue::NumberBits(n) => {
                    self.u8(1);
                    self.u64(n);
                }
                IndexedValue::Bool(b) => {
                    self.u8(2);
                    self.u8(u8::from(b));
                }
            }
            self.bitmap(bitmap);
        }
    }
}

/// Encodes a snapshot file's complete bytes.
pub fn encode(dicts: &Dictionaries, dedupe: &Dedupe, state: &DerivedState) -> Vec<u8> {
    let mut out = Out { bytes: Vec::with_capacity(state.heap_bytes() + 1024) };
    out.bytes.extend_from_slice(MAGIC);
    out.u32(SNAPSHOT_VERSION);
    out.u32(0);
    out.u64(state.position);
    // Dictionaries: users, events, keys; each a count then names in id order.
    out.dict(&dicts.users);
    out.dict(&dicts.events);
    out.dict(&dicts.keys);
    // Dedupe: entries in arrival order as (received_ms, hash).
    let entries: Vec<(i64, u128)> = dedupe.entries().collect();
    out.len(entries.len());
    for (at, hash) in entries {
        out.i64(at);
        out.bytes.extend_from_slice(&hash.to_le_bytes());
    }
    // Timelines: user slots, each slot's length, then all entries as (ts, packed).
    let slots = state.timelines.user_slots();
    out.len(slots);
    for user in 0..slots {
        out.len(state.timelines.of(user as u32).len());
    }
    for user in 0..slots {
        for entry in state.timelines.of(user as u32) {
            out.i64(entry.ts_ms);
            out.u64(entry.packed());
        }
    }
    // Arena pages.
    let pages = state.timelines.arena().pages();
    out.len(pages.len());
    for page in pages {
        out.bytes(page);
    }
    // Profiles: slots, each present flag + blob.
    let profiles = state.profiles.parts();
    out.len(profiles.len());
    for profile in profiles {
        match profile {
            Some(blob) => {
                out.u8(1);
                out.bytes(blob);
            }
            None => out.u8(0),
        }
    }
    // Subscriptions, per user (ascending), oldest first.
    let subs = state.subscriptions.all();
    out.len(subs.len());
    for sub in subs {
        out.u32(sub.user);
        out.str(&sub.endpoint);
        out.str(&sub.p256dh);
        out.str(&sub.auth);
    }
    // Indexes.
    let indexes = &state.indexes;
    out.bitmap(&indexes.all_user_ids);
    out.bitmap(&indexes.webpush_user_ids);
    out.len(indexes.event_user_ids.len());
    for event in &indexes.event_user_ids {
        out.bitmap(&event.all);
        for level in &event.by_bucket {
            out.len(level.len());
            for (bucket, bitmap) in level {
                out.u32(*bucket as u32);
                out.bitmap(bitmap);
            }
        }
    }
    let mut event_values: Vec<_> = indexes.event_property_value_user_ids.iter().collect();
    event_values.sort_by_key(|(k, _)| **k);
    out.len(event_values.len());
    for ((event, key), values) in event_values {
        out.u32(*event);
        out.u16(*key);
        out.values(values);
    }
    let mut profile_values: Vec<_> = indexes.profile_property_value_user_ids.iter().collect();
    profile_values.sort_by_key(|(k, _)| **k);
    out.len(profile_values.len());
    for (key, values) in profile_values {
        out.u16(*key);
        out.values(values);
    }
    let crc = crc32c::crc32c(&out.bytes);
    out.u32(crc);
    out.bytes
}

struct In<'a> {
    bytes: &'a [u8],
    at: usize,
}

type Decoded<T> = std::result::Result<T, String>;

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Decoded<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Decoded<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Decoded<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Decoded<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Decoded<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count, bounded by the bytes left so that corrupt counts cannot make us allocate wildly.
    fn len(&mut self) -> Decoded<usize> {
        let n = self.u64()?;
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            return Err(format!("count {n} at byte {} exceeds the {left} bytes left", self.at));
        }
        Ok(n as usize)
    }
    fn bytes(&mut self) -> Decoded<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> Decoded<&'a str> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?).map_err(|_| format!("invalid UTF-8 at byte {at}"))
    }
    fn bitmap(&mut self) -> Decoded<RoaringBitmap> {
        let bytes = self.bytes()?;
        RoaringBitmap::deserialize_from(bytes).map_err(|e| format!("bitmap: {e}"))
    }
    fn dict(&mut self) -> Decoded<Dictionary> {
        let count = self.len()?;
        let mut dict = Dictionary::with_capacity(count);
        for _ in 0..count {
            let name = self.str()?;
            if dict.try_push(name).is_none() {
                return Err(format!("dictionary repeats {name:?}"));
            }
        }
        Ok(dict)
    }
    fn values(&mut self) -> Decoded<ValueUserIds> {
        let overflowed = self.u8()? != 0;
        let mut entries = Vec::new();
        for _ in 0..self.len()? {
            let value = match self.u8()? {
                0 => IndexedValue::Str(self.str()?.to_owned()),
                1 => IndexedValue::NumberBits(self.u64()?),
                2 => IndexedValue::Bool(self.u8()? != 0),
                t => return Err(format!("unknown value tag {t}")),
            };
            entries.push((value, self.bitmap()?));
        }
        Ok(ValueUserIds::from_entries(overflowed, entries))
    }
}

/// Decodes a snapshot file's bytes, checking magic, version and checksum.
pub fn decode(bytes: &[u8], dedupe_window_ms: i64) -> Decoded<Contents> {
    if bytes.len() < 16 + 4 {
        return Err("file too short".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("checksum mismatch".into());
    }
    let mut input = In { bytes: body, at: 0 };
    if input.take(8)? != MAGIC {
        return Err("not a snapshot (bad magic)".into());
    }
    let version = input.u32()?;
    if version != SNAPSHOT_VERSION {
        return Err(format!("snapshot version {version} is not supported"));
    }
    input.u32()?;
    let position = input.u64()?;
    let dicts = Dictionaries { users: input.dict()?, events: input.dict()?, keys: input.dict()? };
    let mut dedupe = Dedupe::new(dedupe_window_ms);
    for _ in 0..input.len()? {
        let at = input.i64()?;
        let hash = u128::from_le_bytes(input.array()?);
        dedupe.insert(hash, at);
    }
    let slots = input.len()?;
    let mut lengths = Vec::with_capacity(slots);
    for _ in 0..slots {
        lengths.push(input.len()?);
    }
    let mut by_user = Vec::with_capacity(slots);
    for len in lengths {
        let raw = input.take(len.checked_mul(16).ok_or("timeline too long")?)?;
        let timeline: Vec<TimelineEntry> = raw
            .chunks_exact(16)
            .map(|c| {
                let mut ts = [0u8; 8];
                let mut packed = [0u8; 8];
                ts.copy_from_slice(&c[..8]);
                packed.copy_from_slice(&c[8..]);
                TimelineEntry::from_parts(i64::from_le_bytes(ts), u64::from_le_bytes(packed))
            })
            .collect();
        by_user.push(timeline);
    }
    let mut pages = Vec::new();
    for _ in 0..input.len()? {
        pages.push(input.bytes()?.to_vec());
    }
    let timelines = Timelines::from_parts(by_user, PropsArena::from_pages(pages));
    let mut profiles = Vec::new();
    for _ in 0..input.len()? {
        profiles.push(match input.u8()? {
            0 => None,
            _ => Some(input.bytes()?.to_vec().into_boxed_slice()),
        });
    }
    let mut subscriptions = Subscriptions::default();
    let mut reachable = RoaringBitmap::new();
    for _ in 0..input.len()? {
        let user = input.u32()?;
        let endpoint = input.str()?.to_owned();
        let p256dh = input.str()?.to_owned();
        let auth = input.str()?.to_owned();
        subscriptions
            .subscribe(StoredSubscription { user, endpoint, p256dh, auth }, &mut reachable);
    }
    let mut indexes = Indexes::default();
    indexes.all_user_ids = input.bitmap()?;
    indexes.webpush_user_ids = input.bitmap()?;
    for _ in 0..input.len()? {
        let mut event = EventUserIds { all: input.bitmap()?, ..Default::default() };
        for level in 0..TIME_LEVELS {
            let mut buckets = BTreeMap::new();
            for _ in 0..input.len()? {
                let bucket = input.u32()? as i32;
                buckets.insert(bucket, input.bitmap()?);
            }
            event.by_bucket[level] = buckets;
        }
        indexes.event_user_ids.push(event);
    }
    for _ in 0..input.len()? {
        let event = input.u32()?;
        let key = input.u16()?;
        let values = input.values()?;
        indexes.event_property_value_user_ids.insert((event, key), values);
    }
    for _ in 0..input.len()? {
        let key = input.u16()?;
        let values = input.values()?;
        indexes.profile_property_value_user_ids.insert(key, values);
    }
    if input.at != body.len() {
        return Err(format!("{} unexpected trailing bytes", body.len() - input.at));
    }
    let state = DerivedState {
        timelines,
        indexes,
        profiles: Profiles::from_parts(profiles),
        subscriptions,
        position,
    };
    Ok(Contents { dicts, dedupe, state })
}

/// Writes a snapshot durably into `dir`; returns its path.
pub fn write(
    dir: &Path,
    dicts: &Dictionaries,
    dedupe: &Dedupe,
    state: &DerivedState,
) -> Result<PathBuf> {
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let bytes = encode(dicts, dedupe, state);
    let path = dir.join(file_name(state.position));
    let tmp = dir.join(format!("{}.tmp", file_name(state.position)));
    let mut file = File::create(&tmp).context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&bytes).context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, &path).context(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(dir)?;
    Ok(path)
}

/// Snapshot files in `dir`, newest (highest position) first.
pub fn list(dir: &Path) -> Vec<(LogPosition, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(LogPosition, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let position = name.strip_suffix(".snap")?.parse().ok()?;
            Some((position, e.path()))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found
}

/// Loads the newest snapshot that decodes, trying `preferred` first; returns
/// it with the problems met on the way (damaged files are reported, not fatal).
pub fn load_newest(
    dir: &Path,
    preferred: Option<&str>,
    dedupe_window_ms: i64,
) -> (Option<Contents>, Vec<String>) {
    let mut problems = Vec::new();
    let mut candidates = list(dir);
    if let Some(name) = preferred {
        if let Some(at) =
            candidates.iter().position(|(_, p)| p.file_name().is_some_and(|n| n == name))
        {
            let chosen = candidates.remove(at);
            candidates.insert(0, chosen);
        }
    }
    for (_, path) in candidates {
        match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| decode(&b, dedupe_window_ms))
        {
            Ok(contents) => return (Some(contents), problems),
            Err(why) => problems.push(format!("snapshot {} skipped: {why}", path.display())),
        }
    }
    (None, problems)
}

/// Removes all but the newest `keep` snapshots (and stray temporary files).
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    for (_, path) in list(dir).into_iter().skip(keep) {
        fs::remove_file(&path).context(|| format!("removing old snapshot {}", path.display()))?;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Wraps a decode problem as corruption of `path`.
pub fn corrupt(path: &Path, why: String) -> Error {
    Error::corrupt(path, why)
}
