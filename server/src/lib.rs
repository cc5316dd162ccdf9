//! The `nudge-server` library behind the `nudge` binary, and the only crate
//! that knows HTTP, JSON and Web Push. Four parts, one folder each:
//!
//! - [`cli`]: the commands that work on a data directory without a server
//!   (`gen`, `import`, `query`, `explain`, `check`, `repl`);
//! - [`json`]: JSON ⇄ engine types (NDJSON records, campaigns, settings,
//!   stats), with one [`json::FieldError`] naming the field at fault;
//! - [`http`]: `nudge serve`, the HTTP API and its limits;
//! - [`push`]: the outbound side, Web Push and webhooks behind the SSRF guard.
//!
//! The binary in `main.rs` is a thin command-line front; tests and benches use
//! these modules directly.

pub mod cli;
pub mod error;
pub mod http;
pub mod json;
pub mod push;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./nudge-data";
