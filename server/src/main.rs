//! The `nudge` command line: one binary for generating, importing and (in
//! later work) querying and serving a Nudge data directory. Commands and
//! flags follow `shared/spec/interfaces.md` and are documented in `docs/cli.md`.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use nudge_engine::EngineOptions;
use nudge_engine::dataset::{self, DatasetSpec};

mod error;
mod import;
mod ndjson;

use error::{Error, Result};

/// mimalloc does not return freed bitmap buffers to the OS on every free, which
/// glibc's trimming does at a measured 3–10× cost (performance.md §1).
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./nudge-data";

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
    /// Load NDJSON records into a data directory (fires no triggers).
    Import {
        /// Data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: PathBuf,
        /// File to read, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
}

fn generate(users: u64, days: u32, seed: u64, now: Option<String>) -> Result<()> {
    let mut spec = DatasetSpec { users, days, seed, ..DatasetSpec::new(users) };
    if let Some(text) = now {
        spec.now_ms =
            ndjson::parse_timestamp_text(&text).map_err(|e| Error::Usage(format!("--now: {e}")))?;
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let io =
        |e: std::io::Error| Error::Io { context: "writing to standard output".into(), source: e };
    for record in dataset::records(spec) {
        serde_json::to_writer(&mut out, &ndjson::encode(&record)).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Gen { users, days, seed, now } => generate(users, days, seed, now),
        Command::Import { data, file } => {
            let summary = import::run(&data, &file, EngineOptions::default())?;
            eprintln!(
                "imported {} records ({} duplicate events skipped) from {} lines into {}",
                summary.accepted,
                summary.duplicates,
                summary.lines,
                data.display()
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
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
