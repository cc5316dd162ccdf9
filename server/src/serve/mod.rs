//! `nudge serve`: opens a data directory, starts the trigger and outbox
//! loops, and answers HTTP until SIGTERM or Ctrl-C.
//!
//! Start-up: the engine opens (replaying the log after its last snapshot),
//! the API keys and the VAPID key are loaded or created in the data directory,
//! and with `--demo` an empty directory gets a generated dataset and sample
//! campaigns. Shutdown stops accepting connections, lets requests in flight
//! finish (every acknowledged write is already fsynced), stops the loops and
//! closes the engine, which writes a snapshot.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use nudge_engine::outbox::OutboxLoop;
use nudge_engine::{Engine, EngineOptions, FireLoop};

use crate::error::{Error, Result};
use crate::sender::Sender;
use crate::webpush::vapid::Vapid;

pub mod assets;
pub mod demo;
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
/// Time allowed for a client to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a client to send its request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a whole request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default requests per second admitted per key.
pub const DEFAULT_RATE_LIMIT: u32 = 200_000;

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
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT)]
    pub write_rate_limit: u32,
    /// Requests per second admitted for the admin key.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT)]
    pub admin_rate_limit: u32,
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
}

fn limiter(per_second: u32) -> DefaultDirectRateLimiter {
    let rate = std::num::NonZeroU32::new(per_second.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(rate).allow_burst(rate))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(options: ServeOptions) -> Result<()> {
    // Read before anything opens, so a bad file fails the start at once.
    let extra_roots = match &options.push_ca_file {
        Some(path) => crate::sender::read_ca_file(path)?,
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
        metrics,
        write_limiter: limiter(options.write_rate_limit),
        admin_limiter: limiter(options.admin_rate_limit),
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
    let handle = runtime.handle().clone();
    let outbox_sender = sender.clone();
    let outbox = OutboxLoop::spawn(
        engine.clone(),
        move |items| outbox_sender.send_batch(&handle, items),
        report("sending"),
    )
    .map_err(|e| Error::Io { context: "starting the outbox loop".into(), source: e })?;

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

    runtime.block_on(serve(listener, routes::router(state)));
    println!("nudge: shutting down");
    drop(outbox);
    drop(fires);
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

/// Accepts connections until a shutdown signal, then drains them.
async fn serve(listener: tokio::net::TcpListener, router: axum::Router) {
    let app = ServiceBuilder::new()
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .service(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(app.clone());
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
            _ = &mut signal => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {},
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            eprintln!("nudge: connections still open after {} s; closing them", SHUTDOWN_GRACE.as_secs());
        }
    }
}
