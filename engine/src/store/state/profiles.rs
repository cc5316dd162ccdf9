//! Current user profiles, folded from profile updates in log order.
//!
//! Each profile is one property blob (`props.rs` codec). An update is applied
//! as set, then set_once, then unset, then increment, then append; the
//! profile value index (`index.rs`) is moved for every key whose scalar value
//! changed. A profile holds at most `MAX_PROFILE_PROPERTIES` keys: an operation
//! adding a further new key is ignored (deterministically, so replay agrees). Appending
//! beyond `MAX_ARRAY_ELEMENTS` keeps the newest elements.

use crate::limits::{MAX_ARRAY_ELEMENTS, MAX_PROFILE_PROPERTIES};
use crate::store::dict::{FastMap, UserId};
use crate::store::log::entry::ArchivedLogProfile;
use crate::store::props::{self, KeyId, Value, ValueRef};
use crate::store::state::index::ValueUserIds;

/// Every user's current profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profiles {
    by_user: Vec<Option<Box<[u8]>>>,
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
    /// `user`'s profile blob (empty when none).
    pub fn get(&self, user: UserId) -> &[u8] {
        self.by_user.get(user as usize).and_then(|p| p.as_deref()).unwrap_or(props::EMPTY)
    }

    /// One property of `user`'s profile.
    pub fn value(&self, user: UserId, key: KeyId) -> Option<ValueRef<'_>> {
        props::get(self.get(user), key)
    }

    #[cfg(any(test, feature = "internals"))]
    /// Number of user slots.
    pub fn user_slots(&self) -> usize {
        self.by_user.len()
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.by_user.capacity() * 16 + self.by_user.iter().flatten().map(|b| b.len()).sum::<usize>()
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
        let slot = user as usize;
        if self.by_user.len() <= slot {
            self.by_user.resize(slot + 1, None);
        }
        self.by_user[slot] = Some(new_blob.into_boxed_slice());
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

    /// Rebuilds profiles from snapshot parts.
    pub fn from_parts(by_user: Vec<Option<Box<[u8]>>>) -> Self {
        Profiles { by_user }
    }

    /// The per-user blobs (for snapshots).
    pub fn parts(&self) -> &[Option<Box<[u8]>>] {
        &self.by_user
    }
}
