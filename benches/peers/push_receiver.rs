//! The push part's loopback push service: three TLS origins on 127.0.0.1
//! (standing in for an FCM-, a Mozilla- and an Apple-like push service) that
//! answer every well-formed push `201 Created`, the way a real push service
//! acknowledges a message it has queued.
//!
//! - TLS with a certificate made at start: a throwaway CA signs a leaf for
//!   `127.0.0.1` and `localhost`; both senders are told to trust the CA (Nudge
//!   by `--push-ca-file`, Node by the agent's `ca`). ALPN offers `h2` and
//!   `http/1.1`, and hyper-util's auto server speaks whichever the client
//!   chose, so each sender uses its own preferred protocol.
//! - Counting: a slot per subscription (`/push/<n>`, origin `n % 3`), the
//!   number of distinct subscriptions reached, duplicates, misrouted requests
//!   and requests per HTTP version. The moment the last expected subscription
//!   is first reached is recorded for the timing.
//! - Sampling: the first message and every [`SAMPLE_EVERY`]th after it (by
//!   arrival) are kept whole (headers and body) and checked after the timed
//!   run, so decryption does not slow the receiver while it is timed.
//!
//! It runs on its own multi-threaded tokio runtime inside the `peers`
//! process, sharing the machine's cores with the sender under test.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::context::Result;
use crate::fail;

/// Push-service origins the receiver stands in for (FCM-, Mozilla- and Apple-like).
pub const ORIGINS: usize = 3;
/// One message in this many (by arrival, the first included) is kept for checking.
pub const SAMPLE_EVERY: u64 = 100;
/// Worker threads of the receiver's runtime (the machine has two cores).
const RECEIVER_THREADS: usize = 2;
/// Concurrent HTTP/2 streams allowed per connection (above both senders' in-flight limits).
const MAX_H2_STREAMS: u32 = 1024;
/// Largest push body accepted (RFC 8030 services take 4096 bytes).
const MAX_PUSH_BODY: usize = 4096;
/// The path prefix of every subscription endpoint.
pub const PUSH_PATH: &str = "/push/";

/// One message kept whole for checking after the run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The subscription number (from the path).
    pub n: usize,
    /// The origin (listener) it arrived on.
    pub origin: usize,
    /// `Authorization` (the VAPID header).
    pub authorization: String,
    /// `Content-Encoding`.
    pub content_encoding: String,
    /// `TTL`.
    pub ttl: String,
    /// The encrypted body.
    pub body: Vec<u8>,
}

/// What the receiver counted since the last reset.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// Requests answered 201.
    pub accepted: u64,
    /// Distinct subscriptions reached.
    pub distinct: u64,
    /// Requests to a subscription already reached.
    pub duplicates: u64,
    /// Requests to an unknown path, the wrong origin, or with a bad body (answered 404 or 400).
    pub refused: u64,
    /// Requests over HTTP/2.
    pub h2: u64,
    /// Requests over HTTP/1.1.
    pub http1: u64,
    /// Requests per origin.
    pub per_origin: [u64; ORIGINS],
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    distinct: AtomicU64,
    duplicates: AtomicU64,
    refused: AtomicU64,
    h2: AtomicU64,
    http1: AtomicU64,
    per_origin: [AtomicU64; ORIGINS],
}

struct State {
    /// Messages received per subscription.
    slots: Vec<AtomicU32>,
    counters: Counters,
    /// Distinct subscriptions that complete the run.
    expected: AtomicU64,
    /// When `expected` distinct subscriptions had been reached.
    done_at: Mutex<Option<Instant>>,
    samples: Mutex<Vec<Sample>>,
}

/// The running receiver.
pub struct Receiver {
    /// The port of each origin on 127.0.0.1.
    pub ports: [u16; ORIGINS],
    /// The CA certificate (PEM) both senders must trust.
    pub ca_pem: String,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The CA's PEM, and the server's certificate chain and key.
fn certificates() -> Result<(String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let tls = |e: rcgen::Error| fail!("could not make the receiver's certificate: {e}");
    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "nudge peers loopback push CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(tls)?;
    leaf.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(tls)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(tls)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    Ok((ca_cert.pem(), vec![leaf_cert.der().clone(), ca_cert.der().clone()], key))
}

impl Receiver {
    /// Starts the three origins for subscriptions `0..subscriptions`.
    pub fn start(subscriptions: usize) -> Result<Receiver> {
        let (ca_pem, chain, key) = certificates()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| fail!("receiver TLS setup failed: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RECEIVER_THREADS)
            .thread_name("push-receiver")
            .enable_all()
            .build()?;
        let state = Arc::new(State {
            slots: (0..subscriptions).map(|_| AtomicU32::new(0)).collect(),
            counters: Counters::default(),
            expected: AtomicU64::new(u64::MAX),
            done_at: Mutex::new(None),
            samples: Mutex::new(Vec::new()),
        });
        let mut ports = [0u16; ORIGINS];
        for (origin, port) in ports.iter_mut().enumerate() {
            let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))?;
            *port = listener.local_addr()?.port();
            runtime.spawn(accept_loop(listener, acceptor.clone(), state.clone(), origin));
        }
        Ok(Receiver { ports, ca_pem, state, runtime: Some(runtime) })
    }

    /// The endpoint of subscription `n`.
    pub fn endpoint(&self, n: usize) -> String {
        format!("https://127.0.0.1:{}{PUSH_PATH}{n}", self.ports[n % ORIGINS])
    }

    /// Clears every count and sample; the next run completes at `expected` distinct subscriptions.
    pub fn reset(&self, expected: usize) {
        for slot in &self.state.slots {
            slot.store(0, Ordering::Relaxed);
        }
        let c = &self.state.counters;
        for counter in [&c.accepted, &c.distinct, &c.duplicates, &c.refused, &c.h2, &c.http1]
            .into_iter()
            .chain(c.per_origin.iter())
        {
            counter.store(0, Ordering::Relaxed);
        }
        *self.state.done_at.lock() = None;
        self.state.samples.lock().clear();
        self.state.expected.store(expected as u64, Ordering::SeqCst);
    }

    /// What was counted since the last reset.
    pub fn counts(&self) -> Counts {
        let c = &self.state.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            accepted: get(&c.accepted),
            distinct: get(&c.distinct),
            duplicates: get(&c.duplicates),
            refused: get(&c.refused),
            h2: get(&c.h2),
            http1: get(&c.http1),
            per_origin: std::array::from_fn(|i| get(&c.per_origin[i])),
        }
    }

    /// When the expected number of distinct subscriptions had been reached, if it has.
    pub fn done_at(&self) -> Option<Instant> {
        *self.state.done_at.lock()
    }

    /// Waits until every expected subscription has been reached; fails if no
    /// new one arrives for `stall`. Returns the moment the last one arrived.
    pub fn wait_done(&self, stall: Duration) -> Result<Instant> {
        let mut last = (0, Instant::now());
        loop {
            if let Some(at) = self.done_at() {
                return Ok(at);
            }
            let distinct = self.counts().distinct;
            if distinct != last.0 {
                last = (distinct, Instant::now());
            } else if last.1.elapsed() > stall {
                return Err(fail!(
                    "push fan-out stalled: {distinct} of {} subscriptions reached, none new for {} s ({:?})",
                    self.state.expected.load(Ordering::Relaxed),
                    stall.as_secs(),
                    self.counts()
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The messages kept for checking (taken: a second call returns none).
    pub fn take_samples(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.state.samples.lock())
    }

    /// Subscriptions below `expected` that were never reached.
    pub fn missing(&self, expected: usize) -> Vec<usize> {
        (0..expected).filter(|&n| self.state.slots[n].load(Ordering::Relaxed) == 0).collect()
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    origin: usize,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(receive(&state, origin, request).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(MAX_H2_STREAMS);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Handles one push: counts it, keeps it if it is a sample, answers.
async fn receive(
    state: &State,
    origin: usize,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let c = &state.counters;
    match request.version() {
        Version::HTTP_2 => c.h2.fetch_add(1, Ordering::Relaxed),
        _ => c.http1.fetch_add(1, Ordering::Relaxed),
    };
    c.per_origin[origin].fetch_add(1, Ordering::Relaxed);
    let n = request
        .uri()
        .path()
        .strip_prefix(PUSH_PATH)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < state.slots.len() && n % ORIGINS == origin);
    let header = |name: &str| {
        request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let (authorization, content_encoding, ttl) =
        (header("authorization"), header("content-encoding"), header("ttl"));
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let (Some(n), Ok(body)) = (n, body) else {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::NOT_FOUND);
    };
    if body.is_empty() || body.len() > MAX_PUSH_BODY {
        c.refused.fetch_add(1, Ordering::Relaxed);
        return answer(StatusCode::BAD_REQUEST);
    }
    let seq = c.accepted.fetch_add(1, Ordering::Relaxed);
    if seq.is_multiple_of(SAMPLE_EVERY) {
        let sample =
            Sample { n, origin, authorization, content_encoding, ttl, body: body.to_vec() };
        state.samples.lock().push(sample);
    }
    if state.slots[n].fetch_add(1, Ordering::Relaxed) == 0 {
        let distinct = c.distinct.fetch_add(1, Ordering::SeqCst) + 1;
        if distinct == state.expected.load(Ordering::SeqCst) {
            *state.done_at.lock() = Some(Instant::now());
        }
    } else {
        c.duplicates.fetch_add(1, Ordering::Relaxed);
    }
    answer(StatusCode::CREATED)
}
