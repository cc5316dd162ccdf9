//! `nudge serve`: opens a data directory, starts the trigger and outbox
//! loops, and answers HTTP until SIGTERM or Ctrl-C.
//!
//! Start-up: the engine opens (replaying the log after its last snapshot),
//! the API keys and the VAPID key are loaded or created in the data directory,
//! and with `--demo` an empty directory gets a generated dataset and sample
//! campaigns. Shutdown stops accepting connections, lets requests in flight
//! finish (every acknowledged write is already fsynced), stops the loops and
//! closes the engine, which writes a snapshot.
//!
//! Overload is refused fast rather than queued: at most `--max-connections`
//! connections ([`connections`]), `--max-in-flight` requests being worked on
//! ([`admission`], 503 `overloaded`), a bounded ingest queue ([`ingest`], 503
//! when full) and per-key request rates (429), each refusal with `Retry-After`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use nudge_engine::OutboxLoop;
use nudge_engine::{Engine, EngineOptions, FireLoop, SealLoop};

use crate::error::{Error, Result};
use crate::push::sender::Sender;
use crate::push::webpush::vapid::Vapid;

pub mod admission;
pub mod assets;
pub mod auth;
pub mod connections;
pub mod demo;
pub mod extract;
pub mod ingest;
pub mod keys;
pub mod metrics;
pub mod reply;
pub mod routes;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The VAPID key file inside the data directory (PKCS#8, mode 0600).
pub const VAPID_KEY_FILE: &str = "vapid.pk8";
/// Default VAPID `sub` claim; set `--vapid-subject` to a real contact.
pub const DEFAULT_VAPID_SUBJECT: &str = "mailto:push-operator@nudge-demo.dev";
pub use connections::{
    API_REQUEST_TIMEOUT, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, SHUTDOWN_GRACE,
};
/// Default requests per second admitted per key.
pub const DEFAULT_REQUESTS_PER_S: u32 = 200_000;

/// What `nudge serve` was asked to do (its command-line flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeOptions {
    /// Data directory (created when missing).
    #[arg(long, default_value = crate::DEFAULT_DATA_DIR)]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// On first start, load a generated dataset and sample campaigns.
    #[arg(long)]
    pub demo: bool,
    /// Allow http://, any host and private addresses as push and webhook targets (tests only).
    #[arg(long)]
    pub allow_insecure_push: bool,
    /// Extra trusted root certificates (PEM) for push and webhook TLS: a private push gateway's CA, or a test receiver's.
    #[arg(long, value_name = "PEM")]
    pub push_ca_file: Option<PathBuf>,
    /// The VAPID `sub` claim: a mailto: or https: contact for push services.
    #[arg(long, env = "NUDGE_VAPID_SUBJECT", default_value = DEFAULT_VAPID_SUBJECT)]
    pub vapid_subject: String,
    /// Requests per second admitted for the write key.
    #[arg(long = "write-rate-limit", visible_alias = "write-requests-per-s", default_value_t = DEFAULT_REQUESTS_PER_S)]
    pub write_requests_per_s: u32,
    /// Requests per second admitted for the admin key.
    #[arg(long = "admin-rate-limit", visible_alias = "admin-requests-per-s", default_value_t = DEFAULT_REQUESTS_PER_S)]
    pub admin_requests_per_s: u32,
    /// Most requests worked on at once; more are refused with 503 (`/healthz` and `/metrics` exempt).
    #[arg(long, default_value_t = admission::MAX_API_REQUESTS_IN_FLIGHT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_in_flight: usize,
    /// Most connections open at once; more are closed as soon as they are accepted.
    #[arg(long, default_value_t = MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,
    /// Milliseconds a connection may take to send a request head (from accept or its last answer).
    #[arg(long, default_value_t = HEADER_READ_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_ms: u64,
    /// Longest pause in milliseconds while a request body arrives (408 beyond).
    #[arg(long, default_value_t = BODY_READ_TIMEOUT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout_ms: u64,
}

impl ServeOptions {
    /// The connection limits these flags ask for.
    pub fn connection_limits(&self) -> connections::ConnectionLimits {
        connections::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
        }
    }
}

/// What the handlers share.
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The API keys.
    pub keys: keys::ApiKeys,
    /// The VAPID public key (base64url).
    pub vapid_public_key: String,
    /// The sender (for endpoint checks and VAPID).
    pub sender: Arc<Sender>,
    /// Coalesces ingest requests into engine batches.
    pub ingest: ingest::IngestQueue,
    /// Counters.
    pub metrics: Arc<metrics::Metrics>,
    /// Admission for the write key.
    pub write_limiter: DefaultDirectRateLimiter,
    /// Admission for the admin key.
    pub admin_limiter: DefaultDirectRateLimiter,
    /// The budget of requests in flight.
    pub in_flight: admission::InFlight,
}

fn limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = std::num::NonZeroU32::new(per_second.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(rate))
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(options: ServeOptions) -> Result<()> {
    // Read before anything opens, so a bad file fails the start at once.
    let extra_roots = match &options.push_ca_file {
        Some(path) => crate::push::sender::read_ca_file(path)?,
        None => Vec::new(),
    };
    let extra_root_count = extra_roots.len();
    std::fs::create_dir_all(&options.data).map_err(|e| Error::Io {
        context: format!("creating {}", options.data.display()),
        source: e,
    })?;
    let engine = Arc::new(Engine::open(&options.data, EngineOptions::default())?);
    let keys = keys::ApiKeys::load_or_create(&options.data)?;
    let vapid = Vapid::load_or_create(&options.data.join(VAPID_KEY_FILE), &options.vapid_subject)?;
    let vapid_public_key = vapid.public_key().to_owned();
    let demo_loaded = if options.demo { demo::load_if_empty(&engine)? } else { None };
    let metrics = Arc::new(metrics::Metrics::new());
    let sender = Arc::new(Sender::with_roots(
        vapid,
        options.allow_insecure_push,
        extra_roots,
        engine.clock().clone(),
        metrics.clone(),
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nudge-http")
        .build()
        .map_err(|e| Error::Io { context: "starting the async runtime".into(), source: e })?;
    let state = Arc::new(AppState {
        engine: engine.clone(),
        keys: keys.clone(),
        vapid_public_key: vapid_public_key.clone(),
        sender: sender.clone(),
        ingest: ingest::IngestQueue::start(engine.clone())
            .map_err(|e| Error::Io { context: "starting the ingest threads".into(), source: e })?,
        metrics: metrics.clone(),
        write_limiter: limiter(options.write_requests_per_s),
        admin_limiter: limiter(options.admin_requests_per_s),
        in_flight: admission::InFlight::new(options.max_in_flight),
    });
    let listener =
        runtime.block_on(tokio::net::TcpListener::bind(options.listen)).map_err(|e| Error::Io {
            context: format!("listening on {}", options.listen),
            source: e,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Io { context: "reading the listen address".into(), source: e })?;

    let report = |what: &'static str| move |e: nudge_engine::Error| eprintln!("nudge: {what}: {e}");
    let fires = FireLoop::spawn(engine.clone(), |_| {}, report("deciding fires"))
        .map_err(|e| Error::Io { context: "starting the fire loop".into(), source: e })?;
    let sealer = SealLoop::spawn(engine.clone(), report("sealing days"))
        .map_err(|e| Error::Io { context: "starting the sealer".into(), source: e })?;
    let handle = runtime.handle().clone();
    let outbox_sender = sender.clone();
    let outbox = OutboxLoop::spawn(
        engine.clone(),
        move |items, reports| outbox_sender.dispatch(&handle, items, reports),
        report("sending"),
    )
    .map_err(|e| Error::Io { context: "starting the outbox loop".into(), source: e })?;

    let opened = engine.open_report();
    println!(
        "nudge: opened in {:.2} s ({}, {} events replayed from the log)",
        opened.took.as_secs_f64(),
        opened.snapshot_position.map_or("no snapshot".into(), |p| format!("snapshot at {p}")),
        opened.replayed_events
    );
    for warning in &opened.warnings {
        eprintln!("nudge: open: {warning}");
    }
    println!("nudge: serving {} on http://{local}", options.data.display());
    if keys.created {
        println!("nudge: write key (public, for browsers): {}", keys.write);
        println!("nudge: admin key (secret):              {}", keys.admin);
    } else {
        println!(
            "nudge: keys are in {} (NUDGE_WRITE_KEY and NUDGE_ADMIN_KEY override them)",
            options.data.join(keys::KEYS_FILE).display()
        );
    }
    println!("nudge: VAPID public key: {vapid_public_key}");
    if let Some(loaded) = demo_loaded {
        println!("nudge: demo: {loaded}; open http://{local}/ to subscribe this browser");
    }
    if let Some(path) = &options.push_ca_file {
        println!(
            "nudge: push and webhook TLS also trusts {extra_root_count} certificate(s) from {}",
            path.display()
        );
    }
    if options.allow_insecure_push {
        println!(
            "nudge: --allow-insecure-push: push and webhook targets are not restricted (tests only)"
        );
    }

    let limits = options.connection_limits();
    runtime.block_on(connections::serve(listener, routes::router(state), limits, metrics));
    println!("nudge: shutting down");
    drop(outbox);
    drop(fires);
    drop(sealer);
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The ingest threads let go of the engine once the queue's last handle is gone.
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while Arc::strong_count(&engine) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let engine = Arc::try_unwrap(engine)
        .map_err(|_| Error::Usage("the engine is still in use at shutdown".into()))?;
    engine.close()?;
    println!("nudge: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeOptions,
    }

    #[test]
    fn rate_flags_also_have_names_with_their_unit() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("nudge").chain(args.iter().copied()));
            let serve = cli.unwrap().serve;
            (serve.write_requests_per_s, serve.admin_requests_per_s)
        };
        assert_eq!(parse(&[]), (DEFAULT_REQUESTS_PER_S, DEFAULT_REQUESTS_PER_S));
        assert_eq!(parse(&["--write-rate-limit", "5", "--admin-rate-limit", "6"]), (5, 6));
        assert_eq!(parse(&["--write-requests-per-s", "7", "--admin-requests-per-s", "8"]), (7, 8));
    }
}
