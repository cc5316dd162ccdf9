//! Current user profiles, folded from profile updates in log order.
//!
//! Each profile is one property blob (`props.rs` codec). An update is applied
//! as set, then set_once, then unset, then increment, then append; the
//! profile value index (`index.rs`) is moved for every key whose scalar value
//! changed. A profile holds at most `MAX_PROFILE_PROPERTIES` keys: an operation
//! adding a further new key is ignored (deterministically, so replay agrees). Appending
//! beyond `MAX_ARRAY_ELEMENTS` keeps the newest elements.
//!
//! Two tiers, like the events: the profiles a snapshot holds are read in
//! place from its mapped file ([`MappedProfiles`], no heap), and a profile
//! changed since is kept on the heap, where it shadows the mapped one. A
//! process opened from a snapshot holds on its heap only the profiles
//! changed since that snapshot was written ([`Profiles::rebase`] moves a
//! running process onto the snapshot it has just written).

use crate::limits::{MAX_ARRAY_ELEMENTS, MAX_PROFILE_PROPERTIES};
use crate::store::dict::{FastMap, UserId};
use crate::store::log::entry::ArchivedLogProfile;
use crate::store::props::{self, KeyId, Value, ValueRef};
use crate::store::state::index::ValueUserIds;
pub use crate::store::state::mapped::MappedProfiles;

/// Every user's current profile.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    /// The profiles of the snapshot this state was opened from (or last
    /// rebased on).
    mapped: MappedProfiles,
    /// Profiles stored since, each shadowing the mapped one.
    changed: FastMap<UserId, Box<[u8]>>,
    /// One more than the highest user with a profile (0 when none).
    slots: usize,
}

impl PartialEq for Profiles {
    /// The same profiles, whichever tier holds them.
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots
            && (0..self.slots as UserId).all(|u| self.stored(u) == other.stored(u))
    }
}

fn decode(blob: &[u8]) -> Vec<(KeyId, Value)> {
    props::iter(blob).map(|(k, v)| (k, v.to_owned_value())).collect()
}

fn upsert(props: &mut Vec<(KeyId, Value)>, key: KeyId, value: Value, only_if_absent: bool) {
    match props.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(at) if !only_if_absent => props[at].1 = value,
        Ok(_) => {}
        Err(at) if props.len() < MAX_PROFILE_PROPERTIES => props.insert(at, (key, value)),
        Err(_) => {}
    }
}

impl Profiles {
    /// Profiles read in place from a snapshot's section.
    pub fn mapped(mapped: MappedProfiles) -> Self {
        Profiles { slots: mapped.slots(), mapped, changed: FastMap::default() }
    }

    /// `user`'s stored profile blob, from whichever tier holds it.
    pub fn stored(&self, user: UserId) -> Option<&[u8]> {
        if !self.changed.is_empty()
            && let Some(blob) = self.changed.get(&user)
        {
            return Some(blob);
        }
        self.mapped.get(user)
    }

    /// `user`'s profile blob (empty when none).
    pub fn get(&self, user: UserId) -> &[u8] {
        self.stored(user).unwrap_or(props::EMPTY)
    }

    /// One property of `user`'s profile.
    pub fn value(&self, user: UserId, key: KeyId) -> Option<ValueRef<'_>> {
        props::get(self.get(user), key)
    }

    /// Writes the profiles as a section [`MappedProfiles::parse`] reads.
    pub fn encode_section(&self, out: &mut Vec<u8>) {
        let slots = self.slots as UserId;
        out.extend_from_slice(&u64::from(slots).to_le_bytes());
        let mut offset = 0u64;
        out.extend_from_slice(&offset.to_le_bytes());
        for user in 0..slots {
            offset += self.stored(user).map_or(0, |blob| blob.len() as u64);
            out.extend_from_slice(&offset.to_le_bytes());
        }
        for user in 0..slots {
            out.extend_from_slice(self.stored(user).unwrap_or_default());
        }
    }

    #[cfg(test)]
    /// One more than the highest user with a profile.
    pub fn user_slots(&self) -> usize {
        self.slots
    }

    /// Approximate heap bytes: the changed profiles and their table.
    pub fn heap_bytes(&self) -> usize {
        self.changed.capacity() * (std::mem::size_of::<(UserId, Box<[u8]>)>() + 1)
            + self.changed.values().map(|b| b.len()).sum::<usize>()
    }

    /// Bytes of the snapshot file read in place.
    pub fn mapped_bytes(&self) -> usize {
        self.mapped.mapped_bytes()
    }

    /// Profiles on the heap (changed since the mapped snapshot).
    pub fn changed_count(&self) -> usize {
        self.changed.len()
    }

    /// Moves onto `mapped`, a snapshot of these profiles written earlier:
    /// every changed profile the snapshot holds as it stands leaves the heap;
    /// one changed since it was taken stays.
    pub fn rebase(&mut self, mapped: MappedProfiles) {
        self.changed.retain(|&user, blob| mapped.get(user) != Some(&blob[..]));
        self.changed.shrink_to_fit();
        self.slots = self.slots.max(mapped.slots());
        self.mapped = mapped;
    }

    /// Applies one update, keeping the value index in step.
    pub fn apply(&mut self, update: &ArchivedLogProfile, index: &mut FastMap<KeyId, ValueUserIds>) {
        let user = update.user.to_native();
        let only_set = update.set_once.as_slice() == props::EMPTY
            && update.unset.is_empty()
            && update.increment.as_slice() == props::EMPTY
            && update.append.as_slice() == props::EMPTY;
        if only_set && self.get(user) == props::EMPTY {
            // A user's first profile, set only: the set blob is already sorted,
            // unique and validated, so it is the new profile as it stands.
            self.store(user, update.set.to_vec(), index);
            return;
        }
        let old_blob = self.get(user).to_vec();
        let mut props = decode(&old_blob);
        for (key, value) in props::iter(&update.set) {
            upsert(&mut props, key, value.to_owned_value(), false);
        }
        for (key, value) in props::iter(&update.set_once) {
            upsert(&mut props, key, value.to_owned_value(), true);
        }
        for key in update.unset.iter() {
            let key = key.to_native();
            props.retain(|(k, _)| *k != key);
        }
        for (key, by) in props::iter(&update.increment) {
            let ValueRef::Number(by) = by else { continue };
            let current = match props.iter().find(|(k, _)| *k == key) {
                Some((_, Value::Number(n))) => *n,
                _ => 0.0,
            };
            let sum = current + by;
            upsert(
                &mut props,
                key,
                Value::Number(if sum.is_finite() { sum } else { current }),
                false,
            );
        }
        for (key, value) in props::iter(&update.append) {
            let mut items = match props.iter().find(|(k, _)| *k == key) {
                Some((_, Value::Array(items))) => items.clone(),
                Some((_, scalar)) => vec![scalar.clone()],
                None => Vec::new(),
            };
            match value.to_owned_value() {
                Value::Array(more) => items.extend(more),
                scalar => items.push(scalar),
            }
            if items.len() > MAX_ARRAY_ELEMENTS {
                items.drain(..items.len() - MAX_ARRAY_ELEMENTS);
            }
            upsert(&mut props, key, Value::Array(items), false);
        }
        let pairs: Vec<(KeyId, &Value)> = props.iter().map(|(k, v)| (*k, v)).collect();
        let mut new_blob = Vec::new();
        props::encode(&mut new_blob, &pairs);
        self.store(user, new_blob, index);
    }

    /// Replaces `user`'s profile with `new_blob`, moving the value index along.
    fn store(&mut self, user: UserId, new_blob: Vec<u8>, index: &mut FastMap<KeyId, ValueUserIds>) {
        self.reindex(user, self.get(user), &new_blob, index);
        self.slots = self.slots.max(user as usize + 1);
        self.changed.insert(user, new_blob.into_boxed_slice());
    }

    fn reindex(
        &self,
        user: UserId,
        old: &[u8],
        new: &[u8],
        index: &mut FastMap<KeyId, ValueUserIds>,
    ) {
        for (key, value) in props::iter(old) {
            if props::get(new, key) != Some(value)
                && let Some(values) = index.get_mut(&key)
            {
                values.remove(value, user);
            }
        }
        for (key, value) in props::iter(new) {
            if props::get(old, key) != Some(value) && !matches!(value, ValueRef::Array(_)) {
                index.entry(key).or_default().insert(value, user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::log::storage::FileBytes;

    fn blob(n: f64) -> Vec<u8> {
        let value = Value::Number(n);
        let mut out = Vec::new();
        props::encode(&mut out, &[(3, &value)]);
        out
    }

    fn section(profiles: &Profiles) -> MappedProfiles {
        let mut bytes = vec![0xAA; 5];
        profiles.encode_section(&mut bytes);
        let file = Arc::new(FileBytes::copied(&bytes));
        let (mapped, end) = MappedProfiles::parse(file, 5, bytes.len()).expect("parses");
        assert_eq!(end, bytes.len());
        mapped
    }

    #[test]
    fn mapped_profiles_read_in_place_and_rebase_keeps_only_later_changes() {
        let mut index = FastMap::default();
        let mut written = Profiles::default();
        for (user, n) in [(0, 1.0), (2, 2.0), (5, 5.0)] {
            written.store(user, blob(n), &mut index);
        }
        let mut opened = Profiles::mapped(section(&written));
        assert_eq!(opened, written);
        assert_eq!((opened.changed_count(), opened.user_slots()), (0, 6));
        assert_eq!(opened.stored(1), None);
        assert_eq!(opened.get(2), &blob(2.0)[..]);
        assert_eq!(opened.value(5, 3), Some(ValueRef::Number(5.0)));

        // Changes after open go to the heap and shadow the mapped profiles.
        let before = section(&opened);
        opened.store(2, blob(20.0), &mut index);
        opened.store(7, blob(7.0), &mut index);
        assert_eq!(opened.get(2), &blob(20.0)[..]);
        assert_eq!((opened.changed_count(), opened.user_slots()), (2, 8));
        let expected = opened.clone();

        // A snapshot taken before the changes leaves them on the heap...
        opened.rebase(before);
        assert_eq!(opened.changed_count(), 2);
        assert_eq!(opened, expected);
        // ...one taken after takes them all, and one more change stays.
        let after = section(&opened);
        opened.store(0, blob(10.0), &mut index);
        opened.rebase(after);
        assert_eq!(opened.changed_count(), 1);
        assert_eq!(opened.get(0), &blob(10.0)[..]);
        assert_eq!(opened.get(7), &blob(7.0)[..]);
        assert!(opened.heap_bytes() > 0 && opened.mapped_bytes() > 0);
    }

    #[test]
    fn a_damaged_section_is_refused_without_panicking() {
        let mut index = FastMap::default();
        let mut profiles = Profiles::default();
        profiles.store(1, blob(1.0), &mut index);
        profiles.store(3, blob(3.0), &mut index);
        let mut bytes = Vec::new();
        profiles.encode_section(&mut bytes);
        let parse = |bytes: &[u8]| {
            MappedProfiles::parse(Arc::new(FileBytes::copied(bytes)), 0, bytes.len()).map(|_| ())
        };
        assert_eq!(parse(&bytes), Ok(()));
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        // Offsets out of order: user 1's end before its start.
        let mut disordered = bytes.clone();
        disordered[16..24].copy_from_slice(&100u64.to_le_bytes());
        let why = parse(&disordered).expect_err("refused");
        assert!(why.contains("out of order"), "{why}");
        // A slot count far past the file.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let why = parse(&huge).expect_err("refused");
        assert!(why.contains("fit the file"), "{why}");
    }
}
