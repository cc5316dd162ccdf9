//! The `nudge-server` library behind the `nudge` binary: NDJSON records,
//! import, the query commands, and (the only crate that knows them) HTTP, JSON
//! and Web Push. The binary in `main.rs` is a thin command-line front; tests and
//! benches use these modules directly.

pub mod api_json;
pub mod error;
pub mod import;
pub mod ndjson;
pub mod query;
pub mod repl;
pub mod sender;
pub mod serve;
pub mod webhook;
pub mod webpush;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./nudge-data";
