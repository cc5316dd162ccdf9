//! The outbound side of `nudge serve`: delivering the engine's outbox.
//!
//! - [`sender`]: the pooled HTTP client, concurrency limits, and the mapping
//!   of every answer to an engine report;
//! - [`guard`]: the SSRF guard, every check of where the sender may connect;
//! - [`webpush`]: RFC 8291 encryption, RFC 8292 VAPID and what a push
//!   service's answer means, as plain functions;
//! - [`webhook`]: the signed request of a campaign's webhook item.
//!
//! The inbound side (the HTTP API) is [`crate::http`].

pub mod guard;
pub mod sender;
pub mod webhook;
pub mod webpush;
