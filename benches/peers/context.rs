//! What every part of the peer benchmark shares: the command line, the work
//! directory, the scale, the installed tools and the shape of a part's result.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nudge_engine::dataset::{self, DatasetSpec};

/// The command line of `peers`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "peers",
    about = "Nudge side by side with DuckDB, SQLite, PostgreSQL, Node web-push and Redis"
)]
pub struct Args {
    /// Dataset scale: tiny (10k users), s (1M users, ~30M events) or m (10M users; DuckDB only).
    #[arg(long, default_value = "tiny")]
    pub scale: Scale,
    /// Where tools, the exported dataset and every system's data go.
    #[arg(long, default_value = "target/peers")]
    pub work: PathBuf,
    /// Parts to run, comma separated: queries, ingest, push, triggers.
    #[arg(long, value_delimiter = ',', default_value = "queries,ingest,push,triggers")]
    pub only: Vec<String>,
    /// Warm runs per query (after one untimed warm-up); at least 5.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Correctness only: answers must agree; no report is written (CI's smoke test).
    #[arg(long)]
    pub check: bool,
    /// Where the report goes: a markdown file (its peer section is replaced) and an image folder.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub report: PathBuf,
    /// Leave out SQLite and PostgreSQL at S too (DuckDB stays): a quicker
    /// run when only Nudge and DuckDB are compared.
    #[arg(long)]
    pub without_row_stores: bool,
}

/// A dataset scale of the benchmark plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// 10k users: CI's smoke test.
    Tiny,
    /// 1M users, about 30M events: every peer.
    S,
    /// 10M users, about 300M events: Nudge and DuckDB only.
    M,
}

impl Scale {
    /// Users generated at this scale.
    pub fn users(self) -> u64 {
        match self {
            Scale::Tiny => dataset::SCALE_TINY_USERS,
            Scale::S => dataset::SCALE_S_USERS,
            Scale::M => dataset::SCALE_M_USERS,
        }
    }

    /// The scale's name in paths and reports.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Tiny => "tiny",
            Scale::S => "S",
            Scale::M => "M",
        }
    }

    /// Whether PostgreSQL and SQLite run at this scale (the plan keeps them to S).
    pub fn row_stores(self) -> bool {
        self != Scale::M
    }
}

/// Why the harness stopped: a tool is missing, a peer failed, or answers disagree.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(format!("I/O error: {e}"))
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure(format!("JSON error: {e}"))
    }
}

impl From<nudge_engine::Error> for Failure {
    fn from(e: nudge_engine::Error) -> Self {
        Failure(format!("engine error: {e}"))
    }
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, Failure>;

/// Builds a `Failure` from a format string.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => { $crate::context::Failure(format!($($arg)*)) };
}

/// One part's result: its section of the report and the ratios for the chart.
#[derive(Debug, Default)]
pub struct Part {
    /// The section's markdown (a heading, a table, notes).
    pub markdown: String,
    /// Nudge's speed-up over each peer, for the chart.
    pub ratios: Vec<Ratio>,
}

/// How many times faster Nudge was than one peer on one measure.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// The measure, short (`Q4`, `ingest`, `fan-out`).
    pub measure: String,
    /// The peer's name.
    pub peer: String,
    /// Nudge's speed divided by the peer's (> 1: Nudge is faster).
    pub times: f64,
    /// The target for this ratio, if it sets one.
    pub target: Option<f64>,
}

/// The prepared run: arguments, tools and paths.
#[derive(Debug)]
pub struct Context {
    /// The command line.
    pub args: Args,
    /// Absolute work directory.
    pub work: PathBuf,
    /// The dataset's spec (users, `now`).
    pub spec: DatasetSpec,
    /// The virtual environment's Python (duckdb, psycopg, redis installed).
    pub python: PathBuf,
    /// The folder holding `node_modules/web-push`.
    pub node_dir: PathBuf,
    /// The harness's own scripts (`benches/peers`).
    pub scripts: PathBuf,
}

impl Context {
    /// Whether SQLite and PostgreSQL take part: at S and tiny, unless
    /// `--without-row-stores`.
    pub fn row_stores(&self) -> bool {
        self.args.scale.row_stores() && !self.args.without_row_stores
    }

    /// Installs what is missing and exports the dataset (once per scale).
    pub fn prepare(args: &Args) -> Result<Context> {
        if args.runs < 5 && !args.check {
            return Err(fail!("--runs must be at least 5 (got {})", args.runs));
        }
        std::fs::create_dir_all(&args.work)?;
        let work = args.work.canonicalize()?;
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        let spec = DatasetSpec::new(args.scale.users());
        let tools = crate::setup::install(&work, &scripts)?;
        let ctx = Context {
            args: args.clone(),
            work,
            spec,
            python: tools.python,
            node_dir: tools.node_dir,
            scripts,
        };
        crate::dataset::export(&ctx)?;
        Ok(ctx)
    }

    /// Whether `part` was asked for.
    pub fn wants(&self, part: &str) -> bool {
        self.args.only.iter().any(|p| p == part)
    }

    /// The folder of this scale's exported dataset and systems' data.
    pub fn scale_dir(&self) -> PathBuf {
        self.work.join(self.args.scale.name().to_lowercase())
    }

    /// Runs the harness's Python with `script` and `args`, returning its stdout;
    /// its stderr passes through (progress).
    pub fn python(&self, script: &str, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.python);
        command.arg(self.scripts.join(script)).args(args);
        run_captured(&mut command)
    }
}

/// Runs `command`, failing with its stderr's tail unless it succeeds; returns stdout.
pub fn run_captured(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| fail!("could not start {shown}: {e}"))?;
    if !output.status.success() {
        return Err(fail!("{shown} failed ({})", output.status));
    }
    String::from_utf8(output.stdout).map_err(|_| fail!("{shown} printed non-UTF-8 output"))
}
