//! Users in the facade (issue 17, `docs/design/users-data.md`): what the
//! engine holds about one user (`GET /v1/users/{id}`) read on one consistent
//! state: profile, subscriptions, latest events, the saved segments they are
//! in and the latest decisions about them.

use super::Engine;
use crate::campaigns::stats::{self, DecisionEntry};
use crate::error::Result;
use crate::query::{self, UserSegments};
use crate::store::props::{self, Value};

/// Most events [`Engine::user`] lists, newest first.
pub const USER_LATEST_EVENTS: usize = 50;
/// Most decisions [`Engine::user`] lists, newest first.
pub const USER_LATEST_DECISIONS: usize = 50;

/// What the engine holds about one user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    /// The external id.
    pub user_id: String,
    /// Profile properties, by key name.
    pub profile: Vec<(String, Value)>,
    /// Web push subscriptions, oldest first.
    pub subscriptions: Vec<UserSubscription>,
    /// Events the app sent (not the engine's own `$…` events), newest first,
    /// at most [`USER_LATEST_EVENTS`].
    pub events: Vec<UserEvent>,
    /// Events in all, the engine's own included.
    pub event_count: usize,
    /// The saved segments the user is in now.
    pub segments: UserSegments,
    /// The engine's decisions about the user (fires, sends, drops, delays,
    /// outcomes), newest first, at most [`USER_LATEST_DECISIONS`].
    pub decisions: Vec<DecisionEntry>,
}

/// One subscription of a user, without its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSubscription {
    /// The push service URL (the caller shows its host only).
    pub endpoint: String,
    /// When it was stored, epoch ms.
    pub created_ms: i64,
}

/// One event of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserEvent {
    /// Its name.
    pub name: String,
    /// Its time, epoch ms.
    pub ts_ms: i64,
    /// Its properties, by key name.
    pub props: Vec<(String, Value)>,
}

impl Engine {
    /// What the engine holds about user `user_id`, with segments evaluated at
    /// `now_ms` (the engine clock when `None`); `None` when the id was never
    /// seen. An error when a day file failed its check while it was read.
    pub fn user(&self, user_id: &str, now_ms: Option<i64>) -> Result<Option<UserView>> {
        let now = now_ms.unwrap_or_else(|| self.options.clock.now_ms());
        let reader = self.read_state();
        let (dicts, store) = (&reader.dicts, &reader.state.store);
        let Some(user) = dicts.users.get(user_id) else { return Ok(None) };
        let all = store.events_of(user);
        let events = all
            .iter()
            .rev()
            .filter_map(|entry| {
                let name = dicts.events.name(entry.event())?;
                (!name.starts_with('$')).then(|| UserEvent {
                    name: name.to_owned(),
                    ts_ms: entry.ts_ms,
                    props: props::named(store.props(entry), &dicts.keys),
                })
            })
            .take(USER_LATEST_EVENTS)
            .collect();
        let subscriptions = store
            .subscriptions
            .of(user)
            .into_iter()
            .map(|s| UserSubscription { endpoint: s.endpoint.to_owned(), created_ms: s.created_ms })
            .collect();
        let mut decisions = stats::decisions_in(dicts, store, &all, None);
        decisions.reverse();
        decisions.truncate(USER_LATEST_DECISIONS);
        let source = reader.state.source();
        let segments = query::segments_of_user(dicts, &source, user, false, now)?;
        let view = UserView {
            user_id: user_id.to_owned(),
            profile: props::named(store.profiles.get(user), &dicts.keys),
            subscriptions,
            event_count: all.len(),
            events,
            segments,
            decisions,
        };
        store.sealed.damage()?;
        Ok(Some(view))
    }
}
