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
pub use crate::store::state::mapped::{MappedSubscriptions, SubscriptionRef};

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
    /// When it was stored: the engine clock of the batch that subscribed it, epoch ms.
    pub created_ms: i64,
}

/// All active subscriptions, in two tiers: those of the snapshot this state
/// was opened from, read in place ([`MappedSubscriptions`]) less those removed
/// since, and those added since, on the heap, each stored once: a slab of
/// subscriptions, a table of slot numbers hashed by endpoint, and each user's
/// slot numbers. A user's mapped subscriptions are older than their heap ones.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    mapped: MappedSubscriptions,
    /// Indexes of mapped subscriptions removed since.
    removed: RoaringBitmap,
    slots: Vec<Option<StoredSubscription>>,
    free: Vec<u32>,
    by_endpoint: hashbrown::HashTable<u32>,
    hasher: crate::store::dict::Hasher,
    /// Per user, slot numbers oldest first.
    by_user: FastMap<UserId, Vec<u32>>,
    /// While a snapshot of this set is being written: every change since it
    /// was encoded, to replay onto it ([`Subscriptions::rebase`]).
    journal: Option<Vec<Change>>,
}

/// A change to the set, as the journal keeps it.
#[derive(Debug, Clone)]
enum Change {
    Subscribe(StoredSubscription),
    Unsubscribe(String),
}

/// Where a subscription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Its index in the mapped section.
    Mapped(u32),
    /// Its slot on the heap.
    Heap(u32),
}

impl PartialEq for Subscriptions {
    /// The same subscriptions, whatever tier and slots they sit in.
    fn eq(&self, other: &Self) -> bool {
        self.all() == other.all()
    }
}

impl StoredSubscription {
    fn as_ref(&self) -> SubscriptionRef<'_> {
        SubscriptionRef {
            user: self.user,
            endpoint: &self.endpoint,
            p256dh: &self.p256dh,
            auth: &self.auth,
            created_ms: self.created_ms,
        }
    }
}

impl Subscriptions {
    /// Subscriptions read in place from a snapshot's section.
    pub fn mapped(mapped: MappedSubscriptions) -> Self {
        Subscriptions { mapped, ..Subscriptions::default() }
    }

    /// Approximate heap bytes held: the heap tier's slots and their strings,
    /// its endpoint table and per-user lists, and the removed set.
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
            + if self.removed.is_empty() { 0 } else { self.removed.serialized_size() }
    }

    /// Bytes of the snapshot file read in place.
    pub fn mapped_bytes(&self) -> usize {
        self.mapped.mapped_bytes()
    }

    fn slot(&self, index: u32) -> Option<&StoredSubscription> {
        self.slots.get(index as usize).and_then(Option::as_ref)
    }

    fn get(&self, found: Found) -> Option<SubscriptionRef<'_>> {
        match found {
            Found::Mapped(i) => self.mapped.get(i),
            Found::Heap(i) => self.slot(i).map(StoredSubscription::as_ref),
        }
    }

    fn find(&self, endpoint: &str) -> Option<Found> {
        let hash = self.hasher.hash_one(endpoint.as_bytes());
        if let Some(&i) =
            self.by_endpoint.find(hash, |&i| self.slot(i).is_some_and(|s| s.endpoint == endpoint))
        {
            return Some(Found::Heap(i));
        }
        self.mapped.find(endpoint).filter(|&i| !self.removed.contains(i)).map(Found::Mapped)
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

    /// Removes a subscription; returns its owner.
    fn take(&mut self, found: Found) -> Option<UserId> {
        match found {
            Found::Mapped(i) => {
                let user = self.mapped.get(i)?.user;
                self.removed.insert(i);
                Some(user)
            }
            Found::Heap(index) => {
                let subscription = self.slots.get_mut(index as usize)?.take()?;
                let hash = self.hasher.hash_one(subscription.endpoint.as_bytes());
                if let Ok(entry) = self.by_endpoint.find_entry(hash, |&i| i == index) {
                    entry.remove();
                }
                self.free.push(index);
                let user = subscription.user;
                if let Some(slots) = self.by_user.get_mut(&user) {
                    slots.retain(|&i| i != index);
                    if slots.is_empty() {
                        self.by_user.remove(&user);
                    }
                }
                Some(user)
            }
        }
    }

    /// Where `user`'s subscriptions are, oldest first.
    fn found_of(&self, user: UserId) -> impl Iterator<Item = Found> + '_ {
        let mapped = self.mapped.of(user).filter(|&i| !self.removed.contains(i)).map(Found::Mapped);
        let heap = self.by_user.get(&user).into_iter().flatten().map(|&i| Found::Heap(i));
        mapped.chain(heap)
    }

    /// Starts keeping every change, for [`Subscriptions::rebase`] onto a
    /// snapshot of the set as it is now.
    pub fn start_journal(&mut self) {
        self.journal = Some(Vec::new());
    }

    /// Stops keeping changes (the snapshot was not written).
    pub fn drop_journal(&mut self) {
        self.journal = None;
    }

    /// Moves onto `mapped`, the snapshot of this set taken when the journal
    /// started, and replays the changes since: the heap then holds only
    /// those. Without a journal nothing changes.
    pub fn rebase(&mut self, mapped: MappedSubscriptions) {
        let Some(journal) = self.journal.take() else { return };
        let mut next = Subscriptions::mapped(mapped);
        // The reachable index is already right; the replay's copy is thrown away.
        let mut reachable = RoaringBitmap::new();
        for change in journal {
            match change {
                Change::Subscribe(subscription) => next.subscribe(subscription, &mut reachable),
                Change::Unsubscribe(endpoint) => next.unsubscribe(&endpoint, &mut reachable),
            }
        }
        *self = next;
    }

    /// Adds (or moves) a subscription.
    pub fn subscribe(&mut self, subscription: StoredSubscription, reachable: &mut RoaringBitmap) {
        if let Some(journal) = &mut self.journal {
            journal.push(Change::Subscribe(subscription.clone()));
        }
        self.remove_endpoint(&subscription.endpoint, reachable);
        let user = subscription.user;
        let oldest = self.found_of(user).next();
        if let Some(oldest) = oldest
            && self.found_of(user).count() >= MAX_SUBSCRIPTIONS_PER_USER
        {
            self.take(oldest);
        }
        let index = self.insert(subscription);
        self.by_user.entry(user).or_default().push(index);
        reachable.insert(user);
    }

    /// Removes a subscription by endpoint (unknown endpoints are ignored).
    pub fn unsubscribe(&mut self, endpoint: &str, reachable: &mut RoaringBitmap) {
        if let Some(journal) = &mut self.journal {
            journal.push(Change::Unsubscribe(endpoint.to_owned()));
        }
        self.remove_endpoint(endpoint, reachable);
    }

    fn remove_endpoint(&mut self, endpoint: &str, reachable: &mut RoaringBitmap) {
        let Some(found) = self.find(endpoint) else { return };
        let Some(user) = self.take(found) else { return };
        if self.found_of(user).next().is_none() {
            reachable.remove(user);
        }
    }

    /// `user`'s subscriptions, oldest first.
    pub fn of(&self, user: UserId) -> Vec<SubscriptionRef<'_>> {
        self.found_of(user).filter_map(|found| self.get(found)).collect()
    }

    #[cfg(any(test, feature = "internals"))]
    /// The subscription with this endpoint.
    pub fn by_endpoint(&self, endpoint: &str) -> Option<SubscriptionRef<'_>> {
        self.find(endpoint).and_then(|found| self.get(found))
    }

    #[cfg(any(test, feature = "internals"))]
    /// Number of active subscriptions.
    pub fn len(&self) -> usize {
        self.mapped.count() - self.removed.len() as usize + self.by_endpoint.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Subscriptions on the heap (added since the mapped snapshot).
    pub fn heap_count(&self) -> usize {
        self.by_endpoint.len()
    }

    /// Every subscription in a deterministic order (user, then age).
    pub fn all(&self) -> Vec<SubscriptionRef<'_>> {
        let mut users: Vec<UserId> = self.by_user.keys().copied().collect();
        let mut previous = None;
        for user in (0..self.mapped.count() as u32).map(|i| self.mapped.user(i)) {
            if previous != Some(user) {
                users.push(user);
                previous = Some(user);
            }
        }
        users.sort_unstable();
        users.dedup();
        users.into_iter().flat_map(|u| self.of(u)).collect()
    }

    /// Writes every subscription as a section [`MappedSubscriptions::parse`] reads.
    pub fn encode_section(&self, out: &mut Vec<u8>) {
        MappedSubscriptions::encode(out, &self.all());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(user: UserId, endpoint: &str) -> StoredSubscription {
        StoredSubscription {
            user,
            endpoint: endpoint.into(),
            p256dh: "k".into(),
            auth: "a".into(),
            created_ms: 7,
        }
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
        // Read in place from its section, an equal set.
        let rebuilt = Subscriptions::mapped(section(&subs));
        assert_eq!(rebuilt, subs);
        assert_eq!(rebuilt.of(3), subs.of(3));
        assert_eq!((rebuilt.heap_count(), rebuilt.len()), (0, subs.len()));
    }

    fn section(subs: &Subscriptions) -> MappedSubscriptions {
        let mut bytes = vec![7u8; 3];
        subs.encode_section(&mut bytes);
        let file = std::sync::Arc::new(crate::store::log::storage::FileBytes::copied(&bytes));
        let (mapped, end) = MappedSubscriptions::parse(file, 3, bytes.len()).expect("parses");
        assert_eq!(end, bytes.len());
        mapped
    }

    /// The same operations on a heap-only set and on one read in place from
    /// a snapshot of it leave equal sets: moves, unsubscribes and the cap
    /// reach the mapped tier.
    #[test]
    fn the_mapped_tier_answers_and_changes_like_the_heap() {
        let mut heap = Subscriptions::default();
        let mut reachable = RoaringBitmap::new();
        for user in 0..50u32 {
            for k in 0..(user % 4) {
                heap.subscribe(sub(user, &format!("https://push/{user}/{k}")), &mut reachable);
            }
        }
        let mut mapped = Subscriptions::mapped(section(&heap));
        let mut mapped_reachable = reachable.clone();
        assert_eq!(mapped, heap);
        assert_eq!(mapped.by_endpoint("https://push/7/2").map(|s| s.user), Some(7));
        assert_eq!(mapped.by_endpoint("https://push/7/3"), None);
        assert_eq!(mapped.of(8), Vec::new());
        let ops: Vec<(bool, UserId, String)> = vec![
            (false, 0, "https://push/7/0".into()), // unsubscribe a mapped one
            (true, 9, "https://push/7/1".into()),  // move a mapped one to user 9
            (true, 3, "https://push/3/new".into()), // a heap one beside mapped ones
            (false, 0, "https://push/3/new".into()), // and gone again
            (false, 0, "https://push/5/0".into()), // user 5's only one: unreachable
            (true, 48, "https://push/48/new".into()),
        ];
        let mut ops = ops;
        for k in 0..=MAX_SUBSCRIPTIONS_PER_USER {
            // Over the cap: the mapped ones go first, oldest first.
            ops.push((true, 11, format!("https://push/11/extra{k}")));
        }
        for (subscribe, user, endpoint) in ops {
            for (set, bitmap) in [(&mut heap, &mut reachable), (&mut mapped, &mut mapped_reachable)]
            {
                if subscribe {
                    set.subscribe(sub(user, &endpoint), bitmap);
                } else {
                    set.unsubscribe(&endpoint, bitmap);
                }
            }
            assert_eq!(mapped, heap, "after {endpoint}");
            assert_eq!(mapped_reachable, reachable, "after {endpoint}");
            assert_eq!(mapped.len(), heap.len());
        }
        assert!(!reachable.contains(5));
        assert_eq!(mapped.of(11).len(), MAX_SUBSCRIPTIONS_PER_USER);
        assert_eq!(mapped.by_endpoint("https://push/11/0"), None, "the oldest, mapped, replaced");
        // And a snapshot of the two tiers reads back equal again.
        assert_eq!(Subscriptions::mapped(section(&mapped)), heap);
    }

    #[test]
    fn rebase_replays_the_changes_made_while_the_snapshot_was_written() {
        let mut subs = Subscriptions::default();
        let mut reachable = RoaringBitmap::new();
        for user in 0..10u32 {
            subs.subscribe(sub(user, &format!("e{user}")), &mut reachable);
        }
        subs.start_journal();
        let written = section(&subs);
        // Meanwhile: one removed, one re-added as the newest, one new.
        subs.unsubscribe("e3", &mut reachable);
        subs.subscribe(sub(4, "e4"), &mut reachable);
        subs.subscribe(sub(4, "e4b"), &mut reachable);
        subs.unsubscribe("e4", &mut reachable);
        subs.subscribe(sub(4, "e4"), &mut reachable);
        let expected = subs.clone();
        subs.rebase(written);
        assert_eq!(subs, expected);
        assert_eq!(subs.of(4).iter().map(|s| s.endpoint).collect::<Vec<_>>(), ["e4b", "e4"]);
        assert_eq!(subs.heap_count(), 2, "only the changes since are on the heap");
        // Without a journal (a snapshot not written), rebase changes nothing.
        let before = subs.clone();
        subs.rebase(MappedSubscriptions::default());
        assert_eq!(subs, before);
    }

    #[test]
    fn a_damaged_section_is_refused_without_panicking() {
        let mut subs = Subscriptions::default();
        let mut reachable = RoaringBitmap::new();
        subs.subscribe(sub(1, "https://a"), &mut reachable);
        subs.subscribe(sub(4, "https://b"), &mut reachable);
        let mut bytes = Vec::new();
        subs.encode_section(&mut bytes);
        let parse = |bytes: &[u8]| {
            let file = std::sync::Arc::new(crate::store::log::storage::FileBytes::copied(bytes));
            MappedSubscriptions::parse(file, 0, bytes.len()).map(|_| ())
        };
        assert_eq!(parse(&bytes), Ok(()));
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut small_table = bytes.clone();
        small_table[8..16].copy_from_slice(&2u64.to_le_bytes());
        assert!(parse(&small_table).expect_err("refused").contains("table of 2 slots"));
        let mut users_disordered = bytes.clone();
        users_disordered[16..20].copy_from_slice(&9u32.to_le_bytes());
        assert!(parse(&users_disordered).expect_err("refused").contains("out of order"));
    }
}
