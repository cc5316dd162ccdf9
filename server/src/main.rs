//! The `nudge` command line: one binary for generating, importing, querying
//! and serving a Nudge data directory. This file only parses the command line
//! (clap) and calls the library: `nudge_server::cli` for the local commands,
//! `nudge_server::http` for `nudge serve`. Commands and flags follow
//! `shared/spec/interfaces.md` and are documented in `docs/cli.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use nudge_engine::EngineOptions;

use nudge_server::cli::{generate, import, query, repl};
use nudge_server::error::{Error, Result};
use nudge_server::{DEFAULT_DATA_DIR, http};

/// mimalloc does not return freed bitmap buffers to the OS on every free, which
/// glibc's trimming does at a measured 3–10× cost (performance.md §1).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "nudge",
    version,
    about = "Nudge: behavioural segmentation and triggered web push in one embedded engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a deterministic synthetic dataset as NDJSON to standard output.
    Gen {
        /// Number of users.
        #[arg(long)]
        users: u64,
        /// Days of history.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// End of the generated window (RFC 3339 or epoch ms); default 2026-11-01T00:00:00Z.
        #[arg(long)]
        now: Option<String>,
    },
    /// Evaluate a segment expression.
    Query {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The query's `now` (RFC 3339 or epoch ms); default the clock.
        #[arg(long)]
        now: Option<String>,
        /// Most user ids to print (0 prints only the count).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print one JSON object: {"count", "users", "took_us", "warnings", "now"}.
        #[arg(long)]
        json: bool,
        /// The segment expression.
        expr: String,
    },
    /// Print the plan of a segment expression, with per-step sizes and times.
    Explain {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// The query's `now` (RFC 3339 or epoch ms); default the clock.
        #[arg(long)]
        now: Option<String>,
        /// The segment expression.
        expr: String,
    },
    /// Parse a segment expression or a trigger only; print its canonical form.
    Check {
        /// The expression or trigger.
        expr: String,
    },
    /// Interactive queries with history, multi-line input, \explain and \timing.
    Repl {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
    },
    /// Run the HTTP server: the API, the trigger and outbox loops, and Web Push delivery.
    Serve(http::ServeOptions),
    /// Load NDJSON records into a data directory (fires no triggers).
    Import {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// File to read, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Memory the in-memory head may take before the days holding the
        /// most rows are sealed into day files (default: a quarter of
        /// physical memory).
        #[arg(long)]
        head_memory_mb: Option<usize>,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Query { data, now, limit, json, expr } => {
            query::query(&query::open(&data)?, &expr, &query::local_options(now, limit)?, json)
        }
        Command::Explain { data, now, expr } => {
            query::explain(&query::open(&data)?, &expr, &query::local_options(now, 0)?)
        }
        Command::Check { expr } => {
            println!("{}", query::check(&expr)?);
            Ok(())
        }
        Command::Repl { data } => repl::run(&query::open(&data)?, &data),
        Command::Serve(options) => http::run(options),
        Command::Gen { users, days, seed, now } => generate::run(users, days, seed, now),
        Command::Import { data, file, head_memory_mb } => {
            let budget =
                head_memory_mb.map_or_else(nudge_engine::default_head_budget_bytes, |mb| mb << 20);
            let summary = import::run(&data, &file, EngineOptions::default(), budget)?;
            eprintln!(
                "imported {} records ({} duplicate events skipped) from {} lines into {}; {} day files written",
                summary.accepted,
                summary.duplicates,
                summary.lines,
                data.display(),
                summary.day_files
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(Error::Engine(nudge_engine::Error::Query { rendered, .. })) => {
            eprintln!("{rendered}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
