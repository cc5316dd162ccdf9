//! `load`: sustained HTTP load against a real `nudge serve`, with `wrk`, to
//! check that overload is refused (429/503 with `Retry-After`) rather than
//! queued, that `/healthz` keeps answering, and that memory stays bounded.
//!
//! It starts `nudge serve` (the build of this harness's profile, or
//! `NUDGE_BINARY`) on a temporary data directory with its default limits, then
//! runs the phases one after the other, each for `--seconds`: batch ingest,
//! single-event ingest, segment queries, and an overload phase with more
//! connections than `--max-in-flight` admits. Meanwhile it probes `/healthz`
//! and samples the server's RSS. It prints one table row per phase
//! (docs/benchmarks.md, "Load and backpressure").
//!
//! - `cargo run --release -p nudge-benches --bin load -- --pin` is the
//!   measured run (60 s per phase; `--pin` puts the server on core 0 and the
//!   load on core 1); it writes the table into docs/reliability.md.
//! - `--check` (CI, debug build fine): 3 s per phase, nothing written, and the
//!   exit code is 1 when health stopped answering, a 5xx other than 503 or an
//!   unexpected status appeared, a request timed out, the server's peak RSS
//!   passed `--max-rss-mib`, what was acknowledged is not what was stored, or
//!   the server did not serve normally afterwards. A run that hangs is killed.

mod probe;
mod report;
mod wrk;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;
use mimalloc::MiMalloc;
use nudge_benches::serve::ServeProcess;

use crate::report::PhaseReport;
use crate::wrk::{Phase, Work};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const WRITE_KEY: &str = "wk_load_write_key_0123456789";
const ADMIN_KEY: &str = "ak_load_admin_key_0123456789";
/// Seconds per phase of the measured run.
const LONG_SECONDS: u64 = 60;
/// Seconds per phase of `--check`.
const CHECK_SECONDS: u64 = 3;
/// Events per request of the batch phase.
const BATCH_EVENTS: usize = 200;
/// Connections of the overload phase: four times the server's default in-flight limit.
const OVERLOAD_CONNECTIONS: usize = 1024;
/// Connections of the overload phase in `--check`: twice the in-flight limit,
/// within the listen backlog, so a debug build on 2 shared cores stays live.
const CHECK_OVERLOAD_CONNECTIONS: usize = 512;
/// Default bound on the server's peak RSS in `--check`, MiB.
const CHECK_MAX_RSS_MIB: u64 = 1024;
/// Extra time the whole run may take before the watchdog ends it.
const RUN_GRACE: Duration = Duration::from_secs(180);

/// `load`'s command line.
#[derive(Debug, Parser)]
#[command(about = "Sustained HTTP load against nudge serve with wrk (docs/benchmarks.md)")]
struct Args {
    /// CI mode: short phases, pass/fail verdicts, docs left alone.
    #[arg(long)]
    check: bool,
    /// Seconds per phase (default 60, or 3 with --check).
    #[arg(long)]
    seconds: Option<u64>,
    /// Pin the server to core 0 and this harness and wrk to core 1 (taskset).
    #[arg(long)]
    pin: bool,
    /// Fail when the server's peak RSS passes this many MiB (default 1024 with --check).
    #[arg(long)]
    max_rss_mib: Option<u64>,
    /// Do not write the results into docs/reliability.md.
    #[arg(long)]
    no_docs: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            for failure in failures {
                eprintln!("load: FAIL: {failure}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("load: {error}");
            ExitCode::FAILURE
        }
    }
}

fn phases(overload_connections: usize) -> Vec<Phase> {
    let queries = [
        r#"did "Viewed" at least 3 times in last 7d"#,
        r#"did "Added To Cart" in last 7d and not did "Bought" in last 7d"#,
        r#"sum(amount) of "Bought" in last 30d >= 500"#,
        r#"did "Viewed" then "Bought" within 1h in last 7d"#,
    ];
    vec![
        Phase { name: "batch", work: Work::Ingest(BATCH_EVENTS), connections: 8 },
        Phase { name: "single", work: Work::Ingest(1), connections: 64 },
        Phase {
            name: "query",
            work: Work::Query(queries.iter().map(|q| q.to_string()).collect()),
            connections: 8,
        },
        Phase { name: "overload", work: Work::Ingest(1), connections: overload_connections },
    ]
}

fn taskset(core: &str, pid: u32) -> Result<(), String> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", core, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("taskset: {e}"))?;
    status.success().then_some(()).ok_or_else(|| format!("taskset -c {core} {pid}: {status}"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Kills the server and ends the process if the run takes far too long.
fn watchdog(budget: Duration, server_pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("load: FAIL: the run did not finish within {budget:?}; stopping");
        let _ = Command::new("kill").args(["-KILL", &server_pid.to_string()]).status();
        std::process::exit(2);
    });
}

/// A counter of `/metrics`.
fn metric(port: u16, name: &str) -> Result<u64, String> {
    let (_, text) = probe::http(port, "GET", "/metrics", ADMIN_KEY, "")?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .ok_or_else(|| format!("no {name} in /metrics"))
}

fn run(args: &Args) -> Result<Vec<String>, String> {
    let seconds = args.seconds.unwrap_or(if args.check { CHECK_SECONDS } else { LONG_SECONDS });
    let duration = Duration::from_secs(seconds);
    let max_rss_mib = args.max_rss_mib.or(args.check.then_some(CHECK_MAX_RSS_MIB));
    let load_before = load_average();
    if args.pin {
        taskset("1", std::process::id())?;
    }
    let work = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let data = work.path().join("data");
    let server = ServeProcess::start(
        &[OsStr::new("--data"), data.as_os_str()],
        &[("NUDGE_WRITE_KEY", WRITE_KEY), ("NUDGE_ADMIN_KEY", ADMIN_KEY)],
    )?;
    if args.pin {
        taskset("0", server.pid())?;
    }
    let phases = phases(if args.check { CHECK_OVERLOAD_CONNECTIONS } else { OVERLOAD_CONNECTIONS });
    watchdog((duration + wrk::WRK_GRACE) * phases.len() as u32 + RUN_GRACE, server.pid());
    eprintln!(
        "load: nudge serve (pid {}) on port {}; {} phases of {seconds} s; load average {load_before}",
        server.pid(),
        server.port,
        phases.len()
    );

    let watch = probe::Watch::start(server.port, server.pid());
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for (index, phase) in phases.iter().enumerate() {
        watch.phase.store(index, std::sync::atomic::Ordering::Relaxed);
        let key = if matches!(phase.work, Work::Query(_)) { ADMIN_KEY } else { WRITE_KEY };
        eprintln!("load: phase {} ({} connections)", phase.name, phase.connections);
        match wrk::run(phase, server.port, key, duration, work.path()) {
            Ok(result) => results.push((index, phase.clone(), result)),
            Err(e) => {
                failures.push(e);
                break;
            }
        }
    }
    // After the load: the server serves normally and stored what it acknowledged.
    std::thread::sleep(Duration::from_millis(1100));
    let after = r#"[{"user_id": "after", "name": "After", "id": "after-1"}]"#;
    match probe::http(server.port, "POST", "/v1/events", WRITE_KEY, after) {
        Ok((200, _)) => {}
        other => failures.push(format!("a request after the load was not served: {other:?}")),
    }
    let stored = metric(server.port, "nudge_ingest_events_total")?;
    let (probes, rss) = watch.stop();
    let rss_end = probe::rss_of(server.pid());
    drop(server);

    let reports: Vec<PhaseReport> = results
        .into_iter()
        .map(|(index, phase, result)| PhaseReport::new(index, phase, result, &probes, &rss))
        .collect();
    let table = report::table(&reports);
    println!("{table}");
    failures.extend(verdicts(&reports, stored, max_rss_mib));
    let peak = rss.iter().map(|(_, _, hwm)| *hwm).max().unwrap_or(0);
    let summary = format!(
        "Server peak RSS (VmHWM) {} MiB, RSS after the run {} MiB; {} health probes, {} failed",
        peak / 1024,
        rss_end.map_or(0, |(r, _)| r / 1024),
        probes.len(),
        probes.iter().filter(|(_, r)| r.is_err()).count(),
    );
    println!("{summary}");

    if !args.check && !args.no_docs {
        let profile = nudge_benches::serve::nudge_binary()?
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/reliability.md");
        let section = format!(
            "## Load and backpressure: last run of `benches/load`\n\n\
             `cargo run --release -p nudge-benches --bin load --{}{}` ({profile} build of `nudge serve` with its default limits: \
             256 requests in flight, 4096 connections; {seconds} s per phase; wrk 1 thread, closed loop; \
             load average before {load_before}; {}). Latencies are wrk's; health is a fresh-connection `GET /healthz` every 50 ms; \
             RSS start and end are the server's `VmRSS` at the phase's first and last sample, peak its `VmHWM` \
             (high-water mark since start) at the phase's end. \
             `other` counts 5xx but 503, unexpected 4xx, socket errors and timeouts. \
             {summary}. Verdicts: {}.\n\n{table}",
            if args.pin { " --pin" } else { "" },
            args.seconds.map(|s| format!(" --seconds {s}")).unwrap_or_default(),
            if args.pin { "server pinned to core 0, load to core 1" } else { "not pinned" },
            if failures.is_empty() { "all passed".to_owned() } else { failures.join("; ") },
        );
        report::write_section(&docs, &section)?;
        eprintln!("load: wrote the results into {}", docs.display());
    }
    Ok(failures)
}

/// What makes a run fail.
fn verdicts(reports: &[PhaseReport], stored: u64, max_rss_mib: Option<u64>) -> Vec<String> {
    let mut failures = Vec::new();
    let mut acknowledged = 0;
    let mut unanswered_bound = 0;
    for r in reports {
        let (name, w) = (r.phase.name, &r.wrk);
        if !r.health_failures.is_empty() {
            failures.push(format!(
                "{name}: {} health probes failed, first: {}",
                r.health_failures.len(),
                r.health_failures[0]
            ));
        }
        if r.health.is_empty() {
            failures.push(format!("{name}: /healthz never answered"));
        }
        if w.c5xx > 0 || w.cother > 0 {
            failures.push(format!(
                "{name}: {} 5xx other than 503, {} other statuses",
                w.c5xx, w.cother
            ));
        }
        if w.timeouts > 0 {
            failures.push(format!(
                "{name}: {} requests got no answer within {:?}",
                w.timeouts,
                wrk::WRK_TIMEOUT
            ));
        }
        if w.c2xx == 0 {
            failures.push(format!("{name}: nothing was answered 2xx"));
        }
        if let (Some(bound), Some((_, peak, _))) = (max_rss_mib, r.rss_kib)
            && peak / 1024 > bound
        {
            failures.push(format!("{name}: server peak RSS {} MiB > {bound} MiB", peak / 1024));
        }
        let events = r.events_per_request() as u64;
        acknowledged += w.c2xx * events;
        // Requests in flight when wrk stopped may be stored without wrk seeing the answer.
        unanswered_bound += r.phase.connections as u64 * events;
    }
    // The request after the load stored one more event.
    let acknowledged = acknowledged + 1;
    if stored < acknowledged || stored > acknowledged + unanswered_bound {
        failures.push(format!(
            "the server stored {stored} events; acknowledged {acknowledged} (+ at most {unanswered_bound} unanswered)"
        ));
    }
    failures
}
