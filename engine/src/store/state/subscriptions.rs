//! Active web push subscriptions, folded from subscribe and unsubscribe
//! records in log order.
//!
//! An endpoint belongs to one user at a time: subscribing an endpoint another
//! user held moves it. A user keeps at most `MAX_SUBSCRIPTIONS_PER_USER`
//! subscriptions; a further one replaces the oldest. The set of users with at
//! least one subscription is `Indexes::webpush_user_ids`.

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

/// All active subscriptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscriptions {
    by_endpoint: FastMap<String, StoredSubscription>,
    /// Per user, endpoints oldest first.
    by_user: FastMap<UserId, Vec<String>>,
}

impl Subscriptions {
    /// Adds (or moves) a subscription.
    pub fn subscribe(&mut self, subscription: StoredSubscription, reachable: &mut RoaringBitmap) {
        self.unsubscribe(&subscription.endpoint.clone(), reachable);
        let user = subscription.user;
        let endpoints = self.by_user.entry(user).or_default();
        if endpoints.len() >= MAX_SUBSCRIPTIONS_PER_USER {
            let oldest = endpoints.remove(0);
            self.by_endpoint.remove(&oldest);
        }
        endpoints.push(subscription.endpoint.clone());
        self.by_endpoint.insert(subscription.endpoint.clone(), subscription);
        reachable.insert(user);
    }

    /// Removes a subscription by endpoint (unknown endpoints are ignored).
    pub fn unsubscribe(&mut self, endpoint: &str, reachable: &mut RoaringBitmap) {
        let Some(old) = self.by_endpoint.remove(endpoint) else { return };
        if let Some(endpoints) = self.by_user.get_mut(&old.user) {
            endpoints.retain(|e| e != endpoint);
            if endpoints.is_empty() {
                self.by_user.remove(&old.user);
                reachable.remove(old.user);
            }
        }
    }

    /// `user`'s subscriptions, oldest first.
    pub fn of(&self, user: UserId) -> Vec<&StoredSubscription> {
        self.by_user
            .get(&user)
            .map(|endpoints| endpoints.iter().filter_map(|e| self.by_endpoint.get(e)).collect())
            .unwrap_or_default()
    }

    #[cfg(any(test, feature = "internals"))]
    /// The subscription with this endpoint.
    pub fn by_endpoint(&self, endpoint: &str) -> Option<&StoredSubscription> {
        self.by_endpoint.get(endpoint)
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
            by_endpoint: FastMap::with_capacity_and_hasher(stored.len(), Default::default()),
            by_user: FastMap::default(),
        };
        for sub in stored {
            subscriptions.by_user.entry(sub.user).or_default().push(sub.endpoint.clone());
            subscriptions.by_endpoint.insert(sub.endpoint.clone(), sub);
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
    }
}
