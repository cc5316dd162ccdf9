//! `peers`: the side-by-side benchmark of Nudge against DuckDB, SQLite,
//! PostgreSQL, a Node Web Push sender and a Redis delay queue, on the same
//! generated data, with every answer compared before any time is reported
//! (issue 6; the plan is `shared/reference/performance.md` §4).
//!
//! `cargo run --release -p nudge-benches --bin peers -- --scale s` installs
//! what it needs (see `setup`), exports the dataset once, runs the parts and
//! writes the report. `--scale tiny --check` is CI's correctness smoke test.

mod context;
mod dataset;
mod ingest;
mod postgres;
mod push;
mod queries;
mod report;
mod setup;
mod triggers;

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

use crate::context::{Args, Context, Part};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("peers: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> context::Result<()> {
    let ctx = Context::prepare(args)?;
    let mut parts: Vec<Part> = Vec::new();
    // Ingest first: it loads every system the queries then read.
    if ctx.wants("ingest") {
        parts.push(ingest::run(&ctx)?);
    }
    if ctx.wants("queries") {
        parts.push(queries::run(&ctx)?);
    }
    if ctx.wants("push") {
        parts.push(push::run(&ctx)?);
    }
    if ctx.wants("triggers") {
        parts.push(triggers::run(&ctx)?);
    }
    report::write(&ctx, &parts)
}
