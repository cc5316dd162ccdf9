//! Active web push subscriptions, folded from subscribe and unsubscribe
//! records in log order.
//!
//! An endpoint belongs to one user at a time: subscribing an endpoint another
//! user held moves it. A user keeps at most `MAX_SUBSCRIPTIONS_PER_USER`
//! subscriptions; a further one replaces the oldest. The set of users with at
//! least one subscription is `Indexes::webpush_user_ids`.

use std::hash::BuildHasher;

use roaring::RoaringBitmap;

use crate::limits::MAX_SUBSCRIPTIONS_PER_USER;
use crate::store::dict::{FastMap, UserId};

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Owner.
    pub user: UserId,
    /// Push service URL.
    pub endpoint: String,
    /// Browser public key, base64url.
    pub p256dh: String,
    /// Auth secret, base64url.
    pub auth: String,
}

/// All active subscriptions, each stored once: a slab of subscriptions, a
/// table of slot numbers hashed by endpoint, and each user's slot numbers.
/// (The first version kept every endpoint three times: as a map key, in the
/// subscription, and in the user's list.)
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    slots: Vec<Option<StoredSubscription>>,
    free: Vec<u32>,
    by_endpoint: hashbrown::HashTable<u32>,
    hasher: crate::store::dict::Hasher,
    /// Per user, slot numbers oldest first.
    by_user: FastMap<UserId, Vec<u32>>,
}

impl PartialEq for Subscriptions {
    /// The same subscriptions, whatever slots they sit in.
    fn eq(&self, other: &Self) -> bool {
        self.all() == other.all()
    }
}

impl Subscriptions {
    /// Approximate heap bytes held: the slots and their strings, the
    /// endpoint table and the per-user lists.
    pub fn heap_bytes(&self) -> usize {
        let strings: usize = self
            .slots
            .iter()
            .flatten()
            .map(|s| s.endpoint.capacity() + s.p256dh.capacity() + s.auth.capacity())
            .sum();
        let per_user: usize = self.by_user.values().map(|v| 8 + 8 + 24 + v.capacity() * 4).sum();
        strings
            + self.slots.capacity() * std::mem::size_of::<Option<StoredSubscription>>()
            + self.free.capacity() * 4
            + self.by_endpoint.capacity() * 5
            + per_user
    }

    fn slot(&self, index: u32) -> Option<&StoredSubscription> {
        self.slots.get(index as usize).and_then(Option::as_ref)
    }

    fn find(&self, endpoint: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(endpoint.as_bytes());
        self.by_endpoint
            .find(hash, |&i| self.slot(i).is_some_and(|s| s.endpoint == endpoint))
            .copied()
    }

    fn insert(&mut self, subscription: StoredSubscription) -> u32 {
        let hash = self.hasher.hash_one(subscription.endpoint.as_bytes());
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(subscription);
                index
            }
            None => {
                self.slots.push(Some(subscription));
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        let rehash = |&i: &u32| {
            let endpoint = slots[i as usize].as_ref().map_or("", |s| s.endpoint.as_str());
            hasher.hash_one(endpoint.as_bytes())
        };
        self.by_endpoint.insert_unique(hash, index, rehash);
        index
    }

    /// Removes the subscription in slot `index` from the slab and the table.
    fn take(&mut self, index: u32) -> Option<StoredSubscription> {
        let subscription = self.slots.get_mut(index as usize)?.take()?;
        let hash = self.hasher.hash_one(subscription.endpoint.as_bytes());
        if let Ok(entry) = self.by_endpoint.find_entry(hash, |&i| i == index) {
            entry.remove();
        }
        self.free.push(index);
        Some(subscription)
    }

    /// Adds (or moves) a subscription.
    pub fn subscribe(&mut self, subscription: StoredSubscription, reachable: &mut RoaringBitmap) {
        self.unsubscribe(&subscription.endpoint, reachable);
        let user = subscription.user;
        if let Some(slots) = self.by_user.get(&user)
            && slots.len() >= MAX_SUBSCRIPTIONS_PER_USER
        {
            let oldest = slots[0];
            self.take(oldest);
            if let Some(slots) = self.by_user.get_mut(&user) {
                slots.remove(0);
            }
        }
        let index = self.insert(subscription);
        self.by_user.entry(user).or_default().push(index);
        reachable.insert(user);
    }

    /// Removes a subscription by endpoint (unknown endpoints are ignored).
    pub fn unsubscribe(&mut self, endpoint: &str, reachable: &mut RoaringBitmap) {
        let Some(index) = self.find(endpoint) else { return };
        let Some(old) = self.take(index) else { return };
        if let Some(slots) = self.by_user.get_mut(&old.user) {
            slots.retain(|&i| i != index);
            if slots.is_empty() {
                self.by_user.remove(&old.user);
                reachable.remove(old.user);
            }
        }
    }

    /// `user`'s subscriptions, oldest first.
    pub fn of(&self, user: UserId) -> Vec<&StoredSubscription> {
        self.by_user
            .get(&user)
            .map(|slots| slots.iter().filter_map(|&i| self.slot(i)).collect())
            .unwrap_or_default()
    }

    #[cfg(any(test, feature = "internals"))]
    /// The subscription with this endpoint.
    pub fn by_endpoint(&self, endpoint: &str) -> Option<&StoredSubscription> {
        self.find(endpoint).and_then(|i| self.slot(i))
    }

    #[cfg(any(test, feature = "internals"))]
    /// Number of active subscriptions.
    pub fn len(&self) -> usize {
        self.by_endpoint.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_endpoint.is_empty()
    }

    /// Rebuilds the set from [`Subscriptions::all`]'s order (user, then age),
    /// without replaying each subscribe.
    pub fn from_parts(stored: Vec<StoredSubscription>) -> Self {
        let mut subscriptions = Subscriptions {
            slots: Vec::with_capacity(stored.len()),
            by_endpoint: hashbrown::HashTable::with_capacity(stored.len()),
            ..Subscriptions::default()
        };
        for sub in stored {
            let user = sub.user;
            let index = subscriptions.insert(sub);
            subscriptions.by_user.entry(user).or_default().push(index);
        }
        subscriptions
    }

    /// Every subscription in a deterministic order (user, then age).
    pub fn all(&self) -> Vec<&StoredSubscription> {
        let mut users: Vec<&UserId> = self.by_user.keys().collect();
        users.sort();
        users.into_iter().flat_map(|u| self.of(*u)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(user: UserId, endpoint: &str) -> StoredSubscription {
        StoredSubscription { user, endpoint: endpoint.into(), p256dh: "k".into(), auth: "a".into() }
    }

    #[test]
    fn moves_endpoints_between_users_and_caps_per_user() {
        let mut subs = Subscriptions::default();
        let mut reachable = RoaringBitmap::new();
        subs.subscribe(sub(1, "e1"), &mut reachable);
        subs.subscribe(sub(2, "e1"), &mut reachable);
        assert_eq!(reachable.iter().collect::<Vec<_>>(), [2], "endpoint moved to user 2");
        for i in 0..=MAX_SUBSCRIPTIONS_PER_USER {
            subs.subscribe(sub(3, &format!("x{i}")), &mut reachable);
        }
        assert_eq!(subs.of(3).len(), MAX_SUBSCRIPTIONS_PER_USER);
        assert!(subs.by_endpoint("x0").is_none(), "oldest replaced");
        subs.unsubscribe("e1", &mut reachable);
        subs.unsubscribe("unknown", &mut reachable);
        assert_eq!(reachable.iter().collect::<Vec<_>>(), [3]);
        assert_eq!(subs.len(), MAX_SUBSCRIPTIONS_PER_USER);
        // Freed slots are reused, and the table still finds every endpoint.
        subs.subscribe(sub(4, "e2"), &mut reachable);
        assert_eq!(subs.by_endpoint("e2").map(|s| s.user), Some(4));
        let last = format!("x{MAX_SUBSCRIPTIONS_PER_USER}");
        assert_eq!(subs.by_endpoint(&last).map(|s| s.user), Some(3));
        assert_eq!(subs.slots.len(), subs.len() + subs.free.len());
        assert!(subs.slots.len() < MAX_SUBSCRIPTIONS_PER_USER + 4, "freed slots are reused");
        // Rebuilding from `all` gives an equal set.
        let rebuilt = Subscriptions::from_parts(subs.all().into_iter().cloned().collect());
        assert_eq!(rebuilt, subs);
        assert_eq!(rebuilt.of(3), subs.of(3));
    }
}
