//! The engine's derived state, composed of each layer's own: the store's core
//! state, the saved segments and query cache, the triggers with their pending
//! fires, and the campaigns with their outbox.
//!
//! [`DerivedState::apply`] is the one fold of a durable batch: each entry, in
//! log order, goes to every layer, and each layer applies the entries that
//! are its own. The same batches in the same order give the same state, which
//! the replay tests check bit for bit (`snapshot::encode` of both).

use crate::campaigns::CampaignState;
use crate::query::{QueryState, Source};
use crate::store::dict::Dictionaries;
use crate::store::log::LogPosition;
use crate::store::log::entry::ArchivedLogBatch;
use crate::store::state::{self, StoreState};
use crate::triggers::TriggerState;

/// Everything the engine knows that is not the log itself, as of a log position.
#[derive(Debug, Clone, Default)]
pub struct DerivedState {
    /// Timelines, indexes, profiles, subscriptions (and the log position).
    pub store: StoreState,
    /// Saved segments and the query cache.
    pub queries: QueryState,
    /// Saved triggers and their pending fires.
    pub triggers: TriggerState,
    /// Campaigns, the outbox, delivery settings and schedule progress.
    pub campaigns: CampaignState,
}

impl DerivedState {
    /// Applies one durable batch ending at log position `end` (`dicts` already
    /// holds the batch's new names).
    pub fn apply(&mut self, batch: &ArchivedLogBatch, end: LogPosition, dicts: &Dictionaries) {
        self.apply_except_event_values(batch, end, dicts);
        state::apply_event_values(&mut self.store.indexes.event_property_value_user_ids, batch);
    }

    /// Applies everything of a batch but the event property value indexes, which
    /// the caller applies with [`state::apply_event_values`] (replay does so on
    /// another thread).
    pub fn apply_except_event_values(
        &mut self,
        batch: &ArchivedLogBatch,
        end: LogPosition,
        dicts: &Dictionaries,
    ) {
        let received_ms = batch.received_ms.to_native();
        // Triggers see the fresh events of live batches only.
        let live = self.triggers.is_live(batch);
        for (index, entry) in batch.entries.iter().enumerate() {
            let applied = self.store.apply_entry(entry, received_ms);
            self.queries.apply_entry(entry);
            self.triggers.apply_entry(
                dicts,
                entry,
                applied.as_ref().map(|event| (index, event)),
                (end, received_ms, live),
            );
            self.campaigns.apply_entry(entry, received_ms);
        }
        debug_assert!(end >= self.store.position);
        self.store.position = end;
    }

    /// What a query reads.
    pub fn source(&self) -> Source<'_> {
        self.queries.source(&self.store)
    }

    /// The log position this state reflects.
    pub fn position(&self) -> LogPosition {
        self.store.position
    }
}
