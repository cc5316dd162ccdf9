//! Nudge's engine: an embedded, event-sourced rule-engine database for
//! behavioural segmentation and triggered messages.
//!
//! One append-only event log is the only source of truth. From it the engine
//! derives, incrementally on ingest and again by replay on open, everything
//! it answers from: dense ids, bitmap indexes, per-user timelines, profiles
//! and web push subscriptions; saved segments; triggers with their pending
//! fires; campaigns with their durable outbox. Snapshots make open fast.
//!
//! - **Segments**: [`Engine::query`] answers the segment language
//!   (`docs/query-language.md`) in microseconds; [`Engine::save_segment`].
//! - **Triggers**: [`Engine::save_trigger`] arms on live events;
//!   [`Engine::fire_due`] (or a [`FireLoop`]) decides each fire once and
//!   records it durably before reporting it.
//! - **Campaigns**: [`Engine::save_campaign`] turns fires and schedules into
//!   delivery decisions (caps, quiet hours, time zones, variants); messages
//!   wait in a durable outbox that a sender drains with an [`OutboxLoop`].
//!
//! It is not: an HTTP server, a JSON codec or an async runtime (that is the
//! `nudge-server` crate), nor a query parser (that is `nudge-query-lang`).
//! Its API is blocking; time comes from an injected [`clock::Clock`].
//!
//! ```
//! use std::sync::Arc;
//! use nudge_engine::clock::{Clock, ManualClock};
//! use nudge_engine::{Engine, EngineOptions, Event, FireOutcome, QueryOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let clock = ManualClock::new(1_767_225_600_000);
//! let engine = Engine::open(dir.path(), EngineOptions { clock: Arc::new(clock.clone()), ..Default::default() })?;
//!
//! let now = clock.now_ms();
//! engine.ingest(vec![Event::new("ann", "Added To Cart").at(now).prop("price", 49.5).into()])?;
//! engine.save_segment("carts", r#"did "Added To Cart" in last 7d"#)?;
//! let answer = engine.query(r#"in segment "carts" and not did "Charged""#, &QueryOptions::default())?;
//! assert_eq!(answer.users, ["ann"]);
//!
//! engine.save_trigger("cart", r#"on "Added To Cart" unless "Charged" within 10m"#)?;
//! engine.ingest(vec![Event::new("bob", "Added To Cart").at(now).into()])?;
//! clock.set(now + 10 * 60_000);
//! let fires = engine.fire_due()?;
//! assert_eq!((fires[0].user_id.as_str(), fires[0].outcome), ("bob", FireOutcome::Fired));
//! engine.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `engine/examples/` has more: a segment query on generated data, a live
//! trigger with the fire loop, a campaign whose outbox is drained by a
//! closure. Limits on input are in [`limits`]; the on-disk format is
//! specified in `docs/design/event-log-format.md`; the layers are described
//! in `ARCHITECTURE.md`.
//!
//! Cargo features: `dataset` (the synthetic [`dataset`] generator, for
//! `nudge gen`, tests and benchmarks) and `internals` (test support: the
//! crash-simulating log storage, the log and snapshot formats, whitebox
//! reads; never needed to embed the engine).

mod campaigns;
pub mod clock;
#[cfg(feature = "dataset")]
pub mod dataset;
mod engine;
mod error;
#[cfg(test)]
mod golden;
pub mod limits;
mod query;
mod store;
mod triggers;

pub use engine::loops::{MAX_ITEMS_IN_FLIGHT, OUTBOX_DRAIN_GRACE, OutboxLoop, OutboxReports};
pub use engine::{
    DAMAGED_EXTENSION, DEFAULT_SEAL_GRACE_MS, DayFileCheck, Engine, EngineOptions, Fire, FireLoop,
    HeapBytes, IngestOutcome, LOOP_IDLE_WAIT_MS, OpenReport, SealLoop, SealedDayReport,
    StorageTiers, USER_LATEST_DECISIONS, USER_LATEST_EVENTS, UserEvent, UserSubscription, UserView,
    default_head_budget_bytes,
};
pub use error::{Error, Result};
pub use query::{
    Answer, DEFAULT_ANSWER_LIMIT, MAX_SEGMENT_NAME_BYTES, PlanStep, QueryOptions, Strategy,
    UserSegments,
};
pub use store::dedupe::DEFAULT_DEDUPE_WINDOW_MS;
pub use store::log::{Durability, RecoveryMode};
pub use store::props::Value;
pub use store::record::{Event, ProfileUpdate, Record, Subscription, validate, validate_batch};
pub use triggers::decide::{TRIGGER_DROPPED_EVENT, TRIGGER_FIRED_EVENT};
pub use triggers::{
    DEFAULT_FIRE_GRACE_MS, DEFAULT_FRESHNESS_MS, FireOutcome, MAX_TRIGGER_NAME_BYTES,
};

/// Campaigns: definitions, delivery decisions and settings, the outbox items
/// a sender takes and the attempts it reports, statistics, and the system
/// events every decision and outcome records.
pub mod campaign {
    pub use crate::campaigns::campaign::{
        Action, Campaign, Caps, Conversion, Every, IfPassed, MAX_CAMPAIGN_ID_BYTES,
        MAX_TOPIC_CHARS, MAX_VARIANTS, Message, QuietHours, QuietMode, Recurring, Schedule,
        ScheduleZone, StoredCampaign, USER_ZONE_NAME, Variant, Webhook, format_local_time,
        parse_local_time, weekday_name, weekday_of_name,
    };
    pub use crate::campaigns::delivery::{
        CAMPAIGN_FIRED_EVENT, Delivery, DeliverySettings, PUSH_DELAYED_EVENT, PUSH_DROPPED_EVENT,
        PUSH_SENT_EVENT,
    };
    pub use crate::campaigns::outbox::{
        Attempt, DEFAULT_EXPIRY_MS, MAX_ATTEMPTS, Notification, OUTBOX_LEASE_MS, OutboxItem,
        PUSH_DELIVERED_EVENT, PUSH_FAILED_EVENT, Target, WEBHOOK_DELIVERED_EVENT,
        WEBHOOK_FAILED_EVENT,
    };
    pub use crate::campaigns::policy::{DEFAULT_TIMEZONE, parse_timezone};
    pub use crate::campaigns::stats::{
        CampaignStats, DECISION_EVENTS, DecisionEntry, Engagement, MAX_ACTION_BYTES,
        PUSH_CLICKED_EVENT, PUSH_CLOSED_EVENT, PUSH_VIEWED_EVENT, VariantStats,
    };
    pub use crate::campaigns::template::{MAX_RENDERED_BYTES, check as check_template};
}

/// Test support, behind the `internals` feature: the log's formats and
/// storage (with the crash simulation), snapshots, the derived state and
/// the records the engine writes itself. Not part of the embedding API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::campaigns::outbox::{DeliveryRecord, ScheduleMark};
    pub use crate::campaigns::stored::SettingsRecord;
    pub use crate::engine::state::DerivedState;
    pub use crate::engine::{StateReader, snapshot};
    pub use crate::store::log::entry;
    pub use crate::store::state::sealed_days;
    pub use crate::store::{dedupe, dict, log, props, sealed};
}
