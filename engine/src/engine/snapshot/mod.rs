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
//! body    := position u64le | dictionaries | dedupe | timelines | arena | sealed days
//!            | profiles | subscriptions | indexes | definitions, triggers, campaigns
//!            (each section documented in `encode`)
//! ```
//!
//! The sealed days section holds the table of sealed days, not their rows:
//! a day whose file is in use is a reference (day, version, cut position,
//! rows, checksum) that open resolves by mapping the file and checking it
//! ([`load_newest`]); a snapshot naming a file that is missing or fails a
//! check is not used. Only a day still in its sealing buffer is written out
//! whole.
//!
//! Open maps the snapshot file. The profiles and subscriptions sections are
//! read in place from it (`store/state/mapped.rs`) and the event and value
//! bitmaps are decoded on first read (`store/state/lazy_bitmap.rs`), so the
//! map outlives [`decode`]; everything else is decoded onto the heap.
//!
//! Encoding is deterministic (hash maps are written in sorted order), so two
//! states are equal exactly when their encodings are: the replay tests compare
//! bytes.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roaring::RoaringBitmap;

mod sealed;

pub use sealed::{DayFileRef, day_files_in_use};
use sealed::{manifest_name, resolve_day_files};

use super::state::DerivedState;
use crate::campaigns::CampaignState;
use crate::error::{IoContext, Result};
use crate::query::{QueryState, SavedSegments};
use crate::store::dedupe::Dedupe;
use crate::store::dict::{Dictionaries, Dictionary};
use crate::store::log::LogPosition;
use crate::store::log::recovery::sync_dir;
use crate::store::log::storage::{FileBytes, FsStorage, LogStorage};
use crate::store::state::StoreState;
use crate::store::state::index::{EventUserIds, IndexedValue, Indexes, TIME_LEVELS, ValueUserIds};
use crate::store::state::lazy_bitmap::{LazyBitmap, check_bitmap_format, decode_bitmap};
use crate::store::state::profiles::{MappedProfiles, Profiles};
use crate::store::state::sealed_days::DayFiles;
use crate::store::state::subscriptions::{MappedSubscriptions, Subscriptions};
use crate::store::state::timeline::{PropsArena, TimelineEntry, Timelines};

/// Directory inside the data directory that holds snapshots.
pub const SNAPSHOT_DIR: &str = "snapshots";
const MAGIC: &[u8; 8] = b"NUDGSNAP";
/// Version of the snapshot layout written today.
pub const SNAPSHOT_VERSION: u32 = 9;

/// Everything a snapshot holds.
#[derive(Debug, Clone)]
pub struct Contents {
    /// Dictionaries.
    pub dicts: Dictionaries,
    /// Idempotency index.
    pub dedupe: Dedupe,
    /// Derived state (its `position` is the snapshot's), without the
    /// sealed days whose files are in use: see `day_files`.
    pub state: DerivedState,
    /// The day files the snapshot names, to be mapped and checked.
    pub day_files: Vec<DayFileRef>,
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
    /// A bitmap, copied as the bytes it was read from while it has not changed.
    fn lazy_bitmap(&mut self, b: &LazyBitmap) {
        match b.serialized() {
            Some(bytes) => self.bytes(bytes),
            None => self.bitmap(b.get()),
        }
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
            self.lazy_bitmap(bitmap);
        }
    }
}

/// Encodes a snapshot file's complete bytes.
pub fn encode(dicts: &Dictionaries, dedupe: &Dedupe, state: &DerivedState) -> Vec<u8> {
    encode_marked(dicts, dedupe, state).0
}

/// Where the sections read in place start in an encoded snapshot.
#[derive(Debug, Clone, Copy, Default)]
struct SectionsAt {
    profiles: usize,
    subscriptions: usize,
}

/// [`encode`], and where its sections read in place start.
fn encode_marked(
    dicts: &Dictionaries,
    dedupe: &Dedupe,
    state: &DerivedState,
) -> (Vec<u8>, SectionsAt) {
    let estimate = state.store.heap_bytes() + dicts.heap_bytes() + 1024;
    let mut out = Out { bytes: Vec::with_capacity(estimate) };
    out.bytes.extend_from_slice(MAGIC);
    out.u32(SNAPSHOT_VERSION);
    out.u32(0);
    out.u64(state.store.position);
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
    let slots = state.store.timelines.user_slots();
    out.len(slots);
    for user in 0..slots {
        out.len(state.store.timelines.of(user as u32).len());
    }
    for user in 0..slots {
        for entry in state.store.timelines.of(user as u32) {
            out.i64(entry.ts_ms);
            out.u64(entry.packed());
        }
    }
    // Arena pages.
    let pages = state.store.timelines.arena().pages();
    out.len(pages.len());
    for page in pages {
        out.bytes(page);
    }
    sealed::encode(&mut out, &state.store.sealed);
    // Profiles, read in place at open (`MappedProfiles`): slots, offsets, blobs.
    let profiles = out.bytes.len();
    state.store.profiles.encode_section(&mut out.bytes);
    // Subscriptions, read in place at open (`MappedSubscriptions`).
    let subscriptions = out.bytes.len();
    state.store.subscriptions.encode_section(&mut out.bytes);
    // Indexes.
    let indexes = &state.store.indexes;
    out.bitmap(&indexes.all_user_ids);
    out.bitmap(&indexes.webpush_user_ids);
    out.len(indexes.event_user_ids.len());
    for event in &indexes.event_user_ids {
        out.lazy_bitmap(&event.all);
        for level in &event.by_bucket {
            out.len(level.len());
            for (bucket, bitmap) in level {
                out.u32(*bucket as u32);
                out.lazy_bitmap(bitmap);
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
    // Saved segments, by name.
    out.len(state.queries.segments.by_name().len());
    for (name, query) in state.queries.segments.by_name() {
        out.str(name);
        out.str(query);
    }
    // The public ones, by name.
    out.len(state.queries.segments.public().len());
    for name in state.queries.segments.public() {
        out.str(name);
    }
    // Saved triggers, by name, then their pending fires and armed events.
    out.len(state.triggers.triggers().count());
    for trigger in state.triggers.triggers() {
        out.str(&trigger.name);
        out.str(&trigger.text);
    }
    let parts = state.triggers.parts();
    out.len(parts.len());
    for part in parts {
        out.str(&part.trigger);
        out.u32(part.user);
        out.u64(part.cause);
        out.i64(part.due_ms);
        out.i64(part.ts_ms);
        out.bytes(&part.props);
        out.u32(part.kind as u32);
    }
    // Campaigns, by id: definition (rkyv), paused flag.
    out.len(state.campaigns.campaigns.len());
    for (id, stored) in &state.campaigns.campaigns {
        out.str(id);
        out.bytes(&stored.campaign.encode());
        out.u8(u8::from(stored.paused));
        out.i64(stored.saved_ms);
    }
    // The outbox, delivery settings and schedule progress (rkyv).
    out.bytes(&state.campaigns.outbox.encode());
    let crc = crc32c::crc32c(&out.bytes);
    out.u32(crc);
    (out.bytes, SectionsAt { profiles, subscriptions })
}

/// Reads a snapshot's bytes (its mapped file) front to back; the checksum
/// of the whole body is checked before anything is decoded.
struct In {
    file: Arc<FileBytes>,
    /// Where the next read starts.
    at: usize,
    /// Where the body ends (the checksum trailer starts).
    end: usize,
}

type Decoded<T> = std::result::Result<T, String>;

/// The CRC32C of the body, after it.
const TRAILER_BYTES: u64 = 4;

impl In {
    /// Reads the snapshot `file`, at least a trailer long.
    fn new(file: Arc<FileBytes>) -> In {
        let end = file.len() - TRAILER_BYTES as usize;
        In { file, at: 0, end }
    }

    /// Whether the trailer holds the checksum of the body.
    fn trailer_matches(&self) -> bool {
        let trailer = &self.file[self.end..];
        crc32c::crc32c(&self.file[..self.end]).to_le_bytes() == trailer
    }

    /// Bytes left before the trailer.
    fn left(&self) -> u64 {
        (self.end - self.at) as u64
    }

    /// The next `n` bytes, in place.
    fn take(&mut self, n: usize) -> Decoded<&[u8]> {
        if n as u64 > self.left() {
            return Err(format!("truncated: {n} bytes wanted, {} left", self.left()));
        }
        let at = self.at;
        self.at += n;
        Ok(&self.file[at..at + n])
    }

    fn fill(&mut self, buf: &mut [u8]) -> Decoded<()> {
        let n = buf.len();
        buf.copy_from_slice(self.take(n)?);
        Ok(())
    }
    fn array<const N: usize>(&mut self) -> Decoded<[u8; N]> {
        let mut a = [0u8; N];
        self.fill(&mut a)?;
        Ok(a)
    }
    fn u8(&mut self) -> Decoded<u8> {
        Ok(self.array::<1>()?[0])
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
        if n > self.left() {
            return Err(format!("count {n} exceeds the {} bytes left", self.left()));
        }
        Ok(n as usize)
    }
    /// A length-prefixed byte string, in place.
    fn slice(&mut self) -> Decoded<&[u8]> {
        let n = self.len()?;
        self.take(n)
    }
    /// A length-prefixed byte string, copied into a buffer of exactly its size.
    fn bytes(&mut self) -> Decoded<Vec<u8>> {
        Ok(self.slice()?.to_vec())
    }
    fn str(&mut self) -> Decoded<String> {
        String::from_utf8(self.bytes()?).map_err(|_| "invalid UTF-8 in a string".to_string())
    }
    fn bitmap(&mut self) -> Decoded<RoaringBitmap> {
        decode_bitmap(self.slice()?)
    }
    /// A bitmap left in the file, decoded when first read ([`LazyBitmap`]).
    fn lazy_bitmap(&mut self) -> Decoded<LazyBitmap> {
        let n = self.len()?;
        let at = self.at;
        check_bitmap_format(self.take(n)?)?;
        Ok(LazyBitmap::mapped(self.file.clone(), at..at + n))
    }
    fn dict(&mut self) -> Decoded<Dictionary> {
        let count = self.len()?;
        let mut dict = Dictionary::with_capacity(count);
        for _ in 0..count {
            let name = std::str::from_utf8(self.slice()?)
                .map_err(|_| "invalid UTF-8 in a string".to_string())?;
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
                0 => IndexedValue::Str(self.str()?),
                1 => IndexedValue::NumberBits(self.u64()?),
                2 => IndexedValue::Bool(self.u8()? != 0),
                t => return Err(format!("unknown value tag {t}")),
            };
            entries.push((value, self.lazy_bitmap()?));
        }
        Ok(ValueUserIds::from_entries(overflowed, entries))
    }
}

/// Decodes a snapshot held in `file` (mapped, or a copy), checking magic,
/// version and the checksum (first: a damaged file is rejected before any
/// section is decoded). The profiles section stays in `file`, read in place.
pub fn decode(file: Arc<FileBytes>, dedupe_window_ms: i64) -> Decoded<Contents> {
    if (file.len() as u64) < 16 + TRAILER_BYTES {
        return Err("file too short".into());
    }
    let mut input = In::new(file);
    if !input.trailer_matches() {
        return Err("checksum mismatch".into());
    }
    decode_sections(&mut input, dedupe_window_ms)
}

/// [`decode`] of a copy of `bytes` (tests, fuzzing).
#[cfg(any(test, feature = "internals"))]
pub fn decode_bytes(bytes: &[u8], dedupe_window_ms: i64) -> Decoded<Contents> {
    decode(Arc::new(FileBytes::copied(bytes)), dedupe_window_ms)
}

fn decode_sections(input: &mut In, dedupe_window_ms: i64) -> Decoded<Contents> {
    if &input.array::<8>()? != MAGIC {
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
    let mut raw = Vec::new();
    for len in lengths {
        raw.resize(len.checked_mul(16).ok_or("timeline too long")?, 0);
        input.fill(&mut raw)?;
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
        pages.push(input.bytes()?);
    }
    let timelines = Timelines::from_parts(by_user, PropsArena::from_pages(pages));
    let (sealed, day_files) = sealed::decode(input)?;
    let (profiles, after) = MappedProfiles::parse(input.file.clone(), input.at, input.end)?;
    input.take(after - input.at)?;
    let (subscriptions, after) =
        MappedSubscriptions::parse(input.file.clone(), input.at, input.end)?;
    input.take(after - input.at)?;
    let mut indexes = Indexes::default();
    indexes.all_user_ids = input.bitmap()?;
    indexes.webpush_user_ids = input.bitmap()?;
    for _ in 0..input.len()? {
        let mut event = EventUserIds { all: input.lazy_bitmap()?, ..Default::default() };
        for level in 0..TIME_LEVELS {
            let mut buckets = BTreeMap::new();
            for _ in 0..input.len()? {
                let bucket = input.u32()? as i32;
                buckets.insert(bucket, input.lazy_bitmap()?);
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
    let mut segments = std::collections::BTreeMap::new();
    for _ in 0..input.len()? {
        let name = input.str()?;
        segments.insert(name, input.str()?);
    }
    let mut public = std::collections::BTreeSet::new();
    for _ in 0..input.len()? {
        public.insert(input.str()?);
    }
    let mut rules = crate::triggers::TriggerState::default();
    for _ in 0..input.len()? {
        let name = input.str()?;
        rules.save(&name, &input.str()?);
    }
    for _ in 0..input.len()? {
        let trigger: std::sync::Arc<str> = input.str()?.into();
        let part = crate::triggers::StoredPending {
            trigger,
            user: input.u32()?,
            cause: input.u64()?,
            due_ms: input.i64()?,
            ts_ms: input.i64()?,
            props: input.bytes()?.into_boxed_slice(),
            kind: crate::triggers::PendingKind::from_number(input.u32()?)
                .ok_or_else(|| "a pending fire of unknown kind".to_string())?,
        };
        rules.restore(part);
    }
    let mut campaigns = std::collections::BTreeMap::new();
    for _ in 0..input.len()? {
        let id = input.str()?;
        let campaign = crate::campaigns::campaign::Campaign::decode(&input.bytes()?)
            .ok_or_else(|| format!("campaign {id:?} does not decode"))?;
        let paused = input.u8()? != 0;
        let saved_ms = input.i64()?;
        campaigns
            .insert(id, crate::campaigns::campaign::StoredCampaign { campaign, paused, saved_ms });
    }
    let outbox = crate::campaigns::outbox::OutboxState::decode(&input.bytes()?)
        .ok_or_else(|| "the outbox section does not decode".to_string())?;
    if input.left() != 0 {
        return Err(format!("{} unexpected trailing bytes", input.left()));
    }
    let state = DerivedState {
        store: StoreState {
            timelines,
            indexes,
            profiles: Profiles::mapped(profiles),
            subscriptions: Subscriptions::mapped(subscriptions),
            position,
            sealed,
            ..Default::default()
        },
        queries: QueryState {
            segments: SavedSegments::restore(segments, public),
            ..Default::default()
        },
        triggers: rules,
        campaigns: CampaignState { campaigns, outbox },
    };
    Ok(Contents { dicts, dedupe, state, day_files })
}

/// A snapshot encoded in memory, not yet on disk: what is taken while
/// ingest waits ([`encode_for_write`]); writing it ([`write_encoded`]) needs
/// no lock on the state.
pub struct EncodedSnapshot {
    position: LogPosition,
    bytes: Vec<u8>,
    /// Where the sections read in place start in `bytes`.
    sections_at: SectionsAt,
    day_files: Vec<String>,
}

/// Encodes the snapshot of `state` at its position, in memory.
pub fn encode_for_write(
    dicts: &Dictionaries,
    dedupe: &Dedupe,
    state: &DerivedState,
) -> EncodedSnapshot {
    let (bytes, sections_at) = encode_marked(dicts, dedupe, state);
    EncodedSnapshot {
        position: state.store.position,
        bytes,
        sections_at,
        day_files: sealed::day_file_names(&state.store.sealed),
    }
}

/// A snapshot written to disk.
pub struct WrittenSnapshot {
    /// Its file.
    pub path: PathBuf,
    /// The log position it is the state at.
    pub position: LogPosition,
    /// Its profiles section, read in place from the file: what
    /// [`Profiles::rebase`] moves the running state onto.
    pub profiles: MappedProfiles,
    /// Its subscriptions section, likewise ([`Subscriptions::rebase`]).
    pub subscriptions: MappedSubscriptions,
}

/// Writes an encoded snapshot into `dir` crash-safely (temporary file,
/// fsync, rename, directory fsync), the list of the day files it names
/// first, and maps the written file's profiles section. The caller keeps
/// the day files in place meanwhile.
pub fn write_encoded(dir: &Path, snapshot: EncodedSnapshot) -> Result<WrittenSnapshot> {
    fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    let position = snapshot.position;
    let path = dir.join(file_name(position));
    // The day files it names, beside it, written first: they are kept while
    // the snapshot is ([`day_files_in_use`]).
    sealed::write_manifest(dir, position, &snapshot.day_files)?;
    let tmp = dir.join(format!("{}.tmp", file_name(position)));
    let mut file = File::create(&tmp).context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&snapshot.bytes).context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, &path).context(|| format!("renaming {} into place", tmp.display()))?;
    sync_dir(dir)?;
    drop(snapshot.bytes);
    let file = Arc::new(FsStorage.map(&path).context(|| format!("mapping {}", path.display()))?);
    let body_end = file.len() - TRAILER_BYTES as usize;
    let corrupt = |reason| crate::error::Error::Corrupt { path: path.clone(), reason };
    let at = snapshot.sections_at;
    let (profiles, _) =
        MappedProfiles::parse(file.clone(), at.profiles, body_end).map_err(corrupt)?;
    let (subscriptions, _) =
        MappedSubscriptions::parse(file, at.subscriptions, body_end).map_err(corrupt)?;
    Ok(WrittenSnapshot { path, position, profiles, subscriptions })
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
    found.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    found
}

/// Loads the newest snapshot that decodes, trying `preferred` first; returns
/// it with the problems met on the way (damaged files are reported, not fatal).
/// The snapshot is mapped, and some of its sections are read in place for
/// as long as the state lives ([`decode`]). The day files it names are mapped
/// and their headers and directories checked; a snapshot
/// naming one that is missing or fails a check is skipped like a damaged one
/// (its rows are nowhere else but in the log).
pub fn load_newest(
    dir: &Path,
    preferred: Option<&str>,
    dedupe_window_ms: i64,
    files: &DayFiles,
) -> (Option<Contents>, Vec<String>) {
    let mut problems = Vec::new();
    let mut candidates = list(dir);
    if let Some(name) = preferred
        && let Some(at) =
            candidates.iter().position(|(_, p)| p.file_name().is_some_and(|n| n == name))
    {
        let chosen = candidates.remove(at);
        candidates.insert(0, chosen);
    }
    for (_, path) in candidates {
        let decoded = FsStorage
            .map(&path)
            .map_err(|e| e.to_string())
            .and_then(|file| decode(Arc::new(file), dedupe_window_ms));
        match decoded.and_then(|contents| resolve_day_files(contents, files)) {
            Ok(contents) => return (Some(contents), problems),
            Err(why) => problems.push(format!("snapshot {} skipped: {why}", path.display())),
        }
    }
    (None, problems)
}

/// Removes all but the newest `keep` snapshots (and stray temporary files).
pub fn prune(dir: &Path, keep: usize) -> Result<()> {
    for (position, path) in list(dir).into_iter().skip(keep) {
        fs::remove_file(&path).context(|| format!("removing old snapshot {}", path.display()))?;
        let manifest = dir.join(manifest_name(position));
        if manifest.exists() {
            fs::remove_file(&manifest).context(|| format!("removing {}", manifest.display()))?;
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_manifest = name
                .strip_suffix(".days")
                .is_some_and(|stem| !dir.join(format!("{stem}.snap")).exists());
            if name.ends_with(".tmp") || orphan_manifest {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
