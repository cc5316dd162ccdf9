//! Fuzz target `http_api`: request bodies (and path tails) sent in-process through the
//! real router of `nudge serve` (`http::routes::router`, with tower's `oneshot`, no
//! socket), over an engine in a scratch data directory that lives for the whole run.
//! Every endpoint that reads a body is covered: events, profiles, subscriptions (add
//! and remove), track, query, segments, campaigns (save and test) and settings.
//!
//! The first byte picks the endpoint (and so the key: admin or write), the rest is the
//! body; for the `GET`/`DELETE` routes with a name the rest is the URL's tail instead.
//! Accepted writes change the engine, so later inputs run against earlier ones' data.
//!
//! Failure means a panic anywhere (libFuzzer aborts on a panic in any thread: the
//! ingest threads and the blocking pool included), a 500, or an answer that is not the
//! JSON the API promises (`{"error": {"code", "message"}}` for every refusal).

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use nudge_engine::{Durability, Engine, EngineOptions};
use nudge_server::http::keys::ApiKeys;
use nudge_server::http::{AppState, ingest::IngestQueue, metrics::Metrics, routes};
use nudge_server::push::webpush::vapid::Vapid;
use tower::ServiceExt;

/// The admin key of the scratch server.
const ADMIN_KEY: &str = "ak_fuzz_admin_key_0123456789abcdef";
/// The write key of the scratch server.
const WRITE_KEY: &str = "wk_fuzz_write_key_0123456789abcdef";
/// Requests per second the scratch server admits per key: more than any fuzzer sends.
const RATE_LIMIT: u32 = 10_000_000;

/// How the rest of an input is used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rest {
    /// As the request body.
    Body,
    /// Appended to the path (percent-encoded), no body.
    PathTail,
}

/// The endpoints: method, path, whether the admin key is needed, and what the rest is.
const ENDPOINTS: &[(Method, &str, bool, Rest)] = &[
    (Method::POST, "/v1/events", false, Rest::Body),
    (Method::POST, "/v1/profiles", false, Rest::Body),
    (Method::POST, "/v1/subscriptions", false, Rest::Body),
    (Method::DELETE, "/v1/subscriptions", false, Rest::Body),
    (Method::POST, "/v1/track", false, Rest::Body),
    (Method::POST, "/v1/query", true, Rest::Body),
    (Method::PUT, "/v1/segments/s", true, Rest::Body),
    (Method::PUT, "/v1/campaigns/c", true, Rest::Body),
    (Method::POST, "/v1/campaigns/c/test", true, Rest::Body),
    (Method::PUT, "/v1/settings", true, Rest::Body),
    (Method::GET, "/v1/segments/", true, Rest::PathTail),
    (Method::GET, "/v1/campaigns/", true, Rest::PathTail),
    (Method::DELETE, "/v1/segments/", true, Rest::PathTail),
    (Method::GET, "/v1/decisions?user_id=", true, Rest::PathTail),
];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// Kept so that the data directory outlives the run.
    _dir: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        // libFuzzer exits without running destructors: fuzz/run.sh removes
        // `nudge-fuzz-http_api-*` directories after the run.
        let mut scratch = tempfile::Builder::new();
        scratch.prefix("nudge-fuzz-http_api-");
        let dir = if shm.is_dir() { scratch.tempdir_in(shm) } else { scratch.tempdir() };
        let dir = dir.expect("a scratch data directory");
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let options = EngineOptions {
            durability: Durability::Buffered,
            snapshot_on_close: false,
            ..EngineOptions::default()
        };
        let engine = Arc::new(Engine::open(dir.path(), options).expect("an engine"));
        let vapid = Vapid::load_or_create(&dir.path().join("vapid.pk8"), "mailto:fuzz@example.com")
            .expect("a VAPID key");
        let public_key = vapid.public_key().to_owned();
        let metrics = Arc::new(Metrics::new());
        let state = runtime.block_on(async {
            let sender = nudge_server::push::sender::Sender::with_roots(
                vapid,
                false,
                Vec::new(),
                engine.clock().clone(),
                metrics.clone(),
            )
            .expect("a sender");
            let limiter = || {
                let rate = std::num::NonZeroU32::new(RATE_LIMIT).expect("a rate");
                governor::RateLimiter::direct(governor::Quota::per_second(rate))
            };
            AppState {
                engine: engine.clone(),
                keys: ApiKeys { write: WRITE_KEY.into(), admin: ADMIN_KEY.into(), created: false },
                vapid_public_key: public_key,
                sender: Arc::new(sender),
                ingest: IngestQueue::start(engine.clone()).expect("ingest threads"),
                metrics,
                write_limiter: limiter(),
                admin_limiter: limiter(),
                in_flight: nudge_server::http::admission::InFlight::new(
                    nudge_server::http::admission::MAX_API_REQUESTS_IN_FLIGHT,
                ),
            }
        });
        let router = routes::router(Arc::new(state));
        Server { runtime, router, _dir: dir }
    })
}

/// Percent-encodes every byte but unreserved ones, so any tail makes a valid URI.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (method, path, admin, how) = &ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let key = if *admin { ADMIN_KEY } else { WRITE_KEY };
    let (uri, body) = match how {
        Rest::Body => (path.to_string(), Body::from(rest.to_vec())),
        Rest::PathTail => (format!("{path}{}", percent_encode(rest)), Body::empty()),
    };
    let request = Request::builder()
        .method(method.clone())
        .uri(&uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a request");
    let server = server();
    let (status, bytes) = server.runtime.block_on(async {
        let response = server.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, bytes)
    });
    let text = String::from_utf8_lossy(&bytes);
    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{method} {uri}: 500 {text}");
    if status == StatusCode::NO_CONTENT {
        return;
    }
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!("{method} {uri}: {status} with a body that is not JSON ({e}): {text}")
    });
    if !status.is_success() {
        let error = &json["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{method} {uri}: {status} without an error code and message: {text}"
        );
    }
});
