//! The campaigns layer: "who gets which message, when?"
//!
//! Campaign definitions, the delivery decision, the delivery policy (time
//! zones, quiet hours, caps, variants), schedules, message templates,
//! statistics, settings and the durable outbox.

pub mod campaign;
pub mod delivery;
pub mod outbox;
pub mod policy;
pub mod schedule;
pub mod stats;
pub mod template;
