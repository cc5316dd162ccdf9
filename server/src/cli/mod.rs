//! The commands of the `nudge` binary that work on a data directory without a
//! server (`docs/cli.md`): [`generate`] is `nudge gen` (a synthetic dataset), [`import`]
//! loads NDJSON, [`query`] holds `query`, `explain` and `check`, and [`repl`]
//! the interactive prompt. `main.rs` parses the command line and calls these;
//! `nudge serve` is [`crate::http`].

pub mod generate;
pub mod import;
pub mod query;
pub mod repl;
