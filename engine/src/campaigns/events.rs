//! The catalogue of the system events the campaigns layer records for each
//! user (every decision and every outcome is an event, so "why" is a query)
//! and of the property keys they carry. Writers and readers (statistics, the
//! decisions log, engagement tracking) name keys through [`keys`], so the two
//! sides cannot drift apart. (The triggers layer's own events,
//! `$trigger_fired` and `$trigger_dropped`, are named in `triggers/decide.rs`.)

/// The event recorded when a campaign targets a user.
pub const CAMPAIGN_FIRED_EVENT: &str = "$campaign_fired";
/// The event recorded when a campaign does not send (`reason`).
pub const PUSH_DROPPED_EVENT: &str = "$push_dropped";
/// The event recorded when quiet hours hold a message (`until`).
pub const PUSH_DELAYED_EVENT: &str = "$push_delayed";
/// The event recorded for each message queued, at the time it goes out; caps count these.
pub const PUSH_SENT_EVENT: &str = "$push_sent";
/// The event recorded when the push service accepted a message.
pub const PUSH_DELIVERED_EVENT: &str = "$push_delivered";
/// The event recorded when a message failed for good (`reason`, `status`).
pub const PUSH_FAILED_EVENT: &str = "$push_failed";
/// The event recorded when a webhook call succeeded.
pub const WEBHOOK_DELIVERED_EVENT: &str = "$webhook_delivered";
/// The event recorded when a webhook call failed for good.
pub const WEBHOOK_FAILED_EVENT: &str = "$webhook_failed";
/// The event a notification shown records.
pub const PUSH_VIEWED_EVENT: &str = "$push_viewed";
/// The event a notification clicked records.
pub const PUSH_CLICKED_EVENT: &str = "$push_clicked";
/// The event a notification closed records.
pub const PUSH_CLOSED_EVENT: &str = "$push_closed";

/// The events that explain what happened to a user's messages, in the order
/// a decision and its outcome record them.
pub const DECISION_EVENTS: [&str; 11] = [
    CAMPAIGN_FIRED_EVENT,
    PUSH_DELAYED_EVENT,
    PUSH_SENT_EVENT,
    PUSH_DROPPED_EVENT,
    PUSH_DELIVERED_EVENT,
    PUSH_FAILED_EVENT,
    PUSH_VIEWED_EVENT,
    PUSH_CLICKED_EVENT,
    PUSH_CLOSED_EVENT,
    WEBHOOK_DELIVERED_EVENT,
    WEBHOOK_FAILED_EVENT,
];

/// The property keys of the system events.
pub mod keys {
    /// The campaign's id.
    pub const CAMPAIGN: &str = "campaign";
    /// The delivery's id: the Web Push notification tag, the webhook idempotency key.
    pub const DELIVERY_ID: &str = "delivery_id";
    /// The variant's name, when the campaign has variants.
    pub const VARIANT: &str = "variant";
    /// Why a message was dropped or failed.
    pub const REASON: &str = "reason";
    /// `true` on the events of a test send (kept out of the statistics).
    pub const TEST: &str = "test";
    /// The push service's or webhook receiver's HTTP status.
    pub const STATUS: &str = "status";
    /// The fire that caused a campaign decision.
    pub const FIRE_ID: &str = "fire_id";
    /// The notification action a user clicked.
    pub const ACTION: &str = "action";
}
