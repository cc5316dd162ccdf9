//! Nudge's engine: an embedded, event-sourced store for behavioural
//! segmentation.
//!
//! The engine keeps an append-only event log (the only source of truth) and
//! derives from it, incrementally on ingest and again by replay on open:
//! dictionaries of dense ids, bitmap indexes of users, per-user timelines,
//! current profiles and web push subscriptions. Snapshots of derived state,
//! stamped with their log position, make open fast.
//!
//! It knows no HTTP, no JSON and no async runtime (that is the `server`
//! crate), and no query syntax (that is `query-lang`). Time comes from an
//! injected [`clock::Clock`].
//!
//! ```no_run
//! use nudge_engine::{Engine, EngineOptions, Event};
//! let engine = Engine::open("./nudge-data", EngineOptions::default())?;
//! let outcome = engine.ingest(vec![Event::new("u1", "Added To Cart").prop("price", 49.5).into()])?;
//! assert_eq!(outcome.accepted, 1);
//! # Ok::<(), nudge_engine::Error>(())
//! ```
//!
//! Limits on input are in [`limits`]; the on-disk format is specified in
//! `docs/design/event-log-format.md`.

mod campaigns;
pub mod clock;
pub mod dataset;
mod engine;
pub mod error;
#[cfg(test)]
mod golden;
pub mod limits;
pub mod query;
mod store;
pub mod triggers;

// Old paths, kept while the curated surface is built.
pub use campaigns::{campaign, delivery, outbox, policy, schedule, stats, template};
pub use engine::{snapshot, state};
pub use query as segment;
pub use store::log::entry as wire;
pub use store::{dedupe, dict, log, props, record};
pub use triggers as rules;

pub use engine::loops::{MAX_ITEMS_IN_FLIGHT, OUTBOX_DRAIN_GRACE, OutboxLoop, OutboxReports};
pub use engine::{Engine, EngineOptions, IngestOutcome, OpenReport, StateReader};
pub use engine::{Fire, FireLoop, LOOP_IDLE_WAIT_MS};
pub use error::{Error, Result};
pub use log::{Durability, RecoveryMode};
pub use props::Value;
pub use query::{Answer, PlanStep, QueryOptions, Strategy};
pub use store::record::{Event, ProfileUpdate, Record, Subscription};
pub use triggers::decide::{TRIGGER_DROPPED_EVENT, TRIGGER_FIRED_EVENT};
