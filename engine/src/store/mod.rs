//! The store layer: "store this record; what survives a crash?"
//!
//! Caller records and their validation, the sequencer that gives them dense
//! ids and log entries, the event log with its entry schema, the property
//! codec, the dictionaries, the idempotency index, the metadata store, and
//! the core derived state (timelines, bitmap indexes, profiles,
//! subscriptions). It knows no query, trigger or campaign.

pub mod dedupe;
pub mod dict;
pub mod log;
pub mod meta;
pub mod props;
pub mod record;
// The day file format is built and tested ahead of the sealer that will use
// it (docs/design/sealed-days.md, step 3); until then only tests and the
// `internals` feature reach it.
#[cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]
pub mod sealed;
pub mod sequencer;
pub mod state;
